import numpy as np
import pytest

from foamlib.metrics import MetricsError, SegmentationMetrics
from foamlib.report import agreement_table, failure_table, porosity_error_pp, porosity_table, samples_with_stage, stage_metrics


def test_porosity_error_is_in_percentage_points_and_nan_without_reference():
    assert porosity_error_pp(0.80, 0.82) == pytest.approx(-2.0)
    assert np.isnan(porosity_error_pp(0.80, None))
    assert np.allclose(porosity_error_pp([0.5, 0.6], 0.5), [0.0, 10.0])


def test_porosity_table_keeps_every_number_of_a_sample_that_failed_part_way():
    summaries = {
        "a": {"reference_porosity": 0.9, "porosity": {"otsu": 0.88, "step1": 0.91, "step2": 0.89}},
        "b": {"reference_porosity": None, "porosity": {"otsu": 0.7, "step1": 0.72}},  # failed before step 2
        "c": {"reference_porosity": 0.5, "porosity": {}},  # failed after stage 00
    }
    table = porosity_table(summaries)
    assert list(table.index) == ["a", "b", "c"]
    assert table.loc["a", "step-1 U-Net error (pp)"] == pytest.approx(1.0)
    assert table.loc["b", "Otsu"] == pytest.approx(0.7) and table.loc["b", "step-1 U-Net"] == pytest.approx(0.72)
    assert np.isnan(table.loc["b", "step-2 U-Net"]) and np.isnan(table.loc["b", "Otsu error (pp)"])
    assert table.loc["c"].drop("reference").isna().all() and table.loc["c", "reference"] == 0.5


def test_failure_table_splits_the_stage_from_the_message():
    table = failure_table({"al": "08_cyclegan: 08_cyclegan.ipynb: cell [4] raised ValueError: shapes", "x": "no scan"})
    assert table.loc["al", "stage"] == "08_cyclegan"
    assert table.loc["al", "message"].startswith("08_cyclegan.ipynb: cell [4]")
    assert table.loc["x", "stage"] == "" and table.loc["x", "message"] == "no scan"
    assert list(failure_table({}).columns) == ["stage", "message"]


def test_samples_with_stage_requires_the_stage_and_its_fields():
    fid = {"step1": 40.0, "step2": 30.0, "encoder": "random"}
    kid = {"step1": 0.1, "step2": 0.1}
    summaries = {"a": {"stages": {"similarity": {"fid": fid, "kid": kid, "fid_by_fraction": {"0.50": 30.0}}}},
                 "b": {"stages": {"similarity": {"fid": fid, "kid": kid}}}, "c": {"stages": {}}, "d": {}}
    assert samples_with_stage(summaries, "similarity") == ["a", "b"]
    assert samples_with_stage(summaries, "similarity", "fid_by_fraction") == ["a"]
    with pytest.raises(MetricsError, match="no field 'fid_by_fracton'"):
        samples_with_stage(summaries, "similarity", "fid_by_fracton")


def test_stage_metrics_reads_typed_metrics_and_names_the_sample_on_a_bad_layout():
    summary = {"sample": "foam89", "stages": {"step2": {"porosity": 0.8, "wall_fraction": 0.5}}}
    assert stage_metrics(summary, "step2") == SegmentationMetrics(porosity=0.8, wall_fraction=0.5)
    assert stage_metrics(summary, "similarity") is None
    with pytest.raises(MetricsError, match=r"summary of foam89: stages\['step2'\].*unknown key 'porositty'"):
        stage_metrics({"sample": "foam89", "stages": {"step2": {"porositty": 0.8}}}, "step2")
    with pytest.raises(MetricsError, match="unknown stage"):
        stage_metrics(summary, "stage2")


def test_agreement_table_reports_the_steps_the_tolerance_and_the_scan_evidence():
    from foamlib.agreement import compare_steps

    far = compare_steps(0.80, 0.85).to_dict()  # one seed each: the 1 pp default tolerance
    near = compare_steps([0.800, 0.802, 0.798], [0.801, 0.803, 0.799]).to_dict()
    summaries = {
        "a": {"agreement": far},
        "b": {"agreement": near},
        "c": {"agreement": None},  # step 2 not run yet
        "d": {"agreement": {"error": "ValueError: damaged"}},
    }
    table = agreement_table(summaries)
    assert list(table.index) == ["a", "b", "d"]
    assert table.loc["a", "disagree"] and not table.loc["b", "disagree"]
    assert table.loc["a", "difference (pp)"] == pytest.approx(5.0)
    assert table.loc["a", "tolerance (pp)"] == pytest.approx(1.0)
    assert np.isnan(table.loc["a", "densitometric (%)"])  # no densitometry given
    assert "not compared" in table.loc["d", "message"]
    assert agreement_table({"x": {}}).empty


def test_study_summary_lists_samples_whose_steps_disagree(tmp_path):
    import json

    from foamlib.agreement import compare_steps
    from foamlib.study import summary_table

    for name, (p1, p2) in {"far": (0.80, 0.85), "near": (0.800, 0.802)}.items():
        (tmp_path / name).mkdir()
        summary = {"sample": name, "status": "complete", "reference_porosity": None,
                   "porosity": {"step1": p1, "step2": p2}, "agreement": compare_steps(p1, p2).to_dict()}
        (tmp_path / name / "summary.json").write_text(json.dumps(summary))
    text = summary_table(tmp_path)
    assert "The steps disagree on far:" in text
    assert "disagree on near" not in text
