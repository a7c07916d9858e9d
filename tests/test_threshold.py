"""Tests for foamlib.threshold: global thresholds on analytic images and on two real scans."""

from __future__ import annotations

import numpy as np
import pytest

from foamlib import threshold
from foamlib.threshold import METHODS, segment, threshold_value


def _two_level(shape=(12, 16, 20), low=50, high=200, dtype=np.uint8):
    """A dark volume with a bright slab in the middle: the bright slab is the 'solid'."""
    image = np.full(shape, low, dtype=dtype)
    bright = np.zeros(shape, dtype=bool)
    bright[:, 5:11, :] = True
    image[bright] = high
    return image, bright


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_otsu_two_levels_separates_them(dtype):
    image, bright = _two_level(dtype=dtype)
    level = threshold_value(image)
    assert isinstance(level, float)
    assert 50 <= level < 200
    solid = segment(image)
    assert solid.dtype == bool
    np.testing.assert_array_equal(solid, bright)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_separates_two_levels_in_2d(method):
    image, bright = _two_level()
    image2d, bright2d = image[0].astype(np.float64), bright[0]
    image2d = image2d + np.random.default_rng(0).normal(0, 5, image2d.shape)  # li/triangle need a spread
    assert 50 < threshold_value(image2d, method=method) < 200
    if method != "triangle":  # the triangle method sits at the foot of the larger peak, inside its noise
        np.testing.assert_array_equal(segment(image2d, method=method), bright2d)


def test_float_copy_of_integer_scan_gets_the_integer_threshold():
    # foamlib.io reads every scan as float32: the threshold must not move
    rng = np.random.default_rng(1)
    image, bright = _two_level(shape=(10, 30, 30))
    noisy = (image + rng.normal(0, 6, image.shape)).clip(0, 255).astype(np.uint8)
    for method in METHODS:
        level = threshold_value(noisy, method=method)
        assert threshold_value(noisy.astype(np.float32), method=method) == pytest.approx(level)
        np.testing.assert_array_equal(segment(noisy.astype(np.float32), method=method), segment(noisy, method=method))
    np.testing.assert_array_equal(segment(noisy.astype(np.float32)), bright)


def test_otsu_on_float_values_splits_at_a_bin_edge():
    rng = np.random.default_rng(2)
    values = np.concatenate([rng.normal(0.3, 0.08, 3000), rng.normal(0.6, 0.08, 2000)]).reshape(50, 100)
    level = threshold_value(values, nbins=64)
    counts, edges = np.histogram(values, bins=64, range=(values.min(), values.max()))
    k = int(np.argmin(np.abs(edges - level)))
    assert level == pytest.approx(edges[k], abs=1e-9)  # the upper edge of the dark class's last bin
    assert np.count_nonzero(segment(values, nbins=64)) == counts[k:].sum()


def test_mask_restricts_the_pixels_used():
    # Outside the field of view 0, inside a dark (100) and a bright (200) phase.
    image = np.zeros((40, 40), dtype=np.uint8)
    image[10:30, 10:20] = 100
    image[10:30, 20:30] = 200
    fov = image > 0
    assert threshold_value(image) < 100  # dominated by the 0 background
    level = threshold_value(image, mask=fov)
    assert 100 <= level < 200
    solid = segment(image, mask=fov)
    np.testing.assert_array_equal(solid, image == 200)


def test_unknown_method_lists_valid_ones():
    image, _ = _two_level()
    with pytest.raises(ValueError, match="otsu.*li.*triangle"):
        threshold_value(image, method="kmeans")
    with pytest.raises(ValueError, match="otsu"):
        segment(image, method="Otsu")


def test_constant_image_raises():
    with pytest.raises(ValueError, match="constant"):
        threshold_value(np.full((8, 8, 8), 7, dtype=np.uint8))
    image, bright = _two_level()
    with pytest.raises(ValueError, match="constant"):
        threshold_value(image, mask=bright)  # all selected voxels equal


def test_bad_inputs():
    image, bright = _two_level()
    with pytest.raises(ValueError, match="shape"):
        threshold_value(image, mask=bright[0])
    with pytest.raises(TypeError, match="bool"):
        threshold_value(image, mask=bright.astype(np.uint8))
    with pytest.raises(ValueError, match="no voxels"):
        threshold_value(image, mask=np.zeros_like(bright))
    with pytest.raises(TypeError):
        threshold_value(bright)
    with pytest.raises(ValueError, match="2D"):
        threshold_value(image[0, 0])
    nan_image = image.astype(np.float32)
    nan_image[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        threshold_value(nan_image)


def test_large_input_uses_a_strided_subsample(monkeypatch):
    image, bright = _two_level(shape=(20, 16, 20))
    monkeypatch.setattr(threshold, "MAX_SAMPLES", 500)
    assert 50 <= threshold_value(image) < 200
    np.testing.assert_array_equal(segment(image), bright)


@pytest.mark.shared_data
def test_otsu_on_real_scans(shared_data):
    tifffile = pytest.importorskip("tifffile")
    cement = tifffile.imread(shared_data / "cement" / "cement_128x128x128.tif")
    solid = segment(cement, method="otsu")
    void_fraction = 1.0 - np.count_nonzero(solid) / solid.size  # air voids are dark
    assert void_fraction == pytest.approx(0.17, abs=0.02)

    fiberform = tifffile.imread(shared_data / "fiberform" / "100_fiberform.tif")
    fibres = segment(fiberform)
    assert 1.0 - np.count_nonzero(fibres) / fibres.size == pytest.approx(0.846, abs=0.01)


# --------------------------------------------------------------------------- scans larger than memory


def _two_phase(dtype, *, scale=1.0, offset=0.0, noise=8.0, seed=0):
    rng = np.random.default_rng(seed)
    solid = rng.random((9, 20, 24)) < 0.3
    grey = offset + scale * (60 + 120 * solid + rng.normal(0, noise, solid.shape))
    # float32: fractional grey values (nbins bins); float64 here: whole numbers (one bin per value)
    return grey.astype(dtype) if dtype == np.float32 else np.rint(grey).astype(dtype)


@pytest.mark.parametrize(
    ("dtype", "scale", "offset"),
    [(np.uint8, 1, 0), (np.uint16, 200, 5000), (np.int16, 50, -9000), (np.float32, 0.01, -1.0), (np.float64, 1, 0)],
)
def test_streamed_otsu_and_porosity_equal_the_in_memory_ones(tmp_path, monkeypatch, dtype, scale, offset):
    from foamlib import threshold as th
    from foamlib.io import read_scan
    from foamlib.lazy import open_scan

    volume = _two_phase(dtype, scale=scale, offset=offset)
    np.save(tmp_path / "scan.npy", volume)
    monkeypatch.setattr(th, "_SLAB_BYTES", 2 * volume[0].nbytes)  # slabs of two slices
    scan = open_scan(tmp_path / "scan.npy")
    in_memory = read_scan(tmp_path / "scan.npy").volume
    level = th.threshold_scan(scan)
    assert level == threshold_value(in_memory)
    assert th.count_above(scan, level) == int(np.count_nonzero(segment(in_memory)))
    hist = th.scan_histogram(scan)
    assert hist.total == volume.size and hist.counts.dtype == np.int64
    assert hist.integral == (dtype != np.float32)


def test_streamed_threshold_only_does_otsu(tmp_path):
    from foamlib.lazy import open_scan
    from foamlib.threshold import threshold_scan

    np.save(tmp_path / "scan.npy", _two_phase(np.uint8))
    with pytest.raises(ValueError, match="scan.npy: the 'li' threshold needs the scan in memory"):
        threshold_scan(open_scan(tmp_path / "scan.npy"), method="li")


@pytest.mark.parametrize(("dtype", "scale", "offset"), [(np.uint16, 200, 5000), (np.float32, 0.01, -1.0)])
def test_scan_thresholds_and_the_streamed_mask_equal_the_in_memory_ones(tmp_path, monkeypatch, dtype, scale, offset):
    from foamlib import threshold as th
    from foamlib.io import read_mask, read_scan, write_tiff
    from foamlib.lazy import open_scan

    volume = _two_phase(dtype, scale=scale, offset=offset)
    write_tiff(tmp_path / "scan.tif", volume, voxel_size_um=4.0)
    monkeypatch.setattr(th, "_SLAB_BYTES", 2 * volume[0].nbytes)  # slabs of two slices
    scan = open_scan(tmp_path / "scan.tif")
    in_memory = read_scan(tmp_path / "scan.tif").volume
    levels = th.scan_thresholds(scan, methods=["li", "otsu", "triangle"], max_samples=volume.size)
    assert list(levels) == ["li", "otsu", "triangle"]
    assert levels == {m: threshold_value(in_memory, method=m) for m in levels}  # the scan is its own sample
    sparse = th.scan_thresholds(scan, methods=["li"], max_samples=200)  # Li from the grid scan[::s, ::s, ::s]
    step = next(s for s in range(1, 10) if np.prod([-(-n // s) for n in volume.shape]) <= 200)
    assert sparse["li"] == threshold_value(in_memory[::step, ::step, ::step], method="li")
    solid = th.write_threshold_mask(scan, levels["otsu"], tmp_path / "otsu.tif")
    expected = segment(in_memory)
    np.testing.assert_array_equal(read_mask(tmp_path / "otsu.tif"), expected)
    assert solid == int(np.count_nonzero(expected)) and read_scan(tmp_path / "otsu.tif").voxel_size_um == 4.0
    with pytest.raises(ValueError, match="unknown threshold method 'mean'"):
        th.scan_thresholds(scan, methods=["mean"], max_samples=10)
