"""benchmarks/bench_faint_walls.py: its table and its arguments (its run on a study: tests/test_validate.py)."""
import pytest
from project_scripts import load_script


@pytest.fixture(scope="module")
def bench():
    return load_script("benchmarks/bench_faint_walls.py")


def test_table_shows_before_and_after_with_the_truths_pores(bench):
    row = {"sample": "closed_thin", "method": "step1", "error_pp_before": -6.431, "error_pp_after": -9.62,
           "dice_before": 0.7181, "dice_after": 0.6312, "pores_before": 53, "pores_after": 130, "truth_pores": 123,
           "kept": 564, "candidates": 621}
    lines = bench.table([row, {**row, "sample": "user", "truth_pores": None}]).splitlines()
    assert lines[2] == "| closed_thin | step1 | -6.43 → -9.62 | 0.718 → 0.631 | 53 → 130 (123) | 564 of 621 |"
    assert "(–)" in lines[3]


def test_it_needs_a_run_to_read(bench, tmp_path, capsys):
    with pytest.raises(SystemExit):
        bench.main([])
    assert "give --validation, --runs or both" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.main(["--runs", str(tmp_path / "missing")])
    assert "is not a folder" in capsys.readouterr().err
    assert bench.main(["--runs", str(tmp_path)]) == 1  # a folder without any demo sample
