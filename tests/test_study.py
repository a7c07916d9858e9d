"""The study runner, on tiny notebooks of its own (the real stages are tested by nbval)."""
from __future__ import annotations

import json

import nbformat
import numpy as np
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from foamlib.runs import read_json
from foamlib.device import cpu_threads
from foamlib.study import (
    SampleSpec, find_stages, load_profile, profile_names, run_sample, run_study, summary_table, threads_per_sample,
)

pytestmark = pytest.mark.slow  # each stage starts a Jupyter kernel (about a second)


def _notebook(path, body: str, params: str) -> None:
    cell = new_code_cell(params)
    cell.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[new_markdown_cell("# Title"), cell, new_code_cell(body)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.fixture
def notebooks(tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    _notebook(
        folder / "00_first.ipynb",
        "from foamlib.runs import update_metrics\nupdate_metrics(run_dir, 'first', {'porosity': a / 10})\n"
        "update_metrics(run_dir, 'first_unet', {'test': {'dice': 0.9}})\n"
        "update_metrics(run_dir, 'similarity', {'fid': {'first': 3.0, 'encoder': 'random'}, 'kid': {'first': 0.1}})",
        "run_dir = 'x'\nsample = 's'\na = 1",
    )
    _notebook(
        folder / "01_second.ipynb",
        "import json, pathlib\nv = json.loads(pathlib.Path(run_dir, 'first', 'metrics.json').read_text())\n"
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
    assert summary["porosity"] == {"first": 0.2} and set(summary["seconds"]) == {"00_first", "01_second"}
    assert summary["unet_test"] == {"first": {"dice": 0.9}}
    assert summary["fid"] == {"first": 3.0, "encoder": "random"} and summary["kid"] == {"first": 0.1}

    table = summary_table(runs)
    assert table.splitlines()[2] == "| s1 | – | 20.00 % |"

    again = run_study(specs, profile={"a": 2, "b": 1}, notebooks_dir=notebooks, runs_dir=runs, jobs=1)
    assert [r.status for r in again] == ["skipped", "skipped"]
    assert "s1: 00_first skipped" in capsys.readouterr().out


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
              "import os, pathlib\npathlib.Path(run_dir, 'threads.txt').write_text(os.environ.get('OMP_NUM_THREADS', 'unset'))",
              "run_dir = 'x'")
    runs = tmp_path / "runs"
    results = run_study([SampleSpec("s1"), SampleSpec("s2")], profile={"a": 1, "b": 1}, notebooks_dir=notebooks,
                        runs_dir=runs, jobs=2)
    assert {r.status for r in results} == {"ran"} and len(results) == 6
    for name in ("s1", "s2"):
        threads = (runs / name / "threads.txt").read_text()
        assert threads.isdigit() and 1 <= int(threads) <= max(1, cpu_threads()), threads


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
    retry = run_study([SampleSpec("s1")], profile={"b": 1}, notebooks_dir=notebooks, runs_dir=runs, jobs=1)
    assert [r.status for r in retry] == ["skipped", "ran"]


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
        declared = {"sample", "run_dir", "profile"} if stage.scope == "sample" else {"runs_dir", "samples", "profile"}
        assert declared <= set(stage.parameters), stage.name
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
        "values = [json.loads(pathlib.Path(runs_dir, s, 'first', 'metrics.json').read_text())['porosity'] for s in samples]\n"
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


def test_summary_table_without_runs_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no run folder"):
        summary_table(tmp_path)


def test_smoke_study_of_one_sample_fills_its_run_folder_and_a_rerun_skips_everything(tmp_path, capsys):
    """The real notebooks, end to end, through the CLI (several minutes: every stage starts a kernel)."""
    from pathlib import Path

    from foamlib.cli import main
    from foamlib.training import load_model

    root = Path(__file__).resolve().parents[1]
    runs = tmp_path / "runs"
    args = ["study", "run", "--samples", "foam89", "--profile", "smoke", "--runs-dir", str(runs),
            "--notebooks", str(root / "notebooks")]
    assert main(args) == 0
    run = runs / "foam89"
    stages = [s.name for s in find_stages(root / "notebooks") if s.scope == "sample"]
    assert sorted(p.stem for p in (run / "notebooks").glob("*.ipynb")) == stages
    summary = read_json(run / "summary.json")
    assert summary["sample"] == "foam89" and 0.85 < summary["reference_porosity"] < 0.95
    assert set(summary["porosity"]) >= {"otsu", "step1", "step2"}
    assert all(0 <= summary["porosity"][m] <= 1 for m in ("otsu", "step1", "step2"))
    assert set(summary["fid"]) >= {"step1", "step2", "encoder"} and set(summary["kid"]) >= {"step1", "step2"}
    assert summary["fid"]["encoder"].startswith("resnet50-")
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
