"""`study plan` / `study run --dry-run`, the cost model, `study prepare`, and what the runner reports while it runs."""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from fake_notebooks import write_notebook

from foamlib import costs
from foamlib.cli import main
from foamlib.runs import read_json
from foamlib.study import (
    SampleSpec, find_stages, format_plan, load_profile, plan_study, prepare_notebooks, run_study,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def notebooks(tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    write_notebook(folder / "00_first.ipynb", "run_dir = 'x'\nsample = 's'\nn = 2",
                   "import pathlib, time\nfrom foamlib.progress import progress_bar\n"
                   "for i in progress_bar(range(n), desc='epoch', unit='step', disable=True):\n    time.sleep(1)\n"
                   "pathlib.Path(run_dir, 'first.txt').write_text(str(n))")
    write_notebook(folder / "01_second.ipynb", "run_dir = 'x'\nb = 0",
                   "import pathlib\npathlib.Path(run_dir, 'second.txt').write_text(pathlib.Path(run_dir, 'first.txt')"
                   ".read_text() + str(b))")
    return folder


def _actions(plans):
    return [(p.sample, p.stage, p.action, p.reason) for p in plans]


# --------------------------------------------------------------------------- the cost model


@pytest.mark.parametrize("stage", [s.name for s in find_stages(ROOT / "notebooks")])
def test_every_project_stage_has_a_cost_that_grows_from_smoke_to_demo_to_paper(stage):
    by_profile = {}
    for name in ("smoke", "demo", "paper"):
        values = load_profile(name)
        n = values["size"]
        by_profile[name] = costs.estimate(stage, values, scan_shape=(n, n, n), samples=3)
        assert by_profile[name] is not None, f"no cost model for {stage}"
        assert by_profile[name].seconds > 0 and by_profile[name].peak_memory_bytes > 100e6
    assert by_profile["smoke"].seconds <= by_profile["demo"].seconds <= by_profile["paper"].seconds
    assert by_profile["smoke"].peak_memory_bytes <= by_profile["demo"].peak_memory_bytes


def test_a_larger_scan_costs_more_where_the_scan_drives_the_cost():
    values = load_profile("demo")
    small = costs.estimate("05_segment_step1", values, scan_shape=(128, 128, 128))
    large = costs.estimate("05_segment_step1", values, scan_shape=(1000, 1000, 1000))
    assert large.seconds > 100 * small.seconds
    # the segmentation streams slabs within the profile's budget: its memory stops growing with the scan
    larger = costs.estimate("05_segment_step1", values, scan_shape=(2000, 2000, 2000))
    assert small.peak_memory_bytes < large.peak_memory_bytes == larger.peak_memory_bytes
    assert large.peak_memory_bytes < small.peak_memory_bytes + values["segment_memory_gb"] * 1e9
    assert larger.seconds > 7 * large.seconds
    # and the statistics of stage 01 use a bounded sample (foamlib.samples.SAMPLE_VOXELS)
    otsu = [costs.estimate("01_otsu_baseline", values, scan_shape=(n,) * 3).peak_memory_bytes for n in (512, 2000)]
    assert otsu[0] == otsu[1] < 2e9
    assert costs.estimate("99_mine", values, scan_shape=(8, 8, 8)) is None


def test_the_demo_measurements_are_reproduced_by_the_fit():
    values = load_profile("demo")
    for m in (m for m in costs.MEASUREMENTS if m.profile == "demo" and m.stage == "06_gan"):
        fit = costs.estimate(m.stage, values, scan_shape=(values["size"],) * 3, samples=m.samples)
        assert fit.seconds == pytest.approx(m.seconds, rel=0.05)


# --------------------------------------------------------------------------- the plan, without a kernel


def test_a_fresh_study_plans_every_stage_with_estimates_and_writes_nothing(tmp_path):
    runs = tmp_path / "runs"
    plans = plan_study([SampleSpec("foam89")], profile="smoke", notebooks_dir=ROOT / "notebooks", runs_dir=runs)
    assert [p.action for p in plans] == ["run"] * 13
    assert plans[0].reason == "not run before" and plans[1].reason == "an earlier stage runs"
    assert plans[-1].sample == "_study" and all(p.cost is not None and p.cost.basis == "model" for p in plans)
    text = format_plan(plans)
    lines = text.splitlines()
    assert lines[0] == "foam89" and lines[1].split()[:2] == ["00_samples", "run"] and "(model)" in lines[1]
    assert lines[-1].startswith("study: about") and "peak memory" in lines[-1]
    assert not runs.exists()


def test_until_plans_the_stages_up_to_the_one_named_and_checks_the_profile_against_all(tmp_path, capsys):
    from foamlib.study import find_stages, select_stages

    stages = find_stages(ROOT / "notebooks")
    assert [s.name for s in select_stages(stages, "05")] == [s.name for s in stages[:6]]
    assert select_stages(stages, 5) == select_stages(stages, stages[5].name) == stages[:6]
    assert select_stages(stages, None) == stages
    for bad in ("99", "5x", "step1", True):
        with pytest.raises(ValueError, match=r"until: no stage .*00_samples, 01_"):
            select_stages(stages, bad)
    runs = tmp_path / "runs"
    plans = plan_study([SampleSpec("foam89")], profile="smoke", notebooks_dir=ROOT / "notebooks", runs_dir=runs,
                       until="02")
    assert [p.stage for p in plans] == [s.name for s in stages[:3]] and {p.sample for p in plans} == {"foam89"}
    # a setting that only a later stage declares is still a known key, and a misspelt one still an error
    assert main(["study", "plan", "--samples", "foam89", "--profile", "smoke", "--until", "01",
                 "--set", "cyclegan_steps=3", "--notebooks", str(ROOT / "notebooks"), "--runs-dir", str(runs)]) == 0
    assert "02_" not in capsys.readouterr().out
    assert main(["study", "plan", "--samples", "foam89", "--profile", "smoke", "--until", "01",
                 "--set", "cyclegan_stepz=3", "--notebooks", str(ROOT / "notebooks"), "--runs-dir", str(runs)]) == 1
    assert "cyclegan_stepz" in capsys.readouterr().err
    assert main(["study", "plan", "--samples", "foam89", "--until", "42", "--notebooks", str(ROOT / "notebooks"),
                 "--runs-dir", str(runs)]) == 1
    assert "until: no stage '42'" in capsys.readouterr().err
    assert not runs.exists()


def test_dry_run_prints_the_plan_and_runs_nothing(tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(["study", "run", "--dry-run", "--samples", "foam89", "--profile", "demo",
                 "--notebooks", str(ROOT / "notebooks"), "--runs-dir", str(runs)]) == 0
    out = capsys.readouterr().out
    assert "plan of `foamlib study run` on the demo profile" in out
    assert "04_unet_step1" in out and "(model)" in out and "study: about" in out
    assert not runs.exists()
    assert main(["study", "plan", "--samples", "foam89", "--profile", "nope", "--notebooks",
                 str(ROOT / "notebooks"), "--runs-dir", str(runs)]) == 1
    assert "unknown profile 'nope'" in capsys.readouterr().err


def test_a_stage_without_a_cost_model_is_planned_without_an_estimate(notebooks, tmp_path):
    plans = plan_study([SampleSpec("s1")], profile={"n": 1}, notebooks_dir=notebooks, runs_dir=tmp_path / "runs")
    assert _actions(plans) == [("s1", "00_first", "run", "not run before"),
                               ("s1", "01_second", "run", "an earlier stage runs")]
    assert all(p.cost is None for p in plans)
    assert "no estimate" in format_plan(plans)


@pytest.mark.slow
def test_the_plan_follows_the_runners_checks_and_uses_the_samples_own_record(notebooks, tmp_path, capfd):
    runs, specs = tmp_path / "runs", [SampleSpec("s1")]
    run_study(specs, profile={"n": 2}, notebooks_dir=notebooks, runs_dir=runs, jobs=1, progress_every=0.5)
    out, err = capfd.readouterr()
    # the stage's progress, while it ran, from its hidden bar
    assert "s1: 00_first" in out and "epoch" in out and "step" in out
    # the kernel's TCP warning went to its log, not to the terminal
    assert "without encryption" not in out + err
    assert "without encryption" in (runs / "s1" / ".stages" / "00_first.kernel.log").read_text()
    record = read_json(runs / "s1" / ".stages" / "00_first.json")
    assert record["seconds"] > 2 and record["peak_memory_bytes"] > 30e6 and record["cpu_seconds"] > 0
    assert record["parameters"] == {"run_dir": str((runs / "s1").resolve()), "sample": "s1", "n": 2}

    plans = plan_study(specs, profile={"n": 2}, notebooks_dir=notebooks, runs_dir=runs)
    assert [p.action for p in plans] == ["skip", "skip"]
    (runs / "s1" / "first.txt").unlink()
    plans = plan_study(specs, profile={"n": 2}, notebooks_dir=notebooks, runs_dir=runs)
    assert _actions(plans) == [("s1", "00_first", "run", "first.txt is missing"),
                               ("s1", "01_second", "run", "an earlier stage runs")]
    assert plans[0].cost.basis == "recorded" and plans[0].cost.seconds == record["seconds"]
    assert not (runs / "s1" / "first.txt").exists()  # the plan wrote nothing
    plans = plan_study(specs, profile={"n": 3}, notebooks_dir=notebooks, runs_dir=runs)
    assert plans[0].reason == "its parameters changed (n: 2 -> 3)" and plans[0].cost is None


# --------------------------------------------------------------------------- notebooks for JupyterLab


def test_prepare_writes_parameterised_unexecuted_notebooks_and_keeps_edited_ones(tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(["study", "prepare", "--samples", "foam86", "--profile", "demo",
                 "--notebooks", str(ROOT / "notebooks"), "--runs-dir", str(runs)]) == 0
    printed = capsys.readouterr().out.splitlines()
    paths = sorted((runs / "foam86" / "lab").glob("*.ipynb"))
    assert len(paths) == 12 and [str(p) for p in paths] == printed[:12]
    assert (runs / "_study" / "lab" / "12_results.ipynb").is_file()
    nb = nbformat.read(runs / "foam86" / "lab" / "06_gan.ipynb", as_version=4)
    tags = [c.metadata.get("tags", []) for c in nb.cells]
    at = tags.index(["injected-parameters"])
    assert tags[at - 1] == ["parameters"]
    injected = nb.cells[at].source
    assert 'sample = "foam86"' in injected and 'run_dir = ".."' in injected and "gan_steps = 2000" in injected
    assert all(c.get("outputs", []) == [] and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code")
    study = nbformat.read(runs / "_study" / "lab" / "12_results.ipynb", as_version=4)
    assert 'runs_dir = "../.."' in study.cells[[c.metadata.get("tags") for c in study.cells].index(
        ["injected-parameters"])].source

    before = paths[0].stat().st_mtime_ns
    prepare_notebooks([SampleSpec("foam86")], profile="demo", notebooks_dir=ROOT / "notebooks", runs_dir=runs)
    assert paths[0].stat().st_mtime_ns == before  # the same notebook is not rewritten
    edited = runs / "foam86" / "lab" / "04_unet_step1.ipynb"
    edited.write_text(edited.read_text().replace("epochs = 12", "epochs = 99"))
    with pytest.raises(FileExistsError, match="04_unet_step1.ipynb.*--overwrite"):
        prepare_notebooks([SampleSpec("foam86")], profile="demo", notebooks_dir=ROOT / "notebooks", runs_dir=runs)
    assert "epochs = 99" in edited.read_text()
    prepare_notebooks([SampleSpec("foam86")], profile="demo", notebooks_dir=ROOT / "notebooks", runs_dir=runs,
                      overwrite=True)
    assert "epochs = 12" in edited.read_text()


def test_set_changes_one_setting_of_the_profile_for_the_prepared_notebooks(tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(["study", "prepare", "--samples", "foam86", "--profile", "smoke", "--set", "generator=spheres",
                 "--set", "spread=0.2", "--notebooks", str(ROOT / "notebooks"), "--runs-dir", str(runs)]) == 0
    nb = nbformat.read(runs / "foam86" / "lab" / "02_foam_generation.ipynb", as_version=4)
    injected = next(c.source for c in nb.cells if "injected-parameters" in c.metadata.get("tags", []))
    assert 'generator = "spheres"' in injected and "spread = 0.2" in injected and "n_foams = 3" in injected
    assert "smoke profile" in capsys.readouterr().out


@pytest.mark.slow
def test_a_prepared_notebook_runs_in_its_own_folder_as_jupyterlab_runs_it(notebooks, tmp_path):
    from nbclient import NotebookClient

    runs = tmp_path / "runs"
    paths = prepare_notebooks([SampleSpec("s1")], profile={"n": 1, "b": 7}, notebooks_dir=notebooks, runs_dir=runs)
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        NotebookClient(nb, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    assert (runs / "s1" / "second.txt").read_text() == "17"  # run_dir ".." from runs/s1/lab is runs/s1
    assert not (notebooks / "x").exists()


def test_the_plan_for_a_scan_of_ones_own_is_estimated_for_its_shape(tmp_path):
    import numpy as np
    import tifffile

    scan = tmp_path / "my_foam.tif"
    tifffile.imwrite(scan, np.random.default_rng(0).integers(0, 200, (40, 50, 64), dtype=np.uint8))
    spec = SampleSpec("my_foam", scan_path=str(scan))
    plans = plan_study([spec], profile="smoke", notebooks_dir=ROOT / "notebooks", runs_dir=tmp_path / "runs")
    segment = next(p for p in plans if p.stage == "05_segment_step1")
    expected = costs.estimate("05_segment_step1", load_profile("smoke"), scan_shape=(40, 50, 64))
    assert segment.cost == expected
    assert expected != costs.estimate("05_segment_step1", load_profile("smoke"), scan_shape=(64, 64, 64))
