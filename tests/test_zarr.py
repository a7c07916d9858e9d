"""Zarr and OME-Zarr: read lazily by open_scan, segmentations written slab by slab as OME-Zarr 0.5."""

from __future__ import annotations

import json

import numpy as np
import pytest
import zarr

from foamlib.io import ScanError, read_scan, write_tiff
from foamlib.lazy import open_scan
from foamlib.omezarr import PHASES, check_zarr_output, zarr_slab_writer
from foamlib.segment import DEFAULT_NORMALISATION, segment_file
from foamlib.training import save_model
from foamlib.unet import build_unet

TINY = {"levels": 2, "convs_per_level": 2, "base_channels": 4, "kernel_size": 3}


def _volume(shape=(7, 9, 11), dtype=np.uint16, seed=0):
    return (np.random.default_rng(seed).random(shape) * 1000).astype(dtype)


def _ome04(path, data, *, axes, unit="micrometer", scale=None, multiscale_scale=None):
    """An OME-NGFF 0.4 image (Zarr format 2) with one level "s0" and a half-resolution level "s1"."""
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    group.create_array("s0", shape=data.shape, dtype=data.dtype, chunks=tuple(max(1, n // 2) for n in data.shape))[:] = data
    group.create_array("s1", shape=data.shape, dtype=data.dtype)[:] = 0  # must not be read
    kinds = {"t": "time", "c": "channel"}
    meta_axes = [{"name": a, "type": kinds.get(a, "space"), **({"unit": unit} if a in "zyx" and unit else {})} for a in axes]
    scale = scale or [1.0] * len(axes)
    image = {
        "version": "0.4",
        "axes": meta_axes,
        "datasets": [{"path": "s0", "coordinateTransformations": [{"type": "scale", "scale": scale}]},
                     {"path": "s1", "coordinateTransformations": [{"type": "scale", "scale": [2 * s for s in scale]}]}],
    }  # fmt: skip
    if multiscale_scale is not None:
        image["coordinateTransformations"] = [{"type": "scale", "scale": multiscale_scale}]
    group.attrs["multiscales"] = [image]
    return path


def test_plain_arrays_read_lazily_in_both_zarr_formats(tmp_path):
    volume = _volume()
    for fmt, dtype in ((2, ">u2"), (3, "<u2")):
        path = tmp_path / f"plain{fmt}.zarr"
        stored = zarr.create_array(str(path), shape=volume.shape, dtype=dtype, chunks=(2, 4, 4), zarr_format=fmt)
        stored[:] = volume
        scan = open_scan(path)
        assert scan.source == "zarr" and scan.shape == volume.shape and scan.dtype == np.uint16 and scan.dtype.isnative
        assert scan.voxel_size_um is None
        for key in (3, np.s_[1:6:2], np.s_[:, 4:7], np.s_[::3, ::2, ::4], np.s_[::-1, 5, ::-2], np.s_[2:4, -1, 3:9]):
            np.testing.assert_array_equal(scan[key], volume[key])
        np.testing.assert_array_equal(np.concatenate([scan.read(z0, z1) for z0, z1 in scan.slabs(3)]), volume)
        assert scan.value_range() == (float(volume.min()), float(volume.max()))
        assert open_scan(path, voxel_size_um=4.0).voxel_size_um == 4.0
    # a group holding exactly one array is read as that array
    group = zarr.open_group(str(tmp_path / "one.zarr"), mode="w")
    group.create_array("data", shape=(4, 5), dtype="uint8")[:] = np.arange(20).reshape(4, 5)
    scan = open_scan(tmp_path / "one.zarr")
    assert scan.shape == (1, 4, 5)
    np.testing.assert_array_equal(scan[0], np.arange(20).reshape(4, 5))


@pytest.mark.parametrize(
    ("unit", "scale", "multiscale_scale", "expected"),
    [
        ("micrometer", [1, 2.5, 2.5, 2.5], None, 2.5),
        ("millimeter", [1, 0.002, 0.002, 0.002], None, 2.0),
        ("nanometer", [1, 500, 500, 500], [1, 3, 3, 3], 1.5),  # the multiscale's scale multiplies the level's
        (None, [1, 2, 2, 2], None, None),  # no unit: unknown
    ],
)
def test_ome_zarr_reads_level_0_with_its_voxel_size(tmp_path, unit, scale, multiscale_scale, expected):
    volume = _volume()
    path = _ome04(tmp_path / "image.zarr", volume[np.newaxis], axes="czyx", unit=unit, scale=scale,
                  multiscale_scale=multiscale_scale)  # fmt: skip
    scan = open_scan(path)
    assert scan.shape == volume.shape and scan.source == "zarr"
    assert scan.voxel_size_um == pytest.approx(expected) if expected is not None else scan.voxel_size_um is None
    np.testing.assert_array_equal(scan[:], volume)
    np.testing.assert_array_equal(scan[2:5, ::2, 7], volume[2:5, ::2, 7])


def test_ome_zarr_2d_and_time_axis(tmp_path):
    image = _volume((9, 11))
    scan = open_scan(_ome04(tmp_path / "tyx.zarr", image[np.newaxis], axes="tyx", scale=[1, 0.5, 0.5]))
    assert scan.shape == (1, 9, 11) and scan.voxel_size_um == 0.5
    np.testing.assert_array_equal(scan[0], image)
    np.testing.assert_array_equal(scan[:, 2:4], image[np.newaxis, 2:4])


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda p: _ome04(p, np.zeros((2, 3, 4, 5), np.uint8), axes="czyx"), r"has 2 channels"),
        (lambda p: _ome04(p, np.zeros((3, 4, 5), np.uint8), axes="zyx", scale=[2, 1, 1]), r"anisotropic voxels \(2 x 1 x 1 um"),
        (lambda p: _ome04(p, np.zeros((3, 4, 5), np.uint8), axes="zyx", unit="parsecs"), r"unit 'parsecs' is not an OME length"),
        (lambda p: _ome04(p, np.zeros((3, 4, 5), np.uint8), axes="zyx", scale=[1, 0, 1]), r"scale of level 's0' must be 3 positive"),
    ],
)  # fmt: skip
def test_ome_zarr_refusals_name_the_store_and_value(tmp_path, make, match):
    path = make(tmp_path / "bad.zarr")
    with pytest.raises(ScanError, match=match) as info:
        open_scan(path)
    assert str(path) in str(info.value)


def test_read_scan_and_analyze_read_zarr(tmp_path, capsys):
    from foamlib.cli import main

    volume = _volume((6, 20, 20))
    path = _ome04(tmp_path / "scan.zarr", volume, axes="zyx", scale=[2.0, 2.0, 2.0])
    scan = read_scan(path)
    assert scan.volume.dtype == np.float32 and scan.voxel_size_um == 2.0 and scan.original_dtype == "uint16"
    np.testing.assert_array_equal(scan.volume, volume.astype(np.float32))
    assert read_scan(path, voxel_size_um=5.0).voxel_size_um == 5.0
    assert main(["analyze", str(path), "--json"]) == 0  # in memory
    in_memory = json.loads(capsys.readouterr().out)
    assert main(["analyze", str(path), "--json", "--memory", "0.00001"]) == 0  # streamed
    streamed = json.loads(capsys.readouterr().out)
    assert streamed["streamed"] and streamed["threshold"] == in_memory["threshold"]
    assert streamed["porosity"] == pytest.approx(in_memory["porosity"], abs=1e-12)
    assert streamed["solid_voxels"] == np.count_nonzero(volume.astype(np.float32) > in_memory["threshold"])


def test_anisotropic_store_opens_with_a_given_voxel_size(tmp_path):
    path = _ome04(tmp_path / "aniso.zarr", np.ones((3, 4, 5), np.uint8), axes="zyx", scale=[2, 1, 1])
    assert open_scan(path, voxel_size_um=1.0).voxel_size_um == 1.0


def test_not_a_store_or_ambiguous(tmp_path):
    (tmp_path / "empty.zarr").mkdir()
    with pytest.raises(ScanError, match="is not a Zarr store"):
        open_scan(tmp_path / "empty.zarr")
    with pytest.raises(ScanError, match="does not exist"):
        open_scan(tmp_path / "missing.zarr")
    group = zarr.open_group(str(tmp_path / "two.zarr"), mode="w")
    group.create_array("a", shape=(2, 2), dtype="uint8")
    group.create_array("b", shape=(2, 2), dtype="uint8")
    with pytest.raises(ScanError, match=r"holding 2 arrays \(a, b\)"):
        open_scan(tmp_path / "two.zarr")
    zarr.save_array(str(tmp_path / "raw.zarr"), np.ones((2, 2, 2), np.uint8))
    with pytest.raises(ScanError, match="shape and dtype apply only to raw files"):
        open_scan(tmp_path / "raw.zarr", shape=(2, 2, 2), dtype="uint8")


def _check_ome_05(path, shape, voxel_size_um):
    """The OME-NGFF 0.5 image rules for what foamlib writes (https://ngff.openmicroscopy.org/0.5/)."""
    meta = json.loads((path / "zarr.json").read_text())
    assert meta["zarr_format"] == 3 and meta["node_type"] == "group"
    ome = meta["attributes"]["ome"]
    assert ome["version"] == "0.5"
    (image,) = ome["multiscales"]
    assert [a["name"] for a in image["axes"]] == ["z", "y", "x"]
    assert all(a["type"] == "space" for a in image["axes"])
    (level,) = image["datasets"]
    assert level["path"] == "0"
    (scale,) = level["coordinateTransformations"]
    assert scale == {"type": "scale", "scale": [voxel_size_um or 1.0] * 3}
    array = json.loads((path / "0" / "zarr.json").read_text())
    assert array["node_type"] == "array" and array["shape"] == list(shape) and array["data_type"] == "uint8"
    assert array["dimension_names"] == ["z", "y", "x"]
    return meta["attributes"]


def test_writer_writes_ome_zarr_05_slab_by_slab(tmp_path):
    solid = np.random.default_rng(1).random((7, 9, 11)) > 0.4
    path = tmp_path / "out" / "seg.zarr"
    with zarr_slab_writer(path, solid.shape, voxel_size_um=2.5, chunks=(3, 4, 5)) as writer:
        assert not path.exists()  # written beside, renamed when complete
        writer.write(4, solid[4:])
        writer.write(0, solid[:4].astype(np.uint8) * 255)
    attrs = _check_ome_05(path, solid.shape, 2.5)
    assert all(a["unit"] == "micrometer" for a in attrs["ome"]["multiscales"][0]["axes"])
    assert attrs["foamlib"]["phases"] == PHASES == {"0": "pore", "255": "solid"}
    assert attrs["foamlib"]["voxel_size_um"] == 2.5
    stored = zarr.open_group(str(path), mode="r")["0"]
    assert stored.chunks == (3, 4, 5) and stored.dtype == np.uint8
    np.testing.assert_array_equal(stored[:], np.where(solid, 255, 0))
    scan = open_scan(path)
    assert scan.voxel_size_um == 2.5 and scan.dtype == np.uint8
    np.testing.assert_array_equal(scan[:], np.where(solid, 255, 0))
    assert [p.name for p in path.parent.iterdir()] == ["seg.zarr"]  # nothing left beside


def test_writer_with_label_pore_writes_pores_as_255_and_says_so(tmp_path):
    solid = np.random.default_rng(2).random((4, 6, 5)) > 0.5
    path = tmp_path / "pores.zarr"
    with zarr_slab_writer(path, solid.shape, label="pore") as writer:
        writer.write(0, solid)
    attrs = zarr.open_group(str(path), mode="r").attrs.asdict()
    assert attrs["foamlib"]["phases"] == {"0": "solid", "255": "pore"}
    np.testing.assert_array_equal(zarr.open_group(str(path), mode="r")["0"][:], np.where(solid, 0, 255))
    with pytest.raises(ValueError, match="label must be"):
        with zarr_slab_writer(tmp_path / "x.zarr", solid.shape, label="air"):
            pass


def test_writer_keeps_nothing_on_failure_and_replaces_only_stores(tmp_path):
    path = tmp_path / "seg.zarr"
    with pytest.raises(RuntimeError, match="2 of 3 slices were never written; nothing kept"):
        with zarr_slab_writer(path, (3, 4, 5)) as writer:
            writer.write(0, np.zeros((1, 4, 5), bool))
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match=r"a slab must be uint8 or bool of shape \(n, 4, 5\)"):
        with zarr_slab_writer(path, (3, 4, 5)) as writer:
            writer.write(0, np.zeros((1, 4, 6), np.uint8))
    with pytest.raises(ValueError, match="lies outside 3 slices"):
        with zarr_slab_writer(path, (3, 4, 5)) as writer:
            writer.write(2, np.zeros((2, 4, 5), np.uint8))
    assert list(tmp_path.iterdir()) == []
    with zarr_slab_writer(path, (1, 2, 2)) as writer:  # voxel size unknown: scale 1, no unit
        writer.write(0, np.ones((1, 2, 2), bool))
    attrs = _check_ome_05(path, (1, 2, 2), None)
    assert all("unit" not in a for a in attrs["ome"]["multiscales"][0]["axes"])
    assert open_scan(path).voxel_size_um is None
    with pytest.raises(FileExistsError, match="already exists; pass overwrite=True"):
        check_zarr_output(path)
    with zarr_slab_writer(path, (2, 2, 2), overwrite=True) as writer:
        writer.write(0, np.zeros((2, 2, 2), bool))
    assert open_scan(path).shape == (2, 2, 2) and sorted(p.name for p in tmp_path.iterdir()) == ["seg.zarr"]
    other = tmp_path / "notes.zarr"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="is not a Zarr store; refusing to replace it"):
        check_zarr_output(other, overwrite=True)
    with pytest.raises(ValueError, match=r"ends in '.zarr', not '.tif'"):
        check_zarr_output(tmp_path / "seg.tif")


def test_segment_file_writes_the_same_segmentation_as_ome_zarr(tmp_path, torch_one_thread):
    model_path = save_model(tmp_path / "model.pt", build_unet(TINY, seed=0), metadata={
        "task": "segmentation", "normalisation": DEFAULT_NORMALISATION.to_dict()})  # fmt: skip
    volume = (np.random.default_rng(0).random((10, 40, 40)) * 3000 + 1000).astype(np.uint16)
    # the scan itself as OME-Zarr, read lazily; the reference from a TIFF of the same voxels
    scan_zarr = _ome04(tmp_path / "scan.zarr", volume, axes="zyx", scale=[3.0, 3.0, 3.0])
    scan_tif = write_tiff(tmp_path / "scan.tif", volume, voxel_size_um=3.0)
    options = {"tile": 16, "overlap": 4, "batch_size": 2, "memory_gb": 0.0004, "device": "cpu"}
    tif = segment_file(scan_tif, model_path, tmp_path / "seg.tif", **options)
    out = segment_file(scan_zarr, model_path, tmp_path / "seg.zarr", **options)
    assert out.out_path == tmp_path / "seg.zarr" and out.solid_voxels == tif.solid_voxels
    assert out.porosity == tif.porosity and out.intensity_range == tif.intensity_range
    attrs = _check_ome_05(tmp_path / "seg.zarr", volume.shape, 3.0)
    assert attrs["foamlib"]["phases"]["255"] == "solid"
    stored = zarr.open_group(str(tmp_path / "seg.zarr"), mode="r")["0"][:]
    np.testing.assert_array_equal(stored, read_scan(tmp_path / "seg.tif").volume.astype(np.uint8))
    assert 0 < np.count_nonzero(stored) < stored.size
    with pytest.raises(FileExistsError):
        segment_file(scan_zarr, model_path, tmp_path / "seg.zarr", **options)
    with pytest.raises(ValueError, match="is the input scan"):
        segment_file(scan_zarr, model_path, scan_zarr, overwrite=True, **options)
