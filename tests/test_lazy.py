"""Tests of foamlib.lazy: opening scans without loading them, slab by slab."""

from __future__ import annotations

import re

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
import zarr

from foamlib.io import ScanError, read_scan, write_tiff
from foamlib.lazy import LazyMask, LazyScan, central_region, grid_step, open_mask, open_scan, slab_starts


def _volume(shape=(7, 9, 11), dtype=np.uint16, seed=0):
    return (np.random.default_rng(seed).random(shape) * 1000).astype(dtype)


def _formats(tmp_path, volume):
    """The same volume as every format open_scan reads, with the source each one should use."""
    paths = {}
    paths["tiff"] = (write_tiff(tmp_path / "scan.tif", volume, voxel_size_um=2.5), {}, "memmap")
    zlib = tmp_path / "zlib.tif"
    tifffile.imwrite(zlib, volume, compression="zlib")
    paths["zlib"] = (zlib, {}, "tiff-pages")
    big = tmp_path / "big.tif"
    tifffile.imwrite(big, volume, bigtiff=True)
    paths["bigtiff"] = (big, {}, "memmap")
    raw = tmp_path / "scan.raw"
    volume.astype(">u2").tofile(raw)
    paths["raw"] = (raw, {"shape": volume.shape, "dtype": "uint16", "byte_order": "big"}, "memmap")
    npy = tmp_path / "scan.npy"
    np.save(npy, volume)
    paths["npy"] = (npy, {}, "memmap")
    folder = tmp_path / "slices"
    folder.mkdir()
    for z, image in enumerate(volume):
        iio.imwrite(folder / f"s_{z}.png", image)
    paths["folder"] = (folder, {}, "folder")
    store = zarr.create_array(str(tmp_path / "scan.zarr"), shape=volume.shape, dtype=volume.dtype, chunks=(2, 4, 4))
    store[:] = volume
    paths["zarr"] = (tmp_path / "scan.zarr", {}, "zarr")
    return paths


@pytest.mark.parametrize("fmt", ["tiff", "zlib", "bigtiff", "raw", "npy", "folder", "zarr"])
def test_every_format_reads_as_read_scan_does(tmp_path, fmt):
    volume = _volume()
    path, kwargs, source = _formats(tmp_path, volume)[fmt]
    scan = open_scan(path, **kwargs)
    assert isinstance(scan, LazyScan) and scan.source == source
    assert scan.shape == volume.shape and scan.dtype == np.uint16 and scan.dtype.isnative
    assert len(scan) == 7 and scan.size == volume.size and scan.nbytes == volume.nbytes
    np.testing.assert_array_equal(scan.read(2, 5), volume[2:5])
    assert scan.read(2, 5).dtype == np.uint16
    for key in (3, np.s_[1:6:2], np.s_[:, 4:7], np.s_[::3, ::2, ::4], np.s_[-1, :, 5], np.s_[2:4, 1, 3:9]):
        np.testing.assert_array_equal(scan[key], volume[key])
    whole = np.concatenate([scan.read(z0, z1) for z0, z1 in scan.slabs(3)])
    np.testing.assert_array_equal(whole, volume)
    assert scan.voxel_size_um == read_scan(path, **kwargs).voxel_size_um
    assert scan.value_range() == read_scan(path, **kwargs).original_range


def test_voxel_size_from_the_file_and_override(tmp_path):
    path = write_tiff(tmp_path / "scan.tif", _volume(), voxel_size_um=2.5)
    assert open_scan(path).voxel_size_um == pytest.approx(2.5)
    assert open_scan(path, voxel_size_um=7.0).voxel_size_um == 7.0


def test_2d_images_open_as_one_slice(tmp_path):
    image = _volume((9, 11))
    for path in (write_tiff(tmp_path / "a.tif", image), tmp_path / "b.png"):
        if path.suffix == ".png":
            iio.imwrite(path, image)
        scan = open_scan(path)
        assert scan.shape == (1, 9, 11)
        np.testing.assert_array_equal(scan.read(0, 1)[0], image)


def test_grey_rgb_tiff_is_read_as_grey(tmp_path):
    volume = _volume(dtype=np.uint8)
    path = tmp_path / "rgb.tif"
    tifffile.imwrite(path, np.stack([volume] * 3, axis=-1), photometric="rgb")
    scan = open_scan(path)
    assert scan.shape == volume.shape
    np.testing.assert_array_equal(scan.read(0, 7), volume)


def test_slab_starts():
    assert slab_starts(7, 3) == [(0, 3), (3, 6), (6, 7)]
    assert slab_starts(2, 5) == [(0, 2)]
    with pytest.raises(ValueError, match="depth"):
        slab_starts(7, 0)


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda p: p.write_bytes(b"not a tiff"), "not a readable TIFF"),
        (lambda p: tifffile.imwrite(p, np.zeros((2, 3, 4, 5), np.uint8), imagej=True, metadata={"axes": "ZCYX"}), "channels"),
    ],
)
def test_broken_tiffs_name_the_file(tmp_path, make, words):
    path = tmp_path / "bad.tif"
    make(path)
    with pytest.raises(ScanError, match=re.escape(str(path)) + ".*" + words):
        open_scan(path)


def test_truncated_contiguous_tiff_is_refused_on_open(tmp_path):
    path = write_tiff(tmp_path / "scan.tif", _volume())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ScanError, match=re.escape(str(path))):
        open_scan(path)


def test_raw_errors_match_read_scan(tmp_path):
    raw = tmp_path / "scan.raw"
    _volume().tofile(raw)
    for kwargs, words in (({}, "without a header"), ({"shape": (7, 9, 10), "dtype": "uint16"}, "bytes")):
        with pytest.raises(ScanError, match=words):
            open_scan(raw, **kwargs)


def test_nan_constant_and_other_checks_come_from_value_range(tmp_path):
    nan = _volume(dtype=np.float32)
    nan[3, 2, 1] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    scan = open_scan(tmp_path / "nan.npy")  # opening does not read the voxels
    with pytest.raises(ScanError, match="nan.npy contains 1 NaN"):
        scan.value_range()
    np.save(tmp_path / "flat.npy", np.full((3, 4, 5), 7, np.uint8))
    with pytest.raises(ScanError, match="flat.npy contains only the value 7"):
        open_scan(tmp_path / "flat.npy").value_range()
    np.save(tmp_path / "complex.npy", np.zeros((3, 4, 5), np.complex64))
    with pytest.raises(ScanError, match="complex"):
        open_scan(tmp_path / "complex.npy")
    with pytest.raises(ScanError, match="does not exist"):
        open_scan(tmp_path / "missing.tif")


def test_folder_slice_of_another_shape_is_named_when_read(tmp_path):
    folder = tmp_path / "slices"
    folder.mkdir()
    iio.imwrite(folder / "s_0.png", np.zeros((4, 5), np.uint8))
    iio.imwrite(folder / "s_1.png", np.zeros((4, 6), np.uint8))
    scan = open_scan(folder)
    assert scan.shape == (2, 4, 5)
    with pytest.raises(ScanError, match="s_1.png has shape"):
        scan.read(0, 2)


def test_bad_reads(tmp_path):
    scan = open_scan(write_tiff(tmp_path / "scan.tif", _volume()))
    with pytest.raises(ValueError, match="outside"):
        scan.read(5, 9)
    with pytest.raises(ValueError, match="empty"):
        scan.read(3, 3)
    with pytest.raises(TypeError, match="integers or slices"):
        scan[[1, 2]]


def test_count_outside_and_grid_sample(tmp_path):
    volume = _volume()
    scan = open_scan(write_tiff(tmp_path / "scan.tif", volume))
    assert scan.count_outside(100, 900) == int(np.count_nonzero((volume < 100) | (volume > 900)))
    np.testing.assert_array_equal(scan.grid_sample(10**9), volume)
    np.testing.assert_array_equal(scan.grid_sample(100), volume[::3, ::3, ::3])  # 3 * 3 * 4 = 36 <= 100 < 4 * 5 * 6


def test_real_scans_read_lazily_as_in_memory(shared_data):
    cases = [
        (shared_data / "cement" / "cement_128x128x128.tif", {}),
        (shared_data / "bone" / "bone_128x128x128.tif", {}),
        (shared_data / "fiberform" / "100_fiberform.tif", {}),
        (shared_data / "sand" / "sand_200x200x100_uint8.raw", {"shape": (100, 200, 200), "dtype": "uint8"}),
        (shared_data / "polymer_foam_slice" / "mousse_250x250x250_uint8_slice100.png", {}),
    ]
    for path, kwargs in cases:
        scan, whole = open_scan(path, **kwargs), read_scan(path, **kwargs)
        assert scan.shape == whole.volume.shape and scan.voxel_size_um == whole.voxel_size_um, path
        slabs = [scan.read(z0, z1) for z0, z1 in scan.slabs(7)]
        np.testing.assert_array_equal(np.concatenate(slabs).astype(np.float32), whole.volume)
        assert scan.value_range() == whole.original_range


def test_grid_step_is_the_smallest_step_that_fits():
    assert grid_step((7, 9, 11), 10**9) == 1 and grid_step((7, 9, 11), 7 * 9 * 11) == 1
    assert grid_step((7, 9, 11), 100) == 3  # 3 * 3 * 4 = 36 <= 100 < 4 * 5 * 6
    assert grid_step((512, 512, 512), 2**24) == 2
    with pytest.raises(ValueError, match="max_samples"):
        grid_step((4, 4, 4), 0)


@pytest.mark.parametrize("shape", [(512, 512, 512), (511, 513, 97), (3, 5000, 7000), (1, 1, 10**8), (64, 64, 64)])
def test_central_region_is_centred_and_bounded(shape):
    box = central_region(shape, 2**24)
    edges = [s.stop - s.start for s in box]
    assert np.prod(edges) <= 2**24
    for n, s, m in zip(shape, box, edges):
        assert 1 <= m <= n and s.start == (n - m) // 2  # centred
    if np.prod(shape) <= 2**24:
        assert edges == list(shape)  # a volume that fits is its own box
    assert central_region((512, 512, 512), 2**24) == (slice(128, 384),) * 3
    assert central_region((40, 1000, 1000), 40 * 100 * 100) == (slice(0, 40), slice(450, 550), slice(450, 550))
    with pytest.raises(ValueError, match="max_voxels"):
        central_region(shape, 0)


@pytest.mark.parametrize("label", ["solid", "pore"])
def test_open_mask_reads_slabs_as_read_mask_does(tmp_path, label):
    from foamlib.io import read_mask
    from foamlib.structure import porosity

    solid = _volume((9, 13, 10), seed=3) > 600
    path = write_tiff(tmp_path / "mask.tif", solid, voxel_size_um=3.0, label=label)
    mask = open_mask(path)
    assert isinstance(mask, LazyMask) and mask.label == label and mask.shape == solid.shape and mask.dtype == bool
    assert mask.voxel_size_um == pytest.approx(3.0) and len(mask) == 9 and mask.size == solid.size
    np.testing.assert_array_equal(mask[:], read_mask(path))
    np.testing.assert_array_equal(mask[4], solid[4])
    np.testing.assert_array_equal(mask[2:5, 1:7, ::3], solid[2:5, 1:7, ::3])
    np.testing.assert_array_equal(mask.read(3, 8), solid[3:8])
    assert mask.solid_voxels() == int(np.count_nonzero(solid))
    assert mask.porosity() == porosity(solid)  # the same formula, to the last bit


def test_open_mask_refuses_what_is_not_a_mask(tmp_path):
    from foamlib.io import write_probabilities

    with pytest.raises(FileNotFoundError, match="missing.tif does not exist; run the stage"):
        open_mask(tmp_path / "missing.tif")
    probs = write_probabilities(tmp_path / "p.tif", np.full((2, 3, 3), 0.25, dtype=np.float32))
    with pytest.raises(ValueError, match="probability map"):
        open_mask(probs)
    grey = tmp_path / "grey.tif"
    tifffile.imwrite(grey, np.ones((2, 5, 5), dtype=np.float32), photometric="minisblack")
    with pytest.raises(ValueError, match="not a mask: it holds float32"):
        open_mask(grey)
