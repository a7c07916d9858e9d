"""Tests of foamlib.patches."""

import math

import numpy as np
import pandas as pd
import pytest

from foamlib.patches import (
    STATISTICS,
    compare_patch_sets,
    extract_patches,
    orthogonal_slices,
    patch_statistics,
    tile_starts,
)

# --------------------------------------------------------------------------- extract_patches


@pytest.fixture(scope="module")
def numbered():
    """A (6, 10, 14) volume whose voxels hold their flat index."""
    return np.arange(6 * 10 * 14, dtype=np.int64).reshape(6, 10, 14)


@pytest.mark.parametrize(
    ("axes", "size", "row_step", "col_step"),
    [("z", 8, 14, 1), ("y", 5, 140, 1), ("x", 6, 140, 14)],
)
def test_extract_patches_orientation_and_content(numbered, axes, size, row_step, col_step):
    patches = extract_patches(numbered, size, 50, axes=axes, seed=1)
    assert patches.shape == (50, size, size)
    assert patches.dtype == numbered.dtype
    # every patch is a contiguous crop of one slice, oriented as foamlib.foam.slice_volume
    assert (np.diff(patches, axis=1) == row_step).all()
    assert (np.diff(patches, axis=2) == col_step).all()
    z, y, x = np.unravel_index(patches[:, 0, 0], numbered.shape)
    fixed = {"z": z, "y": y, "x": x}[axes]
    for i in range(len(patches)):
        coords = np.unravel_index(patches[i].ravel(), numbered.shape)
        assert (coords["zyx".index(axes)] == fixed[i]).all()


def test_extract_patches_covers_all_positions():
    vol = np.arange(4 * 7 * 9).reshape(4, 7, 9)
    patches = extract_patches(vol, 6, 400, axes="z", seed=0)
    z, y, x = np.unravel_index(patches[:, 0, 0], vol.shape)
    assert set(z) == {0, 1, 2, 3}
    assert set(y) == {0, 1}  # 7 - 6 + 1 positions
    assert set(x) == {0, 1, 2, 3}


def test_extract_patches_mixes_axes_and_is_seeded():
    rng = np.random.default_rng(0)
    vol = rng.random((16, 16, 16)) < 0.5
    a = extract_patches(vol, 8, 60, axes="zyx", seed=3)
    b = extract_patches(vol, 8, 60, axes="zyx", seed=3)
    c = extract_patches(vol, 8, 60, axes="zyx", seed=4)
    assert a.dtype == bool and a.shape == (60, 8, 8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # all three orientations occur
    numbered = np.arange(16**3).reshape(16, 16, 16)
    p = extract_patches(numbered, 8, 60, axes="zyx", seed=3)
    steps = {(int(q[1, 0] - q[0, 0]), int(q[0, 1] - q[0, 0])) for q in p}
    assert steps == {(16, 1), (256, 1), (256, 16)}


@pytest.mark.parametrize(
    ("volume", "size", "n", "kwargs", "match"),
    [
        (np.zeros((4, 4)), 2, 1, {}, "3D"),
        (np.zeros((0, 4, 4)), 2, 1, {}, "non-empty"),
        (np.zeros((4, 20, 20)), 5, 1, {"axes": "y"}, "does not fit.*perpendicular to y"),
        (np.zeros((4, 20, 20)), 21, 1, {"axes": "z"}, "does not fit"),
        (np.zeros((8, 8, 8)), 0, 1, {}, "size"),
        (np.zeros((8, 8, 8)), 4, 0, {}, "n must"),
        (np.zeros((8, 8, 8)), 4, 1, {"axes": "zz"}, "repeat"),
        (np.zeros((8, 8, 8)), 4, 1, {"axes": "a"}, "only 'z', 'y' and 'x'"),
        (np.zeros((8, 8, 8)), 4, 1, {"axes": ""}, "non-empty"),
        (np.zeros((8, 8, 8)), 4, 1, {"seed": -1}, "seed"),
    ],
)
def test_extract_patches_errors(volume, size, n, kwargs, match):
    with pytest.raises(ValueError, match=match):
        extract_patches(volume, size, n, **kwargs)


@pytest.mark.parametrize(
    ("size", "n", "kwargs", "match"),
    [(True, 1, {}, "^size must be an integer"), (4, 2.0, {}, "^n must be an integer"),
     (4, 1, {"seed": "1"}, "^seed must be an integer")],
)
def test_extract_patches_type_errors(size, n, kwargs, match):
    with pytest.raises(TypeError, match=match):
        extract_patches(np.zeros((8, 8, 8)), size, n, **kwargs)


def test_extract_patches_takes_rng_or_the_earlier_seed():
    vol = np.arange(16**3).reshape(16, 16, 16)
    np.testing.assert_array_equal(extract_patches(vol, 4, 5, seed=7), extract_patches(vol, 4, 5, rng=7))
    np.testing.assert_array_equal(extract_patches(vol, 4, 5), extract_patches(vol, 4, 5, seed=0))
    gen = np.random.default_rng(7)
    np.testing.assert_array_equal(extract_patches(vol, 4, 5, rng=gen), extract_patches(vol, 4, 5, seed=7))
    with pytest.raises(ValueError, match="rng or seed, not both"):
        extract_patches(vol, 4, 5, rng=1, seed=1)


# --------------------------------------------------------------------------- patch_statistics


def _two_disks() -> tuple[np.ndarray, np.ndarray]:
    """Solid 40 x 40 square with two separate circular pores; also their areas."""
    yy, xx = np.mgrid[:40, :40]
    disk1 = (yy - 11) ** 2 + (xx - 11) ** 2 <= 6**2
    disk2 = (yy - 27) ** 2 + (xx - 28) ** 2 <= 8**2
    return ~(disk1 | disk2), np.array([disk1.sum(), disk2.sum()], dtype=float)


def test_patch_statistics_two_disks():
    solid, areas = _two_disks()
    stats = patch_statistics(np.stack([solid, solid.T]), voxel_size_um=2.0)
    assert list(stats.columns) == list(STATISTICS)
    assert len(stats) == 2
    assert stats["porosity"].tolist() == [areas.sum() / 1600] * 2  # exact
    assert stats["n_pores"].tolist() == [2, 2]
    assert stats["n_pores"].dtype == np.int64
    diameters = np.sqrt(4 * areas * 2.0**2 / np.pi)  # pixel 2 um
    assert stats.loc[0, "mean_pore_diameter_um"] == pytest.approx(diameters.mean())
    assert stats.loc[0, "median_pore_diameter_um"] == pytest.approx(np.median(diameters))


def test_patch_statistics_degenerate_patches_and_min_pixels():
    solid, _ = _two_disks()
    speck = solid.copy()
    speck[35, 3] = False  # a one-pixel pore
    all_solid = np.ones((40, 40), dtype=bool)
    all_pore = np.zeros((40, 40), dtype=bool)
    stats = patch_statistics(np.stack([speck, all_solid, all_pore]))
    assert stats["n_pores"].tolist() == [3, 0, 1]
    assert stats["porosity"].tolist()[1:] == [0.0, 1.0]
    assert math.isnan(stats.loc[1, "mean_pore_diameter_um"])
    assert stats.loc[2, "mean_pore_diameter_um"] == pytest.approx(math.sqrt(4 * 1600 / math.pi))
    assert patch_statistics(speck[None], min_pixels=2)["n_pores"].tolist() == [2]


def test_patch_statistics_accepts_01_integers_rejects_grey():
    solid, _ = _two_disks()
    a = patch_statistics(solid[None].astype(np.uint8))
    b = patch_statistics(solid[None])
    pd.testing.assert_frame_equal(a, b)
    with pytest.raises(TypeError, match="binary"):
        patch_statistics(solid[None].astype(np.float32) * 0.7)
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        patch_statistics(solid)
    with pytest.raises(ValueError, match="voxel_size_um"):
        patch_statistics(solid[None], voxel_size_um=0)


# --------------------------------------------------------------------------- compare_patch_sets


@pytest.fixture(scope="module")
def blob_sets():
    from scipy import ndimage as ndi

    rng = np.random.default_rng(0)
    field = ndi.gaussian_filter(rng.normal(size=(30, 24, 24)), (0, 2, 2))
    real = field > 0.1
    other = field > -0.1
    return real, other


def test_compare_patch_sets_identical_sets(blob_sets):
    real, _ = blob_sets
    table = compare_patch_sets({"real": real, "copy": real.copy()})
    assert list(table.columns) == ["n", "mean", "std", "mean_diff", "std_ratio", "ks_statistic", "ks_pvalue"]
    assert table.index.names == ["statistic", "set"]
    assert list(table.index) == [(s, name) for s in STATISTICS for name in ("real", "copy")]
    copy_rows = table.xs("copy", level="set")
    assert (copy_rows["ks_statistic"] == 0.0).all()
    assert (copy_rows["mean_diff"] == 0.0).all()
    np.testing.assert_allclose(copy_rows["std_ratio"], 1.0)
    assert table.xs("real", level="set")[["mean_diff", "std_ratio", "ks_statistic"]].isna().all().all()
    assert table.loc[("porosity", "real"), "n"] == len(real)


def test_compare_patch_sets_detects_differences_and_collapse(blob_sets):
    real, other = blob_sets
    collapsed = np.repeat(real[:1], len(real), axis=0)
    stats_other = patch_statistics(other)  # a precomputed table is used as it is
    table = compare_patch_sets({"real": real, "other": stats_other, "collapsed": collapsed}, reference="real")
    real_por = 1 - real.mean(axis=(1, 2))
    other_por = 1 - other.mean(axis=(1, 2))
    assert table.loc[("porosity", "other"), "mean_diff"] == pytest.approx(other_por.mean() - real_por.mean())
    assert table.loc[("porosity", "other"), "ks_statistic"] > 0.5
    assert table.loc[("porosity", "collapsed"), "std"] == pytest.approx(0.0, abs=1e-12)
    assert table.loc[("porosity", "collapsed"), "std_ratio"] == pytest.approx(0.0, abs=1e-9)
    assert table.loc[("porosity", "collapsed"), "ks_statistic"] > 0.5
    # another reference
    swapped = compare_patch_sets({"real": real, "other": other}, reference="other")
    assert swapped.loc[("porosity", "real"), "mean_diff"] == pytest.approx(-table.loc[("porosity", "other"), "mean_diff"])


def test_compare_patch_sets_errors(blob_sets):
    real, _ = blob_sets
    with pytest.raises(ValueError, match="non-empty mapping"):
        compare_patch_sets({})
    with pytest.raises(ValueError, match="reference 'fake'"):
        compare_patch_sets({"real": real}, reference="fake")
    with pytest.raises(TypeError, match="binary"):
        compare_patch_sets({"real": real, "grey": real * 0.5})
    with pytest.raises(TypeError, match="column"):
        compare_patch_sets({"real": real, "table": pd.DataFrame({"porosity": [0.5]})})


# --------------------------------------------------------------------------- orthogonal slices


def test_tile_starts_cover_with_the_last_tile_at_the_edge():
    assert tile_starts(10, 4).tolist() == [0, 4, 6]
    assert tile_starts(8, 4).tolist() == [0, 4]
    assert tile_starts(5, 5).tolist() == [0]
    with pytest.raises(ValueError, match="larger than the length"):
        tile_starts(3, 4)


def test_orthogonal_slices_of_the_issue_volume_count_and_size():
    vol = np.zeros((100, 200, 200), dtype=np.uint8)
    tiles = orthogonal_slices(vol)
    # 100-px tiles: 4 per z slice (100 slices), 2 per y slice and 2 per x slice (200 slices each)
    assert tiles.shape == (100 * 4 + 200 * 2 + 200 * 2, 100, 100)
    assert tiles.dtype == np.uint8


@pytest.mark.parametrize("shape", [(40, 64, 56), (12, 64, 48), (30, 30, 30)])
def test_orthogonal_slices_are_the_slices_and_cover_them(shape):
    vol = np.random.default_rng(0).integers(0, 1000, size=shape)
    size = min(shape)
    tiles = orthogonal_slices(vol)
    t = lambda n: -(-n // size)  # noqa: E731
    z, y, x = shape
    assert tiles.shape == (z * t(y) * t(x) + y * t(z) * t(x) + x * t(z) * t(y), size, size)
    # the first z tile is the corner of slice 0; the last x tile is the far corner of the last x slice
    np.testing.assert_array_equal(tiles[0], vol[0, :size, :size])
    np.testing.assert_array_equal(tiles[-1], vol[-size:, -size:, -1])
    # every voxel of every slice is covered: the z tiles hold all values of the volume
    n_z = z * t(y) * t(x)
    assert set(np.unique(tiles[:n_z])) == set(np.unique(vol))


def test_orthogonal_slices_axes_and_size():
    vol = np.arange(12 * 64 * 48).reshape(12, 64, 48)
    only_z = orthogonal_slices(vol, axes="z")
    assert only_z.shape == (12 * 2, 48, 48)  # min(Y, X) = 48: tiles at rows 0 and 16
    np.testing.assert_array_equal(only_z[1], vol[0, 16:, :])
    small = orthogonal_slices(vol, axes="zx", size=8)
    assert small.shape == (12 * 8 * 6 + 48 * 2 * 8, 8, 8)
    with pytest.raises(ValueError, match="does not fit in the slices perpendicular to y"):
        orthogonal_slices(vol, axes="zy", size=13)
    with pytest.raises(ValueError, match="3D"):
        orthogonal_slices(vol[0])
    with pytest.raises(ValueError, match="axes"):
        orthogonal_slices(vol, axes="zz")


# --------------------------------------------------------------------------- scans opened lazily


@pytest.fixture
def lazy_scan(tmp_path):
    from foamlib.io import write_tiff
    from foamlib.lazy import open_scan

    volume = np.random.default_rng(7).integers(0, 4000, (21, 34, 29)).astype(np.uint16)
    return volume, open_scan(write_tiff(tmp_path / "scan.tif", volume))


@pytest.mark.parametrize("axes", ["z", "zyx", "yx"])
def test_extract_patches_of_a_lazy_volume_are_those_of_the_volume_in_memory(lazy_scan, tmp_path, axes):
    from foamlib.io import write_tiff
    from foamlib.lazy import open_mask

    volume, scan = lazy_scan
    patches = extract_patches(scan, 9, 50, axes=axes, rng=3)
    assert patches.dtype == np.uint16
    np.testing.assert_array_equal(patches, extract_patches(volume, 9, 50, axes=axes, rng=3))
    solid = volume > 2000
    mask = open_mask(write_tiff(tmp_path / "mask.tif", solid))
    binary = extract_patches(mask, 8, 40, axes=axes, rng=1)
    assert binary.dtype == bool
    np.testing.assert_array_equal(binary, extract_patches(solid, 8, 40, axes=axes, rng=1))


@pytest.mark.parametrize(("axes", "size"), [("zyx", None), ("z", None), ("yx", 10)])
def test_scan_slices_are_orthogonal_slices_of_the_scaled_scan_read_tile_by_tile(lazy_scan, axes, size):
    from foamlib.patches import ScanSlices
    from foamlib.segment import scale_intensity

    volume, scan = lazy_scan
    expected = orthogonal_slices(scale_intensity(volume, (100.0, 3500.0)), axes=axes, size=size)
    tiles = ScanSlices(scan, intensity_range=(100.0, 3500.0), axes=axes, size=size)
    assert tiles.shape == expected.shape and len(tiles) == len(expected) and tiles.dtype == np.float32
    np.testing.assert_array_equal(np.stack([tiles[i] for i in range(len(tiles))]), expected)
    np.testing.assert_array_equal(tiles[-1], expected[-1])
    np.testing.assert_array_equal(tiles[np.int64(5), 2:7, 1:4], expected[5, 2:7, 1:4])
    np.testing.assert_array_equal(tiles[7, ::-1, ::2], expected[7, ::-1, ::2])
    picked = np.array([3, 0, len(expected) - 1])
    np.testing.assert_array_equal(tiles[picked, :4, :4], expected[picked, :4, :4])
    assert tiles.fingerprint() == tiles.fingerprint()
    assert tiles.fingerprint() != ScanSlices(scan, intensity_range=(0.0, 3500.0), axes=axes, size=size).fingerprint()
    with pytest.raises(IndexError):
        tiles[len(expected)]
    with pytest.raises(TypeError, match="index ScanSlices"):
        tiles[0, 1]
    with pytest.raises(ValueError, match="size 99 does not fit"):
        ScanSlices(scan, intensity_range=(0.0, 1.0), size=99)
    with pytest.raises(TypeError, match="LazyScan"):
        ScanSlices(volume, intensity_range=(0.0, 1.0))
