"""Densitometric porosity (foamlib.densitometry) and the step agreement check (foamlib.agreement).

The cases with known truth and what they showed when these tests were written (errors of the default
estimate, depth 2 voxels, against the exact porosity of the foam's sub-voxel grid):

==============================================  =============================  ==========================
simulated case (64^3, 1000 photons, blur 0.4)   interiors from the truth        interiors from Otsu
==============================================  =============================  ==========================
porosity 0.6: walls 3.2 voxels, struts 9.6      -0.22 pp, uncertainty 0.35 pp   -0.34 pp, uncertainty 0.51 pp
porosity 0.7: walls 2.3 voxels, struts 6.9      refused (517 interior voxels)   refused (1.6 % of the solid);
                                                                                -1.38 pp +- 0.65 pp if forced
demo foam89 / foam82 (walls 0.36 / 0.65 voxel)  refused                         refused
==============================================  =============================  ==========================

Other seeds of the same generator: porosity 0.5-0.6, accepted, -0.12 to -0.38 pp; 0.65-0.7, refused.
"""

import math

import numpy as np
import pytest

from foamlib.agreement import DEFAULT_TOLERANCE, check_runs, compare_steps, disagreement_notes
from foamlib.densitometry import Densitometry, NoInteriorError, densitometric_porosity
from foamlib.foam import closed_cell_foam
from foamlib.phantom import demo_sample, simulate_ct
from foamlib.threshold import threshold_value


def _simulated(porosity, wall, strut, seed):
    foam = closed_cell_foam((64, 64, 64), cell_diameter=24, wall_thickness=wall, strut_diameter=strut,
                            porosity=porosity, supersample=3, rng=seed)
    scan = simulate_ct(foam.fraction, photons_per_ray=1000.0, blur_sigma=0.4, ring_strength=0.01, pad_mode="wrap",
                       rng=seed + 10)
    return foam, scan


@pytest.fixture(scope="module")
def thick_foam():
    """Walls about 3.2 voxels, struts about 9.6 voxels, porosity 0.6: the solid has a deep interior."""
    return _simulated(0.6, 1.0, 3.0, 1)


@pytest.fixture(scope="module")
def thin_core_foam():
    """Walls about 2.3 voxels, struts about 6.9: an interior two voxels deep only in the cores of the struts."""
    return _simulated(0.7, 1.0, 3.0, 2)


@pytest.fixture(scope="module")
def demo_foams():
    """Demo foams whose walls are thinner than a voxel (foam89: 0.36 voxel, foam82: 0.65 voxel), 64^3."""
    return {name: demo_sample(name, size=64) for name in ("foam89", "foam82")}


def _two_level(noise=8.0, seed=0):
    """Slabs of solid 8 voxels thick between pore slabs 24 thick: porosity 0.75 exactly, levels 50 and 200."""
    z = np.arange(64) % 32
    solid = np.broadcast_to((z < 8)[:, None, None], (64, 48, 40)).copy()
    rng = np.random.default_rng(seed)
    scan = np.where(solid, 200.0, 50.0) + noise * rng.standard_normal(solid.shape)
    return solid, scan


# ------------------------------------------------------------------ analytic cases


def test_two_level_volume_gives_its_porosity():
    solid, scan = _two_level()
    result = densitometric_porosity(scan, solid)
    assert isinstance(result, Densitometry)
    assert abs(result.porosity - 0.75) < 0.002
    assert abs(result.solid_level - 200.0) < 1.0 and abs(result.pore_level - 50.0) < 1.0
    assert 0.0 <= result.uncertainty < 0.005
    assert result.n_solid_interior > 1000 and result.depth == 2.0


def test_estimate_ignores_the_segmentation_boundary_and_the_grey_units():
    # a segmentation one voxel too thick still gives the scan's porosity (only interiors enter),
    # and a uint16 copy of the scan in other units gives the same estimate
    solid, scan = _two_level()
    thick = solid | np.roll(solid, 1, axis=0)
    assert abs(densitometric_porosity(scan, thick).porosity - 0.75) < 0.003
    as_uint16 = np.clip(scan * 100 + 1000, 0, 65535).astype(np.uint16)
    a = densitometric_porosity(scan, solid).porosity
    b = densitometric_porosity(as_uint16, solid).porosity
    assert abs(a - b) < 1e-4


def test_partial_volume_walls_count_by_their_grey_value():
    # a wall of half a voxel is grey halfway between the levels: the lever rule counts half a voxel of solid,
    # which no binary segmentation can
    solid, scan = _two_level(noise=2.0)
    scan = scan.copy()
    scan[20] = 125.0  # one plane of half solid inside the pore slab, not in the segmentation
    true_porosity = 0.75 - 0.5 * 2 / 64  # two such planes per 64 (period 32)
    scan[52] = 125.0
    assert abs(densitometric_porosity(scan, solid).porosity - true_porosity) < 0.002


# ------------------------------------------------------------------ simulated foams with known truth


def test_thick_walled_foam_within_half_a_percentage_point(thick_foam):
    foam, scan = thick_foam
    truth = densitometric_porosity(scan, foam.solid)
    otsu = densitometric_porosity(scan, scan > threshold_value(scan, method="otsu"))
    for result in (truth, otsu):
        assert abs(result.porosity - foam.porosity) < 0.005
        assert math.isfinite(result.uncertainty) and result.uncertainty > 0
    # the depth term sees that a shallower interior is darker: the estimate from depth 1 is lower
    assert otsu.porosity_shallow < otsu.porosity


def test_thin_cores_are_refused_because_they_read_too_low(thin_core_foam):
    foam, scan = thin_core_foam
    otsu = scan > threshold_value(scan, method="otsu")
    with pytest.raises(NoInteriorError, match="% of its solid"):
        densitometric_porosity(scan, otsu)
    forced = densitometric_porosity(scan, otsu, min_fraction=0.0)
    assert forced.porosity < foam.porosity - 0.01  # what the refusal prevents: over 1 pp too low
    assert forced.porosity < foam.porosity - forced.uncertainty  # and its uncertainty does not cover it


@pytest.mark.parametrize("name", ["foam89", "foam82"])
def test_sub_voxel_walls_have_no_interior_and_are_refused(name, demo_foams):
    sample = demo_foams[name]
    assert sample.wall_thickness < 1.0
    otsu = sample.scan > threshold_value(sample.scan, method="otsu")
    for segmentation in (sample.truth, otsu):
        with pytest.raises(NoInteriorError, match="no interior|no pure solid|too low"):
            densitometric_porosity(sample.scan, segmentation)


def test_inputs_are_checked():
    solid, scan = _two_level()
    with pytest.raises(ValueError, match="shape"):
        densitometric_porosity(scan, solid[:-1])
    with pytest.raises(TypeError, match="boolean"):
        densitometric_porosity(scan, solid.astype(np.uint8))
    with pytest.raises(TypeError, match="grey values"):
        densitometric_porosity(solid, solid)
    with pytest.raises(ValueError, match="depth"):
        densitometric_porosity(scan, solid, depth=0.5)
    with pytest.raises(ValueError, match="min_fraction"):
        densitometric_porosity(scan, solid, min_fraction=1.0)
    bad = scan.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        densitometric_porosity(bad, solid)
    with pytest.raises(NoInteriorError, match="not above"):
        densitometric_porosity(-scan, solid)  # solid darker than pore


# ------------------------------------------------------------------ agreement


def test_one_seed_uses_the_default_tolerance():
    agree = compare_steps(0.860, 0.865)
    assert not agree.disagree and agree.tolerance_kind == "default" and agree.tolerance == DEFAULT_TOLERANCE
    assert "agree" in agree.message and "one seed" in agree.message
    disagree = compare_steps(0.853, 0.837)
    assert disagree.disagree and math.isclose(disagree.difference, -0.016)
    assert "disagree" in disagree.message and "-1.60 pp" in disagree.message
    assert math.isnan(disagree.step1_sd) and disagree.to_dict()["step1_sd"] is None


def test_seeds_set_the_tolerance():
    # a 1.6 pp difference is within a 2 pp seed spread, but outside a 0.3 pp one
    noisy = compare_steps([0.853, 0.850, 0.856], [0.837, 0.857, 0.817])
    assert noisy.tolerance_kind == "seeds" and not noisy.disagree
    assert math.isclose(noisy.tolerance, math.hypot(0.003, 0.02), rel_tol=1e-9)
    steady = compare_steps([0.853, 0.850, 0.856], [0.837, 0.840, 0.834])
    assert steady.disagree and "3 and 3 seeds" in steady.message


def test_message_quotes_the_densitometric_evidence():
    solid, scan = _two_level()
    dens = densitometric_porosity(scan, solid)
    result = compare_steps(dens.porosity + 0.0001, 0.72, densitometry=dens, densitometry_note="interiors from step 1")
    assert result.disagree
    assert f"{100 * dens.porosity:.2f} %" in result.message and "step 1 is closer" in result.message
    assert "step 1 lies within twice" in result.message and "interiors from step 1" in result.message
    assert result.to_dict()["densitometry"]["porosity"] == dens.porosity
    none = compare_steps(0.751, 0.72, densitometry_note="walls too thin")
    assert "no densitometric check: walls too thin" in none.message


def test_compare_steps_checks_its_inputs():
    with pytest.raises(ValueError, match="step 2"):
        compare_steps(0.8, [])
    with pytest.raises(ValueError, match="fractions"):
        compare_steps(80.0, 0.8)
    with pytest.raises(ValueError, match="default_tolerance"):
        compare_steps(0.8, 0.8, default_tolerance=0.0)


def _fake_run(tmp_path, name, scan, step1_seg, porosity1, porosity2):
    from foamlib.io import write_tiff
    from foamlib.runfolder import RunFolder
    from foamlib.samples import prepare_sample

    source = tmp_path / "scan.npy"
    if not source.exists():
        np.save(source, scan.astype(np.float32))
    run = RunFolder(tmp_path / name / "foamX")
    prepare_sample(run.path, sample="foamX", scan_path=source)
    write_tiff(run.step1_seg, step1_seg, overwrite=True)
    run.update_metrics("step1", {"porosity": porosity1})
    run.update_metrics("step2", {"porosity": porosity2})
    return run.path


def test_check_runs_reads_run_folders_of_several_seeds(tmp_path, thick_foam):
    foam, scan = thick_foam
    runs = [_fake_run(tmp_path, f"seed_{i}", scan, foam.solid, p1, p2)
            for i, (p1, p2) in enumerate([(0.60, 0.58), (0.601, 0.575), (0.599, 0.578)])]
    result = check_runs(runs)
    assert result.step1 == (0.60, 0.601, 0.599) and result.tolerance_kind == "seeds" and result.disagree
    assert result.densitometry is not None and abs(result.densitometry.porosity - foam.porosity) < 0.005
    assert "step 1 is closer" in result.message
    one = check_runs(runs[0])
    assert one.tolerance_kind == "default"


def test_check_runs_says_why_there_is_no_densitometry(tmp_path, demo_foams):
    sample = demo_foams["foam89"]
    run = _fake_run(tmp_path, "seed_0", sample.scan, sample.truth, 0.89, 0.87)
    result = check_runs(run)
    assert result.densitometry is None and result.disagree
    assert "no densitometric check" in result.message and "step1 segmentation" in result.message


def test_check_runs_names_the_missing_stage(tmp_path, thick_foam):
    foam, scan = thick_foam
    run = _fake_run(tmp_path, "seed_0", scan, foam.solid, 0.6, 0.6)
    (run / "step2" / "metrics.json").unlink()
    with pytest.raises(FileNotFoundError, match="09_unet_step2"):
        check_runs(run)


def test_disagreement_notes_list_the_samples_that_disagree(tmp_path, thick_foam):
    foam, scan = thick_foam
    runs = tmp_path / "seed_0"
    _fake_run(tmp_path, "seed_0", scan, foam.solid, 0.60, 0.57)  # runs/foamX disagrees by 3 pp
    (runs / "unfinished").mkdir()  # no porosities: left out
    (runs / "_study").mkdir()
    notes = disagreement_notes(runs)
    assert len(notes) == 1 and notes[0].startswith("foamX: Step 1 (60.00 %) and step 2 (57.00 %) disagree")
    _fake_run(tmp_path, "seed_0", scan, foam.solid, 0.60, 0.598)
    assert disagreement_notes(runs) == []
