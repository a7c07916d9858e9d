"""Walls restored where the scan shows them (foamlib.faint_walls)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from foamlib.faint_walls import MIN_THICKNESS, WallEvidence, restore_faint_walls, wall_evidence
from foamlib.foam import closed_cell_foam


def _two_cells(gap=(12, 28), faint=0.4, noise=0.05, seed=0):
    """A 2D box of two cells whose middle wall has a gap; the scan shows it faintly there."""
    rng = np.random.default_rng(seed)
    solid = np.zeros((40, 80), bool)
    solid[[0, -1], :] = True
    solid[:, [0, -1]] = True
    solid[:, 40] = True
    solid[gap[0]:gap[1], 40] = False
    scan = solid + faint * (np.arange(80) == 40) + rng.normal(0, noise, solid.shape)
    return scan, solid


def _pores(solid, min_voxels=27):
    labels, _ = ndi.label(~solid)
    return int(np.sum(np.bincount(labels.ravel())[1:] >= min_voxels))


def test_a_gap_the_scan_shows_is_closed_and_nothing_else_changes():
    scan, solid = _two_cells()
    closed = restore_faint_walls(scan, solid)
    assert closed[12:28, 40].all()
    assert np.array_equal(closed & ~solid, np.isin(np.arange(80), [40])[None, :] & ~solid)
    assert _pores(solid) == 1 and _pores(closed) == 2
    assert not solid[12:28, 40].any()  # the input is not modified


def test_a_gap_the_scan_does_not_show_stays_open():
    scan, solid = _two_cells(faint=0.0)
    evidence = wall_evidence(scan, solid)
    assert evidence.n_walls == 1 and evidence.thickness[0] < MIN_THICKNESS
    assert np.array_equal(evidence.apply(solid), solid)


def test_apparent_thickness_reads_the_partial_volume_and_the_z_score_the_noise():
    scan, solid = _two_cells(faint=0.4, noise=0.05)
    evidence = wall_evidence(scan, solid)
    # the solid's bright core (90th percentile): 1 plus noise, and the faint line over the wall's stubs
    assert 1.0 < evidence.contrast < 1.15
    assert evidence.noise == pytest.approx(0.05, rel=0.15)
    assert evidence.thickness[0] == pytest.approx(0.4 / evidence.contrast, abs=0.05)
    assert evidence.z[0] == pytest.approx(0.4 / (0.05 / np.sqrt(evidence.size[0])), rel=0.2)
    # a faint wall in strong noise: seen in the mean, but not above min_z
    noisy = wall_evidence(*_two_cells(faint=0.4, noise=2.0))
    assert not noisy.kept()[0] and noisy.z[0] < 3


def test_the_grey_scale_its_offset_and_its_polarity_do_not_matter():
    scan, solid = _two_cells()
    expected = restore_faint_walls(scan, solid)
    for grey in (1000.0 * scan - 300.0, -scan, (scan * 20000 + 5000).astype(np.uint16),
                 (scan * 100 - 50).astype(np.int16)):
        assert np.array_equal(restore_faint_walls(grey, solid), expected)


def test_thin_walls_of_a_3d_foam_lost_by_a_threshold_come_back_on_the_true_walls():
    foam = closed_cell_foam((48, 48, 48), cell_diameter=16, wall_thickness=0.5, strut_diameter=2.5,
                            supersample=3, rng=0)
    scan = ndi.gaussian_filter(foam.fraction, 0.8) + np.random.default_rng(1).normal(0, 0.03, foam.fraction.shape)
    solid = scan > 0.4  # keeps the struts, loses the walls of half a voxel: the cells merge into one pore
    closed = restore_faint_walls(scan, solid)
    added = closed & ~solid
    assert _pores(solid) <= 2 and _pores(closed) >= 25  # measured: 1 -> 39 (98 cells; markers need struts)
    assert np.mean(foam.fraction[added] > 0) > 0.85  # measured: 0.92 of the new voxels on a true wall


def test_open_cells_get_no_walls():
    # struts only: the windows between the cells are open in the scan as in the segmentation
    foam = closed_cell_foam((48, 48, 48), cell_diameter=16, wall_thickness=0.0, strut_diameter=3.0,
                            supersample=3, rng=0)
    scan = ndi.gaussian_filter(foam.fraction, 0.8) + np.random.default_rng(1).normal(0, 0.03, foam.fraction.shape)
    solid = scan > 0.3
    evidence = wall_evidence(scan, solid)
    added = evidence.apply(solid) & ~solid
    assert evidence.n_walls >= 5
    assert added.sum() <= 0.002 * solid.size


def test_a_single_pore_has_no_candidate():
    solid = np.zeros((30, 30), bool)
    solid[[0, -1], :] = solid[:, [0, -1]] = True
    scan = solid + np.random.default_rng(0).normal(0, 0.05, solid.shape)
    evidence = wall_evidence(scan, solid)
    assert isinstance(evidence, WallEvidence) and evidence.n_walls == 0
    assert np.array_equal(evidence.apply(solid), solid)


@pytest.mark.parametrize(("scan", "solid", "error", "match"), [
    (np.zeros((10, 12)), np.zeros((10, 10), bool), ValueError, "shape"),
    (np.zeros((10, 10)), np.ones((10, 10), bool), ValueError, "all solid"),
    (np.zeros((10, 10)), np.zeros((10, 10), bool), ValueError, "all pore"),
    (np.full((10, 10), np.nan), np.eye(10, dtype=bool), ValueError, "NaN"),
    (np.zeros((10, 10)), np.eye(10, dtype=bool), ValueError, "contrast"),
    (np.zeros((10, 10), complex), np.eye(10, dtype=bool), TypeError, "real"),
])
def test_bad_input_is_refused_with_what_is_wrong(scan, solid, error, match):
    with pytest.raises(error, match=match):
        wall_evidence(scan, solid)


def test_evidence_applies_only_to_its_own_shape():
    scan, solid = _two_cells()
    with pytest.raises(ValueError, match="measured on"):
        wall_evidence(scan, solid).apply(solid[:, :60])
