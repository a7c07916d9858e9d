"""One dataclass per stage's metrics (foamlib.metrics): the layouts the notebooks write read back unchanged."""

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from foamlib.metrics import (
    STAGE_METRICS, FidValues, MetricsError, OtsuMetrics, SegmentationMetrics, SimilarityMetrics, UNetMetrics,
    metrics_class, parse_metrics,
)
from foamlib.runfolder import RunFolder

ROOT = Path(__file__).resolve().parents[1]

# What each notebook passes to run.update_metrics (values as a run writes them).
LAYOUTS = {
    "otsu": {"porosity": 0.81, "threshold": 97.5, "reference_porosity": 0.8,
             "porosity_by_method": {"Otsu": 0.81, "Li": 0.79}},
    "step1_foams": {"n_foams": 3, "fitted": {"porosity": 0.8, "cell_diameter": 12.0}, "size_target": "pore_diameter",
                    "cell_diameter_se": 0.4, "foam_porosities": [0.79, 0.81, 0.8]},
    "step1_data": {"n_images": 96, "grey_model": {"pore_mean": 40.0}},
    "step1_unet": {"test": {"dice": 0.93, "iou": 0.87}, "best_config": {"levels": 3}, "epochs_run": 4},
    "step1": {"porosity": 0.8, "reference_porosity": None},
    "step2_gan": {"real_patch_porosity": 0.8, "generated_porosity": 0.78, "porosity_difference": -0.02,
                  "steps": 300, "seconds": 12.5},
    "step2_walls": {"fraction": 0.5, "by_fraction": {"0.50": {"treated": 128, "walls_added": 0.01}}},
    "step2_cyclegan": {"steps": 60, "seconds": 30.1, "phase_statistics": {"real": {"pore_mean": 40.0}}},
    "step2_unet": {"test": {"dice": 0.9}, "epochs_run": 3, "wall_fraction": 0.5},
    "step2": {"porosity": 0.79, "reference_porosity": 0.8, "wall_fraction": 0.5,
              "porosity_by_fraction": {"0.00": 0.81, "0.50": 0.79}},
    "similarity": {"fid": {"step1": 40.0, "step2": 30.0, "encoder": "random", "real_floor": 5.0},
                   "kid": {"step1": 0.04, "step2": 0.03}, "n_images": 64, "crop_size": 32,
                   "fid_by_fraction": {"0.00": 33.0, "0.50": 30.0}},
    "porosity_validation": {"density_porosity": None, "u_density_porosity": None, "solid_density_g_cm3": 1.2,
                            "porosity_by_method": {"Otsu": 0.81}},
}


def test_every_stage_has_a_layout_here():
    assert set(LAYOUTS) == set(STAGE_METRICS)


@pytest.mark.parametrize("stage", sorted(LAYOUTS))
def test_layout_round_trips_unchanged(stage, tmp_path):
    layout = LAYOUTS[stage]
    metrics = parse_metrics(stage, layout)
    assert isinstance(metrics, metrics_class(stage))
    stored = {k: v for k, v in layout.items() if v is not None or k not in {"reference_porosity", "density_porosity",
                                                                           "u_density_porosity"}}
    assert metrics.to_json() == stored
    run = RunFolder(tmp_path)
    path = run.update_metrics(stage, layout)
    assert path == tmp_path / stage / "metrics.json"
    assert json.loads(path.read_text()) == stored
    assert run.metrics(stage) == metrics


def test_typed_values():
    m = parse_metrics("similarity", LAYOUTS["similarity"])
    assert isinstance(m, SimilarityMetrics) and isinstance(m.fid, FidValues)
    assert m.fid.encoder == "random" and m.kid.step2 == 0.03 and m.fid_by_fraction["0.50"] == 30.0
    s = parse_metrics("step2", LAYOUTS["step2"])
    assert isinstance(s, SegmentationMetrics) and s.wall_fraction == 0.5
    assert isinstance(parse_metrics("step1_unet", LAYOUTS["step1_unet"]), UNetMetrics)


def test_numpy_values_and_nan_are_stored_as_json():
    run_values = {"porosity": np.float64(0.8), "threshold": np.float32(97.0), "porosity_by_method": {"Otsu": np.float64(0.8)}}
    m = parse_metrics("otsu", run_values)
    assert type(m.porosity) is float and m.to_json() == {"porosity": 0.8, "threshold": 97.0, "porosity_by_method": {"Otsu": 0.8}}
    nan = parse_metrics("step1", {"porosity": float("nan")})
    assert nan.to_json() == {"porosity": None}
    assert math.isnan(parse_metrics("step1", nan.to_json()).porosity)  # null reads back as NaN


def test_misspelt_key_names_the_file_and_the_nearest_key(tmp_path):
    run = RunFolder(tmp_path)
    with pytest.raises(MetricsError, match=r"unknown key 'porosty' \(did you mean 'porosity'\?\) in OtsuMetrics"):
        run.update_metrics("otsu", {"porosty": 0.8})
    assert not (tmp_path / "otsu").exists()  # nothing written
    (tmp_path / "step1").mkdir()
    (tmp_path / "step1" / "metrics.json").write_text('{"porosity": 0.8, "wall_fracton": 0.5}')
    with pytest.raises(MetricsError, match=re.escape(str(tmp_path / "step1" / "metrics.json")) + ".*'wall_fraction'"):
        run.metrics("step1")


@pytest.mark.parametrize(
    "stage, values, text",
    [
        ("otsu", {}, "misses the key 'porosity'"),
        ("otsu", {"porosity": "0.8"}, "porosity must be a number"),
        ("otsu", {"porosity": True}, "porosity must be a number"),
        ("step1_foams", {"n_foams": 3.0, "fitted": {}}, "n_foams must be an integer"),
        ("similarity", {"fid": {"step1": 1.0, "step2": 2.0}, "kid": {"step1": 0, "step2": 0}}, "misses the key 'encoder'"),
        ("step2", {"porosity": 0.8, "porosity_by_fraction": [0.8]}, "porosity_by_fraction must be a mapping"),
    ],
)
def test_bad_layouts_are_refused(stage, values, text):
    with pytest.raises(MetricsError, match=text):
        parse_metrics(stage, values)


def test_unknown_stage_names_the_nearest():
    with pytest.raises(MetricsError, match=r"unknown stage 'step2_gann' \(did you mean 'step2_gan'\?\)"):
        metrics_class("step2_gann")
    with pytest.raises(MetricsError, match="OtsuMetrics"):
        parse_metrics("otsu", SegmentationMetrics(porosity=0.5))
    assert parse_metrics("otsu", OtsuMetrics(porosity=0.5)).porosity == 0.5


def test_missing_metrics_file_names_the_stage(tmp_path):
    with pytest.raises(FileNotFoundError, match="step2"):
        RunFolder(tmp_path).metrics("step2")


def test_notebooks_record_only_known_stages():
    """Every run.update_metrics call in the notebooks names a stage with a class (its keys are checked when it runs)."""
    stages = []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = json.loads(path.read_text(encoding="utf-8"))
        for cell in nb["cells"]:
            stages += re.findall(r'update_metrics\("(\w+)"', "".join(cell["source"]))
    assert sorted(stages) == sorted(STAGE_METRICS)
