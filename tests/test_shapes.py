"""Every function of the structure side that takes a volume, on non-cubic shapes (issue 20).

Real scans are rarely cubes (a 100 x 130 x 130 aluminium foam, a 60 x 130 x 96 crop), so each public
function that takes a volume, a stack of slices or a box shape is called with a non-cubic shape and
one with a short axis, and its result is compared with the cubic case or with the truth, not only
checked for not raising. Volumes are small (at most about 150 000 voxels) to keep the file quick.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from foamlib.fitting import FoamParameters, fit_foam_parameters, generate_foams
from foamlib.foam import closed_cell_foam, foam_from_seeds, place_seeds, slice_volume
from foamlib.patches import extract_patches, orthogonal_slices, patch_statistics
from foamlib.phantom import demo_sample, simulate_ct
from foamlib.render import GreyModel, fit_grey_model, phase_statistics, physics_render, render_slices
from foamlib.structure import (
    analyze,
    local_thickness,
    pore_chords,
    pore_sizes,
    porosity,
    specific_surface_area,
    wall_thickness,
)
from foamlib.threshold import segment, threshold_value
from foamlib.walls import add_walls, wall_statistics, watershed_walls

CUBE = (48, 48, 48)
#: a non-cubic shape and one with a short axis (shorter than a cell)
SHAPES = [(40, 64, 56), (12, 64, 48)]
PARAMS = FoamParameters(porosity=0.85, cell_diameter=16.0, cell_size_cv=0.2, wall_strut_ratio=0.2)


def _crop(shape, seed=0):
    """A foam cut to `shape` from a box at least two cells long per axis (as a scan's field of view)."""
    box = tuple(max(n, 32) for n in shape)
    return PARAMS.generate(box, rng=seed).solid[: shape[0], : shape[1], : shape[2]]


@pytest.fixture(scope="module")
def cube():
    return _crop(CUBE)


@pytest.fixture(scope="module", params=SHAPES, ids=lambda s: "x".join(map(str, s)))
def foam(request):
    return _crop(request.param, seed=1)


# --------------------------------------------------------------------------- structure


def test_porosity_and_thickness_agree_with_the_cube(foam, cube):
    assert porosity(foam) == pytest.approx(porosity(cube), abs=0.03)
    lt = local_thickness(foam)
    assert lt.shape == foam.shape and (lt[~foam] == 0).all() and (lt[foam] > 0).all()
    assert wall_thickness(foam).mean_um == pytest.approx(wall_thickness(cube).mean_um, rel=0.15)


def test_pore_sizes_labels_have_the_input_shape(foam):
    pores = pore_sizes(foam, min_voxels=8)
    assert pores.labels.shape == foam.shape and pores.n_pores > 0
    assert set(np.unique(pores.labels[foam])) == {0}
    inside = pore_sizes(foam, exclude_border=True, min_voxels=8)
    assert inside.n_pores <= pores.n_pores
    # cut pores are smaller than whole ones: the median of all pores stays below a cell
    assert np.median(pores.diameters_um) < PARAMS.cell_diameter


def test_chords_and_surface_agree_with_the_cube(foam, cube):
    c, ref = pore_chords(foam), pore_chords(cube)
    assert c.per_axis_voxels.shape == (3,) and np.isfinite(c.per_axis_voxels).all()
    assert c.mean_voxels == pytest.approx(ref.mean_voxels, abs=3 * math.hypot(c.se_voxels, ref.se_voxels))
    assert specific_surface_area(foam) == pytest.approx(specific_surface_area(cube), rel=0.15)


def test_analyze_reports_the_shape_and_cubic_values(foam, cube):
    report, ref = analyze(foam, exclude_border_pores=True), analyze(cube, exclude_border_pores=True)
    assert report.shape == foam.shape and report.ndim == 3
    assert report.porosity == pytest.approx(ref.porosity, abs=0.03)
    assert report.mean_pore_chord_voxels == pytest.approx(ref.mean_pore_chord_voxels, rel=0.2)
    assert report.mean_wall_thickness_voxels == pytest.approx(ref.mean_wall_thickness_voxels, rel=0.15)
    # a 2D slice of the short-axis volume, non-square
    flat = analyze(foam[foam.shape[0] // 2])
    assert flat.ndim == 2 and flat.shape == foam.shape[1:]


def test_analyze_minimum_shape():
    slab = np.zeros((2, 64, 48), dtype=bool)
    slab[:, ::8] = True  # walls across y: 2 x 48 lines with 14 transitions
    assert analyze(slab, min_pore_voxels=1).mean_pore_chord_voxels > 0
    with pytest.raises(ValueError, match="at least 2 voxels"):
        analyze(slab[:1])


# --------------------------------------------------------------------------- threshold


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_threshold_on_non_cubic_grey(shape):
    truth = _crop(shape, seed=2)
    grey = np.where(truth, 160.0, 50.0) + np.random.default_rng(0).normal(0.0, 10.0, size=shape)
    level = threshold_value(grey)
    assert 80 < level < 130
    seg = segment(grey)
    assert seg.shape == shape and np.mean(seg == truth) > 0.99
    assert segment(grey[0]).shape == shape[1:]  # one non-square slice


# --------------------------------------------------------------------------- patches


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_patches_of_non_cubic_volumes(shape):
    vol = _crop(shape, seed=3)
    size = min(shape)
    patches = extract_patches(vol, size, 20, axes="zyx", seed=1)
    assert patches.shape == (20, size, size)
    with pytest.raises(ValueError, match="does not fit"):
        extract_patches(vol, size + 1, 5, axes="zyx")
    tiles = orthogonal_slices(vol)
    t = lambda n: -(-n // size)  # noqa: E731
    z, y, x = shape
    assert tiles.shape == (z * t(y) * t(x) + y * t(z) * t(x) + x * t(z) * t(y), size, size)
    # the tiles of the z slices cover the volume: their porosity is at least near the volume's
    assert 1 - tiles.mean() == pytest.approx(porosity(vol), abs=0.03)
    stats = patch_statistics(tiles[:6], min_pixels=4)
    assert len(stats) == 6 and stats["porosity"].between(0, 1).all()


# --------------------------------------------------------------------------- walls


def test_watershed_walls_on_a_non_cubic_volume_and_non_square_images():
    solid = _crop((12, 64, 48), seed=4)
    solid[:, 30:34, :] = False  # knock out a band of walls: two pores meet
    walled = watershed_walls(solid)
    assert walled.shape == solid.shape and (walled >= solid).all() and walled.sum() > solid.sum()
    images = slice_volume(solid, axis=2)[:8]  # (8, 12, 64): non-square images
    after, treated = add_walls(images, 1.0, seed=0)
    assert after.shape == images.shape and treated.shape == (8,) and treated.all()
    stats = wall_statistics(images, after)
    assert stats["n_images"] == 8


# --------------------------------------------------------------------------- foam, fitting


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_generated_foams_of_any_shape(shape):
    foam = closed_cell_foam(shape, cell_diameter=16.0, wall_thickness=0.2, strut_diameter=1.0,
                            porosity=0.85, rng=0)
    assert foam.solid.shape == foam.fraction.shape == shape
    assert foam.porosity == pytest.approx(0.85, abs=1e-3)
    seeds = place_seeds(shape, cell_diameter=16.0, rng=0)
    assert ((seeds.positions >= 0) & (seeds.positions < np.array(shape))).all()
    again = foam_from_seeds(shape, seeds.positions, seeds.weights, wall_thickness=1.0, strut_diameter=2.0,
                            periodic=True)
    assert again.solid.shape == shape and 0.5 < again.porosity < 1.0
    assert [slice_volume(foam.solid, axis=a).shape for a in range(3)] == [
        shape, (shape[1], shape[0], shape[2]), (shape[2], shape[0], shape[1])]
    (generated,) = generate_foams([PARAMS], shape, rng=0)
    assert generated.solid.shape == shape


def test_fit_on_a_non_cubic_box():
    report = analyze(_crop((40, 64, 56), seed=5))
    result = fit_foam_parameters(report, shape=(40, 64, 56), iterations=1, rng=0)
    assert result.generated["porosity"] == pytest.approx(report.porosity, abs=0.03)
    assert result.parameters.cell_diameter == pytest.approx(PARAMS.cell_diameter, rel=0.3)


# --------------------------------------------------------------------------- rendering, phantom


def test_simulated_scan_grey_model_and_rendering_of_a_short_axis_volume():
    shape = (12, 64, 48)
    fraction = PARAMS.generate((32, 64, 48), rng=6).fraction[:12]
    scan = simulate_ct(fraction, photons_per_ray=2e4, rng=0, pad_mode="wrap")
    assert scan.shape == shape
    truth = fraction >= 0.5
    assert scan[truth].mean() > scan[~truth].mean() + 50
    model = fit_grey_model(scan, segment(scan), rng=0)
    assert model.solid_level > model.pore_level
    rendered = physics_render(fraction, model=model, axis=1, rng=0)
    assert rendered.shape == (64, 12, 48)
    images = render_slices(slice_volume(truth, axis=2), GreyModel(50.0, 160.0, 5.0, 0.5), rng=0,
                           dtype="float32")
    assert images.shape == (48, 12, 64)
    stats = phase_statistics(images, slice_volume(truth, axis=2))
    assert stats["solid_mean"] == pytest.approx(160.0, abs=25.0)
    assert stats["pore_mean"] == pytest.approx(50.0, abs=10.0)


def test_demo_sample_of_a_non_cubic_shape():
    demo = demo_sample("foam89", size=(16, 40, 32), supersample=1)
    assert demo.scan.shape == demo.truth.shape == (16, 40, 32)
    assert demo.porosity == pytest.approx(0.8902, abs=0.01)
    with pytest.raises(ValueError, match="size"):
        demo_sample("foam89", size=(16, 40))
    with pytest.raises(ValueError, match=">= 16"):
        demo_sample("foam89", size=(8, 40, 32))
