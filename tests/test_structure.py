"""Tests for foamlib.structure on analytic shapes (slabs, balls, disks, lattices) and on one real scan."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from drawn_shapes import balls
from scipy import ndimage as ndi

from foamlib.structure import (
    PoreSizes,
    UM_KEYS,
    StructureReport,
    Thickness,
    analyze,
    local_thickness,
    pore_chords,
    pore_sizes,
    porosity,
    specific_surface_area,
    wall_thickness,
)


def slab_stack(shape, thickness, period, axis=-1):
    """Parallel solid slabs ``thickness`` voxels thick, one every ``period`` voxels along ``axis``."""
    index = np.arange(shape[axis]) % period
    profile = (index >= 2) & (index < 2 + thickness)
    expand = [np.newaxis] * len(shape)
    expand[axis] = slice(None)
    return np.broadcast_to(profile[tuple(expand)], shape).copy()


def sphere_lattice(n_cells=3, cell=16, radius=5.0):
    """Closed-cell 'foam': a solid matrix with one spherical pore per cubic cell."""
    n = n_cells * cell
    centres = [
        (cell / 2 - 0.5 + i * cell, cell / 2 - 0.5 + j * cell, cell / 2 - 0.5 + k * cell)
        for i in range(n_cells)
        for j in range(n_cells)
        for k in range(n_cells)
    ]
    return ~balls((n, n, n), centres, [radius] * len(centres))


# --------------------------------------------------------------------------- porosity


def test_porosity_of_slab_stack_is_exact():
    solid = slab_stack((10, 20, 30), thickness=3, period=10)  # 3 slabs of 3 voxels in 30
    assert porosity(solid) == pytest.approx(1 - 9 / 30, abs=1e-12)
    assert porosity(solid[4]) == pytest.approx(0.7, abs=1e-12)  # a 2D slice


def test_porosity_of_sphere_lattice():
    solid = sphere_lattice(n_cells=2, cell=20, radius=6.0)
    expected = 4 / 3 * math.pi * 6.0**3 / 20**3
    assert porosity(solid) == pytest.approx(expected, rel=0.02)
    assert porosity(np.zeros((4, 4), bool)) == 1.0
    assert porosity(np.ones((4, 4, 4), bool)) == 0.0


def test_porosity_with_mask_and_integer_input():
    solid = np.zeros((10, 10), dtype=bool)
    solid[:, :3] = True
    mask = np.zeros_like(solid)
    mask[:, :6] = True
    assert porosity(solid, mask=mask) == pytest.approx(0.5)
    assert porosity(solid.astype(np.uint8)) == pytest.approx(0.7)
    with pytest.raises(ValueError, match="no voxels"):
        porosity(solid, mask=np.zeros_like(solid))
    with pytest.raises(ValueError, match="shape"):
        porosity(solid, mask=mask[:5])


def test_input_validation():
    grey = np.random.default_rng(0).random((8, 8, 8))
    with pytest.raises(TypeError, match="[Tt]hreshold"):
        porosity(grey)
    with pytest.raises(TypeError, match="[Tt]hreshold"):
        analyze((grey > 0.5).astype(np.uint8) * 255)
    with pytest.raises(ValueError, match="2D"):
        porosity(np.zeros(5, dtype=bool))
    with pytest.raises(ValueError, match="2D"):
        local_thickness(np.zeros((2, 3, 4, 5), dtype=bool))
    with pytest.raises(ValueError, match="voxel_size_um"):
        wall_thickness(slab_stack((8, 8, 20), 3, 10), voxel_size_um=0)


def test_all_solid_and_all_pore_raise_where_undefined():
    full = np.ones((12, 12, 12), dtype=bool)
    empty = np.zeros((12, 12, 12), dtype=bool)
    for func in (local_thickness, wall_thickness, pore_sizes, analyze):
        with pytest.raises(ValueError, match="all solid"):
            func(full)
    for func in (wall_thickness, pore_sizes, analyze):
        with pytest.raises(ValueError, match="no solid"):
            func(empty)
    assert not local_thickness(empty).any()
    assert specific_surface_area(full) == 0.0
    assert specific_surface_area(empty) == 0.0


# --------------------------------------------------------------------------- local and wall thickness


@pytest.mark.parametrize("t", [1, 3, 4, 5, 8])
def test_local_thickness_of_slab(t):
    solid = np.zeros((12, 14, 30), dtype=bool)
    solid[:, :, 10 : 10 + t] = True
    lt = local_thickness(solid)
    assert lt.dtype == np.float32 and lt.shape == solid.shape
    assert np.all(lt[~solid] == 0)
    # 2 r with r measured between voxel centres: t + 1 for odd t, t for even t
    np.testing.assert_allclose(lt[solid], t + t % 2, atol=1e-5)


@pytest.mark.parametrize("d", [9, 15, 20])
def test_local_thickness_of_ball_and_disk(d):
    n = d + 9
    centre = [n // 2] * 3  # on a voxel centre: the central inscribed ball covers the whole ball
    ball = balls((n, n, n), [centre], [d / 2])
    np.testing.assert_allclose(local_thickness(ball)[ball], d, atol=1.0)
    disk = balls((n, n), [centre[:2]], [d / 2])
    np.testing.assert_allclose(local_thickness(disk)[disk], d, atol=1.0)
    # Centred on a voxel corner (the worst case) no voxel-centred ball reaches across: biased low
    shifted = balls((n, n, n), [[n // 2 + 0.5] * 3], [d / 2])
    assert np.mean(local_thickness(shifted)[shifted]) == pytest.approx(d - 1, abs=1.0)


def _brute_force_radius(solid):
    """Largest EDT value of any inscribed ball covering each voxel, by inserting every ball."""
    dist = ndi.distance_transform_edt(solid)
    points = np.argwhere(solid)
    best = np.zeros(len(points))
    for centre in points:
        r = dist[tuple(centre)]
        inside = ((points - centre) ** 2).sum(axis=1) < r * r - 1e-9
        best[inside] = np.maximum(best[inside], r)
    out = np.zeros(solid.shape)
    out[tuple(points.T)] = best
    return out


@pytest.mark.parametrize("ndim", [2, 3])
def test_local_thickness_matches_brute_force(ndim):
    rng = np.random.default_rng(ndim)
    shape = (48, 48) if ndim == 2 else (18, 18, 18)
    field = ndi.gaussian_filter(rng.normal(size=shape), 2.5)
    solid = field > np.quantile(field, 0.45)
    expected = 2 * _brute_force_radius(solid)
    np.testing.assert_allclose(local_thickness(solid), expected, atol=1e-5)


def test_local_thickness_of_large_ball_touching_the_border():
    # radius 14 exercises the one-ball-at-a-time path; the ball is cut by the volume's faces
    ball = balls((24, 36, 36), [(10.2, 17.6, 17.4)], [14.0])
    lt = local_thickness(ball)
    assert lt[ball].max() == pytest.approx(2 * ndi.distance_transform_edt(ball).max())
    assert np.all(lt[ball] > 0)


def test_wall_thickness_of_parallel_slabs_in_micrometres():
    t, voxel = 4, 2.5
    solid = slab_stack((16, 16, 40), thickness=t, period=10)
    result = wall_thickness(solid, voxel_size_um=voxel)
    assert isinstance(result, Thickness)
    assert result.values_um.shape == (np.count_nonzero(solid),)
    assert result.mean_um == pytest.approx(voxel * t, abs=voxel * 1.0 + 1e-6)
    assert result.median_um == pytest.approx(result.mean_um)
    assert result.std_um == pytest.approx(0.0, abs=1e-6)
    in_voxels = wall_thickness(solid)
    assert result.mean_um == pytest.approx(voxel * in_voxels.mean_um)


# --------------------------------------------------------------------------- pore sizes


def test_two_separated_spheres():
    pores = balls((36, 36, 60), [(18, 18, 15), (18, 18, 42)], [7, 10])
    result = pore_sizes(~pores, voxel_size_um=2.0)
    assert isinstance(result, PoreSizes)
    assert result.n_pores == 2 and result.ndim == 3 and result.volume_unit == "um^3"
    assert result.labels.dtype == np.int32 and result.labels.shape == pores.shape
    np.testing.assert_array_equal(result.labels > 0, pores)
    np.testing.assert_allclose(np.sort(result.diameters_um), [2.0 * 14, 2.0 * 20], rtol=0.1)
    assert result.volumes.sum() == pytest.approx(np.count_nonzero(pores) * 2.0**3)


@pytest.mark.parametrize("separation", [13, 16])
def test_dumbbell_splits_into_two_pores(separation):
    pores = balls((32, 32, 56), [(16, 16, 18), (16, 16, 18 + separation)], [9, 7])
    result = pore_sizes(~pores)
    assert result.n_pores == 2
    big, small = np.sort(result.diameters_um)[::-1]
    assert big > small
    # each half keeps most of its own sphere
    assert big == pytest.approx(18, rel=0.15) and small == pytest.approx(14, rel=0.2)


def test_disks_in_2d():
    pores = balls((60, 90), [(30, 20), (30, 60)], [8, 12])
    result = pore_sizes(~pores, voxel_size_um=0.5)
    assert result.n_pores == 2 and result.ndim == 2 and result.volume_unit == "um^2"
    np.testing.assert_allclose(np.sort(result.diameters_um), [0.5 * 16, 0.5 * 24], rtol=0.1)
    dumbbell = balls((60, 90), [(30, 30), (30, 50)], [12, 10])
    assert pore_sizes(~dumbbell).n_pores == 2


def test_exclude_border_and_min_voxels():
    pores = balls((30, 30, 60), [(15, 15, 20), (15, 15, 55)], [8, 8])  # the second is cut by the face
    pores[2, 2, 2] = True  # a one-voxel pore
    assert pore_sizes(~pores).n_pores == 3
    kept = pore_sizes(~pores, exclude_border=True)
    assert kept.n_pores == 2  # the speck does not touch the border
    only = pore_sizes(~pores, exclude_border=True, min_voxels=8)
    assert only.n_pores == 1
    assert only.diameters_um[0] == pytest.approx(16, rel=0.1)
    assert set(np.unique(only.labels)) == {0, 1}


# --------------------------------------------------------------------------- surface area


def test_specific_surface_area_of_ball():
    n, r = 36, 11.0
    ball = balls((n, n, n), [(17.8, 17.4, 17.6)], [r])
    box = (n - 1) ** 3
    expected = 4 * math.pi * r**2 / box
    assert specific_surface_area(ball) == pytest.approx(expected, rel=0.05)
    assert specific_surface_area(~ball) == pytest.approx(specific_surface_area(ball), rel=1e-6)
    assert specific_surface_area(ball, voxel_size_um=2.0) == pytest.approx(specific_surface_area(ball) / 2.0)


def test_specific_surface_area_of_slabs_excludes_outer_faces():
    solid = np.zeros((20, 20, 30), dtype=bool)
    solid[:, :, 10:15] = True  # two interfaces, each 19 x 19 within the box spanned by voxel centres
    expected = 2 * 19 * 19 / (19 * 19 * 29)
    assert specific_surface_area(solid) == pytest.approx(expected, rel=1e-3)


def test_perimeter_of_disk():
    n, r = 60, 20.0
    disk = balls((n, n), [(29.6, 29.3)], [r])
    expected = 2 * math.pi * r / (n - 1) ** 2
    assert specific_surface_area(disk) == pytest.approx(expected, rel=0.05)


# --------------------------------------------------------------------------- analyze


def test_analyze_sphere_lattice():
    solid = sphere_lattice(n_cells=3, cell=16, radius=5.0)
    report = analyze(solid, voxel_size_um=3.0)
    assert isinstance(report, StructureReport)
    assert report.voxel_size_um == 3.0 and report.ndim == 3 and report.shape == solid.shape
    assert report.n_pores == 27
    assert report.porosity == pytest.approx(porosity(solid))
    assert report.mean_pore_diameter_um == pytest.approx(3.0 * 10, rel=0.1)
    assert report.median_pore_diameter_um == pytest.approx(3.0 * 10, rel=0.1)
    assert 3.0 * 6 < report.mean_wall_thickness_um < 3.0 * 16
    assert report.specific_surface_area_per_um == pytest.approx(
        27 * 4 * math.pi * 5.0**2 / (47**3 * 3.0), rel=0.1
    )
    assert report.mean_pore_diameter_um == pytest.approx(3.0 * report.mean_pore_diameter_voxels)
    assert report.specific_surface_area_per_um == pytest.approx(report.specific_surface_area_per_voxel / 3.0)
    data = report.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert set(data) >= {"porosity", "n_pores", "mean_wall_thickness_voxels", "mean_wall_thickness_um", *UM_KEYS}
    assert data["median_pore_diameter_um"] == pytest.approx(3.0 * data["median_pore_diameter_voxels"])
    assert StructureReport.from_dict(data) == report


def test_analyze_2d_slice_in_voxels():
    solid = sphere_lattice(n_cells=3, cell=16, radius=5.0)[8]  # through the pore centres
    report = analyze(solid)
    assert report.voxel_size_um is None and report.ndim == 2
    assert report.n_pores == 9
    assert report.mean_pore_diameter_voxels == pytest.approx(10, rel=0.1)
    # no voxel size: no number under a micrometre name (issue 15)
    assert report.mean_pore_diameter_um is None and report.specific_surface_area_per_um is None
    data = report.to_dict()
    assert [key for key in data if key.endswith("_um")] == ["voxel_size_um"] and data["voxel_size_um"] is None
    assert data["mean_wall_thickness_voxels"] == report.mean_wall_thickness_voxels
    assert StructureReport.from_dict(json.loads(json.dumps(data))) == report


def test_analyze_foam_with_thin_walls():
    # a 2D grid of square cells with 2-pixel walls, off the image border: 9 whole 14 x 14 cells and
    # 16 cut by the border (their distance maps are flat along it: one pore each, not several)
    solid = np.zeros((64, 64), dtype=bool)
    solid[8::16, :] = solid[9::16, :] = True
    solid[:, 8::16] = solid[:, 9::16] = True
    everything = analyze(solid, voxel_size_um=10.0)
    assert everything.n_pores == 25 and not everything.border_pores_excluded
    report = analyze(solid, voxel_size_um=10.0, exclude_border_pores=True)
    assert report.n_pores == 9 and report.border_pores_excluded
    assert report.mean_pore_diameter_um == pytest.approx(10.0 * math.sqrt(4 * 14 * 14 / math.pi))
    assert everything.mean_pore_diameter_um < report.mean_pore_diameter_um
    assert report.mean_wall_thickness_um == pytest.approx(20.0, abs=2.0)
    assert report.median_wall_thickness_um == pytest.approx(20.0)
    assert report.porosity == pytest.approx(1 - np.count_nonzero(solid) / solid.size)


@pytest.mark.shared_data
def test_analyze_fiberform(shared_data):
    tifffile = pytest.importorskip("tifffile")
    from foamlib.threshold import segment

    fibres = segment(tifffile.imread(shared_data / "fiberform" / "100_fiberform.tif"))
    report = analyze(fibres, voxel_size_um=1.3)
    assert report.porosity == pytest.approx(0.846, abs=0.01)
    assert report.n_pores > 10
    # carbon fibres are about 10 um across (about 7-8 voxels of 1.3 um)
    assert 5.0 < report.mean_wall_thickness_um < 20.0
    json.dumps(report.to_dict())


def test_analyze_without_interior_pores_reports_chords():
    solid = np.ones((20, 20, 20), dtype=bool)
    solid[:, 5:15, :8] = False  # one pore, cut by the face x = 0
    inside = analyze(solid, exclude_border_pores=True)
    assert inside.n_pores == 0 and inside.mean_pore_diameter_voxels is None and inside.border_pores_excluded
    # chords: 10 voxels along y (20 x 8 lines), 8 along x with one end at the border (20 x 10 lines)
    assert inside.mean_pore_chord_voxels == pytest.approx(
        2 * porosity(solid) * (3 * 20 * 20 * 19) / (2 * 20 * 8 + 20 * 10)
    )
    report = analyze(solid)
    assert report.n_pores == 1 and report.min_pore_voxels == 8 and not report.border_pores_excluded
    assert report.mean_pore_chord_voxels == inside.mean_pore_chord_voxels
    json.dumps(inside.to_dict())


def test_analyze_too_small_to_say_anything_raises_at_once():
    one = np.ones((20, 20, 20), dtype=bool)
    one[9:11, 10, 10] = False  # a pore of 2 voxels: 10 transitions, the minimum, is enough
    assert analyze(one, min_pore_voxels=1).mean_pore_chord_voxels == pytest.approx(
        2 * 2 / 8000 * 3 * 20 * 20 * 19 / 10)
    one[9, 10, 10] = True  # a single pore voxel: 6 transitions
    with pytest.raises(ValueError, match="only 6 solid/pore transitions.*several cell walls"):
        analyze(one)
    with pytest.raises(ValueError, match="at least 2 voxels"):
        analyze(np.zeros((1, 20, 20), dtype=bool) | (np.arange(20) % 4 == 0))


def test_report_from_dict_rejects_old_reports():
    with pytest.raises(ValueError, match="_voxels"):
        StructureReport.from_dict({"porosity": 0.9, "n_pores": 3, "mean_pore_diameter_um": 12.0})


# --------------------------------------------------------------------------- pore chords


def test_pore_chords_of_slabs_along_their_normal():
    # pore gaps of 8 voxels between 2-voxel slabs, across x: chords along x are 8 (two cut by the border)
    solid = slab_stack((10, 12, 40), 2, 10)
    chords = pore_chords(solid)
    assert np.isnan(chords.per_axis_voxels[:2]).all()  # no transition along z and y
    n_lines = 10 * 12
    # transitions per line along x: 2 per slab that is not at the border
    t = chords.n_transitions // n_lines
    assert chords.per_axis_voxels[2] == pytest.approx(2 * 0.8 * 39 / t)
    assert chords.porosity == pytest.approx(0.8)
    # interior chords are all 8 long: 3 per line along x (the last gap touches the border)
    assert chords.n_interior == 3 * n_lines and chords.cv == 0.0


def test_pore_chords_of_balls_is_two_thirds_of_the_diameter():
    # isolated pore balls of diameter 2 r + 1 in a solid: mean chord 2 D / 3 (digitised, within 8 %)
    rng = np.random.default_rng(0)
    centres = rng.uniform(8, 88, size=(40, 3))
    solid = ~balls((96, 96, 96), centres, [6.0] * len(centres))
    chords = pore_chords(solid)
    assert chords.mean_voxels == pytest.approx(2 / 3 * 13.0, rel=0.08)
    # chord lengths in a ball of diameter D have density 2 l / D^2: cv = sqrt(1/18) / (2/3) = 0.354
    assert chords.cv == pytest.approx(math.sqrt(1 / 18) / (2 / 3), abs=0.05)
    assert chords.n_interior > 1000
    assert 0 < chords.se_voxels < 0.1 * chords.mean_voxels
    assert chords.n_blocks == 4**3


def test_pore_chords_do_not_depend_on_the_border():
    from foamlib.foam import closed_cell_foam

    foam = closed_cell_foam((48, 96, 96), cell_diameter=24.0, wall_thickness=0.2, strut_diameter=1.0,
                            porosity=0.9, rng=3).solid
    whole = pore_chords(foam)
    crop = pore_chords(foam[:, :40, :40])  # 2 cells across: few pores inside, the same chords
    assert crop.mean_voxels == pytest.approx(whole.mean_voxels, abs=3 * crop.se_voxels)
    assert 0.55 * 24 < whole.mean_voxels < 0.75 * 24


def test_pore_chords_validation():
    with pytest.raises(ValueError, match="at least 2 voxels"):
        pore_chords(np.zeros((1, 8, 8), dtype=bool))
    with pytest.raises(ValueError, match="pore size is undefined"):
        pore_chords(np.ones((8, 8, 8), dtype=bool))
    with pytest.raises(TypeError, match="binary"):
        pore_chords(np.full((8, 8), 0.5))
