"""Mixed precision: one setting, bf16 by default on a CUDA GPU that has it, the CPU path unchanged."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch

from foamlib.cli import main
from foamlib.device import PRECISIONS, autocast, grad_scaler, pick_precision
from foamlib.io import write_tiff
from foamlib.segment import DEFAULT_NORMALISATION, segment_volume
from foamlib.training import TrainConfig, save_model, train_unet
from foamlib.unet import build_unet

TINY = {"levels": 2, "convs_per_level": 2, "base_channels": 4, "kernel_size": 3}
CUDA = torch.device("cuda", 0)  # never run on: the choice logic only looks at the device's type


@pytest.fixture
def bf16_gpu(monkeypatch):
    """Pretend the CUDA device supports bfloat16 (or not: call with False)."""

    def set_support(supported: bool) -> None:
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: supported)

    set_support(True)
    return set_support


def test_precision_choice_on_the_cpu():
    assert PRECISIONS == ("auto", "fp32", "bf16", "fp16")
    assert pick_precision("auto", "cpu") == "fp32"
    assert pick_precision("fp32", torch.device("cpu")) == "fp32"
    assert pick_precision(device="cpu") == "fp32"
    for name in ("bf16", "fp16"):
        with pytest.raises(ValueError, match=f"precision '{name}' needs a CUDA device.*cpu"):
            pick_precision(name, "cpu")


def test_precision_choice_on_a_gpu(bf16_gpu):
    assert pick_precision("auto", CUDA) == "bf16"
    assert pick_precision("bf16", CUDA) == "bf16"
    assert pick_precision("fp16", CUDA) == "fp16"
    assert pick_precision("fp32", CUDA) == "fp32"
    bf16_gpu(False)  # e.g. a V100 or T4
    assert pick_precision("auto", CUDA) == "fp32"
    assert pick_precision("fp16", CUDA) == "fp16"
    with pytest.raises(ValueError, match="does not support bfloat16; use 'fp16' or 'fp32'"):
        pick_precision("bf16", CUDA)


@pytest.mark.parametrize("bad", ["FP32", "half", "", None, 16, "bfloat16"])
def test_precision_names_the_bad_value(bad):
    with pytest.raises(ValueError, match="precision must be one of 'auto', 'fp32', 'bf16', 'fp16'"):
        pick_precision(bad, "cpu")


def test_autocast_and_scaler_change_nothing_in_fp32():
    cpu = torch.device("cpu")
    assert isinstance(autocast(cpu, "fp32"), contextlib.nullcontext)
    with pytest.raises(ValueError, match="runs on a CUDA device only"):
        autocast(cpu, "bf16")
    with pytest.raises(ValueError, match="see pick_precision"):
        autocast(cpu, "auto")
    scaler = grad_scaler(cpu, "fp32")
    assert not scaler.is_enabled()
    loss = torch.tensor(2.5)
    assert scaler.scale(loss) is loss


def test_cpu_segmentation_is_unchanged_bit_for_bit(torch_one_thread):
    model = build_unet(TINY, seed=0).eval()
    volume = (np.random.default_rng(0).random((3, 40, 40)) * 255).astype(np.uint8)
    options = {"tile": 16, "overlap": 4, "batch_size": 3, "device": "cpu"}
    fp32 = segment_volume(model, volume, precision="fp32", **options)
    assert np.array_equal(segment_volume(model, volume, **options), fp32)  # default "auto"
    # and equal to the network run by hand, without any autocast, on the one-tile slices of a 16 x 16 crop
    crop = volume[:, :16, :16]
    with torch.inference_mode():
        by_hand = model(torch.from_numpy(crop.astype(np.float32) / np.float32(255))[:, None])[:, 0].numpy()
    np.testing.assert_array_equal(segment_volume(model, crop, **options), np.clip(by_hand, 0, 1))
    with pytest.raises(ValueError, match="precision 'bf16' needs a CUDA device"):
        segment_volume(model, volume, precision="bf16", **options)


def test_cpu_training_is_unchanged_bit_for_bit(torch_one_thread):
    rng = np.random.default_rng(0)
    images = (rng.random((8, 16, 16)) * 255).astype(np.uint8)
    labels = images > 128
    config = TrainConfig(epochs=2, batch_size=4, learning_rate=1e-2, patience=None, seed=0)
    results = {}
    for precision in ("auto", "fp32"):
        model = build_unet(TINY, seed=0)
        result = train_unet(model, (images, labels), (images[:4], labels[:4]), config=config, device="cpu",
                            precision=precision, progress=False)  # fmt: skip
        results[precision] = ([h["train_loss"] for h in result.history], model.state_dict())
    assert results["auto"][0] == results["fp32"][0]
    for name, value in results["fp32"][1].items():
        assert torch.equal(results["auto"][1][name], value), name
    with pytest.raises(ValueError, match="precision 'fp16' needs a CUDA device"):
        train_unet(build_unet(TINY, seed=0), (images, labels), (images, labels), config=config, device="cpu",
                   precision="fp16", progress=False)  # fmt: skip


def test_cli_refuses_half_precision_on_the_cpu(tmp_path, capsys):
    model_path = save_model(tmp_path / "m.pt", build_unet(TINY, seed=0), metadata={
        "task": "segmentation", "normalisation": DEFAULT_NORMALISATION.to_dict()})  # fmt: skip
    scan = write_tiff(tmp_path / "scan.tif", (np.random.default_rng(0).random((2, 16, 16)) * 255).astype(np.uint8))
    out = tmp_path / "out.tif"
    code = main(["segment", str(scan), "--model", str(model_path), "--out", str(out), "--tile", "16", "--overlap", "4",
                 "--device", "cpu", "--precision", "bf16"])  # fmt: skip
    assert code == 1 and not out.exists()
    assert "precision 'bf16' needs a CUDA device" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["segment", str(scan), "--model", str(model_path), "--out", str(out), "--precision", "half"])
