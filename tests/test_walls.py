"""Tests for foamlib.walls: watershed walls on analytic pores, on a damaged foam slice, and on stacks."""

from __future__ import annotations

import math

import numpy as np
import pytest
from drawn_shapes import balls as disks
from scipy import ndimage as ndi

from foamlib.foam import closed_cell_foam
from foamlib.walls import add_walls, wall_statistics, watershed_walls

pytestmark = pytest.mark.usefixtures("torch_one_thread")

FOUR = ndi.generate_binary_structure(2, 1)
EIGHT = ndi.generate_binary_structure(2, 2)


def n_components(pore, structure):
    return ndi.label(pore, structure=structure)[1]


def dumbbell(centres=((24, 16), (24, 40)), radius=13, shape=(48, 56)):
    """Two overlapping disks of pore in solid: two pores joined by a narrow neck."""
    return ~disks(shape, centres, [radius, radius])


# --------------------------------------------------------------------------- one image


@pytest.mark.parametrize("wall_width", [1, 2])
def test_dumbbell_gets_a_wall_across_the_neck(wall_width):
    solid = dumbbell()
    out = watershed_walls(solid, wall_width=wall_width)
    wall = out & ~solid
    assert wall.any()
    pore = ~out
    # closed in both senses, and each disk centre is in its own pore
    for structure in (FOUR, EIGHT):
        labels, n = ndi.label(pore, structure=structure)
        assert n == 2
        assert labels[24, 16] != labels[24, 40]
    # the wall lies in the neck: between the centres, around the midpoint column 28, within the
    # neck's half-width (the disks overlap for |row - 24| <= sqrt(13^2 - 12^2) = 5)
    rows, cols = np.nonzero(wall)
    assert cols.min() >= 27 - wall_width and cols.max() <= 29 + wall_width
    assert np.all(np.abs(rows - 24) <= 6)
    assert wall.sum() <= wall_width * 13


def test_diagonal_neck_is_closed_under_8_connectivity():
    # a diagonal neck is where a one-pixel 8-connected line would leak through its corners
    solid = dumbbell(centres=((16, 16), (36, 36)), radius=15, shape=(52, 52))
    out = watershed_walls(solid)
    wall = out & ~solid
    assert n_components(~out, EIGHT) == 2
    assert n_components(~out, FOUR) == 2
    # the wall follows the perpendicular bisector row + col = 52 of the two centres
    rows, cols = np.nonzero(wall)
    assert np.all(np.abs(rows + cols - 52) <= 2)


def test_wall_width_2_adds_more_and_contains_the_thin_wall():
    solid = dumbbell(centres=((16, 16), (36, 36)), radius=15, shape=(52, 52))
    thin = watershed_walls(solid, wall_width=1)
    thick = watershed_walls(solid, wall_width=2)
    assert np.count_nonzero(thick & ~solid) > np.count_nonzero(thin & ~solid)
    assert np.all(thick[thin])
    assert n_components(~thick, EIGHT) == 2


def test_walls_are_cut_out_of_the_larger_pore():
    solid = ~disks((48, 64), [(24, 18), (24, 42)], [15, 11])
    areas = {}
    for wall_width in (1, 2):
        pores, n = ndi.label(~watershed_walls(solid, wall_width=wall_width), structure=EIGHT)
        assert n == 2
        areas[wall_width] = (np.count_nonzero(pores == pores[24, 18]), np.count_nonzero(pores == pores[24, 42]))
    assert areas[2][1] == areas[1][1]  # the small pore keeps its size
    assert areas[2][0] < areas[1][0]


@pytest.mark.parametrize(
    "pore",
    [
        disks((48, 48), [(24, 24)], [16]),  # round
        disks((40, 80), [(20, 12), (20, 68)], [8, 8])  # stadium: flat ridge of the distance map
        | ((np.abs(np.indices((40, 80))[0] - 20) <= 8) & (np.abs(np.indices((40, 80))[1] - 40) <= 28)),
        disks((40, 64), [(0, 32)], [15]),  # half disk cut by the border
    ],
    ids=["round", "stadium", "border-half-disk"],
)
def test_a_single_pore_gets_no_wall(pore):
    solid = ~pore
    np.testing.assert_array_equal(watershed_walls(solid), solid)


def test_stray_solid_pixels_do_not_split_a_pore():
    solid = ~disks((48, 48), [(24, 24)], [16])
    solid[20, 28] = True
    solid[30, 18:20] = True
    np.testing.assert_array_equal(watershed_walls(solid), solid)
    # the same specks, taken as barriers, do split it: speck_size is what prevents that
    assert np.any(watershed_walls(solid, speck_size=0) & ~solid)


def test_wall_at_the_border_runs_to_the_edge():
    # two half disks on the top edge, joined by a neck that is cut by the edge
    solid = ~disks((40, 64), [(0, 20), (0, 44)], [13, 13])
    out = watershed_walls(solid)
    wall = out & ~solid
    rows, cols = np.nonzero(wall)
    assert rows.min() == 0  # reaches the edge, nothing drawn along it
    assert np.all(np.abs(cols - 32) <= 1)
    assert n_components(~out, EIGHT) == 2


def test_min_wall_length_drops_short_walls():
    solid = dumbbell()
    n_wall = np.count_nonzero(watershed_walls(solid) & ~solid)
    np.testing.assert_array_equal(watershed_walls(solid, min_wall_length=n_wall + 1), solid)
    np.testing.assert_array_equal(watershed_walls(solid, min_wall_length=n_wall), watershed_walls(solid))


def test_volume_dumbbell_is_closed_in_3d():
    solid = ~disks((24, 24, 46), [(12, 12, 13), (12, 12, 33)], [11, 11])
    out = watershed_walls(solid)
    wall = out & ~solid
    assert wall.any() and np.all(np.abs(np.nonzero(wall)[2] - 23) <= 1)
    assert ndi.label(~out, structure=np.ones((3, 3, 3), dtype=bool))[1] == 2


def random_binary(seed, shape=(64, 64), porosity=0.7, sigma=3.0):
    """Thresholded smoothed noise: irregular pores and solid, with narrow necks."""
    field = ndi.gaussian_filter(np.random.default_rng(seed).standard_normal(shape), sigma)
    return field > np.quantile(field, porosity)


@pytest.mark.parametrize("seed", range(4))
def test_solid_is_never_removed_and_pores_only_split(seed):
    solid = random_binary(seed)
    solid[np.random.default_rng(seed + 10).random(solid.shape) < 0.01] = True  # specks
    before = solid.copy()
    for kwargs in ({}, {"wall_width": 2}, {"sigma": 0.0, "min_distance": 1, "speck_size": 0}):
        out = watershed_walls(solid, **kwargs)
        np.testing.assert_array_equal(solid, before)  # input untouched
        assert out is not solid and out.dtype == bool and out.shape == solid.shape
        assert np.all(out[solid])
        # each new pore lies inside one old pore: walls split pores, never join them
        old, _ = ndi.label(~solid, structure=EIGHT)
        new, n_new = ndi.label(~out, structure=EIGHT)
        parents = ndi.maximum(old, new, index=np.arange(1, n_new + 1))
        assert np.array_equal(parents, ndi.minimum(old, new, index=np.arange(1, n_new + 1)))
    assert np.count_nonzero(watershed_walls(solid) & ~solid) > 0  # these images do have necks


def test_degenerate_images_and_integer_input():
    np.testing.assert_array_equal(watershed_walls(np.ones((8, 8), bool)), np.ones((8, 8), bool))
    np.testing.assert_array_equal(watershed_walls(np.zeros((8, 8), bool)), np.zeros((8, 8), bool))
    solid = dumbbell()
    np.testing.assert_array_equal(watershed_walls(solid.astype(np.uint8)), watershed_walls(solid))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"wall_width": 3}, ValueError, "wall_width"),
        ({"wall_width": 1.5}, TypeError, "wall_width"),
        ({"sigma": -1.0}, ValueError, "sigma"),
        ({"sigma": "1"}, TypeError, "sigma"),
        ({"min_distance": 0}, ValueError, "min_distance"),
        ({"min_wall_length": -1}, ValueError, "min_wall_length"),
        ({"speck_size": -1}, ValueError, "speck_size"),
    ],
)
def test_watershed_walls_validates_parameters(kwargs, error, match):
    with pytest.raises(error, match=match):
        watershed_walls(dumbbell(), **kwargs)


def test_watershed_walls_validates_the_image():
    with pytest.raises(ValueError, match="solid"):
        watershed_walls(np.zeros(10, dtype=bool))
    with pytest.raises(TypeError, match="binary"):
        watershed_walls(np.zeros((8, 8), dtype=np.float32))
    with pytest.raises(TypeError, match="binary"):
        watershed_walls(np.full((8, 8), 255, dtype=np.uint8))


# --------------------------------------------------------------------------- damaged foam slice


def _wall_pixels_between_cells(solid, thickness=1.6):
    """Thin solid pixels within `thickness` of two different pores, grouped by that pair of pores."""
    labels, n = ndi.label(~solid, structure=EIGHT)
    dist = np.stack([ndi.distance_transform_edt(labels != k) for k in range(1, n + 1)])
    order = np.argsort(dist, axis=0)[:2]
    nearest = np.take_along_axis(dist, order, axis=0)
    thin = solid & (nearest[1] <= thickness)
    walls = {}
    for r, c in zip(*np.nonzero(thin)):
        walls.setdefault(tuple(sorted((order[0, r, c] + 1, order[1, r, c] + 1))), []).append((r, c))
    return labels, walls


def test_walls_removed_from_a_foam_slice_come_back_near_where_they_were():
    foam = closed_cell_foam((6, 96, 96), cell_diameter=24, wall_thickness=2.0, strut_diameter=5.0, rng=3)
    truth = foam.solid[3].copy()
    labels, walls = _wall_pixels_between_cells(truth)
    rng = np.random.default_rng(0)
    pairs = sorted(walls)
    removed_pairs = [pairs[i] for i in rng.permutation(len(pairs))[: len(pairs) // 2]]
    removed = np.zeros_like(truth)
    for pair in removed_pairs:
        removed[tuple(np.array(walls[pair]).T)] = True
    damaged = truth & ~removed
    noisy = damaged.copy()
    noisy.flat[rng.choice(np.flatnonzero(~damaged), 15, replace=False)] = True  # stray solid pixels
    assert len(removed_pairs) >= 5 and n_components(~damaged, EIGHT) < n_components(~truth, EIGHT)

    for image in (damaged, noisy):
        out = watershed_walls(image)
        new = out & ~image
        near = ndi.distance_transform_cdt(~new, metric="chessboard")
        recovered = np.mean(near[removed] <= 2)
        assert recovered >= 0.85, recovered
        # few walls away from the real structure (within 2 pixels of the original solid)
        far = ndi.distance_transform_cdt(~truth, metric="chessboard") > 2
        assert np.count_nonzero(new & far) <= 0.25 * np.count_nonzero(new)
        # most removed walls close again: the two cells end up in different pores
        pores, _ = ndi.label(~out, structure=EIGHT)
        closed = 0
        for a, b in removed_pairs:
            in_a = set(np.unique(pores[(labels == a) & ~out])) - {0}
            in_b = set(np.unique(pores[(labels == b) & ~out])) - {0}
            closed += not (in_a & in_b)
        assert closed >= 0.75 * len(removed_pairs), (closed, len(removed_pairs))


# --------------------------------------------------------------------------- stacks


def stack(n=10):
    """Dumbbells whose neck moves from image to image, so the treated images can be told apart."""
    return np.stack([dumbbell(centres=((24, 14 + i % 5), (24, 40 + i % 5)), shape=(48, 64)) for i in range(n)])


def test_add_walls_fraction_zero_changes_nothing():
    images = stack()
    out, treated = add_walls(images, 0.0)
    assert treated.dtype == bool and treated.shape == (10,) and not treated.any()
    np.testing.assert_array_equal(out, images)
    assert out is not images


def test_add_walls_fraction_one_treats_every_image():
    images = stack(4)
    out, treated = add_walls(images, 1.0, wall_width=2)
    assert treated.all()
    for i in range(4):
        np.testing.assert_array_equal(out[i], watershed_walls(images[i], wall_width=2))


def test_add_walls_half_of_ten_treats_exactly_five_reproducibly():
    images = stack()
    before = images.copy()
    out, treated = add_walls(images, 0.5, seed=7)
    np.testing.assert_array_equal(images, before)  # input not modified
    assert treated.sum() == 5
    for i in range(10):
        if treated[i]:
            np.testing.assert_array_equal(out[i], watershed_walls(images[i]))
            assert np.any(out[i] != images[i])
        else:
            np.testing.assert_array_equal(out[i], images[i])
    out2, treated2 = add_walls(images, 0.5, seed=7)
    np.testing.assert_array_equal(treated2, treated)
    np.testing.assert_array_equal(out2, out)
    choices = {tuple(np.flatnonzero(add_walls(images, 0.5, seed=s)[1])) for s in range(6)}
    assert len(choices) > 1  # the seed matters


def test_add_walls_counts_and_nesting():
    images = stack(20)
    treated = {f: add_walls(images, f, seed=3)[1] for f in (0.25, 0.5, 0.75)}
    assert [int(t.sum()) for t in treated.values()] == [5, 10, 15]
    assert np.all(treated[0.5][treated[0.25]]) and np.all(treated[0.75][treated[0.5]])
    assert add_walls(stack(10), 0.25)[1].sum() == round(2.5) == 2  # Python's round: halves to even
    out, treated_none = add_walls(np.zeros((0, 8, 8), dtype=bool), 0.5)
    assert out.shape == (0, 8, 8) and treated_none.shape == (0,)


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((np.zeros((8, 8), bool), 0.5), {}, ValueError, "images"),
        ((np.zeros((2, 8, 8), np.float32), 0.5), {}, TypeError, "binary"),
        ((np.zeros((2, 8, 8), bool), 1.5), {}, ValueError, "fraction"),
        ((np.zeros((2, 8, 8), bool), -0.1), {}, ValueError, "fraction"),
        ((np.zeros((2, 8, 8), bool), math.nan), {}, ValueError, "fraction"),
        ((np.zeros((2, 8, 8), bool), "half"), {}, TypeError, "fraction"),
        ((np.zeros((2, 8, 8), bool), 0.5), {"seed": -1}, ValueError, "seed"),
        ((np.zeros((2, 8, 8), bool), 0.5), {"seed": 1.0}, TypeError, "seed"),
        ((np.zeros((2, 8, 8), bool), 0.5), {"widht": 2}, TypeError, "widht"),
        ((np.zeros((2, 8, 8), bool), 0.0), {"wall_width": 5}, ValueError, "wall_width"),
    ],
)
def test_add_walls_validates(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        add_walls(*args, **kwargs)


# --------------------------------------------------------------------------- statistics


def test_wall_statistics_of_a_dumbbell():
    solid = dumbbell()
    out = watershed_walls(solid)
    stats = wall_statistics(solid, out)
    n_wall = np.count_nonzero(out & ~solid)
    assert stats["n_images"] == 1 and stats["n_changed"] == 1
    assert stats["n_pores_before"] == 1 and stats["n_pores_after"] == 2
    assert stats["added_solid_fraction"] == pytest.approx(n_wall / solid.size)
    assert stats["porosity_loss_pp"] == pytest.approx(100 * n_wall / solid.size)
    assert stats["porosity_before"] == pytest.approx(1 - solid.mean())
    assert stats["removed_solid_fraction"] == 0.0
    assert all(isinstance(v, (int, float)) and not isinstance(v, np.generic) for v in stats.values())


def test_wall_statistics_of_a_stack_and_connectivity():
    images = stack(4)
    out, treated = add_walls(images, 0.5, seed=1)
    stats = wall_statistics(images, out)
    assert stats["n_images"] == 4 and stats["n_changed"] == 2
    assert stats["n_pores_before"] == 4 and stats["n_pores_after"] == 6
    assert stats["mean_pores_per_image_after"] == 1.5
    # a diagonal 1-pixel line of solid splits the pore under 4- but not under 8-connectivity
    diag = np.zeros((6, 6), dtype=bool)
    diag[np.arange(6), np.arange(6)] = True
    empty = np.zeros((6, 6), dtype=bool)
    assert wall_statistics(empty, diag)["n_pores_after"] == 1
    assert wall_statistics(empty, diag, connectivity=1)["n_pores_after"] == 2
    # specks of pore are left out with min_pore_pixels
    speck = np.ones((6, 6), dtype=bool)
    speck[1, 1] = False
    speck[3:6, 3:6] = False
    assert wall_statistics(speck, speck)["n_pores_before"] == 2
    assert wall_statistics(speck, speck, min_pore_pixels=2)["n_pores_before"] == 1


def test_wall_statistics_validates():
    with pytest.raises(ValueError, match="shape"):
        wall_statistics(np.zeros((4, 4), bool), np.zeros((4, 5), bool))
    with pytest.raises(ValueError, match="connectivity"):
        wall_statistics(np.zeros((4, 4), bool), np.zeros((4, 4), bool), connectivity=3)
    with pytest.raises(ValueError, match="min_pore_pixels"):
        wall_statistics(np.zeros((4, 4), bool), np.zeros((4, 4), bool), min_pore_pixels=0)
    with pytest.raises(TypeError, match="binary"):
        wall_statistics(np.zeros((4, 4), np.float64), np.zeros((4, 4), bool))


def test_the_pick_is_independent_of_a_split_drawn_with_the_same_seed():
    from foamlib.walls import add_walls

    images = np.zeros((20, 16, 16), dtype=bool)  # all pore: nothing changes, only the pick matters
    _, treated = add_walls(images, 0.5, seed=0)
    first_half_of_split = np.random.default_rng(0).permutation(20)[:10]
    assert not np.array_equal(np.sort(np.flatnonzero(treated)), np.sort(first_half_of_split))


def test_add_walls_takes_rng_or_the_earlier_seed():
    images = np.stack([random_binary(s, shape=(24, 24)) for s in range(8)])
    _, by_seed = add_walls(images, 0.5, seed=3)
    _, by_rng = add_walls(images, 0.5, rng=3)
    np.testing.assert_array_equal(by_seed, by_rng)
    np.testing.assert_array_equal(add_walls(images, 0.5)[1], add_walls(images, 0.5, rng=0)[1])
    _, by_gen = add_walls(images, 0.5, rng=np.random.default_rng(3))
    assert by_gen.sum() == 4
    with pytest.raises(ValueError, match="rng or seed, not both"):
        add_walls(images, 0.5, rng=1, seed=1)
