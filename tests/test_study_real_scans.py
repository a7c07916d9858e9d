"""The whole study on real, non-cubic scans from ../shared/data (issue: scans of any shape).

Three scans that no part of foamlib made, none of them a cube, run through every stage on the smoke
profile (two at a time); a raw file through the runner is test_study's, and the whole sand packing
(100 x 200 x 200 raw) through every stage is the README's demo run (benchmarks/bench_study_scan.py):

- a 60 x 200 x 90 crop of the sand packing (one short axis);
- a non-cubic crop of the bone scan (128 x 112 x 80);
- a 32 x 64 x 60 slab of the bone scan, whose pores (mean chord of 14.5 voxels, so cells of about
  30) are as large as the slab is thick: only 7 lie wholly inside it, and the generator is fitted to
  the pore chords instead of the pore diameters.

The smoke profile cuts 32-pixel patches, so 32 voxels is the shortest axis it accepts (the runner
refuses a thinner scan before any stage runs).
"""
import numpy as np
import pytest
import tifffile

from foamlib.cli import main
from foamlib.runs import read_json

pytestmark = [pytest.mark.slow, pytest.mark.shared_data]


def test_smoke_study_runs_every_stage_on_non_cubic_real_scans(shared_data, tmp_path, capsys):
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    sand_raw = shared_data / "sand" / "sand_200x200x100_uint8.raw"
    sand = np.fromfile(sand_raw, dtype=np.uint8).reshape(100, 200, 200)
    np.save(tmp_path / "sand60.npy", sand[:60, :, :90])
    bone = tifffile.imread(shared_data / "bone" / "bone_128x128x128.tif")
    tifffile.imwrite(tmp_path / "bone_crop.tif", bone[:, 8:120, 20:100])
    tifffile.imwrite(tmp_path / "bone_slab.tif", bone[80:112, 30:94, 30:90])
    runs = tmp_path / "runs"
    args = ["study", "run", *(a for s in ("sand60.npy", "bone_crop.tif", "bone_slab.tif") for a in ("--scan", str(tmp_path / s))),
            "--notebooks", str(root / "notebooks"), "--profile", "smoke", "--runs-dir", str(runs), "--jobs", "2"]
    status = main(args)
    out = capsys.readouterr().out
    shapes = {"sand60": (60, 200, 90), "bone_crop": (128, 112, 80), "bone_slab": (32, 64, 60)}
    for name, shape in shapes.items():
        summary = read_json(runs / name / "summary.json")
        assert tuple(read_json(runs / name / "sample.json")["shape"]) == shape
        assert summary["status"] != "failed", (name, summary.get("failure"), out)
        assert {"otsu", "step1", "step2"} <= set(summary["porosity"]), (name, out)
        # a U-Net that marks the scan one phase is refused (check_learnt, check_two_phases), never passed on
        assert all(0.01 < summary["porosity"][m] < 0.99 for m in ("otsu", "step1", "step2")), (name, summary)
        test = read_json(runs / name / "step1_unet" / "metrics.json")["test"]
        s = test["solid_fraction"]
        assert test["mean_dice"] > max(s / (1 + s), (1 - s) / (2 - s)) + 0.05, (name, test)  # beats one phase everywhere
    assert status == 0, out
    fitted = read_json(runs / "bone_slab" / "step1_foams" / "metrics.json")
    assert fitted["size_target"] == "chord"  # fewer than 10 whole pores: the cell size comes from the chords
    assert (runs / "_study" / "porosity.csv").is_file()
