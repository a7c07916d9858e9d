"""Tests for foamlib.io: reading scans in every supported format, validation, and ImageJ TIFF writing."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

from foamlib import io as fio
from foamlib.io import Scan, ScanError, read_scan, scan_from_array, write_tiff


def _ramp(shape=(3, 4, 5), dtype=np.uint16) -> np.ndarray:
    """A small non-constant volume; values fit in uint8."""
    return (np.arange(np.prod(shape)).reshape(shape) % 200).astype(dtype)


def _name(path: Path) -> str:
    return re.escape(path.name)


# --------------------------------------------------------------------------- TIFF


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_tiff_stack_round_trip(tmp_path, dtype):
    volume = _ramp(dtype=dtype)
    path = write_tiff(tmp_path / "scan.tif", volume, voxel_size_um=3.5)
    scan = read_scan(path)
    assert isinstance(scan, Scan)
    assert scan.volume.dtype == np.float32 and scan.volume.shape == (3, 4, 5)
    np.testing.assert_array_equal(scan.volume, volume.astype(np.float32))
    assert scan.voxel_size_um == pytest.approx(3.5, rel=1e-6)
    assert scan.original_dtype == np.dtype(dtype).name
    assert scan.original_range == (0.0, 59.0)
    assert scan.path == path


def test_bool_tiff_round_trip_gives_0_and_255(tmp_path):
    mask = _ramp() % 2 == 1
    scan = read_scan(write_tiff(tmp_path / "mask.tif", mask, voxel_size_um=3.5))
    np.testing.assert_array_equal(scan.volume, np.where(mask, 255.0, 0.0).astype(np.float32))
    assert scan.original_dtype == "uint8"
    assert scan.voxel_size_um == pytest.approx(3.5, rel=1e-6)


def test_written_tiff_has_imagej_calibration(tmp_path):
    path = write_tiff(tmp_path / "scan.tif", _ramp(), voxel_size_um=0.123456789)
    with tifffile.TiffFile(path) as tif:
        assert tif.is_imagej
        meta = tif.imagej_metadata
        num, den = tif.pages[0].tags["XResolution"].value
    assert meta["unit"] == "um" and meta["slices"] == 3
    assert meta["spacing"] == pytest.approx(0.123456789, rel=1e-6)
    assert den / num == pytest.approx(0.123456789, rel=1e-6)
    assert read_scan(path).voxel_size_um == pytest.approx(0.123456789, rel=1e-6)


def test_float64_written_as_float32_and_2d_read_as_one_slice(tmp_path):
    image = np.linspace(0.0, 1.0, 20).reshape(4, 5)
    path = write_tiff(tmp_path / "image.tiff", image)
    with tifffile.TiffFile(path) as tif:
        assert tif.series[0].dtype == np.float32
    scan = read_scan(path)
    assert scan.volume.shape == (1, 4, 5) and scan.voxel_size_um is None
    np.testing.assert_array_equal(scan.volume[0], image.astype(np.float32))


def test_voxel_size_argument_overrides_file(tmp_path):
    path = write_tiff(tmp_path / "scan.tif", _ramp(), voxel_size_um=3.5)
    assert read_scan(path, voxel_size_um=7.0).voxel_size_um == 7.0


@pytest.mark.parametrize(
    ("unit", "pixel", "expected_um"),
    [
        ("mm", 0.002, 2.0),
        ("nm", 500.0, 0.5),
        ("micron", 1.5, 1.5),
        ("\\u00B5m", 1.5, 1.5),
        ("um", 4.0, 4.0),
        ("inch", 0.01, None),
        ("pixel", 2.0, None),
    ],
)
def test_imagej_units_converted_to_micrometres(tmp_path, unit, pixel, expected_um):
    path = tmp_path / "scan.tif"
    tifffile.imwrite(
        path,
        _ramp(dtype=np.uint8),
        imagej=True,
        resolution=(1 / pixel, 1 / pixel),
        metadata={"unit": unit, "spacing": pixel, "axes": "ZYX"},
    )
    voxel = read_scan(path).voxel_size_um
    assert voxel == (None if expected_um is None else pytest.approx(expected_um, rel=1e-6))


def test_anisotropic_voxels_use_x_and_log_a_warning(tmp_path, caplog):
    path = tmp_path / "scan.tif"
    metadata = {"unit": "um", "spacing": 5.0, "axes": "ZYX"}
    tifffile.imwrite(path, _ramp(dtype=np.uint8), imagej=True, resolution=(0.5, 0.5), metadata=metadata)
    with caplog.at_level(logging.WARNING, logger="foamlib.io"):
        assert read_scan(path).voxel_size_um == pytest.approx(2.0)
    assert "anisotropic" in caplog.text


def test_plain_tiff_without_metadata(tmp_path):
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, _ramp(shape=(6, 7), dtype=np.uint16))
    scan = read_scan(path)
    assert scan.volume.shape == (1, 6, 7) and scan.voxel_size_um is None and scan.original_dtype == "uint16"


def test_grey_rgb_tiff_accepted(tmp_path):
    grey = _ramp(shape=(6, 7), dtype=np.uint8)
    path = tmp_path / "rgb.tif"
    tifffile.imwrite(path, np.stack([grey] * 3, axis=-1), photometric="rgb")
    np.testing.assert_array_equal(read_scan(path).volume[0], grey)


def test_multichannel_tiff_rejected(tmp_path):
    path = tmp_path / "channels.tif"
    tifffile.imwrite(path, _ramp(shape=(2, 3, 4, 5), dtype=np.uint8), imagej=True, metadata={"axes": "ZCYX"})
    with pytest.raises(ScanError, match=_name(path) + ".*channels"):
        read_scan(path)


def test_corrupt_tiff(tmp_path):
    path = tmp_path / "broken.tif"
    path.write_bytes(b"this is not a tiff file at all")
    with pytest.raises(ScanError, match=_name(path) + ".*could not be read") as info:
        read_scan(path)
    assert info.value.__cause__ is not None
    path.write_bytes(b"II*\x00garbage after a TIFF header")
    with pytest.raises(ScanError, match=_name(path) + ".*(could not be read|no images)"):
        read_scan(path)


def test_truncated_tiff(tmp_path):
    path = write_tiff(tmp_path / "cut.tif", _ramp(shape=(4, 64, 64)))
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(ScanError, match=_name(path) + ".*could not be read"):
        read_scan(path)


# --------------------------------------------------------------------------- PNG


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_png_round_trip(tmp_path, dtype):
    image = (_ramp(shape=(6, 7), dtype=np.uint16) * (300 if dtype == np.uint16 else 1)).astype(dtype)
    path = tmp_path / "slice.png"
    iio.imwrite(path, image)
    scan = read_scan(path)
    assert scan.volume.shape == (1, 6, 7) and scan.voxel_size_um is None
    assert scan.original_dtype == np.dtype(dtype).name
    np.testing.assert_array_equal(scan.volume[0], image)


def test_grey_rgba_png_accepted(tmp_path):
    grey = _ramp(shape=(6, 7), dtype=np.uint8)
    path = tmp_path / "rgba.png"
    iio.imwrite(path, np.stack([grey, grey, grey, np.full_like(grey, 255)], axis=-1))
    scan = read_scan(path, voxel_size_um=2.0)
    assert scan.volume.shape == (1, 6, 7) and scan.original_dtype == "uint8" and scan.voxel_size_um == 2.0
    np.testing.assert_array_equal(scan.volume[0], grey)


def test_colour_png_rejected(tmp_path):
    rgb = np.stack([_ramp(shape=(6, 7), dtype=np.uint8)] * 3, axis=-1)
    rgb[2, 3, 0] = 250
    path = tmp_path / "colour.png"
    iio.imwrite(path, rgb)
    with pytest.raises(ScanError, match=_name(path) + ".*colour image; convert it to greyscale"):
        read_scan(path)


def test_varying_alpha_rejected(tmp_path):
    grey = _ramp(shape=(6, 7), dtype=np.uint8)
    path = tmp_path / "alpha.png"
    iio.imwrite(path, np.stack([grey, grey, grey, grey], axis=-1))
    with pytest.raises(ScanError, match=_name(path) + ".*alpha"):
        read_scan(path)


def test_truncated_png(tmp_path):
    path = tmp_path / "cut.png"
    iio.imwrite(path, np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ScanError, match=_name(path) + ".*could not be read") as info:
        read_scan(path)
    assert info.value.__cause__ is not None


# --------------------------------------------------------------------------- folders


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_folder_natural_order(tmp_path, suffix):
    numbers = [10, 2, 1, 33, 3]
    for n in numbers:
        image = np.full((4, 5), n, dtype=np.uint8)
        image[0, 0] = 0
        if suffix == ".png":
            iio.imwrite(tmp_path / f"slice_{n}{suffix}", image)
        else:
            tifffile.imwrite(tmp_path / f"slice_{n}{suffix}", image)
    (tmp_path / "README.txt").write_text("not a slice")
    scan = read_scan(tmp_path)
    assert scan.volume.shape == (5, 4, 5) and scan.original_dtype == "uint8"
    assert scan.volume[:, 1, 1].tolist() == [1, 2, 3, 10, 33]


def test_natural_key():
    names = ["b10.tif", "b2.tif", "a.tif", "B1.tif"]
    assert [p.name for p in sorted(map(Path, names), key=fio._natural_key)] == ["a.tif", "B1.tif", "b2.tif", "b10.tif"]


def test_folder_voxel_size_from_first_tiff_slice(tmp_path):
    for n in range(3):
        write_tiff(tmp_path / f"s{n}.tif", _ramp(shape=(4, 5), dtype=np.uint8) + n, voxel_size_um=1.25)
    scan = read_scan(tmp_path)
    assert scan.volume.shape == (3, 4, 5) and scan.voxel_size_um == pytest.approx(1.25, rel=1e-6)


def test_folder_slice_with_other_shape(tmp_path):
    iio.imwrite(tmp_path / "s1.png", _ramp(shape=(4, 5), dtype=np.uint8))
    iio.imwrite(tmp_path / "s2.png", _ramp(shape=(4, 5), dtype=np.uint8))
    iio.imwrite(tmp_path / "s10.png", _ramp(shape=(4, 6), dtype=np.uint8))
    with pytest.raises(ScanError, match=r"s10\.png has shape \(4, 6\)"):
        read_scan(tmp_path)


def test_folder_slice_with_other_dtype(tmp_path):
    iio.imwrite(tmp_path / "s1.png", _ramp(shape=(4, 5), dtype=np.uint8))
    iio.imwrite(tmp_path / "s2.png", _ramp(shape=(4, 5), dtype=np.uint16))
    with pytest.raises(ScanError, match=r"s2\.png has shape \(4, 5\) and dtype uint16"):
        read_scan(tmp_path)


def test_empty_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("no slices here")
    with pytest.raises(ScanError, match=_name(tmp_path) + ".*no '.tif'"):
        read_scan(tmp_path)


def test_folder_mixing_formats(tmp_path):
    iio.imwrite(tmp_path / "s1.png", _ramp(shape=(4, 5), dtype=np.uint8))
    tifffile.imwrite(tmp_path / "s2.tif", _ramp(shape=(4, 5), dtype=np.uint8))
    with pytest.raises(ScanError, match=_name(tmp_path) + ".*mixes"):
        read_scan(tmp_path)


# --------------------------------------------------------------------------- raw and npy


@pytest.mark.parametrize(("byte_order", "code"), [("little", "<u2"), ("big", ">u2")])
def test_raw_uint16_round_trip(tmp_path, byte_order, code):
    volume = (_ramp(shape=(3, 4, 5), dtype=np.uint16) * 1000).astype(code)
    path = tmp_path / "scan.raw"
    volume.tofile(path)
    before = path.read_bytes()
    scan = read_scan(path, shape=(3, 4, 5), dtype="uint16", byte_order=byte_order, voxel_size_um=5.0)
    np.testing.assert_array_equal(scan.volume, volume.astype(np.float32))
    assert scan.original_dtype == "uint16" and scan.voxel_size_um == 5.0
    assert scan.original_range == (0.0, 59000.0)
    assert path.read_bytes() == before


def test_raw_without_shape_or_dtype(tmp_path):
    path = tmp_path / "scan.bin"
    _ramp().tofile(path)
    with pytest.raises(ScanError, match=_name(path) + ".*shape=.*dtype"):
        read_scan(path, dtype="uint16")
    with pytest.raises(ScanError, match=_name(path) + ".*shape=.*dtype"):
        read_scan(path, shape=(3, 4, 5))


def test_raw_size_mismatch(tmp_path):
    path = tmp_path / "scan.vol"
    _ramp().tofile(path)  # 60 uint16 = 120 bytes
    with pytest.raises(ScanError, match=_name(path) + r" is 120 bytes.*needs 240 bytes"):
        read_scan(path, shape=(3, 4, 5), dtype=np.float32)


@pytest.mark.parametrize("shape", [(4, 5), (3, 0, 5), (3, -4, 5), (3, 4.5, 5), "345"])
def test_raw_bad_shape(tmp_path, shape):
    path = tmp_path / "scan.raw"
    _ramp().tofile(path)
    with pytest.raises(ScanError, match=_name(path) + ".*shape must be three positive integers"):
        read_scan(path, shape=shape, dtype="uint16")


def test_raw_bad_dtype_and_byte_order(tmp_path):
    path = tmp_path / "scan.raw"
    _ramp().tofile(path)
    with pytest.raises(ScanError, match=_name(path) + ".*not a numpy dtype"):
        read_scan(path, shape=(3, 4, 5), dtype="uint17")
    with pytest.raises(ScanError, match=_name(path) + ".*not a real numeric dtype"):
        read_scan(path, shape=(3, 4, 5), dtype="U1")
    with pytest.raises(ScanError, match=_name(path) + ".*byte_order"):
        read_scan(path, shape=(3, 4, 5), dtype="uint16", byte_order="middle")


def test_npy_round_trip(tmp_path):
    volume = np.linspace(-1.0, 1.0, 60).reshape(3, 4, 5)
    path = tmp_path / "scan.npy"
    np.save(path, volume)
    scan = read_scan(path)
    assert scan.original_dtype == "float64" and scan.volume.dtype == np.float32
    np.testing.assert_allclose(scan.volume, volume, rtol=1e-6)
    assert scan.original_range == (-1.0, 1.0)


def test_npy_2d(tmp_path):
    path = tmp_path / "image.npy"
    np.save(path, _ramp(shape=(4, 5), dtype=np.int16) - 30)
    scan = read_scan(path)
    assert scan.volume.shape == (1, 4, 5) and scan.original_dtype == "int16" and scan.original_range == (-30.0, -11.0)


def test_truncated_npy(tmp_path):
    path = tmp_path / "cut.npy"
    np.save(path, _ramp(shape=(8, 16, 16)))
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(ScanError, match=_name(path) + ".*not a readable .npy array file.*truncated") as info:
        read_scan(path)
    assert info.value.__cause__ is not None


# --------------------------------------------------------------------------- paths and content checks


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ScanError, match=r"nothere\.tif does not exist"):
        read_scan(tmp_path / "nothere.tif")
    with pytest.raises(ScanError, match=r"nofolder does not exist"):
        read_scan(tmp_path / "nofolder")


def test_unknown_extension(tmp_path):
    path = tmp_path / "scan.jpg"
    path.write_bytes(b"\xff\xd8")
    with pytest.raises(ScanError, match=_name(path) + r".*unknown extension '.jpg'.*'\.tif'.*'\.npy'"):
        read_scan(path)


def test_shape_for_non_raw_file(tmp_path):
    path = write_tiff(tmp_path / "scan.tif", _ramp())
    with pytest.raises(ScanError, match=_name(path) + ".*only to raw files"):
        read_scan(path, shape=(3, 4, 5))


@pytest.mark.parametrize(
    ("array", "problem"),
    [
        (np.zeros((2, 3, 4, 5)) + np.arange(5), "4 dimensions"),
        (np.arange(5.0), "1 dimensions"),
        (np.zeros((0, 4, 5)), "empty"),
        (np.full((3, 4, 5), 7, dtype=np.uint8), "contains only the value 7; nothing to segment"),
        (np.where(np.eye(4) > 0, np.nan, 1.0), "4 NaN and 0 infinite"),
        (np.array([[0.0, np.inf], [-np.inf, 1.0]]), "0 NaN and 2 infinite"),
        (np.eye(3, dtype=np.complex64), "complex"),
        (np.array([["a", "b"], ["c", "d"]]), "non-numeric"),
        (np.array([[1e300, 0.0], [1.0, 2.0]]), "float32 range"),
    ],
)
def test_unusable_npy(tmp_path, array, problem):
    path = tmp_path / "bad.npy"
    np.save(path, array)
    with pytest.raises(ScanError, match=_name(path) + ".*" + re.escape(problem)):
        read_scan(path)


@pytest.mark.parametrize("value", [0, -1.0, float("nan"), float("inf"), "big"])
def test_bad_voxel_size(tmp_path, value):
    path = write_tiff(tmp_path / "scan.tif", _ramp())
    with pytest.raises(ScanError, match="voxel_size_um"):
        read_scan(path, voxel_size_um=value)
    with pytest.raises(ValueError, match="voxel_size_um"):
        write_tiff(tmp_path / "other.tif", _ramp(), voxel_size_um=value)


# --------------------------------------------------------------------------- scan_from_array


def test_scan_from_array_copies_and_keeps_input():
    data = _ramp(shape=(4, 5), dtype=np.uint8)
    original = data.copy()
    scan = scan_from_array(data, voxel_size_um=2.5)
    scan.volume[...] = 0
    np.testing.assert_array_equal(data, original)
    assert scan.volume.shape == (1, 4, 5) and scan.path is None and scan.voxel_size_um == 2.5
    assert scan.original_dtype == "uint8"


def test_scan_from_array_bool_and_errors():
    assert scan_from_array(np.eye(3, dtype=bool)).original_range == (0.0, 1.0)
    with pytest.raises(ScanError, match="the array contains only the value 0"):
        scan_from_array(np.zeros((3, 3)))


# --------------------------------------------------------------------------- write_tiff


def test_write_is_atomic_and_refuses_overwrite(tmp_path):
    path = tmp_path / "new" / "sub" / "scan.tif"
    assert write_tiff(path, _ramp()) == path
    assert [p.name for p in path.parent.iterdir()] == ["scan.tif"]
    with pytest.raises(FileExistsError, match=_name(path) + ".*overwrite=True"):
        write_tiff(path, _ramp(dtype=np.uint8))
    assert read_scan(path).original_dtype == "uint16"
    write_tiff(path, _ramp(dtype=np.uint8), overwrite=True)
    assert read_scan(path).original_dtype == "uint8"
    assert [p.name for p in path.parent.iterdir()] == ["scan.tif"]


def test_failed_write_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    path = write_tiff(tmp_path / "scan.tif", _ramp())
    before = path.read_bytes()

    def fail(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(fio.tifffile, "imwrite", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        write_tiff(path, _ramp(dtype=np.uint8), overwrite=True)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["scan.tif"]


def test_write_rejects_bad_input(tmp_path):
    with pytest.raises(TypeError, match="int16"):
        write_tiff(tmp_path / "a.tif", _ramp(dtype=np.int16))
    with pytest.raises(ValueError, match="3D"):
        write_tiff(tmp_path / "a.tif", np.zeros((2, 2, 2, 2), dtype=np.uint8))
    with pytest.raises(ValueError, match="empty"):
        write_tiff(tmp_path / "a.tif", np.zeros((0, 2), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"'\.png'"):
        write_tiff(tmp_path / "a.png", _ramp())
    (tmp_path / "folder.tif").mkdir()
    with pytest.raises(IsADirectoryError, match=r"folder\.tif"):
        write_tiff(tmp_path / "folder.tif", _ramp(), overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder.tif"]


def test_write_does_not_modify_input(tmp_path):
    mask = np.eye(4, dtype=bool)
    big_endian = _ramp().astype(">u2")
    write_tiff(tmp_path / "mask.tif", mask)
    write_tiff(tmp_path / "be.tif", big_endian)
    assert mask.dtype == bool and mask.sum() == 4
    np.testing.assert_array_equal(read_scan(tmp_path / "be.tif").volume, big_endian.astype(np.float32))


# --------------------------------------------------------------------------- real scans


@pytest.mark.shared_data
def test_real_scans(shared_data):
    cement = read_scan(shared_data / "cement" / "cement_128x128x128.tif")
    assert cement.volume.shape == (128, 128, 128) and cement.original_dtype == "uint8"
    assert cement.voxel_size_um is None  # ImageJ file without a calibration

    sand = read_scan(shared_data / "sand" / "sand_200x200x100_uint8.raw", shape=(100, 200, 200), dtype="uint8")
    assert sand.volume.shape == (100, 200, 200) and sand.original_dtype == "uint8"

    (foam_png,) = (shared_data / "polymer_foam_slice").glob("*.png")
    foam = read_scan(foam_png)  # stored as RGBA with R = G = B
    assert foam.volume.shape == (1, 250, 250) and foam.original_dtype == "uint8"

    # Unit "inch" at 100 dpi is not a CT calibration (the data set documents 1.3 um voxels).
    assert read_scan(shared_data / "fiberform" / "100_fiberform.tif").voxel_size_um is None


def test_a_truncated_stack_is_refused_not_read_in_part(tmp_path):
    volume = np.random.default_rng(0).integers(0, 200, (24, 48, 48), dtype=np.uint8)
    whole = write_tiff(tmp_path / "whole.tif", volume, voxel_size_um=2.0)
    cut = tmp_path / "cut.tif"
    cut.write_bytes(whole.read_bytes()[:5000])
    with pytest.raises(ScanError, match="cut.tif is truncated or corrupt"):
        read_scan(cut)


def test_image_grid_layout_and_dtypes(tmp_path):
    from foamlib.io import image_grid, write_image_grid

    images = np.zeros((5, 3, 4), dtype=bool)
    images[1] = True
    grid = image_grid(images, columns=2, pad=1, pad_value=7)
    assert grid.shape == (3 * 4 + 1, 2 * 5 + 1) and grid.dtype == np.uint8
    assert grid[0, 0] == 7 and grid[1, 1] == 0  # padding, then image 0
    assert (grid[1:4, 6:10] == 255).all()  # image 1: top row, second column
    floats = image_grid(np.full((1, 2, 2), 0.5), pad=0)
    assert (floats == 128).all()
    path = write_image_grid(tmp_path / "g.png", images, columns=2)
    assert iio.imread(path).shape == image_grid(images, columns=2).shape
    with pytest.raises(ValueError, match="png"):
        write_image_grid(tmp_path / "g.jpg", images)
    with pytest.raises(ValueError, match="columns"):
        image_grid(images, columns=0)


# --------------------------------------------------------------------------- issue 15: silent wrong answers


@pytest.mark.parametrize(
    ("unit", "per_unit", "expected_um"),
    [("CENTIMETER", 1e4 / 2.5, 2.5), ("INCH", 25400 / 12.7, 12.7), (3, 2000.0, 5.0)],
)
def test_voxel_size_from_standard_resolution_tags(tmp_path, unit, per_unit, expected_um):
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, _ramp(shape=(5, 6, 7), dtype=np.uint8), photometric="minisblack",
                    resolution=(per_unit, per_unit), resolutionunit=unit)
    with tifffile.TiffFile(path) as tif:
        assert not tif.imagej_metadata  # the size lives only in the standard tags
    assert read_scan(path).voxel_size_um == pytest.approx(expected_um, rel=1e-6)


def test_resolution_tags_without_a_length_unit_or_at_editor_defaults_give_no_size(tmp_path, caplog):
    none = tmp_path / "none.tif"
    tifffile.imwrite(none, _ramp(shape=(5, 6, 7), dtype=np.uint8), photometric="minisblack",
                    resolution=(400.0, 400.0), resolutionunit="NONE")
    assert read_scan(none).voxel_size_um is None
    dpi = tmp_path / "dpi.tif"
    tifffile.imwrite(dpi, _ramp(shape=(5, 6, 7), dtype=np.uint8), photometric="minisblack",
                    resolution=(72.0, 72.0), resolutionunit="INCH")
    with caplog.at_level(logging.WARNING, logger="foamlib.io"):
        assert read_scan(dpi).voxel_size_um is None
    assert "dpi.tif" in caplog.text and "default" in caplog.text


def test_unequal_resolution_tags_take_x_and_warn(tmp_path, caplog):
    path = tmp_path / "aniso.tif"
    tifffile.imwrite(path, _ramp(shape=(5, 6, 7), dtype=np.uint8), photometric="minisblack",
                    resolution=(1e4 / 2.0, 1e4 / 4.0), resolutionunit="CENTIMETER")
    with caplog.at_level(logging.WARNING, logger="foamlib.io"):
        assert read_scan(path).voxel_size_um == pytest.approx(2.0)
    assert "aniso.tif" in caplog.text and "x size 2 um" in caplog.text


def test_imagej_metadata_wins_over_the_resolution_unit(tmp_path):
    path = write_tiff(tmp_path / "ij.tif", _ramp(dtype=np.uint8), voxel_size_um=3.0)
    assert read_scan(path).voxel_size_um == pytest.approx(3.0)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (bytes(np.random.default_rng(0).integers(0, 256, 400, dtype=np.uint8)), "does not start with the NumPy"),
        (b"PK\x03\x04" + b"\x00" * 100, "npz archive"),
    ],
)
def test_npy_that_is_not_an_array_says_so_without_pickle_advice(tmp_path, content, words):
    path = tmp_path / "noise.npy"
    path.write_bytes(content)
    with pytest.raises(ScanError, match=_name(path) + ".*" + words) as info:
        read_scan(path)
    assert "pickle" not in str(info.value) and "allow_pickle" not in str(info.value)


def test_npy_of_python_objects_says_so_without_pickle_advice(tmp_path):
    path = tmp_path / "objects.npy"
    np.save(path, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(ScanError, match=_name(path) + ".*Python objects") as info:
        read_scan(path)
    assert "pickle" not in str(info.value)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_a_corrupt_slice_in_a_folder_is_named_without_plugin_advice(tmp_path, suffix):
    for i in range(3):
        image = _ramp(shape=(6, 7), dtype=np.uint8)
        if suffix == ".png":
            iio.imwrite(tmp_path / f"s{i}.png", image)
        else:
            tifffile.imwrite(tmp_path / f"s{i}.tif", image)
    (tmp_path / f"s1{suffix}").write_bytes(b"\x89PNG\r\n\x1a\n" + b"rubbish" * 20)
    with pytest.raises(ScanError, match=re.escape(f"s1{suffix}") + " is not a readable") as info:
        read_scan(tmp_path)
    message = str(info.value).lower()
    assert "pip install" not in message and "plugin" not in message and "backend" not in message


def test_output_checks_and_path_comparison(tmp_path):
    existing = write_tiff(tmp_path / "a.tif", _ramp(dtype=np.uint8))
    assert fio.check_tiff_output(tmp_path / "new.tif") == tmp_path / "new.tif"
    with pytest.raises(FileExistsError, match="a.tif"):
        fio.check_tiff_output(existing)
    assert fio.check_tiff_output(existing, overwrite=True) == existing
    with pytest.raises(ValueError, match="tif"):
        fio.check_tiff_output(tmp_path / "x.png")
    (tmp_path / "sub").mkdir()
    link = tmp_path / "link.tif"
    link.symlink_to(existing)
    assert fio.same_path(existing, tmp_path / "sub" / ".." / "a.tif") and fio.same_path(existing, link)
    assert fio.same_path(tmp_path / "new.tif", tmp_path / "sub" / ".." / "new.tif")
    assert not fio.same_path(existing, tmp_path / "new.tif")
    assert fio.path_inside(tmp_path / "sub" / "out.tif", tmp_path / "sub")
    assert fio.path_inside(tmp_path / "sub" / "deeper" / "out.tif", tmp_path)
    assert not fio.path_inside(tmp_path / "out.tif", tmp_path / "sub")


# --------------------------------------------------------------------------- phase convention of masks


def _imagej_info(path: Path) -> str:
    with tifffile.TiffFile(path) as tif:
        return tif.imagej_metadata["Info"]


def _solid(shape=(3, 8, 6)) -> np.ndarray:
    solid = np.zeros(shape, dtype=bool)
    solid[:, :, :2] = True  # a third solid
    return solid


def test_a_mask_says_which_phase_is_255_in_metadata_that_imagej_reads(tmp_path):
    path = write_tiff(tmp_path / "seg.tif", _solid(), voxel_size_um=2.0)
    with tifffile.TiffFile(path) as tif:
        meta = tif.imagej_metadata
        description = tif.pages[0].description
    assert "foreground=solid" in description and "background=pore" in description  # ImageJ's own description
    assert meta["Info"].startswith("255 = solid (cell walls and struts), 0 = pore")  # Fiji: Image > Show Info
    assert fio.mask_label(path) == "solid"
    assert np.array_equal(tifffile.imread(path), np.where(_solid(), 255, 0))


def test_a_pore_labelled_mask_stores_255_for_pore_and_reads_back_as_solid(tmp_path):
    solid = _solid()
    path = write_tiff(tmp_path / "seg_pore.tif", solid, voxel_size_um=2.0, label="pore")
    stored = tifffile.imread(path)
    assert np.array_equal(stored > 0, ~solid)  # PoreSpy: imread(seg) > 0 is the pore space
    assert np.mean(stored > 0) == pytest.approx(2 / 3)
    assert fio.mask_label(path) == "pore"
    assert _imagej_info(path).startswith("255 = pore, 0 = solid (cell walls and struts)")
    assert np.array_equal(fio.read_mask(path), solid)  # never read as solid


def test_read_mask_takes_an_unlabelled_mask_as_255_solid_and_refuses_bad_labels(tmp_path):
    tifffile.imwrite(tmp_path / "plain.tif", np.where(_solid(), 1, 0).astype(np.uint8), photometric="minisblack")  # 0/1
    assert fio.mask_label(tmp_path / "plain.tif") is None
    assert np.array_equal(fio.read_mask(tmp_path / "plain.tif"), _solid())
    tifffile.imwrite(tmp_path / "odd.tif", np.zeros((2, 4, 4), np.uint8), imagej=True, metadata={"foreground": "air"})
    with pytest.raises(ValueError, match=r"odd\.tif.*foreground='air'"):
        fio.read_mask(tmp_path / "odd.tif")


def test_read_scan_warns_that_a_pore_labelled_mask_is_bright_where_pore(tmp_path, caplog):
    path = write_tiff(tmp_path / "seg_pore.tif", _solid(), label="pore")
    with caplog.at_level(logging.WARNING, logger="foamlib.io"):
        scan = read_scan(path)
    assert scan.volume.max() == 255.0  # grey values as stored
    assert "255 = pore" in caplog.text and "read_mask" in caplog.text


def test_write_tiff_refuses_an_unknown_label(tmp_path):
    with pytest.raises(ValueError, match="label must be one of 'solid', 'pore'"):
        write_tiff(tmp_path / "seg.tif", _solid(), label="True")
    assert not (tmp_path / "seg.tif").exists()


def test_slab_writer_labels_and_inverts_bool_slabs(tmp_path):
    solid = _solid((4, 5, 6))
    for label in ("solid", "pore"):
        path = tmp_path / f"{label}.tif"
        with fio.tiff_slab_writer(path, solid.shape, voxel_size_um=3.0, label=label) as writer:
            writer.write(2, solid[2:])
            writer.write(0, solid[:2])
        assert fio.mask_label(path) == label
        assert np.array_equal(tifffile.imread(path) > 0, solid if label == "solid" else ~solid)
        assert np.array_equal(fio.read_mask(path), solid)
        assert read_scan(path).voxel_size_um == pytest.approx(3.0)
    with pytest.raises(ValueError, match="uint16"):
        with fio.tiff_slab_writer(tmp_path / "u16.tif", (1, 2, 2), dtype=np.uint16, label="solid"):
            pass


def test_probability_map_is_float32_labelled_and_not_read_as_a_mask(tmp_path):
    probs = np.linspace(0, 1, 3 * 8 * 6, dtype=np.float64).reshape(3, 8, 6)
    path = fio.write_probabilities(tmp_path / "prob.tif", probs, voxel_size_um=1.5)
    stored = tifffile.imread(path)
    assert stored.dtype == np.float32 and np.allclose(stored, probs, atol=1e-7)
    assert fio.mask_label(path) == "solid"
    assert "probability of solid" in _imagej_info(path)
    assert read_scan(path).voxel_size_um == pytest.approx(1.5)
    with pytest.raises(ValueError, match="probability map"):
        fio.read_mask(path)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fio.write_probabilities(tmp_path / "bad.tif", probs * 2)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fio.write_probabilities(tmp_path / "nan.tif", np.full((2, 2), np.nan))
    with pytest.raises(FileExistsError):
        fio.write_probabilities(path, probs)
