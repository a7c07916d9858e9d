"""benchmarks/bench_seeds.py: the study over seeds, and its table of errors and pore counts."""

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_seeds", ROOT / "benchmarks" / "bench_seeds.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_count_pores_counts_separate_regions_of_27_voxels(bench):
    solid = np.ones((12, 12, 12), dtype=bool)
    solid[1:4, 1:4, 1:4] = False  # 27 voxels: counted
    solid[6:10, 6:10, 6:10] = False  # 64 voxels: counted
    solid[1:3, 8:10, 8:10] = False  # 8 voxels: too small
    assert bench.count_pores(solid) == 2
    solid[4:6, 2, 2] = False  # a channel joins the first two: one pore
    solid[6, 2:7, 2] = False
    solid[6, 6, 2:7] = False
    assert bench.count_pores(solid) == 1
    assert bench.count_pores(np.ones((4, 4, 4), dtype=bool)) == 0


def test_seed_profile_overrides_the_seed_only(bench):
    values = bench.seed_profile("smoke", 3)
    assert values["seed"] == 3 and values["profile"] == "smoke+seed3"
    assert values["size"] == 64
    with pytest.raises(ValueError, match="seed"):
        bench.seed_profile("smoke", -1)


def test_statistics_and_table_from_rows(bench):
    rows = [bench.SeedRow("foam89", seed, method, p, 0.89, p - 0.89, n, 40)
            for seed, (method, p, n) in enumerate([("step1", 0.88, 2), ("step1", 0.90, 4)])]
    rows.append(bench.SeedRow("foam89", 0, "step2", 0.87, 0.89, -0.02, 30, 40))
    stats = bench.statistics(rows)
    step1 = next(s for s in stats if s["method"] == "step1")
    assert math.isclose(step1["error"], 0.0, abs_tol=1e-12) and math.isclose(step1["mean_abs_error"], 0.01)
    assert math.isclose(step1["error_sd"], math.sqrt(2) * 0.01) and step1["n_pores"] == 3.0
    text = bench.table(stats)
    assert "| foam89 | step1 | 2 | +0.00 ± 1.41 | 1.00 | 3.0 ± 1.4 | 40 |" in text
    assert "| foam89 | step2 | 1 | -2.00 | 2.00 | 30.0 | 40 |" in text


def test_unknown_stage_and_repeated_seeds_are_refused(bench, tmp_path):
    with pytest.raises(ValueError, match="not a per-sample stage"):
        bench.selected_stages(ROOT / "notebooks", "12_results")
    with pytest.raises(ValueError, match="distinct"):
        bench.run_seeds(["foam89"], [0, 0], runs_dir=tmp_path)


@pytest.mark.slow
@pytest.mark.benchmark  # two smoke studies (about 5 minutes): `pytest -m benchmark`, not `make test`
def test_two_seeds_at_smoke_size(bench, tmp_path):
    runs = tmp_path / "seeds"
    status = bench.main(["--profile", "smoke", "--samples", "foam89", "--seeds", "0", "1", "--runs-dir", str(runs)])
    assert status == 0
    for seed in (0, 1):
        assert (runs / f"seed_{seed}" / "foam89" / "step2" / "seg.tif").is_file()
        assert not (runs / f"seed_{seed}" / "foam89" / "similarity").exists()  # stopped after 09
    data = json.loads((runs / "seeds.json").read_text())
    stats = {s["method"]: s for s in data["statistics"]}
    assert set(stats) == {"otsu", "step1", "step2"}
    for s in stats.values():
        assert s["seeds"] == [0, 1] and math.isfinite(s["error"]) and s["truth_pores"] > 0
    # Otsu has no seed: its two runs are the same; the trained steps differ between seeds
    assert stats["otsu"]["porosity_sd"] == 0.0
    assert stats["step1"]["porosity_sd"] > 0 or stats["step2"]["porosity_sd"] > 0
    record = data["agreement"]["foam89"]
    assert record["tolerance_kind"] == "seeds" and record["step1"] == [
        r.porosity for r in bench.collect(runs, ["foam89"], [0, 1])[0] if r.method == "step1"]
    assert "Step 1" in record["message"]
    assert len((runs / "seeds.csv").read_text().splitlines()) == 1 + 2 * 3
    assert set(data["stage_seconds"]["foam89"]) >= {"00_samples", "09_unet_step2"}


def test_truth_pores_counts_the_phantom_cells_not_the_binary_truth(bench, tmp_path):
    from foamlib.samples import load_truth, prepare_sample

    prepare_sample(tmp_path / "foam89", sample="foam89", size=64)
    assert bench.count_pores(load_truth(tmp_path / "foam89")) <= 2  # walls thinner than half a voxel are not in it
    assert 30 <= bench.truth_pores(tmp_path / "foam89") <= 80  # about 23 cells in 64^3, more cut by the faces
