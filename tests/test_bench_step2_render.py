"""benchmarks/bench_step2_render.py: its tables and its arguments (its run on a study: tests/test_validate.py)."""
import pytest
from project_scripts import load_script


@pytest.fixture(scope="module")
def bench():
    return load_script("benchmarks/bench_step2_render.py")


def _results():
    def row(fraction, seed, error):
        return {"fraction": fraction, "seed": seed, "error_pp": error, "dice_solid": 0.9, "pores": 5 + seed}

    runs = {"cyclegan": [row(f, s, -4.0 - f + 0.1 * s) for f in (0.0, 0.5) for s in (0, 1, 2)],
            "render": [row(f, s, -1.0 - f) for f in (0.0, 0.5) for s in (0, 1, 2)]}
    fid = {"cyclegan": {"fid": 4306.3}, "render": {"fid": 552.7}, "real_second_draw": {"fid": 151.4}}
    case = {"reference_porosity": 0.824, "truth_pores": 348, "fid": fid, "runs": runs,
            "labels_porosity": {"0.00": 0.8134, "0.50": 0.8082}}
    return {"settings": {"wall_fraction": 0.5}, "fractions": [0.0, 0.5], "cases": {"foam82": case}}


def test_translation_table_scores_the_main_fraction_over_seeds(bench):
    lines = bench.translation_table(_results()).splitlines()
    assert lines[2] == "| foam82 | cyclegan | -4.40 ± 0.10 | 0.900 ± 0.000 | 6 ± 1 (348) | 4306 |"
    assert lines[3] == "| foam82 | render | -1.50 ± 0.00 | 0.900 ± 0.000 | 6 ± 1 (348) | 553 |"
    assert lines[4] == "| foam82 | *scan, second draw (floor)* | | | | 151 |"


def test_sweep_table_puts_each_fraction_beside_its_labels(bench):
    lines = bench.sweep_table(_results()).splitlines()
    assert lines[0] == "| case | grey images | fraction 0.00 | fraction 0.50 |"
    assert lines[2] == "| foam82 | cyclegan | -3.90 ± 0.10 | -4.40 ± 0.10 |"
    assert lines[4] == "| foam82 | *the labels themselves* | (-1.06) | (-1.58) |"


def test_a_case_without_a_truth_is_refused(bench, tmp_path):
    with pytest.raises(SystemExit, match="no truth and run folder for foam82"):
        bench.main(["--runs", str(tmp_path), "--cases", "foam82"])
