"""The wall-fraction sweep of step 2 (foamlib.sweep) on a tiny run folder."""
from __future__ import annotations

import math

import numpy as np
import pytest

from foamlib.datasets import write_dataset
from foamlib.io import write_tiff
from foamlib.lazy import open_mask, open_scan
from foamlib.runfolder import RunFolder
from foamlib.segment import segment_scan
from foamlib.sweep import ERROR_COLUMN, SWEEP_COLUMNS, wall_fraction_sweep
from foamlib.training import TrainConfig, train_unet
from foamlib.unet import build_unet

pytestmark = pytest.mark.usefixtures("torch_one_thread")

ARCH = {"levels": 2, "convs_per_level": 1, "base_channels": 4}
CONFIG = TrainConfig(epochs=4, batch_size=8, learning_rate=1e-2, noise_sigma=0.0, patience=None, seed=3)


def _blobs(rng, n: int, size: int = 32) -> np.ndarray:
    """Binary images of smooth blobs, about half solid."""
    from scipy import ndimage

    return ndimage.gaussian_filter(rng.normal(size=(n, size, size)), (0, 3, 3)) > 0


def _grey(labels: np.ndarray, rng) -> np.ndarray:
    return np.clip(np.where(labels, 0.75, 0.25) + rng.normal(0, 0.05, labels.shape), 0, 1)


@pytest.fixture
def run(tmp_path):
    rng = np.random.default_rng(0)
    run = RunFolder(tmp_path / "run")
    for fraction in (0.0, 0.5):
        labels = _blobs(rng, 30)
        write_dataset(run.step2_data(fraction), _grey(labels, rng), labels, rng=1)
    # fraction 1: labels that the images do not show (90 % solid at random): no U-Net can learn them
    labels = rng.random((30, 32, 32)) < 0.9
    write_dataset(run.step2_data(1.0), _grey(_blobs(rng, 30), rng), labels, rng=1)
    truth = _blobs(rng, 12)
    scan_path = write_tiff(tmp_path / "scan.tif", (_grey(truth, rng) * 255).round().astype(np.uint8))
    return run, open_scan(scan_path)


def _main_model(run, scan):
    from foamlib.datasets import load_split

    model = build_unet(ARCH, seed=CONFIG.seed)
    folder = run.step2_data(0.5)
    train_unet(model, load_split(folder, "train"), load_split(folder, "val"), config=CONFIG, progress=False)
    segment_scan(model, scan, run.step2_seg, intensity_range=(0, 255), tile=64, memory_gb=0.05)
    return model


def test_the_sweep_trains_one_unet_per_fraction_and_leaves_out_one_that_did_not_learn(run, caplog):
    run, scan = run
    model = _main_model(run, scan)
    run.sweep_seg(1.0).parent.mkdir(parents=True, exist_ok=True)
    run.sweep_seg(1.0).write_bytes(b"a segmentation an earlier run left")
    table = wall_fraction_sweep(run, scan, [1.0, 0.5, 0.0, 0.5], architecture=ARCH, config=CONFIG,
                                main_fraction=0.5, main_model=model, intensity_range=(0, 255),
                                reference_porosity=0.5, tile=64, memory_gb=0.05)  # fmt: skip
    assert list(table.index) == [0.0, 0.5, 1.0] and table.index.name == "wall fraction"
    assert list(table.columns) == [*SWEEP_COLUMNS, ERROR_COLUMN]
    assert table.loc[0.5, "porosity"] == open_mask(run.step2_seg).porosity()  # the main U-Net is not retrained
    assert not run.sweep_checkpoint(0.5).exists() and not run.sweep_seg(0.5).exists()
    assert table.loc[0.0, "learnt"] and table.loc[0.0, "porosity"] == open_mask(run.sweep_seg(0.0)).porosity()
    assert 0.2 < table.loc[0.0, "porosity"] < 0.8 and table.loc[0.0, "test mean Dice"] > 0.8
    assert not table.loc[1.0, "learnt"] and math.isnan(table.loc[1.0, "porosity"])
    assert not run.sweep_seg(1.0).exists()  # no stale file beside a U-Net that means nothing
    assert "wall fraction 1.00 has not learnt to segment" in caplog.text
    assert table.loc[1.0, "label porosity"] == pytest.approx(0.1, abs=0.02)
    np.testing.assert_allclose(table[ERROR_COLUMN], 100 * (table["porosity"] - 0.5))


def test_the_sweep_refuses_a_main_fraction_outside_it_or_a_missing_segmentation(run):
    run, scan = run
    model = build_unet(ARCH, seed=0)
    options = dict(architecture=ARCH, config=CONFIG, main_model=model, intensity_range=(0, 255))
    with pytest.raises(FileNotFoundError, match="step-2 U-Net's segmentation of the scan is missing"):
        wall_fraction_sweep(run, scan, [0.0, 0.5], main_fraction=0.5, **options)
    with pytest.raises(ValueError, match="main wall fraction 0.25 must be one of the sweep's"):
        wall_fraction_sweep(run, scan, [0.0, 0.5], main_fraction=0.25, **options)
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\], got \[1.5\]"):
        wall_fraction_sweep(run, scan, [0.5, 1.5], main_fraction=0.5, **options)
    with pytest.raises(TypeError, match="run must be a RunFolder"):
        wall_fraction_sweep(str(run.path), scan, [0.5], main_fraction=0.5, **options)
