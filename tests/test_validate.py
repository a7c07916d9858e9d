"""The independent validation suite's runner (benchmarks/validate.py): scores, files, one smoke run."""
import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from project_scripts import load_script

from foamlib.independent import CaseSpec

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def validate():
    spec = importlib.util.spec_from_file_location("validate", ROOT / "benchmarks" / "validate.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["validate"] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("validate", None)


def test_score_on_known_inputs(validate):
    truth = np.zeros((10, 10, 21), bool)
    truth[:, :, 10] = True  # two pores of 1000 voxels
    broken = truth.copy()
    broken[4:6, 4:6, 10] = False  # a hole in the wall: one pore, porosity up by 4 voxels
    s = validate.score(broken, truth, 1 - truth.mean())
    assert s["porosity"] == pytest.approx(1 - 96 / 2100)
    assert s["error_pp"] == pytest.approx(100 * 4 / 2100)
    assert s["dice_solid"] == pytest.approx(2 * 96 / (96 + 100))
    assert s["pores"] == 1
    assert s["pore_diameter"] == pytest.approx((6 * 2004 / math.pi) ** (1 / 3))
    plain = validate.score(truth, None, None)
    assert "dice_solid" not in plain and "error_pp" not in plain and plain["pores"] == 2


def test_real_reference_is_the_named_threshold(validate):
    scan = np.array([[[10, 89, 90, 200]]], np.uint8)
    ref = validate.real_reference(validate.REAL["fiberform"], scan)
    assert ref.tolist() == [[[False, False, True, True]]]
    assert validate.real_reference(validate.REAL["bone"], scan) is None


def test_foreign_case_files_are_kept_while_the_case_is_unchanged(validate, tmp_path):
    spec = CaseSpec("tiny", "spheres", {"radius": 3.0, "solid_fraction": 0.2, "supersample": 2}, {}, "uint16", 1)
    path, record = validate.prepare_foreign(spec, 16, tmp_path)
    assert path.name == "scan.tif" and record["dtype"] == "uint16"
    truth = validate.read_truth(tmp_path / "tiny")
    assert truth.shape == (16, 16, 16) and 1 - truth.mean() == pytest.approx(record["porosity"])
    mtime = path.stat().st_mtime_ns
    again, _ = validate.prepare_foreign(spec, 16, tmp_path)
    assert again == path and path.stat().st_mtime_ns == mtime  # the runner's cache stays valid
    changed = CaseSpec(**{**spec.__dict__, "storage": "float32"})
    path2, record2 = validate.prepare_foreign(changed, 16, tmp_path)
    assert path2.name == "scan.npy" and record2["dtype"] == "float32" and np.load(path2).min() < 0


def test_table_shows_failures_and_missing_methods(validate):
    rows = [
        {"case": "a", "storage": "uint8", "status": "scored",
         "reference": {"kind": "truth", "porosity": 0.9, "pores": 10, "pore_diameter": 12.0, "pore_chord": 6.0},
         "methods": {"otsu": {"porosity": 0.88, "error_pp": -2.0, "dice_solid": 0.8, "pores": 4,
                              "pore_diameter": 20.0, "pore_chord": 9.0}}},
        {"case": "b", "storage": "float32", "status": "failed: 00_samples: bad scan", "reference": {}, "methods": {}},
    ]
    text = validate.markdown_table(rows, [], "note")
    row_a = "| a | uint8 | 90.00 % (truth) | 88.00 % (-2.00) / – / – | 0.800 / – / – | 10 / 4 / – / – |"
    assert row_a in text
    assert "| b | float32 | – | failed: 00_samples: bad scan |" in text


def test_unknown_case_is_refused(validate, capsys):
    with pytest.raises(SystemExit):
        validate.main(["--cases", "closed_thin,marble"])
    assert "unknown case(s) marble" in capsys.readouterr().err


def test_the_generator_is_one_choice_for_every_case_of_a_call(validate, capsys):
    assert validate._parse(["--generator", "spheres"]).generator == "spheres"
    assert validate._parse([]).generator is None  # the profile's
    with pytest.raises(SystemExit):
        validate.main(["--cases", "spheres", "--generator", "cubes"])
    assert "invalid choice: 'cubes'" in capsys.readouterr().err


@pytest.mark.slow
def test_suite_runs_one_tiny_case_on_the_smoke_profile(validate, tmp_path):
    out = tmp_path / "validation"
    assert validate.main(["--profile", "smoke", "--size", "40", "--cases", "closed_thin", "--out", str(out)]) == 0
    table = json.loads((out / "table.json").read_text())
    assert table["generator"] == "closed-cell"
    (row,) = table["cases"]
    assert row["case"] == "closed_thin" and row["status"] == "scored" and row["storage"] == "uint16"
    assert set(row["methods"]) == {"otsu", "step1", "step2"}
    for scores in row["methods"].values():
        assert 0 < scores["porosity"] < 1 and 0 <= scores["dice_solid"] <= 1 and scores["pores"] >= 0
    assert row["reference"]["pores"] > 1  # closed cells: the truth has separate pores
    assert (out / "figures" / "closed_thin.png").stat().st_size > 0
    assert "closed_thin" in (out / "table.md").read_text()

    # the walls the scan shows, weighed on every segmentation of the finished run
    bench = load_script("benchmarks/bench_faint_walls.py")
    assert bench.main(["--validation", str(out), "--out", str(tmp_path / "walls")]) == 0
    rows = json.loads((tmp_path / "walls" / "faint_walls.json").read_text())["rows"]
    assert {r["method"] for r in rows} == {"otsu", "step1", "step2"}
    for r in rows:
        assert r["sample"] == "closed_thin" and r["truth_pores"] == row["reference"]["pores"]
        assert (r["voxels_added"] > 0) == (r["kept"] > 0)  # a kept wall adds solid, nothing else does
        assert r["error_pp_after"] <= r["error_pp_before"] + 1e-9
        assert r["error_pp_before"] == pytest.approx(100 * (row["methods"][r["method"]]["porosity"]
                                                            - row["reference"]["porosity"]), abs=1e-6)

    # the step-2 U-Net retrained on the CycleGAN's images and on the same labels rendered by step 1's model
    render = load_script("benchmarks/bench_step2_render.py")
    assert render.main(["--validation", str(out), "--cases", "closed_thin", "--seeds", "0", "--profile", "smoke",
                        "--n-images", "16", "--out", str(tmp_path / "render")]) == 0  # fmt: skip
    case = json.loads((tmp_path / "render" / "translation.json").read_text())["cases"]["closed_thin"]
    assert case["truth_pores"] == row["reference"]["pores"] and set(case["runs"]) == {"cyclegan", "render"}
    for (run,) in case["runs"].values():
        assert run["seed"] == 0 and 0 <= run["dice_solid"] <= 1
        assert run["error_pp"] == pytest.approx(100 * (run["porosity"] - row["reference"]["porosity"]), abs=1e-6)
    # seed 0 on the CycleGAN's images is the study's own step-2 U-Net again (up to the kernel's thread count)
    assert case["runs"]["cyclegan"][0]["porosity"] == pytest.approx(row["methods"]["step2"]["porosity"], abs=0.01)
    assert case["fid"]["real_second_draw"]["fid"] < min(case["fid"]["cyclegan"]["fid"], case["fid"]["render"]["fid"])


def test_sandstone_pore_label_is_the_blue_class_and_other_colours_are_refused(validate, tmp_path):
    import tifffile

    mask = np.zeros((2, 3, 3), np.uint8)
    mask[..., 2] = 255  # blue: pore
    mask[0, 0] = (255, 0, 0)
    tifffile.imwrite(tmp_path / "m.tif", mask)
    assert validate.sandstone_pore_label(tmp_path / "m.tif").tolist() == [[False, True, True], [True, True, True]]
    mask[1, 2] = (7, 7, 7)
    tifffile.imwrite(tmp_path / "bad.tif", mask)
    with pytest.raises(ValueError, match="bad.tif: 1 pixels of colours other than"):
        validate.sandstone_pore_label(tmp_path / "bad.tif")


@pytest.mark.shared_data
def test_sandstone_masks_hold_the_four_classes(validate, shared_data):
    pore = validate.sandstone_pore_label(shared_data / "sandstone" / "masks" / "Sandstone_Versa0000.tif")
    assert pore.shape == (1024, 996) and 0.4 < pore.mean() < 0.6
