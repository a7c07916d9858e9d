"""Foreign test cases (foamlib.independent): structures, scanner, storage forms, truth and scores."""
import ast
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from foamlib import independent as ind

SMALL = (24, 24, 24)


# ---------------------------------------------------------------------------------------------- scores


def test_dice_on_a_hand_computed_case():
    a = np.array([[True, True], [False, False]])
    b = np.array([[True, False], [True, False]])
    assert ind.dice(a, b) == pytest.approx(2 * 1 / (2 + 2))
    assert ind.dice(a, a) == 1.0
    assert ind.dice(np.zeros((2, 2), bool), np.zeros((2, 2), bool)) == 1.0
    with pytest.raises(ValueError, match="different shapes"):
        ind.dice(a, b[:1])


def test_porosity_counts_pore_voxels():
    solid = np.zeros((4, 4, 4), bool)
    solid[:1] = True
    assert ind.porosity(solid) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="empty"):
        ind.porosity(np.zeros((0,), bool))


def test_pore_statistics_counts_cells_split_by_a_wall_and_ignores_specks():
    solid = np.zeros((10, 10, 21), bool)
    solid[:, :, 10] = True  # a wall splits two pores of 10 x 10 x 10
    stats = ind.pore_statistics(solid)
    assert stats.count == 2
    assert stats.mean_volume == pytest.approx(1000)
    assert stats.mean_diameter == pytest.approx((6 * 1000 / math.pi) ** (1 / 3))
    # chords: along x runs of 10, along y and z runs of 10 (the wall column has none)
    assert stats.mean_chord == pytest.approx(10.0)
    broken = solid.copy()
    broken[5, 5, 10] = False  # one voxel hole merges the cells
    assert ind.pore_statistics(broken).count == 1
    speck = np.ones((10, 10, 10), bool)
    speck[1:3, 1:3, 1:3] = False  # 8 voxels: below 27
    speck[5:9, 5:9, 5:9] = False  # 64 voxels
    stats = ind.pore_statistics(speck)
    assert (stats.count, stats.mean_volume) == (1, 64)


def test_pore_statistics_on_a_fine_grid_reports_scan_voxels():
    solid = np.zeros((10, 10, 21), bool)
    solid[:, :, 10] = True
    fine = solid.repeat(2, 0).repeat(2, 1).repeat(2, 2)
    coarse, fine_stats = ind.pore_statistics(solid), ind.pore_statistics(fine, supersample=2)
    assert fine_stats.count == coarse.count
    assert fine_stats.mean_volume == pytest.approx(coarse.mean_volume)
    assert fine_stats.mean_chord == pytest.approx(coarse.mean_chord)


def test_block_mean_averages_blocks():
    fine = np.zeros((4, 4, 4), bool)
    fine[:2, :2, :2] = True
    fine[2, 2, 2] = True
    out = ind.block_mean(fine, 2)
    assert out.dtype == np.float32
    assert out[0, 0, 0] == 1.0 and out[1, 1, 1] == pytest.approx(1 / 8) and out[0, 1, 0] == 0.0
    with pytest.raises(ValueError, match="divisible"):
        ind.block_mean(fine[:3], 2)


# ---------------------------------------------------------------------------------------------- structures


def test_closed_cell_wall_fraction_matches_the_surface_density_of_poisson_voronoi():
    # Poisson-Voronoi cells of density lambda have a face area per volume S_V = 2.9105 lambda^(1/3)
    # (Meijering 1953); thin walls of thickness t fill about t * S_V of the volume.
    cell, t = 10.0, 0.6
    fine = ind.closed_cells((30, 30, 30), cell_size=cell, wall_thickness=t, supersample=3, rng=1)
    expected = t * 2.9105 / cell
    assert fine.shape == (90, 90, 90) and fine.dtype == bool
    assert 0.85 * expected < fine.mean() < 1.1 * expected


def test_sub_voxel_walls_are_in_the_fraction_and_the_scan_but_partly_lost_by_the_half_rule():
    spec = ind.CaseSpec("thin", "closed_cells", {"cell_size": 10, "wall_thickness": 0.6, "supersample": 3},
                        {"photons": 1e6}, "float32", 3)
    case = ind.make_case(spec, SMALL)
    partial = (case.fraction > 0.2) & (case.fraction < 0.5)
    assert partial.mean() > 0.03  # many voxels hold a piece of a wall but are pore in the truth
    # the walls are closed on the fine grid; at the scan's resolution some cells merge
    assert case.pores.count > ind.pore_statistics(case.truth).count
    # the scan sees the sub-voxel walls: brighter than the pores
    assert case.scan[partial].mean() > case.scan[case.fraction == 0].mean() + 0.1 * case.scan.std()


def test_truth_is_half_of_the_fraction_and_its_porosity_is_the_cases():
    spec = ind.CaseSpec("spheres", "spheres", {"radius": 4.0, "solid_fraction": 0.3}, {}, "uint16", 5)
    case = ind.make_case(spec, SMALL)
    assert np.array_equal(case.truth, case.fraction >= 0.5)
    assert case.porosity == pytest.approx(1 - case.truth.mean())
    # the box is filled to the target (the last sphere may overshoot a little)
    assert 0.68 < case.exact_porosity < 0.72
    assert abs(case.porosity - case.exact_porosity) < 0.02


def test_open_cells_come_from_porespy_and_leave_the_global_random_state_alone():
    state = np.random.get_state()[1].copy()
    fine = ind.open_cells((24, 24, 24), cell_size=12, strut_radius=1, supersample=2, rng=4)
    assert np.array_equal(np.random.get_state()[1], state)
    assert fine.shape == (48, 48, 48)
    assert 0.01 < fine.mean() < 0.2  # struts only: a high porosity
    assert ind.pore_statistics(fine, supersample=2).count == 1  # the pore space is one open region


def test_fibre_mat_reaches_its_solid_fraction():
    fine = ind.fibre_mat((24, 24, 24), radius=1.2, solid_fraction=0.15, supersample=2, rng=6)
    assert 0.15 <= fine.mean() < 0.2


@pytest.mark.parametrize("bad, match", [
    ({"wall_thickness": 0}, "wall_thickness"), ({"cell_size": -1}, "cell_size"), ({"supersample": 0}, "supersample"),
])
def test_structure_options_are_checked(bad, match):
    options = {"cell_size": 10, "wall_thickness": 1.0, "supersample": 2, **bad}
    with pytest.raises(ValueError, match=match):
        ind.closed_cells((8, 8, 8), **options)


def test_case_spec_names_an_unknown_structure_or_storage():
    with pytest.raises(ValueError, match="case x: unknown structure 'foam'"):
        ind.CaseSpec("x", "foam")
    with pytest.raises(ValueError, match="case x: unknown storage 'int8'"):
        ind.CaseSpec("x", "spheres", storage="int8")


# ---------------------------------------------------------------------------------------------- scanner, storage


def _disk(n=48, r=18):
    y, x = np.mgrid[:n, :n] - (n - 1) / 2
    return (np.hypot(y, x) < r).astype(np.float32)[None].repeat(2, 0)


def test_noise_free_scan_reconstructs_the_attenuation():
    fraction = _disk()
    rec = ind.ct_scan(fraction, photons=1e9, rng=0)
    assert rec.shape == fraction.shape and rec.dtype == np.float32
    assert rec[fraction == 1].mean() == pytest.approx(0.02, rel=0.05)
    assert abs(rec[:, 24, 2:4].mean()) < 0.002


def test_cupping_darkens_the_middle_and_noise_gives_negative_values():
    fraction = _disk()
    flat = ind.ct_scan(fraction, photons=1e9, rng=0)
    cupped = ind.ct_scan(fraction, photons=1e9, cupping=0.6, rng=0)
    centre, rim = (slice(None), slice(20, 28), slice(20, 28)), (slice(None), slice(22, 26), slice(8, 12))
    assert cupped[centre].mean() / cupped[rim].mean() < flat[centre].mean() / flat[rim].mean() - 0.02
    noisy = ind.ct_scan(fraction, photons=1e3, rng=0)
    assert noisy.min() < 0 and noisy[fraction == 0].std() > flat[fraction == 0].std()


def test_detector_gain_errors_make_rings():
    empty = np.zeros((1, 48, 48), np.float32)
    clean = ind.ct_scan(empty, photons=1e9, rng=2)
    rings = ind.ct_scan(empty, photons=1e9, ring_strength=0.05, rng=2)
    assert np.abs(rings).max() > 100 * max(np.abs(clean).max(), 1e-6)
    # over 180 degrees a faulty detector bin traces a half circle about the rotation centre (24, 24),
    # so the artefact is mirror-symmetric about the centre column
    row = rings[0, 24 - 15]
    assert np.std(rings[0]) > 100 * max(np.std(clean[0]), 1e-9)
    assert np.corrcoef(row[1:24], row[47:24:-1])[0, 1] > 0.8  # half rings: symmetric about the centre column


def test_storage_forms_have_their_dtype_and_range():
    rec = ind.ct_scan(_disk(), photons=2e3, rng=1)
    f32, u16, u8 = (ind.store(rec, d) for d in ("float32", "uint16", "uint8"))
    assert f32.dtype == np.float32 and f32.min() < 0 < f32.max()
    assert u16.dtype == np.uint16 and 0 < u16.min() and u16.max() < 65535  # a fixed window, not stretched
    assert u8.dtype == np.uint8 and u8.min() == 0 and u8.max() == 255  # stretched and clipped
    with pytest.raises(ValueError, match="unknown storage form 'int16'"):
        ind.store(rec, "int16")


# ---------------------------------------------------------------------------------------------- seeds, independence


def test_a_case_is_rebuilt_exactly_from_its_spec_and_another_seed_differs():
    spec = ind.CaseSpec("c", "closed_cells", {"cell_size": 10, "wall_thickness": 1.0, "supersample": 2},
                        {"photons": 1e4, "ring_strength": 0.03, "cupping": 0.2}, "uint8", 7)
    a, b = ind.make_case(spec, (16, 16, 16)), ind.make_case(spec, (16, 16, 16))
    assert np.array_equal(a.scan, b.scan) and np.array_equal(a.truth, b.truth)
    other = ind.make_case(ind.CaseSpec(**{**spec.__dict__, "seed": 8}), (16, 16, 16))
    assert not np.array_equal(a.truth, other.truth)
    assert a.record()["dtype"] == "uint8" and a.record()["pores"]["count"] == a.pores.count


FORBIDDEN = {"foamlib.foam", "foamlib.phantom", "foamlib.render", "foamlib.fitting", "foamlib.generators"}


def test_the_module_imports_none_of_foamlibs_synthesis():
    source = Path(ind.__file__).read_text(encoding="utf-8")
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = ("foamlib." * (node.level > 0)) + (node.module or "")
            imported |= {base} | {f"{base}.{a.name}".replace("..", ".") for a in node.names}
    assert not imported & FORBIDDEN, imported & FORBIDDEN
    # and at run time: building a case loads none of them
    code = ("import sys; from foamlib import independent as i; "
            "i.make_case(i.CaseSpec('c', 'closed_cells', {'cell_size': 8, 'wall_thickness': 1.0}), (12, 12, 12)); "
            f"print(sorted(m for m in sys.modules if m in {sorted(FORBIDDEN)!r}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
