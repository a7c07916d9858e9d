"""The foamlib command line: output, JSON, and one-line errors without tracebacks."""
from __future__ import annotations

import json
import logging
import subprocess
import sys

import numpy as np
import pytest
import tifffile

from foamlib.cli import main


def _two_phase_volume(shape=(24, 48, 48), seed=0):
    """Bright solid slabs in a dark pore space, with a little noise; porosity 0.75."""
    rng = np.random.default_rng(seed)
    volume = np.full(shape, 40.0) + rng.normal(0, 4, shape)
    volume[:, :, ::8] += 160
    volume[:, :, 1::8] += 160
    return volume.clip(0, 255).astype(np.uint8)


def test_analyze_prints_porosity_pore_diameter_and_wall_thickness(tmp_path, capsys):
    path = tmp_path / "slabs.tif"
    tifffile.imwrite(path, _two_phase_volume())
    assert main(["analyze", str(path), "--voxel-size", "2.0"]) == 0
    out = capsys.readouterr().out
    assert "porosity             0.7500 (75.00 %)" in out
    assert "mean wall thickness  4" in out and "um" in out  # 2-voxel slabs of 2 um voxels


def test_analyze_json(tmp_path, capsys):
    path = tmp_path / "slabs.npy"
    np.save(path, _two_phase_volume())
    assert main(["analyze", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["porosity"] == pytest.approx(0.75)
    assert data["threshold_method"] == "otsu" and data["shape"] == [24, 48, 48]
    assert data["mean_wall_thickness_voxels"] == pytest.approx(2.0, abs=0.5)
    assert "mean_wall_thickness_um" not in data  # no voxel size: no number under a micrometre name


def test_analyze_text_without_voxel_size_says_voxels(tmp_path, capsys):
    path = tmp_path / "slabs.npy"
    np.save(path, _two_phase_volume())
    assert main(["analyze", str(path)]) == 0
    out = capsys.readouterr().out
    assert "mean wall thickness  2" in out and "voxels" in out and " um" not in out


def test_analyze_one_slice(tmp_path, capsys):
    path = tmp_path / "slabs.npy"
    np.save(path, _two_phase_volume())
    assert main(["analyze", str(path), "--slice", "3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["shape"] == [48, 48]
    assert main(["analyze", str(path), "--slice", "99"]) == 1
    assert "outside" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "args", "words"),
    [
        (b"this is not a tiff", [], ["broken.tif"]),
        (b"\x00" * 1000, ["--shape", "10", "10", "11", "--dtype", "uint8"], ["broken.raw", "1000"]),
    ],
)
def test_broken_files_give_one_line_on_stderr_and_exit_1(tmp_path, capsys, content, args, words):
    name = "broken.raw" if args else "broken.tif"
    path = tmp_path / name
    path.write_bytes(content)
    assert main(["analyze", str(path), *args]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("foamlib: error: ")
    for word in words:
        assert word in lines[0]


def test_a_truncated_tiff_gives_exactly_one_line(tmp_path, capsys):
    path = tmp_path / "cut.tif"
    tifffile.imwrite(tmp_path / "whole.tif", _two_phase_volume(), imagej=True)
    path.write_bytes((tmp_path / "whole.tif").read_bytes()[:5000])
    assert main(["analyze", str(path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cut.tif" in err[0]


def test_a_single_image_is_analysed_as_a_2d_slice(tmp_path, capsys):
    path = tmp_path / "slice.png"
    import imageio.v3 as iio

    iio.imwrite(path, _two_phase_volume()[0])
    assert main(["analyze", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["shape"] == [48, 48] and data["porosity"] == pytest.approx(0.75)


def test_missing_file_error(tmp_path, capsys):
    assert main(["analyze", str(tmp_path / "nope.tif")]) == 1
    assert "nope.tif" in capsys.readouterr().err


def test_the_installed_command_runs_without_traceback(tmp_path):
    path = tmp_path / "empty.tif"
    path.write_bytes(b"")
    result = subprocess.run(
        [sys.executable, "-m", "foamlib.cli", "analyze", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "empty.tif" in result.stderr


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["analyze"])
    assert info.value.code == 2


@pytest.mark.shared_data
def test_analyze_the_real_cement_scan(shared_data, capsys):
    path = shared_data / "cement" / "cement_128x128x128.tif"
    assert main(["analyze", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    # In mortar the pores are dark air voids; the data README gives an Otsu void fraction of 0.17.
    assert data["porosity"] == pytest.approx(0.17, abs=0.02)
    assert data["n_pores"] > 5


def test_phantom_command_writes_a_scan_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "foam.tif"
    assert main(["phantom", "foam89", "--size", "32", "--out", str(out), "--truth", str(tmp_path / "t.tif")]) == 0
    assert tifffile.imread(out).shape == (32, 32, 32)
    assert main(["phantom", "foam89", "--size", "32", "--out", str(out)]) == 1
    assert "exists" in capsys.readouterr().err


def test_study_without_samples_is_an_error(capsys):
    assert main(["study", "run"]) == 1
    assert "nothing to run" in capsys.readouterr().err


# --------------------------------------------------------------------------- segment


@pytest.fixture
def seg_files(tmp_path, torch_one_thread):
    """A uint8 scan and a tiny saved model."""
    import torch

    from foamlib.training import save_model
    from foamlib.unet import build_unet

    scan_path = tmp_path / "scan.tif"
    tifffile.imwrite(scan_path, _two_phase_volume(shape=(6, 24, 20)))
    model = build_unet({"levels": 2, "convs_per_level": 1, "base_channels": 4}, seed=0)
    return scan_path, save_model(tmp_path / "model.pt", model, metadata={"intensity_range": [0, 255]})


def test_segment_prints_porosity_and_json(seg_files, tmp_path, capsys):
    scan, model = seg_files
    out = tmp_path / "seg.tif"
    assert main(["segment", str(scan), "--model", str(model), "--out", str(out), "--tile", "16", "--overlap", "4"]) == 0
    text = capsys.readouterr().out
    written = tifffile.imread(out)
    assert f"porosity {np.mean(written == 0):.4f}" in text and "6 x 24 x 20" in text
    args = ["segment", str(scan), "--model", str(model), "--out", str(out), "--axes", "xyz", "--overwrite", "--json"]
    assert main(args) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["porosity"] == pytest.approx(np.mean(tifffile.imread(out) == 0))
    assert data["shape"] == [6, 24, 20] and data["axes"] == "xyz"
    assert main(["segment", str(scan), "--model", str(model), "--out", str(out)]) == 1
    assert "exists" in capsys.readouterr().err


def test_segment_label_pore_and_probabilities(seg_files, tmp_path, capsys):
    from foamlib.io import mask_label, read_mask

    scan, model = seg_files
    base = ["segment", str(scan), "--model", str(model), "--tile", "16", "--overlap", "4"]
    assert main([*base, "--out", str(tmp_path / "solid.tif"), "--json"]) == 0
    solid = json.loads(capsys.readouterr().out)
    assert solid["label"] == "solid" and solid["probabilities_path"] is None
    args = [*base, "--out", str(tmp_path / "pore.tif"), "--label", "pore", "--probabilities", str(tmp_path / "p.tif")]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "255 = pore, 0 = solid" in text and "p.tif: probability of solid" in text
    pore = tifffile.imread(tmp_path / "pore.tif")
    # PoreSpy's convention: imread(seg) > 0 is the pore space, and its mean the porosity that foamlib printed
    assert f"porosity {np.mean(pore > 0):.4f}" in text
    assert np.array_equal(pore > 0, tifffile.imread(tmp_path / "solid.tif") == 0)
    assert mask_label(tmp_path / "pore.tif") == "pore"
    assert np.array_equal(read_mask(tmp_path / "pore.tif"), read_mask(tmp_path / "solid.tif"))
    probs = tifffile.imread(tmp_path / "p.tif")
    assert probs.dtype == np.float32 and np.array_equal(probs >= 0.5, read_mask(tmp_path / "solid.tif"))
    with pytest.raises(SystemExit) as info:
        main([*base, "--out", str(tmp_path / "x.tif"), "--label", "air"])
    assert info.value.code == 2 and "invalid choice: 'air'" in capsys.readouterr().err


@pytest.mark.parametrize("content", [b"garbage", None])
def test_segment_with_a_bad_model_file_gives_one_line(seg_files, tmp_path, capsys, content):
    scan, _ = seg_files
    bad = tmp_path / "broken.pt"
    if content is not None:
        bad.write_bytes(content)
    assert main(["segment", str(scan), "--model", str(bad), "--out", str(tmp_path / "o.tif")]) == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert captured.out == "" and len(lines) == 1 and "broken.pt" in lines[0]
    assert lines[0].startswith("foamlib: error: ")


def test_segment_refuses_to_overwrite_the_scan(seg_files, capsys):
    scan, model = seg_files
    before = scan.read_bytes()
    assert main(["segment", str(scan), "--model", str(model), "--out", str(scan), "--overwrite"]) == 1
    assert "input scan" in capsys.readouterr().err
    assert scan.read_bytes() == before


# --------------------------------------------------------------------------- issue 15: silent wrong answers


def test_segment_shows_a_progress_bar_on_stderr(seg_files, tmp_path, capsys):
    scan, model = seg_files
    assert main(["segment", str(scan), "--model", str(model), "--out", str(tmp_path / "s.tif"), "--json"]) == 0
    captured = capsys.readouterr()
    assert "segment: 100%" in captured.err and "batch" in captured.err
    assert json.loads(captured.out)["shape"] == [6, 24, 20]  # stdout holds only the result


def test_segment_takes_an_intensity_range_and_reports_clipping(seg_files, tmp_path, capsys, caplog):
    scan, model = seg_files
    out = tmp_path / "s.tif"
    args = ["segment", str(scan), "--model", str(model), "--out", str(out), "--json", "--intensity-range", "0", "100"]
    with caplog.at_level(logging.WARNING, logger="foamlib"):
        assert main(args) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["intensity_range"] == [0.0, 100.0] and data["clipped_fraction"] == pytest.approx(0.3)  # the slabs, 6 of 20 columns
    assert "30.0 % of the voxels lie outside the given intensity_range (0, 100)" in caplog.text
    assert main([*args[:-2], "100", "0", "--overwrite"]) == 1
    assert "intensity_range must be (low, high)" in capsys.readouterr().err


def test_segment_refuses_a_cyclegan_generator(seg_files, tmp_path, capsys):
    from foamlib.training import save_model
    from foamlib.unet import build_unet

    scan, _ = seg_files
    generator = save_model(tmp_path / "cyclegan_g.pt", build_unet({"levels": 2, "base_channels": 2}, seed=0),
                           metadata={"stage": "cyclegan", "intensity_range": [0, 255]})  # fmt: skip
    out = tmp_path / "o.tif"
    assert main(["segment", str(scan), "--model", str(generator), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cyclegan_g.pt is not a segmentation model" in err[0] and "cyclegan" in err[0]
    assert not out.exists()


def test_segment_refuses_a_tile_below_the_receptive_field(seg_files, tmp_path, capsys):
    scan, model = seg_files  # 2 levels, kernel 3: tiles of at least 6 px
    out = tmp_path / "o.tif"
    assert main(["segment", str(scan), "--model", str(model), "--out", str(out), "--tile", "3", "--overlap", "0"]) == 1
    err = capsys.readouterr().err
    assert "tile 3 is too small" in err and "tile >= 6" in err and not out.exists()


def test_segment_refuses_an_output_inside_the_input_folder(seg_files, tmp_path, capsys):
    scan, model = seg_files
    folder = tmp_path / "slices"
    folder.mkdir()
    for z, image in enumerate(tifffile.imread(scan)):
        tifffile.imwrite(folder / f"z{z}.tif", image)
    before = sorted(p.name for p in folder.iterdir())
    assert main(["segment", str(folder), "--model", str(model), "--out", str(folder / "seg.tif")]) == 1
    assert "inside the input folder" in capsys.readouterr().err
    assert sorted(p.name for p in folder.iterdir()) == before


@pytest.mark.parametrize("spelling", ["same", "dotted", "link"])
def test_phantom_refuses_the_same_file_for_scan_and_truth(tmp_path, capsys, spelling):
    out = tmp_path / "foam.tif"
    truth = {"same": out, "dotted": tmp_path / "sub" / ".." / "foam.tif", "link": tmp_path / "ln.tif"}[spelling]
    (tmp_path / "sub").mkdir()
    if spelling == "link":
        out.write_bytes(b"old")
        truth.symlink_to(out)
    args = ["phantom", "foam89", "--size", "16", "--out", str(out), "--truth", str(truth), "--overwrite"]
    assert main(args) == 1
    assert "same file" in capsys.readouterr().err
    assert not out.exists() or out.read_bytes() == b"old"


def test_phantom_checks_every_output_before_writing_any(tmp_path, capsys):
    out, truth = tmp_path / "foam.tif", tmp_path / "truth.tif"
    truth.write_bytes(b"keep me")
    assert main(["phantom", "foam89", "--size", "16", "--out", str(out), "--truth", str(truth)]) == 1
    assert "truth.tif already exists" in capsys.readouterr().err
    assert not out.exists() and truth.read_bytes() == b"keep me"
    assert main(["phantom", "foam89", "--size", "16", "--out", str(out), "--truth", str(tmp_path / "t.png")]) == 1
    assert not out.exists()
    assert main(["phantom", "foam89", "--size", "16", "--out", str(out), "--truth", str(truth), "--overwrite"]) == 0
    text = capsys.readouterr().out
    assert "foam.tif: demo sample foam89" in text and "truth.tif" in text
    assert tifffile.imread(out).shape == (16, 16, 16) and set(np.unique(tifffile.imread(truth))) <= {0, 255}


# --------------------------------------------------------------------------- issue 12: scans larger than memory


def test_segment_prints_its_plan_and_takes_a_memory_budget(seg_files, tmp_path, capsys, caplog):
    scan, model = seg_files
    out = tmp_path / "s.tif"
    args = ["segment", str(scan), "--model", str(model), "--out", str(out), "--tile", "16", "--overlap", "4"]
    assert main(args + ["--memory", "0.01", "--json"]) == 0
    plan = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO and r.name == "foamlib.segment"]
    assert len(plan) == 1 and "peak memory about" in plan[0] and "budget 10.00 MB" in plan[0]
    assert "s per batch" in plan[0]
    assert json.loads(capsys.readouterr().out)["memory_estimate_bytes"] <= 10**7
    assert main(args + ["--memory", "0.00001", "--overwrite"]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith("foamlib: error: a memory budget of 0.01 MB is too small") and "--memory" in lines[-1]


def test_segment_help_says_how_much_memory_it_needs(capsys):
    with pytest.raises(SystemExit):
        main(["segment", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--memory GB" in text and "slab by slab" in text and "temporary disk space" in text


def test_analyze_above_the_memory_budget_streams_threshold_and_porosity(tmp_path, capsys):
    path = tmp_path / "slabs.npy"
    volume = _two_phase_volume()
    volume[3, 5, 7] = 255  # a few values off the two phases, so Otsu is not trivial
    np.save(path, volume)
    assert main(["analyze", str(path), "--json"]) == 0
    in_memory = json.loads(capsys.readouterr().out)
    budget = str(volume.size * 64 / 1e9 / 2)  # half what the in-memory analysis needs
    assert main(["analyze", str(path), "--json", "--memory", budget]) == 0
    streamed = json.loads(capsys.readouterr().out)
    assert streamed["streamed"] and streamed["threshold"] == in_memory["threshold"]
    assert streamed["porosity"] == in_memory["porosity"] and streamed["total_voxels"] == volume.size
    assert streamed["crop_structure"] is None and "--crop" in streamed["note"] and "--memory" in streamed["note"]
    assert main(["analyze", str(path), "--memory", budget]) == 0
    text = capsys.readouterr().out
    assert "porosity             0.7500" in text and "not computed" in text


def test_analyze_crop_measures_structure_on_a_sub_volume(tmp_path, capsys):
    path = tmp_path / "slabs.npy"
    np.save(path, _two_phase_volume())
    assert main(["analyze", str(path), "--json", "--crop", "0", "12", "0", "24", "0", "48"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["crop"] == [0, 12, 0, 24, 0, 48] and data["porosity"] == pytest.approx(0.75)
    assert data["crop_structure"]["mean_wall_thickness_voxels"] == pytest.approx(2.0, abs=0.5)
    assert main(["analyze", str(path), "--crop", "0", "12", "0", "24", "0", "48", "--voxel-size", "2"]) == 0
    assert "mean wall thickness  4" in capsys.readouterr().out
    assert main(["analyze", str(path), "--crop", "0", "30", "0", "24", "0", "48"]) == 1
    assert "--crop z: [0, 30) must lie within the scan's 24 voxels" in capsys.readouterr().err
    assert main(["analyze", str(path), "--crop", "0", "12", "0", "24", "0", "48", "--memory", "0.0001"]) == 1
    assert "crop less or raise --memory" in capsys.readouterr().err
    assert main(["analyze", str(path), "--method", "li", "--memory", "0.0001"]) == 1
    assert "'li' threshold needs the scan in memory" in capsys.readouterr().err
