"""What the study runner checks before it starts any kernel (fast: no notebook is executed)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from fake_notebooks import write_notebook

from foamlib.cli import main
from foamlib.runs import RunFolderBusy, run_lock
from foamlib.study import (
    SampleSpec, check_profile, check_sample_name, check_study, find_stages, load_profile, profile_names,
    resolved_parameters, run_study,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def notebooks(tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    write_notebook(folder / "00_first.ipynb", "run_dir = 'x'\nsample = 's'\nscan_path = None\nsize = 64\nepochs = 2\n"
              "rate = 0.5\nname = 'z'\nsearch_space = {'levels': [2, 3]}\nflag = False\nanything = None")
    write_notebook(folder / "01_second.ipynb", "run_dir = 'x'\ngan_patch_size = 32\ncyclegan_crop = 16\ncyclegan_levels = 3")
    return folder


def _tiff(path, shape, dtype=np.uint8, **kwargs):
    data = np.random.default_rng(0).integers(0, 200, shape).astype(dtype)
    tifffile.imwrite(path, data, **kwargs)
    return path


@pytest.mark.parametrize(
    ("profile", "error", "match"),
    [
        ({"epoch": 3}, ValueError, r"unknown key 'epoch' in profile given; did you mean 'epochs'\?"),
        ({"zzz": 3}, ValueError, "unknown key 'zzz'.*no notebook declares it"),
        ({"epochs": "3"}, TypeError, r"epochs must be of type int \(its default in 00_first.ipynb is 2\), got str '3'"),
        ({"epochs": 2.5}, TypeError, "epochs"),
        ({"flag": 1}, TypeError, "flag"),
        ({"search_space": [2, 3]}, TypeError, "search_space"),
        ({"sample": "x"}, ValueError, "sets 'sample', which the runner sets"),
    ],
)
def test_profile_keys_and_types_are_checked_against_the_notebooks(notebooks, profile, error, match):
    with pytest.raises(error, match=match):
        check_profile(profile, find_stages(notebooks))


def test_profile_values_of_the_right_types_pass(notebooks):
    check_profile({"profile": "p", "epochs": 3, "rate": 1, "name": "y", "anything": [1], "flag": True,
                   "search_space": {"levels": [4]}}, find_stages(notebooks))


def test_shipped_profiles_use_only_keys_the_project_notebooks_declare():
    stages = find_stages(ROOT / "notebooks")
    for name in profile_names():
        check_profile(load_profile(name), stages)


@pytest.mark.parametrize("name", ["../x", "a/b", "..", ".", "_study", "", ".hidden", "a\\b", "tab\there"])
def test_sample_names_that_cannot_name_a_run_folder_are_refused(name):
    with pytest.raises(ValueError, match="cannot name a run folder"):
        check_sample_name(name)
    with pytest.raises(ValueError, match="cannot name a run folder"):
        SampleSpec(name)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"reference_porosity": 1.5}, "between 0 and 1.*1.5"),
        ({"reference_porosity": -0.1}, "between 0 and 1.*-0.1"),
        ({"voxel_size_um": 0.0}, "positive.*0.0"),
        ({"voxel_size_um": float("nan")}, "positive"),
        ({"byte_order": "middle"}, "byte order"),
        ({"shape": (4, 4)}, "three positive integers"),
    ],
)
def test_sample_values_out_of_range_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SampleSpec("mine", scan_path="mine.raw", **kwargs)


def test_bad_scans_and_jobs_fail_before_any_run_folder_exists(notebooks, tmp_path):
    runs = tmp_path / "runs"
    good = _tiff(tmp_path / "good.tif", (40, 40, 40))
    rgb = _tiff(tmp_path / "rgb.tif", (40, 40, 40, 3), photometric="rgb")
    truncated = tmp_path / "cut.tif"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    small = _tiff(tmp_path / "small.tif", (40, 20, 40))
    cases = [
        (dict(samples=[SampleSpec("a", str(rgb))]), "rgb.tif"),
        (dict(samples=[SampleSpec("a", str(truncated))]), "cut.tif"),
        (dict(samples=[SampleSpec("a", str(tmp_path / "none.tif"))]), "none.tif"),
        (dict(samples=[SampleSpec("a", str(small))]), r"small.tif is 40 x 20 x 40 voxels, but gan_patch_size = 32 "
                                                        r"\(01_second, profile given\) needs every side to be at least 32"),
        (dict(samples=[SampleSpec("a", str(good))], jobs=0), "jobs must be at least 1"),
        (dict(samples=[SampleSpec("a", str(good)), SampleSpec("a", str(good))]), "unique"),
        (dict(samples=[SampleSpec("a", str(good))], profile={"cyclegan_crop": 64}), "cyclegan_crop = 64.*larger than"),
        (dict(samples=[SampleSpec("a", str(good))], profile={"cyclegan_crop": 4}), "more than 4 for a generator"),
        (dict(samples=[SampleSpec("a")], profile={"size": 16}), "demo sample a \\(size = 16\\) is 16 x 16 x 16"),
        (dict(samples=[SampleSpec("a", str(good))], profile={"search_space": {"levels": [3, 7]}}),
         "search_space = .* needs every side to be at least 64: a 7-level U-Net"),
    ]
    for kwargs, match in cases:
        kwargs.setdefault("profile", {})
        with pytest.raises(ValueError, match=match):
            run_study(notebooks_dir=notebooks, runs_dir=runs, **kwargs)
        assert not runs.exists(), match


def test_the_project_notebooks_resolve_parameters_from_defaults_and_profile(tmp_path):
    stages = find_stages(ROOT / "notebooks")
    resolved = resolved_parameters(stages, load_profile("demo"))
    assert resolved["gan_patch_size"] == (64, "06_gan") and resolved["cyclegan_crop"][0] == 64
    scan = _tiff(tmp_path / "thin.tif", (48, 100, 100))
    with pytest.raises(ValueError, match=r"thin.tif is 48 x 100 x 100 voxels, but gan_patch_size = 64 \(06_gan, profile demo\)"):
        check_study([SampleSpec("thin", str(scan))], load_profile("demo"), stages)
    check_study([SampleSpec("thin", str(scan))], load_profile("smoke"), stages)  # smoke's patches are 32
    with pytest.raises(ValueError, match=r"wall_fraction = 0.3 \(07_watershed_walls\) must be one of sweep_fractions"):
        check_study([SampleSpec("thin", str(scan))], {**load_profile("smoke"), "wall_fraction": 0.3}, stages)


def test_a_run_folder_in_use_is_refused_naming_its_holder(notebooks, tmp_path):
    runs = tmp_path / "runs"
    with run_lock(runs / "s1", what="foamlib study run"):
        with pytest.raises(RunFolderBusy, match="s1 is in use by pid"):
            run_study([SampleSpec("s1")], profile={}, notebooks_dir=notebooks, runs_dir=runs, jobs=1)
    assert not (runs / "s1" / "notebooks").exists()


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--samples", "foam99"], "unknown demo sample 'foam99'"),
        (["--samples", "foam89", "--jobs", "0"], "--jobs must be at least 1, got 0"),
        (["--scan", "{scan}", "--name", "../x"], "sample name '../x' cannot name a run folder"),
        (["--scan", "{scan}", "--reference-porosity", "1.5"], "between 0 and 1"),
        (["--scan", "{scan}", "--reference-porosity", "-0.1"], "between 0 and 1"),
        (["--scan", "{scan}", "--voxel-size", "0"], "voxel size of scan must be a positive number"),
        (["--scan", "{rgb}"], "rgb.tif.*colour|rgb.tif.*samples per pixel"),
        (["--samples", "foam89", "--reference-porosity", "0.9"], "--reference-porosity describes --scan"),
        (["--samples", "foam89", "--profile", "{profile}"], "unknown key 'epoch' in profile bad; did you mean 'epochs'"),
        (["--samples", "foam89", "--set", "generator=cubes"],
         "profile demo: generator must be one of 'closed-cell', 'open-cell', 'spheres', 'fibres', got 'cubes'"),
        (["--samples", "foam89", "--profile", "smoke", "--set", "generatr=spheres"],
         "unknown key 'generatr' in profile smoke; did you mean 'generator'"),
        (["--samples", "foam89", "--set", "epochs=two"], "epochs must be of type int"),
        (["--samples", "foam89", "--set", "generator"], "--set needs KEY=VALUE"),
    ],
)
def test_study_run_reports_bad_input_in_one_stderr_line_before_any_kernel(tmp_path, capfd, args, match):
    import re

    scan = _tiff(tmp_path / "scan.tif", (64, 64, 64))
    rgb = _tiff(tmp_path / "rgb.tif", (64, 64, 64, 3), photometric="rgb")
    (tmp_path / "bad.yml").write_text("epoch: 3\n")
    args = [a.format(scan=scan, rgb=rgb, profile=tmp_path / "bad.yml") for a in args]
    runs = tmp_path / "runs"
    status = main(["study", "run", "--runs-dir", str(runs), "--notebooks", str(ROOT / "notebooks"), *args])
    out, err = capfd.readouterr()
    assert status == 1 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith("foamlib: error: "), err
    assert re.search(match, err), err
    assert not runs.exists()


def test_study_run_refuses_jobs_0_in_the_api_too(notebooks, tmp_path):
    with pytest.raises(ValueError, match="jobs"):
        check_study([SampleSpec("s1")], {}, find_stages(notebooks), jobs=0)


def test_a_raw_scan_needs_notebooks_that_take_its_layout(notebooks, tmp_path):
    raw = tmp_path / "foam.raw"
    np.zeros((8, 8, 8), np.uint8).tofile(raw)
    spec = SampleSpec("foam", str(raw), shape=(8, 8, 8), dtype="uint8")
    with pytest.raises(ValueError, match="sample foam needs the parameter.*scan_shape, scan_dtype, which no notebook"):
        check_study([spec], {}, find_stages(notebooks))


def test_study_run_on_a_sample_another_run_holds_is_refused_in_one_line(tmp_path, capfd):
    import os

    runs = tmp_path / "runs"
    with run_lock(runs / "foam89", what="foamlib study run"):
        status = main(["study", "run", "--samples", "foam89", "--runs-dir", str(runs),
                       "--notebooks", str(ROOT / "notebooks")])
    out, err = capfd.readouterr()
    assert status == 1 and out == "" and len(err.splitlines()) == 1
    assert f"foam89 is in use by pid {os.getpid()} on " in err and "foamlib study run" in err
    assert not (runs / "foam89" / "notebooks").exists()


@pytest.mark.parametrize("cpus", [0, -1, 1.5, True])
def test_run_study_refuses_a_bad_number_of_cores_before_any_kernel_starts(tmp_path, cpus):
    from foamlib.study import SampleSpec, run_study

    with pytest.raises((ValueError, TypeError), match="cpus"):
        run_study([SampleSpec("foam86")], profile="smoke", notebooks_dir=ROOT / "notebooks",
                  runs_dir=tmp_path / "runs", cpus=cpus)
    assert not (tmp_path / "runs").exists()
