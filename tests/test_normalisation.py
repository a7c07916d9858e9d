"""Per-scan grey-value normalisation (issue 15): the same scan in any dtype gives the same segmentation."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import tifffile
import torch

from foamlib.io import write_tiff
from foamlib.segment import (
    CLIP_WARN_FRACTION,
    DEFAULT_NORMALISATION,
    MINMAX_NORMALISATION,
    IntensityNormalisation,
    clipped_fraction,
    normalisation_from_metadata,
    segment_file,
)
from foamlib.training import save_model
from foamlib.unet import build_unet

pytestmark = pytest.mark.usefixtures("torch_one_thread")

TINY = {"levels": 2, "convs_per_level": 2, "base_channels": 4, "kernel_size": 3}


@pytest.fixture(scope="module")
def base_scan() -> np.ndarray:
    """A small simulated foam scan as uint8 (pores dark, walls bright)."""
    from foamlib.phantom import demo_sample

    return np.round(demo_sample("foam89", size=32).scan).astype(np.uint8)


def _stored_as(base: np.ndarray, kind: str) -> np.ndarray:
    """The same scan written as another dtype with another offset and scale (as scanners and converters do)."""
    x = base.astype(np.float64)
    if kind == "uint8":
        return base
    if kind == "uint16":
        return (x * 200 + 5000).astype(np.uint16)
    if kind == "int16":
        return (x * 100 - 12000).astype(np.int16)
    if kind == "float32":
        return (x * 0.0075 - 1.3).astype(np.float32)  # -1.3 to 0.61, as in the issue
    raise AssertionError(kind)


def _threshold_model() -> torch.nn.Module:
    """A real UNet whose output is sigmoid(40 * (x - 0.5)): solid where the normalised grey value is above 0.5."""
    model = build_unet({"levels": 1, "convs_per_level": 1, "base_channels": 1, "kernel_size": 1,
                        "normalization": "none", "output": "logits"}, seed=0)  # fmt: skip
    with torch.no_grad():
        weights = [p for name, p in model.named_parameters() if name.endswith("weight")]
        biases = [p for name, p in model.named_parameters() if name.endswith("bias")]
        for p in weights:
            p.fill_(1.0)
        for p in biases:
            p.zero_()
        weights[-1].fill_(40.0)
        biases[-1].fill_(-20.0)
    return model.eval()


def _metadata(**extra):
    """What the study's notebooks write: the normalisation, and the training scan's range as before."""
    return {"task": "segmentation", "stage": "step1", "normalisation": DEFAULT_NORMALISATION.to_dict(),
            "intensity_range": [0, 255], "voxel_size_um": 10.0, **extra}  # fmt: skip


KINDS = ("uint8", "uint16", "int16", "float32")


@pytest.mark.parametrize("model_kind", ["threshold", "tiny_unet"])
def test_the_same_scan_in_any_dtype_gives_the_same_segmentation(tmp_path, base_scan, model_kind):
    model = _threshold_model() if model_kind == "threshold" else build_unet(TINY, seed=3).eval()
    model_path = save_model(tmp_path / "model.pt", model, metadata=_metadata())
    results, solids = {}, {}
    for kind in KINDS:
        data = _stored_as(base_scan, kind)
        if kind in ("uint8", "uint16", "float32"):
            scan_path = write_tiff(tmp_path / f"scan_{kind}.tif", data, voxel_size_um=10.0)
        else:  # ImageJ TIFFs hold no int16: a .npy, as a converter would write it
            scan_path = tmp_path / f"scan_{kind}.npy"
            np.save(scan_path, data)
        results[kind] = segment_file(scan_path, model_path, tmp_path / f"seg_{kind}.tif", tile=32, overlap=8)
        solids[kind] = tifffile.imread(results[kind].out_path) > 0
    reference = solids["uint8"]
    assert 0.3 < results["uint8"].porosity < 0.99  # a real segmentation, not all pore or all solid
    for kind in KINDS[1:]:
        # Integer storage gives bit-identical network inputs (scale_intensity's notes): no voxel may differ.
        # Float storage rounds the grey values themselves, so voxels within float32 rounding of the
        # threshold may flip; found 0 of 32768. Tolerance: 5 voxels (0.015 %).
        tolerance = 5 if kind == "float32" else 0
        assert np.count_nonzero(solids[kind] != reference) <= tolerance, kind
        assert results[kind].porosity == pytest.approx(results["uint8"].porosity, abs=5 / reference.size)
        assert results[kind].clipped_fraction < CLIP_WARN_FRACTION


def test_percentiles_move_with_any_increasing_affine_map(base_scan):
    low, high = DEFAULT_NORMALISATION.range_for(base_scan)
    for kind, (scale, offset) in {"uint16": (200, 5000), "int16": (100, -12000), "float32": (0.0075, -1.3)}.items():
        got = DEFAULT_NORMALISATION.range_for(_stored_as(base_scan, kind))
        np.testing.assert_allclose(got, (low * scale + offset, high * scale + offset), rtol=1e-6, atol=1e-6)


def test_minmax_and_percentiles_on_an_analytic_ramp():
    ramp = np.arange(1001, dtype=np.float64).reshape(1, 7, 143)
    assert MINMAX_NORMALISATION.range_for(ramp) == (0.0, 1000.0)
    assert DEFAULT_NORMALISATION.range_for(ramp) == pytest.approx((5.0, 995.0))
    assert IntensityNormalisation(low_percentile=10, high_percentile=90).range_for(ramp) == pytest.approx((100.0, 900.0))
    # 0 and 100 are the exact extremes of the whole volume, even where percentiles use a subsample
    spikes = np.zeros((20, 20, 20), np.float32)
    spikes[1, 1, 1], spikes[3, 3, 3] = -7.0, 9.0
    assert IntensityNormalisation(low_percentile=0, high_percentile=100, max_samples=8).range_for(spikes) == (-7.0, 9.0)


def test_subsample_is_a_deterministic_grid_and_close_to_the_full_percentiles():
    volume = np.random.default_rng(0).normal(100, 10, (40, 41, 42)).astype(np.float32)
    full = IntensityNormalisation().range_for(volume)
    small = IntensityNormalisation(max_samples=5000)
    assert small.range_for(volume) == small.range_for(volume.copy())
    np.testing.assert_allclose(small.range_for(volume), full, atol=3.0)  # 0.3 sigma of the tails


def test_a_volume_filled_by_one_value_falls_back_to_min_and_max(caplog):
    volume = np.zeros((10, 10, 10), np.uint8)
    volume[0, 0, :3] = 255
    with caplog.at_level(logging.WARNING, logger="foamlib.segment"):
        assert DEFAULT_NORMALISATION.range_for(volume) == (0.0, 255.0)
    assert "minimum and maximum" in caplog.text
    with pytest.raises(ValueError, match="only the value 3"):
        DEFAULT_NORMALISATION.range_for(np.full((4, 4, 4), 3.0))


def test_round_trip_and_validation():
    norm = IntensityNormalisation(low_percentile=0.1, high_percentile=99.9, max_samples=1000)
    assert IntensityNormalisation.from_dict(norm.to_dict()) == norm
    assert norm.to_dict()["method"] == "percentile"
    with pytest.raises(ValueError, match="low_percentile"):
        IntensityNormalisation(low_percentile=60, high_percentile=40)
    with pytest.raises(ValueError, match="high_percentile"):
        IntensityNormalisation(high_percentile=101)
    with pytest.raises(TypeError, match="low_percentile"):
        IntensityNormalisation(low_percentile="1")
    with pytest.raises(ValueError, match="unknown key"):
        IntensityNormalisation.from_dict({**norm.to_dict(), "gamma": 2})
    with pytest.raises(ValueError, match="zscore"):
        IntensityNormalisation.from_dict({**norm.to_dict(), "method": "zscore"})


def test_metadata_rules(caplog):
    with caplog.at_level(logging.WARNING, logger="foamlib.segment"):
        assert normalisation_from_metadata({"normalisation": DEFAULT_NORMALISATION.to_dict()}) == DEFAULT_NORMALISATION
        assert not caplog.text
        assert normalisation_from_metadata({"intensity_range": [0, 255]}, source="old.pt") == MINMAX_NORMALISATION
        assert "old.pt predates per-scan normalisation" in caplog.text
        caplog.clear()
        assert normalisation_from_metadata({}, source="bare.pt") == DEFAULT_NORMALISATION
        assert "bare.pt records no grey-value normalisation" in caplog.text
    with pytest.raises(ValueError, match="bad.pt: metadata normalisation"):
        normalisation_from_metadata({"normalisation": {"low_percentile": 5}}, source="bad.pt")


def test_clipped_fraction():
    volume = np.arange(100, dtype=np.float32).reshape(4, 25)
    assert clipped_fraction(volume, (10, 89)) == pytest.approx(0.2)
    assert clipped_fraction(volume, (0, 99)) == 0.0


def test_a_legacy_model_re_derives_the_range_per_scan_and_warns(tmp_path, base_scan, caplog):
    model_path = save_model(tmp_path / "old.pt", _threshold_model(), metadata={"stage": "step1", "intensity_range": [0, 255]})
    porosities = []
    with caplog.at_level(logging.WARNING, logger="foamlib.segment"):
        for kind in ("uint8", "uint16"):
            scan_path = write_tiff(tmp_path / f"{kind}.tif", _stored_as(base_scan, kind))
            result = segment_file(scan_path, model_path, tmp_path / f"seg_{kind}.tif", tile=32, overlap=8)
            assert result.intensity_range == MINMAX_NORMALISATION.range_for(_stored_as(base_scan, kind))
            porosities.append(result.porosity)
    assert porosities[0] == porosities[1]
    assert "old.pt predates per-scan normalisation" in caplog.text


def test_an_explicit_range_overrides_and_heavy_clipping_is_reported(tmp_path, base_scan, caplog):
    model_path = save_model(tmp_path / "m.pt", _threshold_model(), metadata=_metadata())
    scan_path = write_tiff(tmp_path / "u16.tif", _stored_as(base_scan, "uint16"))
    with caplog.at_level(logging.WARNING, logger="foamlib.segment"):
        result = segment_file(scan_path, model_path, tmp_path / "seg.tif", tile=32, overlap=8, intensity_range=(0, 255))
    assert result.intensity_range == (0.0, 255.0)
    assert result.clipped_fraction == 1.0 and result.porosity == 0.0  # every voxel above 255: all solid
    assert "u16.tif: 100.0 % of the voxels lie outside the given intensity_range (0, 255)" in caplog.text


@pytest.mark.shared_data
def test_a_real_scan_in_other_dtypes_gives_the_same_segmentation(shared_data, tmp_path):
    # a uint8 scan: 187 of its voxels lie exactly at the threshold grey value, the case that needs exact scaling
    base = tifffile.imread(shared_data / "cement" / "cement_128x128x128.tif")[:16, :48, :48]
    model_path = save_model(tmp_path / "m.pt", _threshold_model(), metadata=_metadata())
    solids = {}
    for kind in KINDS:
        np.save(tmp_path / f"{kind}.npy", _stored_as(base, kind))
        result = segment_file(tmp_path / f"{kind}.npy", model_path, tmp_path / f"{kind}.tif", tile=48, overlap=8)
        solids[kind] = tifffile.imread(result.out_path) > 0
    assert 0.05 < 1 - solids["uint8"].mean() < 0.95
    for kind in KINDS[1:]:  # the tolerances of the phantom test above; found 0 for every dtype
        assert np.count_nonzero(solids[kind] != solids["uint8"]) <= (5 if kind == "float32" else 0), kind
