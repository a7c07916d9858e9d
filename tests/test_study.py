"""The study runner, on tiny notebooks of its own (the real stages are tested by nbval)."""
from __future__ import annotations

import json

import nbformat
import numpy as np
import pytest
from fake_notebooks import write_notebook
from read_log import whole_scan_reads
from nbformat.v4 import new_markdown_cell

from foamlib.runs import read_json
from foamlib.device import cpu_threads
from foamlib.study import (
    SampleSpec, find_stages, load_profile, profile_names, run_sample, run_study, summary_table, threads_per_sample,
)

pytestmark = pytest.mark.slow  # each stage starts a Jupyter kernel (about a second)


def _notebook(path, body: str, params: str) -> None:
    write_notebook(path, params, body)


@pytest.fixture
def notebooks(tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    _notebook(
        folder / "00_first.ipynb",
        "from foamlib.runs import update_metrics\nupdate_metrics(run_dir, 'otsu', {'porosity': a / 10})\n"
        "update_metrics(run_dir, 'step1_unet', {'test': {'dice': 0.9}})\n"
        "update_metrics(run_dir, 'similarity', {'fid': {'step1': 3.0, 'step2': 4.0, 'encoder': 'random'},\n"
        "                                       'kid': {'step1': 0.1, 'step2': 0.2}})",
        "run_dir = 'x'\nsample = 's'\na = 1",
    )
    _notebook(
        folder / "01_second.ipynb",
        "import json, pathlib\nv = json.loads(pathlib.Path(run_dir, 'otsu', 'metrics.json').read_text())\n"
        "assert b >= 0, 'b must not be negative'\n"
        "pathlib.Path(run_dir, 'second.txt').write_text(str(v['porosity'] + b))",
        "run_dir = 'x'\nb = 0",
    )
    return folder


def _statuses(results):
    return [(r.sample, r.stage, r.status) for r in results]


def test_runs_every_stage_then_skips_unchanged_ones(notebooks, tmp_path, capsys):
    runs = tmp_path / "runs"
    specs = [SampleSpec("s1")]
    first = run_study(specs, profile={"a": 2, "b": 1}, notebooks_dir=notebooks, runs_dir=runs, jobs=1)
    assert _statuses(first) == [("s1", "00_first", "ran"), ("s1", "01_second", "ran")]
    assert (runs / "s1" / "second.txt").read_text() == "1.2"
    executed = nbformat.read(runs / "s1" / "notebooks" / "00_first.ipynb", as_version=4)
    assert executed.cells[0].source.startswith("# Title: s1")
    summary = read_json(runs / "s1" / "summary.json")
    assert summary["porosity"] == {"otsu": 0.2} and set(summary["seconds"]) == {"00_first", "01_second"}
    assert summary["unet_test"] == {"step1": {"dice": 0.9}}
    assert summary["fid"] == {"step1": 3.0, "step2": 4.0, "encoder": "random"}
    assert summary["kid"] == {"step1": 0.1, "step2": 0.2} and summary["damaged"] == {}

    table = summary_table(runs)
    assert table.splitlines()[2] == "| s1 | – | 20.00 % |"

    again = run_study(specs, profile={"a": 2, "b": 1}, notebooks_dir=notebooks, runs_dir=runs, jobs=1)
    assert [r.status for r in again] == ["skipped", "skipped"]
    assert "s1: 00_first skipped" in capsys.readouterr().out


def test_until_runs_the_first_stages_and_a_later_full_run_skips_them(notebooks, tmp_path):
    _notebook(notebooks / "02_study.ipynb", "pass", "runs_dir = 'x'\nsamples = []")
    runs = tmp_path / "runs"
    first = run_study([SampleSpec("s1")], profile={"a": 2, "b": 1}, notebooks_dir=notebooks, runs_dir=runs, jobs=1,
                      until="00")
    assert _statuses(first) == [("s1", "00_first", "ran")]
    assert not (runs / "s1" / "second.txt").exists() and not (runs / "_study").exists()
    rest = run_study([SampleSpec("s1")], profile={"a": 2, "b": 1}, notebooks_dir=notebooks, runs_dir=runs, jobs=1)
    assert _statuses(rest) == [("s1", "00_first", "skipped"), ("s1", "01_second", "ran"), ("_study", "02_study", "ran")]


def test_threads_per_sample_divides_the_cores_between_the_samples_running_now():
    assert threads_per_sample(2, 2, 3) == 1  # three samples, two at a time: one thread each
    assert threads_per_sample(2, 2, 1) == 2  # the last sample gets both cores
    assert threads_per_sample(16, 3, 2) == 8
    assert threads_per_sample(2, 4, 4) == 1 and threads_per_sample(1, 1, 0) == 1


def test_on_stage_start_is_called_before_executed_stages_only(notebooks, tmp_path):
    runs, spec, seen = tmp_path / "runs", SampleSpec("s1"), []
    run_sample(spec, find_stages(notebooks), {"a": 2, "b": 1}, runs_dir=runs, on_stage_start=lambda s: seen.append(s.name))
    assert seen == ["00_first", "01_second"]
    run_sample(spec, find_stages(notebooks), {"a": 2, "b": 2}, runs_dir=runs, on_stage_start=lambda s: seen.append(s.name))
    assert seen == ["00_first", "01_second", "01_second"]  # 00_first skipped: unchanged


def test_parallel_samples_give_each_kernel_its_share_of_the_cores(notebooks, tmp_path):
    _notebook(notebooks / "02_threads.ipynb",
              "import os, pathlib\npathlib.Path(run_dir, 'threads.txt').write_text(os.environ.get('OMP_NUM_THREADS', 'unset'))\n"
              "pathlib.Path(run_dir, 'wait.txt').write_text(os.environ.get('OMP_WAIT_POLICY', 'unset'))",
              "run_dir = 'x'")
    runs = tmp_path / "runs"
    results = run_study([SampleSpec("s1"), SampleSpec("s2")], profile={"a": 1, "b": 1}, notebooks_dir=notebooks,
                        runs_dir=runs, jobs=2)
    assert {r.status for r in results} == {"ran"} and len(results) == 6
    for name in ("s1", "s2"):
        threads = (runs / name / "threads.txt").read_text()
        assert threads.isdigit() and 1 <= int(threads) <= max(1, cpu_threads()), threads
        assert (runs / name / "wait.txt").read_text() == "PASSIVE"  # idle OpenMP threads sleep, not spin


def test_edited_prose_reaches_the_page_of_a_skipped_stage_and_a_new_markdown_cell_reruns_it(notebooks, tmp_path, capsys):
    runs, specs, profile = tmp_path / "runs", [SampleSpec("s1")], {"a": 2, "b": 1}
    run_study(specs, profile=profile, notebooks_dir=notebooks, runs_dir=runs, jobs=1)
    page = runs / "s1" / "notebooks" / "00_first.ipynb"
    outputs = [c.get("outputs") for c in nbformat.read(page, as_version=4).cells]
    source = nbformat.read(notebooks / "00_first.ipynb", as_version=4)
    source.cells[0].source = "# New title\n\nNew prose."
    nbformat.write(source, notebooks / "00_first.ipynb")
    capsys.readouterr()
    again = run_study(specs, profile=profile, notebooks_dir=notebooks, runs_dir=runs, jobs=1)
    assert [(r.status, r.message) for r in again] == [("skipped", "prose refreshed"), ("skipped", "")]
    assert "00_first skipped (unchanged; prose refreshed)" in capsys.readouterr().out
    refreshed = nbformat.read(page, as_version=4)
    assert refreshed.cells[0].source == "# New title: s1\n\nNew prose."  # labelled for the sample
    assert [c.get("outputs") for c in refreshed.cells] == outputs  # nothing re-executed
    third = run_study(specs, profile=profile, notebooks_dir=notebooks, runs_dir=runs, jobs=1)
    assert [(r.status, r.message) for r in third] == [("skipped", ""), ("skipped", "")]

    source.cells.append(new_markdown_cell("A closing remark."))
    nbformat.write(source, notebooks / "00_first.ipynb")
    fourth = run_study(specs, profile=profile, notebooks_dir=notebooks, runs_dir=runs, jobs=1)
    assert [r.status for r in fourth] == ["ran", "skipped"]
    assert nbformat.read(page, as_version=4).cells[-1].source == "A closing remark."


def test_a_changed_parameter_reruns_only_the_stages_that_read_it_and_later_ones(notebooks, tmp_path):
    runs = tmp_path / "runs"
    specs = [SampleSpec("s1")]
    run_study(specs, profile={"a": 2, "b": 1}, notebooks_dir=notebooks, runs_dir=runs, jobs=1)
    later = run_study(specs, profile={"a": 2, "b": 3}, notebooks_dir=notebooks, runs_dir=runs, jobs=1)
    assert [r.status for r in later] == ["skipped", "ran"]
    earlier = run_study(specs, profile={"a": 5, "b": 3}, notebooks_dir=notebooks, runs_dir=runs, jobs=1)
    assert [r.status for r in earlier] == ["ran", "ran"]
    assert (runs / "s1" / "second.txt").read_text() == "3.5"


def test_a_failed_stage_stops_its_sample_names_the_cell_and_reruns_next_time(notebooks, tmp_path):
    runs = tmp_path / "runs"
    results = run_study([SampleSpec("s1")], profile={"b": -1}, notebooks_dir=notebooks, runs_dir=runs, jobs=1)
    assert _statuses(results)[-1] == ("s1", "01_second", "failed")
    message = results[-1].message
    assert "01_second.ipynb" in message and "AssertionError" in message and "b must not be negative" in message
    assert "\n" not in message
    assert not (runs / "s1" / "notebooks" / "01_second.ipynb").exists()
    assert results[-1].notebook == str((runs / "s1" / "failed" / "01_second.ipynb").resolve())
    assert "b must not be negative" in (runs / "s1" / "failed" / "01_second.ipynb").read_text()
    retry = run_study([SampleSpec("s1")], profile={"b": 1}, notebooks_dir=notebooks, runs_dir=runs, jobs=1)
    assert [r.status for r in retry] == ["skipped", "ran"]
    assert not (runs / "s1" / "failed" / "01_second.ipynb").exists()


def test_find_stages_and_profiles(notebooks, tmp_path):
    stages = find_stages(notebooks)
    assert [s.name for s in stages] == ["00_first", "01_second"]
    assert stages[0].parameters == ("run_dir", "sample", "a") and stages[0].scope == "sample"
    assert {"smoke", "demo", "paper"} <= set(profile_names())
    assert load_profile("smoke")["profile"] == "smoke"
    own = tmp_path / "mine.yml"
    own.write_text("size: 32\n")
    assert load_profile(own) == {"size": 32, "profile": "mine"}
    with pytest.raises(ValueError, match="unknown profile"):
        load_profile("nope")
    with pytest.raises(ValueError, match="no numbered notebooks"):
        find_stages(tmp_path)


def test_notebooks_of_the_project_declare_parameters_and_are_in_the_toc():
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[1]
    stages = find_stages(root / "notebooks")
    toc = json.dumps(yaml.safe_load((root / "_toc.yml").read_text()))
    for stage in stages:
        declared = {"sample", "run_dir"} if stage.scope == "sample" else {"runs_dir", "samples", "failures"}
        assert declared <= set(stage.parameters), stage.name
        assert "profile" not in stage.parameters, stage.name  # settings come resolved, not as a profile name
        # every assignment in the parameters cell is one the runner can set (papermill's parser
        # silently drops a line it cannot read, e.g. some comments, and the profile's value is lost)
        nb = nbformat.read(stage.path, as_version=4)
        cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        names = [line.split("=")[0].strip() for line in cell.source.splitlines() if "=" in line and not line.startswith("#")]
        assert tuple(names) == stage.parameters, stage.name
        assert f"notebooks/{stage.name}" in toc, f"{stage.name} is missing from _toc.yml"


def test_study_wide_stage_runs_after_the_samples_and_is_cached(notebooks, tmp_path):
    _notebook(
        notebooks / "02_study.ipynb",
        "import json, pathlib\n"
        "values = [json.loads(pathlib.Path(runs_dir, s, 'otsu', 'metrics.json').read_text())['porosity'] for s in samples]\n"
        "pathlib.Path(runs_dir, '_study').mkdir(exist_ok=True)\n"
        "pathlib.Path(runs_dir, '_study', 'all.txt').write_text(str(sorted(values)))",
        "runs_dir = 'x'\nsamples = []",
    )
    runs = tmp_path / "runs"
    specs = [SampleSpec("s1"), SampleSpec("s2")]
    first = run_study(specs, profile={"a": 2, "b": 1}, notebooks_dir=notebooks, runs_dir=runs, jobs=1)
    assert _statuses(first)[-1] == ("_study", "02_study", "ran")
    assert (runs / "_study" / "all.txt").read_text() == "[0.2, 0.2]"
    assert (runs / "_study" / "notebooks" / "02_study.ipynb").is_file()
    again = run_study(specs, profile={"a": 2, "b": 1}, notebooks_dir=notebooks, runs_dir=runs, jobs=1)
    assert {r.status for r in again} == {"skipped"}
    changed = run_study(specs, profile={"a": 3, "b": 1}, notebooks_dir=notebooks, runs_dir=runs, jobs=1)
    assert _statuses(changed)[-1] == ("_study", "02_study", "ran")
    assert (runs / "_study" / "all.txt").read_text() == "[0.3, 0.3]"


def test_a_damaged_metrics_file_is_named_in_the_summary_not_merged(notebooks, tmp_path):
    from foamlib.study import summarize

    runs = tmp_path / "runs"
    run_study([SampleSpec("s1")], profile={"a": 1}, notebooks_dir=notebooks, runs_dir=runs, jobs=1)
    (runs / "s1" / "step1").mkdir()
    (runs / "s1" / "step1" / "metrics.json").write_text('{"porosty": 0.5}')  # a misspelt key
    (runs / "s1" / "step1_unet" / "metrics.json").write_text('{"test": ')  # cut off mid-write
    summary = summarize(runs / "s1")
    assert set(summary["damaged"]) == {"step1", "step1_unet"}
    assert "did you mean 'porosity'?" in summary["damaged"]["step1"]
    assert summary["porosity"] == {"otsu": 0.1} and summary["unet_test"] == {}
    assert set(summary["stages"]) == {"otsu", "similarity"}


def test_summary_table_without_runs_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no run folder"):
        summary_table(tmp_path)


def test_the_read_log_check_finds_whole_reads(tmp_path):
    """The check of the smoke study's read log below, on reads a stage must not make."""
    shape = [64, 64, 64]
    entries = [
        {"kind": "read", "shape": shape, "read": [1, 64, 64], "key": [32], "by": None},  # one slice
        {"kind": "read", "shape": shape, "read": shape, "key": [[0, 64, None]] * 3, "by": None},  # the analysis box
        {"kind": "read", "shape": shape, "read": shape, "key": [[0, 64, None]], "by": "_stream_segment"},
        {"kind": "read", "shape": shape, "read": [4, 64, 64], "key": [[0, 4, None]], "by": "value_range"},
        {"kind": "grid", "shape": shape, "max_samples": 2**24},
    ]
    bad = [
        {"kind": "read", "shape": shape, "read": shape, "key": [[None, None, None]], "by": None},  # scan[:]
        {"kind": "read", "shape": shape, "read": shape, "key": [[0, 64, None]], "by": "count_above"},  # one slab
        {"kind": "whole", "file": "scan.tif", "by": None},  # read_scan, read_mask, tifffile.imread
        {"kind": "grid", "shape": shape, "max_samples": 2**30},
    ]
    log = tmp_path / "reads.jsonl"
    log.write_text("".join(json.dumps({**e, "stage": "01_x", "file": "scan.tif"}) + "\n" for e in entries + bad))
    assert len(whole_scan_reads(log)) == len(bad)


def test_smoke_study_of_one_sample_fills_its_run_folder_and_a_rerun_skips_everything(smoke_study, capsys):
    """The real notebooks, end to end, through the CLI (the shared smoke study of conftest, several minutes).

    The stages' kernels log every read of the scan and of its segmentations: none may hold the scan or a
    segmentation whole except through a sample bounded independently of the scan's size (the whole
    scan, here, because the smoke scan is smaller than those bounds) or the streamed segmentation.
    """
    from pathlib import Path

    from foamlib.cli import main
    from foamlib.training import load_model

    root = Path(__file__).resolve().parents[1]
    runs, args, read_log = smoke_study.runs, smoke_study.args, smoke_study.read_log
    reads = [json.loads(line) for line in read_log.read_text().splitlines()]
    by_stage = {e["stage"] for e in reads if e["kind"] == "read"}
    assert {"00_samples", "01_otsu_baseline", "03_rendering", "05_segment_step1", "06_gan", "08_cyclegan",
            "09_unet_step2", "10_similarity", "11_porosity_validation"} <= by_stage  # the log works
    assert {"_stream_segment", "write_threshold_mask", "scan_histogram", "fit_grey_model"} <= {e.get("by") for e in reads}
    assert whole_scan_reads(read_log) == []
    run = runs / "foam89"
    stages = [s.name for s in find_stages(root / "notebooks") if s.scope == "sample"]
    assert sorted(p.stem for p in (run / "notebooks").glob("*.ipynb")) == stages
    summary = read_json(run / "summary.json")
    assert summary["sample"] == "foam89" and 0.85 < summary["reference_porosity"] < 0.95
    assert set(summary["porosity"]) >= {"otsu", "step1", "step2"}
    assert all(0 <= summary["porosity"][m] <= 1 for m in ("otsu", "step1", "step2"))
    assert set(summary["fid"]) >= {"step1", "step2", "encoder"} and set(summary["kid"]) >= {"step1", "step2"}
    assert summary["fid"]["encoder"].startswith("efficientnet-lite0-imagenet-")  # offline: the trained fallback
    assert set(summary["unet_test"]) >= {"step1", "step2"} and "dice" in summary["unet_test"]["step2"]
    assert set(summary["seconds"]) == set(stages)
    for name in ("step1", "step2"):
        model, meta = load_model(run / "models" / f"{name}.pt")
        assert meta["stage"] == name and len(meta["intensity_range"]) == 2
    # the step-2 data sets have step 1's format and load with its loader
    from foamlib.datasets import load_split, verify_dataset

    for fraction in ("0.00", "0.50", "1.00"):
        folder = run / "step2" / "data" / f"fraction_{fraction}"
        verify_dataset(folder)
        images, labels = load_split(folder, "train")
        assert images.dtype == np.uint8 and labels.dtype == bool and images.shape == labels.shape
    for table in ("fid", "porosity", "table2_solid_density", "table3_porosity_from_density"):
        assert (run / "evaluation" / f"{table}.csv").is_file(), table
    for table in ("table1_fid", "porosity", "table2_solid_density", "table3_porosity_from_density"):
        assert (runs / "_study" / f"{table}.csv").is_file(), table
    assert (runs / "_study" / "notebooks" / "12_results.ipynb").is_file()
    capsys.readouterr()

    assert main(args) == 0
    out = capsys.readouterr().out
    assert "study: 0 stages ran" in out and " done in " not in out and "0 failed" in out


def _scan(path):
    import tifffile

    tifffile.imwrite(path, np.random.default_rng(0).integers(0, 255, (8, 8, 8), dtype=np.uint8))
    return path


def _producer_consumer(folder) -> None:
    _notebook(folder / "00_make.ipynb",
              "import os, pathlib\np = pathlib.Path(run_dir, 'models'); p.mkdir(parents=True, exist_ok=True)\n"
              "(p / 'step1.pt').write_bytes(os.urandom(20000))\npathlib.Path(run_dir, 'shared.txt').write_text('00')",
              "run_dir = 'x'\nsample = 's'")
    _notebook(folder / "01_use.ipynb",
              "import pathlib\ndata = pathlib.Path(run_dir, 'models', 'step1.pt').read_bytes()\n"
              "assert len(data) == 20000, f'step1.pt holds {len(data)} bytes'\n"
              "pathlib.Path(run_dir, 'used.txt').write_text(str(data[:8]))\n"
              "pathlib.Path(run_dir, 'shared.txt').write_text('01')  # rewrites a file of the stage before",
              "run_dir = 'x'")


def test_a_damaged_or_missing_artefact_reruns_its_producer_and_the_consumers(tmp_path, capsys):
    folder, runs, specs = tmp_path / "notebooks", tmp_path / "runs", [SampleSpec("s1")]
    folder.mkdir()
    _producer_consumer(folder)
    assert [r.status for r in run_study(specs, profile={}, notebooks_dir=folder, runs_dir=runs, jobs=1)] == ["ran", "ran"]
    record = read_json(runs / "s1" / ".stages" / "00_make.json")
    assert set(record["outputs"]) == {"models/step1.pt"}  # shared.txt belongs to 01_use, which rewrote it last
    assert record["outputs"]["models/step1.pt"]["size"] == 20000 and len(record["outputs"]["models/step1.pt"]["sha256"]) == 64
    assert set(read_json(runs / "s1" / ".stages" / "01_use.json")["outputs"]) == {"used.txt", "shared.txt"}
    # a stage's outputs verify, so an unchanged study skips everything (also the file a later stage rewrote)
    assert [r.status for r in run_study(specs, profile={}, notebooks_dir=folder, runs_dir=runs, jobs=1)] == ["skipped"] * 2

    model = runs / "s1" / "models" / "step1.pt"
    model.write_bytes(model.read_bytes()[:5000])  # truncated
    capsys.readouterr()
    again = run_study(specs, profile={}, notebooks_dir=folder, runs_dir=runs, jobs=1)
    assert [(r.status, r.message) for r in again] == [("ran", "models/step1.pt changed since the stage wrote it"),
                                                      ("ran", "")]  # new step1.pt: the consumer re-runs too
    assert "s1: 00_make re-runs: models/step1.pt changed since the stage wrote it" in capsys.readouterr().out

    data = bytearray(model.read_bytes())
    data[100] ^= 0xFF  # same size, other content: the hash finds it
    model.write_bytes(bytes(data))
    assert [r.status for r in run_study(specs, profile={}, notebooks_dir=folder, runs_dir=runs, jobs=1)] == ["ran", "ran"]

    (runs / "s1" / "used.txt").unlink()
    third = run_study(specs, profile={}, notebooks_dir=folder, runs_dir=runs, jobs=1)
    assert [(r.status, r.message) for r in third] == [("skipped", ""), ("ran", "used.txt is missing")]


def test_one_failed_sample_leaves_the_others_and_the_results_page_running(tmp_path, capfd):
    from foamlib.cli import main

    folder, runs = tmp_path / "notebooks", tmp_path / "runs"
    folder.mkdir()
    _notebook(folder / "00_samples.ipynb",
              "import pathlib\nassert 'bad' not in sample, f'cannot read the scan of {sample}'\n"
              "pathlib.Path(run_dir).mkdir(parents=True, exist_ok=True)\npathlib.Path(run_dir, 'sample.json').write_text('{}')",
              "run_dir = 'x'\nsample = 's'\nscan_path = None")
    _notebook(folder / "01_late.ipynb",
              "from foamlib.runs import update_metrics\nassert sample != 'late', 'step 1 diverged'\n"
              "update_metrics(run_dir, 'step1', {'porosity': 0.5})", "run_dir = 'x'\nsample = 's'")
    _notebook(folder / "02_results.ipynb",
              "import json, pathlib\npathlib.Path(runs_dir, '_study').mkdir(exist_ok=True)\n"
              "pathlib.Path(runs_dir, '_study', 'seen.json').write_text(json.dumps({'samples': samples, 'failures': failures}))",
              "runs_dir = 'x'\nsamples = []\nfailures = {}")
    scans = {name: _scan(tmp_path / f"{name}.tif") for name in ("good", "bad", "late")}
    args = ["study", "run", "--runs-dir", str(runs), "--notebooks", str(folder), "--jobs", "1", "--profile", str(tmp_path / "p.yml")]
    (tmp_path / "p.yml").write_text("{}\n")
    status = main(args + ["--scan", str(scans["bad"]), "--scan", str(scans["late"]), "--scan", str(scans["good"])])
    out, err = capfd.readouterr()
    assert status == 1
    assert "without encryption" not in out + err and "Traceback" not in err
    seen = json.loads((runs / "_study" / "seen.json").read_text())
    assert seen["samples"] == ["late", "good"]  # got past stage 00
    assert set(seen["failures"]) == {"bad", "late"}
    assert seen["failures"]["late"].startswith("01_late: 01_late.ipynb: cell [") and "step 1 diverged" in seen["failures"]["late"]
    assert "_study: 02_results done" in out
    lines = err.splitlines()
    assert lines[-1].startswith("foamlib: fix the cause and run the same command again")
    assert any(line.startswith("foamlib: late: 01_late failed: ") and line.endswith(
        f"executed notebook: {(runs / 'late' / 'failed' / '01_late.ipynb').resolve()}") for line in lines)
    assert read_json(runs / "good" / "summary.json")["status"] == "complete"
    bad = read_json(runs / "bad" / "summary.json")
    assert bad["status"] == "failed" and bad["failure"]["stage"] == "00_samples"
    assert "cannot read the scan of bad" in bad["failure"]["message"]
    table = summary_table(runs)
    assert "| bad (failed at 00_samples) |" in table and "| late (failed at 01_late) |" in table
    assert "| good | – | 50.00 % |" in table
    assert "late failed at 01_late: 01_late.ipynb: cell [" in table
    # the results page's key follows the failures: with the failures unchanged it is skipped
    assert main(args + ["--scan", str(scans["late"]), "--scan", str(scans["good"])]) == 1
    out, _ = capfd.readouterr()
    assert "late: 00_samples skipped" in out and "_study: 02_results done" in out  # 'bad' left the failures
    assert json.loads((runs / "_study" / "seen.json").read_text())["failures"].keys() == {"late"}


def test_no_sample_past_its_first_stage_means_no_study_wide_stage(notebooks, tmp_path, capsys):
    _notebook(notebooks / "00_first.ipynb", "raise ValueError('unreadable scan')", "run_dir = 'x'\nsample = 's'")
    _notebook(notebooks / "02_study.ipynb", "raise RuntimeError('must not run')", "runs_dir = 'x'\nsamples = []")
    results = run_study([SampleSpec("s1")], profile={}, notebooks_dir=notebooks, runs_dir=tmp_path / "runs", jobs=1)
    assert _statuses(results) == [("s1", "00_first", "failed"), ("_study", "02_study", "not run")]
    assert "_study: 02_study not run: no sample got past its first stage" in capsys.readouterr().out


def test_a_raw_scan_runs_with_its_shape_dtype_and_byte_order(tmp_path):
    from foamlib.cli import main

    folder, runs = tmp_path / "notebooks", tmp_path / "runs"
    folder.mkdir()
    _notebook(folder / "00_samples.ipynb",
              "from foamlib.samples import prepare_sample\n"
              "prepare_sample(run_dir, sample=sample, scan_path=scan_path, shape=tuple(scan_shape), dtype=scan_dtype, "
              "byte_order=scan_byte_order, voxel_size_um=voxel_size_um)",
              "run_dir = 'x'\nsample = 's'\nscan_path = None\nvoxel_size_um = None\nscan_shape = None\n"
              "scan_dtype = None\nscan_byte_order = 'little'")
    volume = np.random.default_rng(0).integers(0, 4000, (6, 10, 12)).astype(">u2")
    raw = tmp_path / "foam.raw"
    volume.tofile(raw)
    args = ["study", "run", "--scan", str(raw), "--shape", "6", "10", "12", "--dtype", "uint16", "--byte-order", "big",
            "--voxel-size", "2.5", "--runs-dir", str(runs), "--notebooks", str(folder), "--jobs", "1"]
    (tmp_path / "p.yml").write_text("{}\n")
    assert main(args + ["--profile", str(tmp_path / "p.yml")]) == 0
    record = read_json(runs / "foam" / "sample.json")
    assert record["shape"] == [6, 10, 12] and record["original_dtype"] == "uint16" and record["voxel_size_um"] == 2.5
    assert record["original_range"] == [float(volume.min()), float(volume.max())]


def test_stale_temporaries_of_a_killed_run_are_removed_at_the_next_start(notebooks, tmp_path):
    runs = tmp_path / "runs"
    run_study([SampleSpec("s1")], profile={"a": 1}, notebooks_dir=notebooks, runs_dir=runs, jobs=1)
    stale = [runs / "s1" / "notebooks" / f".00_first.ipynb.{'c' * 32}.tmp.ipynb",
             runs / "s1" / "otsu" / f".metrics.json.{'d' * 32}.tmp.json"]
    for path in stale:
        path.write_text("{}")
    again = run_study([SampleSpec("s1")], profile={"a": 1}, notebooks_dir=notebooks, runs_dir=runs, jobs=1)
    assert [r.status for r in again] == ["skipped", "skipped"]
    assert not any(p.exists() for p in stale)


@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT to the group"])
def test_an_interrupted_study_says_one_line_and_leaves_no_temporary_files(tmp_path, how):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    folder, runs = tmp_path / "notebooks", tmp_path / "runs"
    folder.mkdir()
    _notebook(folder / "00_slow.ipynb",
              "import pathlib, time\npathlib.Path(run_dir, 'started').write_text('')\ntime.sleep(120)",
              "run_dir = 'x'\nsample = 's'\nscan_path = None")
    (tmp_path / "p.yml").write_text("{}\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    code = ("import sys; from foamlib.cli import main; sys.exit(main(sys.argv[1:]))")
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "study", "run", "--scan", str(_scan(tmp_path / "s1.tif")), "--jobs", "1",
         "--runs-dir", str(runs), "--notebooks", str(folder), "--profile", str(tmp_path / "p.yml")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not (runs / "s1" / "started").exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.2)
    if how == "SIGTERM":
        proc.send_signal(signal.SIGTERM)
    else:
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (out, err)
    assert err == "foamlib: interrupted\n", err
    left = [p for p in runs.rglob("*") if ".tmp" in p.name]
    assert not left
