"""benchmarks/bench_rounds.py: how a round's run folder is seeded, its table and its arguments."""
from pathlib import Path

import pytest
from project_scripts import load_script


@pytest.fixture(scope="module")
def bench():
    return load_script("benchmarks/bench_rounds.py")


def _study_run(path: Path) -> Path:
    for name, text in {"sample.json": "{}", "scan.tif": "scan", "truth.tif": "truth", "otsu/seg.tif": "otsu",
                       "otsu/metrics.json": "{}", "models/step1.pt": "unet", "models/step2.pt": "unet2",
                       "step1/seg.tif": "round 1", "step2/seg.tif": "round 2", "step2/gan/checkpoint.pt": "gan"}.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    return path


def test_a_round_starts_from_the_last_rounds_segmentation_and_nothing_of_step_2(bench, tmp_path):
    study = _study_run(tmp_path / "runs" / "foam82")
    before = {p: p.read_text() for p in study.rglob("*") if p.is_file()}
    folder = tmp_path / "round_3" / "foam82"
    bench.seed_round(study, study / "step2" / "seg.tif", folder)
    assert (folder / "step1" / "seg.tif").read_text() == "round 2"
    assert {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} == {
        "sample.json", "scan.tif", "truth.tif", "otsu/seg.tif", "otsu/metrics.json", "models/step1.pt", "step1/seg.tif"}
    assert {p: p.read_text() for p in study.rglob("*") if p.is_file()} == before  # the study's folder is untouched
    # seeded once: an interrupted round keeps what it wrote (its checkpoints) when run again
    (folder / "step2").mkdir()
    (folder / "step2" / "checkpoint.pt").write_text("half way")
    bench.seed_round(study, study / "step1" / "seg.tif", folder)
    assert (folder / "step1" / "seg.tif").read_text() == "round 2"
    assert (folder / "step2" / "checkpoint.pt").read_text() == "half way"


def test_table_names_what_each_round_learned_from(bench):
    rows = [{"round": 1, "labels_porosity": None, "porosity": 0.8135, "error_pp": -1.05, "dice_solid": 0.925, "pores": 5},
            {"round": 2, "labels_porosity": 0.8082, "porosity": 0.7824, "error_pp": -4.166, "dice_solid": 0.8714,
             "pores": 6}]
    lines = bench.table(rows, 348).splitlines()
    assert lines[2] == "| 1 | rendered synthetic foams | – | 81.35 % | -1.05 | 0.925 | 5 (348) |"
    assert lines[3] == "| 2 | round 1's segmentation | 80.82 % | 78.24 % | -4.17 | 0.871 | 6 (348) |"


def test_rounds_one_and_two_are_the_studys(bench, tmp_path, capsys):
    with pytest.raises(SystemExit):
        bench.main(["--runs", str(tmp_path), "--rounds", "2"])
    assert "--rounds must be at least 3" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="no run folder with a truth for sample foam82"):
        bench.main(["--runs", str(tmp_path)])
