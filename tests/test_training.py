"""Tests of foamlib.losses and foamlib.training."""

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from foamlib import __version__
from foamlib.losses import accuracy, confusion_counts, dice_coefficient, dice_loss, iou
from foamlib.training import (
    DegenerateModelError,
    ModelFileError,
    SegmentationMetrics,
    TrainConfig,
    check_learnt,
    evaluate,
    load_model,
    predict,
    save_model,
    train_unet,
)
from foamlib.unet import build_unet

TINY = {"levels": 3, "convs_per_level": 1, "base_channels": 4}


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _disks(n: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Bright disks (grey 0.7) on a dark background (0.3) with noise; label = disk."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    labels = np.zeros((n, size, size), dtype=bool)
    for i in range(n):
        for _ in range(rng.integers(1, 4)):
            cy, cx = rng.uniform(4, size - 4, size=2)
            radius = rng.uniform(3, 7)
            labels[i] |= (yy - cy) ** 2 + (xx - cx) ** 2 < radius**2
    images = np.where(labels, 0.7, 0.3) + rng.normal(0, 0.1, labels.shape)
    return (np.clip(images, 0, 1) * 255).round().astype(np.uint8), labels


@pytest.fixture(scope="module")
def data():
    return _disks(64, 32, seed=0), _disks(16, 32, seed=1)


def _t(values) -> torch.Tensor:
    """2x2 nested list -> (1, 1, 2, 2) float tensor."""
    return torch.tensor(values, dtype=torch.float32)[None, None]


# --------------------------------------------------------------------------- losses and metrics


def test_metrics_by_hand():
    pred = _t([[0.9, 0.2], [0.6, 0.4]])  # binarised [[1, 0], [1, 0]]
    target = _t([[1, 1], [0, 0]])  # TP 1, FN 1, FP 1, TN 1
    assert dice_coefficient(pred, target).item() == pytest.approx(2 / 4)
    assert iou(pred, target).item() == pytest.approx(1 / 3)
    assert accuracy(pred, target).item() == pytest.approx(2 / 4)


def test_metrics_threshold_is_inclusive_and_bool_targets_work():
    pred = _t([[0.5, 0.49], [0.0, 1.0]])  # binarised [[1, 0], [0, 1]]
    target = torch.tensor([[[[True, False], [False, False]]]])
    counts = confusion_counts(pred, target)
    assert (counts.tp.item(), counts.fp.item(), counts.fn.item(), counts.tn.item()) == (1, 1, 0, 2)
    assert dice_coefficient(pred, target).item() == pytest.approx(2 / 3)
    assert iou(pred, target).item() == pytest.approx(1 / 2)
    assert accuracy(pred, target).item() == pytest.approx(3 / 4)


def test_metric_reductions():
    pred = torch.cat([_t([[1, 1], [0, 0]]), _t([[1, 0], [0, 0]])])
    target = torch.cat([_t([[1, 1], [0, 0]]), _t([[0, 0], [0, 1]])])
    per_image = dice_coefficient(pred, target, reduction="none")
    torch.testing.assert_close(per_image, torch.tensor([1.0, 0.0], dtype=torch.float64))
    assert dice_coefficient(pred, target).item() == pytest.approx(0.5)
    # pooled: TP 2, FP 1, FN 1 -> 4 / 6
    assert dice_coefficient(pred, target, reduction="pooled").item() == pytest.approx(4 / 6)
    assert iou(pred, target, reduction="pooled").item() == pytest.approx(2 / 4)
    assert accuracy(pred, target, reduction="pooled").item() == pytest.approx(6 / 8)
    with pytest.raises(ValueError, match="'sum'"):
        dice_coefficient(pred, target, reduction="sum")


def test_empty_prediction_of_empty_target_is_perfect():
    zero = _t([[0, 0], [0, 0]])
    assert dice_coefficient(zero, zero).item() == 1.0
    assert iou(zero, zero).item() == 1.0
    assert dice_loss(zero, zero).item() == 0.0


def test_dice_loss_by_hand():
    pred = _t([[1.0, 0.0], [0.5, 0.0]])
    target = _t([[1, 0], [1, 0]])
    # Milletari: 1 - 2 * (1 + 0.5) / ((1 + 0.25) + 2)
    assert dice_loss(pred, target, smooth=0.0).item() == pytest.approx(1 - 3 / 3.25)
    assert dice_loss(pred, target, smooth=1.0).item() == pytest.approx(1 - 4 / 4.25)
    # mean over the batch: a perfect image and a completely wrong one
    batch_pred = torch.cat([_t([[1, 0], [0, 0]]), _t([[1, 0], [0, 0]])])
    batch_target = torch.cat([_t([[1, 0], [0, 0]]), _t([[0, 1], [0, 0]])])
    assert dice_loss(batch_pred, batch_target, smooth=0.0).item() == pytest.approx(0.5)


def test_dice_loss_zero_for_perfect_prediction_and_differentiable():
    target = (torch.rand(3, 1, 8, 8) > 0.5).float()
    assert dice_loss(target.clone(), target).item() == pytest.approx(0.0, abs=1e-7)
    pred = torch.full_like(target, 0.5, requires_grad=True)
    dice_loss(pred, target).backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0


def test_losses_reject_mismatched_shapes():
    with pytest.raises(ValueError, match="same shape"):
        dice_loss(torch.rand(1, 1, 2, 2), torch.rand(1, 1, 2, 3))
    with pytest.raises(ValueError, match="same shape"):
        iou(torch.rand(2, 1, 2, 2), torch.rand(1, 1, 2, 2))
    with pytest.raises(ValueError, match="-1"):
        dice_loss(torch.rand(1, 1, 2, 2), torch.rand(1, 1, 2, 2), smooth=-1)


# --------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("field", "value"),
    [("epochs", 0), ("learning_rate", -1.0), ("noise_sigma", float("nan")), ("patience", 0),
     ("seed", -1), ("num_workers", -1), ("loss", "mse"), ("eval_batch_size", 0)],
)  # fmt: skip
def test_train_config_validation(field, value):
    with pytest.raises(ValueError, match=field):
        TrainConfig(**{field: value})


@pytest.mark.parametrize(("field", "value"), [("batch_size", 1.5), ("epochs", True), ("learning_rate", "0.1")])
def test_train_config_type_errors(field, value):
    with pytest.raises(TypeError, match=f"^TrainConfig.{field} must be"):
        TrainConfig(**{field: value})


def test_train_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        TrainConfig().epochs = 3


# --------------------------------------------------------------------------- training


def test_training_learns_toy_task(data):
    train, val = data
    model = build_unet(TINY, seed=0)
    config = TrainConfig(epochs=8, batch_size=8, learning_rate=1e-2, noise_sigma=0.05, patience=None, seed=0)
    result = train_unet(model, train, val, config=config, progress=False)
    losses = [h["train_loss"] for h in result.history]
    assert result.epochs_run == len(result.history) == 8
    assert losses[-1] < 0.5 * losses[0]
    assert result.best_val_mean_dice > 0.8
    assert result.history[result.best_epoch - 1]["val_mean_dice"] == result.best_val_mean_dice
    assert result.best_val_mean_dice == max(h["val_mean_dice"] for h in result.history)
    assert all(h["val_mean_dice"] == pytest.approx((h["val_dice"] + h["val_pore_dice"]) / 2) for h in result.history)
    assert result.seconds > 0 and not result.stopped_early
    # the returned model holds the best weights: evaluating it reproduces the best validation mean Dice
    metrics = evaluate(model, *val, batch_size=5)
    assert metrics.mean_dice == pytest.approx(result.best_val_mean_dice, abs=1e-12)
    assert metrics.dice == pytest.approx(result.history[result.best_epoch - 1]["val_dice"], abs=1e-12)
    check_learnt(metrics)  # a model that learnt passes
    assert metrics.n_images == 16 and 0 <= metrics.iou <= metrics.dice <= 1 and metrics.accuracy > 0.9
    # and predict agrees with evaluate
    probs = predict(model, val[0], batch_size=7)
    assert probs.shape == val[0].shape and probs.dtype == np.float32
    assert probs.min() >= 0 and probs.max() <= 1
    solid = probs >= 0.5
    dice = 2 * (solid & val[1]).sum() / (solid.sum() + val[1].sum())
    assert dice == pytest.approx(metrics.dice)


@pytest.mark.parametrize("loss", ["bce", "dice+bce"])
def test_other_losses_and_logits_output_train(data, loss):
    train, val = data
    model = build_unet({**TINY, "output": "logits"}, seed=0)
    config = TrainConfig(epochs=2, batch_size=16, learning_rate=1e-2, patience=None, loss=loss)
    result = train_unet(model, train, val, config=config, progress=False)
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    probs = predict(model, val[0])
    assert probs.min() >= 0 and probs.max() <= 1  # sigmoid applied to logits


def test_resumed_run_equals_uninterrupted_run(data, tmp_path):
    train, val = data
    config = TrainConfig(epochs=4, batch_size=16, learning_rate=5e-3, noise_sigma=0.05, patience=None, seed=3)

    straight = build_unet(TINY, seed=1)
    result = train_unet(straight, train, val, config=config, checkpoint_path=tmp_path / "a.ckpt", progress=False)

    resumed = build_unet(TINY, seed=1)
    path = tmp_path / "b.ckpt"
    first = train_unet(resumed, train, val, config=dataclasses.replace(config, epochs=2), checkpoint_path=path, progress=False)
    assert first.epochs_run == 2
    # a fresh process would build a fresh model; its initial weights do not matter
    resumed = build_unet(TINY, seed=99)
    second = train_unet(resumed, train, val, config=config, checkpoint_path=path, progress=False)

    assert second.epochs_run == 4
    for name, tensor in straight.state_dict().items():
        assert torch.equal(tensor, resumed.state_dict()[name]), name
    drop_times = [{k: v for k, v in h.items() if "seconds" not in k} for h in result.history]
    assert drop_times == [{k: v for k, v in h.items() if "seconds" not in k} for h in second.history]
    assert (second.best_epoch, second.best_val_mean_dice) == (result.best_epoch, result.best_val_mean_dice)
    # the last-epoch weights in the two checkpoints are identical too
    a = torch.load(tmp_path / "a.ckpt", weights_only=True)
    b = torch.load(path, weights_only=True)
    assert a["epoch"] == b["epoch"] == 4
    for name, tensor in a["model_state"].items():
        assert torch.equal(tensor, b["model_state"][name]), name


def test_checkpoint_contents(data, tmp_path):
    train, val = data
    path = tmp_path / "sub" / "run.ckpt"
    config = TrainConfig(epochs=1, batch_size=32, patience=None)
    train_unet(build_unet(TINY, seed=0), train, val, config=config, checkpoint_path=path, progress=False)
    ckpt = torch.load(path, weights_only=True)
    assert {"model_state", "optimizer_state", "epoch", "best_val_mean_dice", "best_model_state", "history", "rng", "config",
            "model_config"} <= set(ckpt)  # fmt: skip
    assert ckpt["config"] == dataclasses.asdict(config)
    assert ckpt["model_config"] == build_unet(TINY, seed=0).config
    assert set(ckpt["rng"]) == {"numpy_order", "torch_noise"}
    assert [p.name for p in path.parent.iterdir()] == ["run.ckpt"]  # no temporary files left


def test_resume_refuses_a_different_run(data, tmp_path):
    train, val = data
    path = tmp_path / "run.ckpt"
    config = TrainConfig(epochs=1, batch_size=32, patience=None)
    train_unet(build_unet(TINY, seed=0), train, val, config=config, checkpoint_path=path, progress=False)
    with pytest.raises(ValueError, match="learning_rate"):
        train_unet(build_unet(TINY, seed=0), train, val, config=dataclasses.replace(config, learning_rate=0.1),
                   checkpoint_path=path, progress=False)  # fmt: skip
    with pytest.raises(ValueError, match="model"):
        train_unet(build_unet({**TINY, "levels": 2}, seed=0), train, val, config=config, checkpoint_path=path, progress=False)
    with pytest.raises(ValueError, match="shapes"):
        train_unet(build_unet(TINY, seed=0), (train[0][:10], train[1][:10]), val, config=config,
                   checkpoint_path=path, progress=False)  # fmt: skip
    with pytest.raises(ValueError, match="other training or validation data of the same shapes"):
        # a data set written anew by an earlier stage: same shapes, other images and labels
        train_unet(build_unet(TINY, seed=0), (train[0][::-1].copy(), train[1][::-1].copy()), val, config=config,
                   checkpoint_path=path, progress=False)  # fmt: skip
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"a": 1}, foreign)
    with pytest.raises(ModelFileError, match="foreign.ckpt"):
        train_unet(build_unet(TINY, seed=0), train, val, config=config, checkpoint_path=foreign, progress=False)


def test_a_stale_checkpoint_is_moved_aside_on_request(data, tmp_path, caplog):
    train, val = data
    path = tmp_path / "run.ckpt"
    config = TrainConfig(epochs=1, batch_size=32, patience=None)
    train_unet(build_unet(TINY, seed=0), train, val, config=config, checkpoint_path=path, progress=False)
    before = path.read_bytes()
    other = dataclasses.replace(config, learning_rate=0.1)
    fresh = build_unet(TINY, seed=0)
    train_unet(fresh, train, val, config=other, checkpoint_path=path, progress=False, on_mismatch="restart")
    stale = list(tmp_path.glob("run.stale-*.ckpt"))
    assert len(stale) == 1 and stale[0].read_bytes() == before  # kept, not deleted
    assert "started afresh" in caplog.text
    expected = build_unet(TINY, seed=0)
    train_unet(expected, train, val, config=other, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), expected.state_dict().values()))
    with pytest.raises(ValueError, match="on_mismatch"):
        train_unet(build_unet(TINY, seed=0), train, val, config=config, checkpoint_path=path, on_mismatch="ignore")


def test_early_stopping(data):
    train, val = data
    # learning rate 0 and no batch norm: the weights never change, the Dice never improves
    model = build_unet({**TINY, "normalization": "none"}, seed=0)
    config = TrainConfig(epochs=10, batch_size=32, learning_rate=0.0, patience=2)
    result = train_unet(model, train, val, config=config, progress=False)
    assert result.stopped_early
    assert result.best_epoch == 1 and result.epochs_run == 3


def test_train_input_validation(data):
    (images, labels), val = data
    model = build_unet(TINY, seed=0)
    config = TrainConfig(epochs=1)
    with pytest.raises(ValueError, match="shape"):
        train_unet(model, (images, labels[:, :16]), val, config=config, progress=False)
    with pytest.raises(ValueError, match="0/1"):
        train_unet(model, (images, labels * 2.0), val, config=config, progress=False)
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        train_unet(model, (images[0], labels[0]), val, config=config, progress=False)
    with pytest.raises(ValueError, match="int8"):
        train_unet(model, (images.astype(np.int8), labels), val, config=config, progress=False)
    with pytest.raises(ValueError, match="TrainConfig"):
        train_unet(model, (images, labels), val, config={"epochs": 1}, progress=False)


# --------------------------------------------------------------------------- inference


def test_predict_scales_uint8_like_floats():
    model = build_unet(TINY, seed=0)
    images = np.random.default_rng(0).integers(0, 256, (3, 20, 24), dtype=np.uint8)
    from_uint8 = predict(model, images)
    from_float = predict(model, images.astype(np.float32) / 255)
    np.testing.assert_allclose(from_uint8, from_float, atol=1e-6)
    assert model.training  # mode restored


def test_evaluate_with_a_perfect_model():
    class Threshold(nn.Module):
        def forward(self, x):
            return (x > 0.5).float()

    images = np.random.default_rng(1).random((4, 9, 11)).astype(np.float32)
    metrics = evaluate(Threshold(), images, images > 0.5, batch_size=3)
    solid = float(np.mean(images > 0.5))
    assert metrics == SegmentationMetrics(accuracy=1.0, dice=1.0, iou=1.0, n_images=4, pore_dice=1.0, mean_dice=1.0,
                                          solid_fraction=solid, predicted_solid_fraction=solid)  # fmt: skip
    inverted = evaluate(Threshold(), images, images <= 0.5)
    assert inverted.accuracy == 0.0 and inverted.dice == 0.0 and inverted.pore_dice == 0.0


@pytest.mark.parametrize("solid_fraction", [0.3, 0.7, 0.9])
def test_a_constant_segmentation_scores_a_high_solid_dice_but_is_refused(solid_fraction):
    """The trap a short run on a dense scan fell into: every pixel solid; the solid Dice rewards it, the check does not."""

    class Constant(nn.Module):
        def __init__(self, value):
            super().__init__()
            self.value = value

        def forward(self, x):
            return torch.full_like(x, self.value)

    rng = np.random.default_rng(2)
    labels = rng.random((6, 16, 16)) < solid_fraction
    images = labels.astype(np.float32)
    for value in (1.0, 0.0):
        metrics = evaluate(Constant(value), images, labels)
        s = labels.mean()
        assert metrics.solid_fraction == pytest.approx(s)
        assert metrics.predicted_solid_fraction == value
        expected = s / (1 + s) if value else (1 - s) / (2 - s)  # mean Dice of one phase everywhere
        assert metrics.mean_dice == pytest.approx(expected)
        assert metrics.constant_mean_dice == pytest.approx(max(s / (1 + s), (1 - s) / (2 - s)))
        with pytest.raises(DegenerateModelError, match=r"has not learnt to segment.*marks (100|0)\.0% of the pixels solid"):
            check_learnt(metrics, what="the step-1 U-Net")
    assert evaluate(Constant(1.0), images, labels).dice > 0.8 or solid_fraction < 0.7  # why the solid Dice misleads


def test_check_learnt_passes_a_good_segmentation_and_refuses_one_just_above_the_constant():
    labels = np.zeros((1, 10, 10), bool)
    labels[0, :, :7] = True  # 70 % solid
    good = labels.copy()
    good[0, 0, 7] = True  # one pixel wrong
    metrics = evaluate(_Fixed(good), labels.astype(np.float32), labels)
    check_learnt(metrics)
    poor = np.ones_like(labels)
    poor[0, 0, 9] = False  # one pore pixel found: barely better than all solid
    with pytest.raises(DegenerateModelError):
        check_learnt(evaluate(_Fixed(poor), labels.astype(np.float32), labels))
    with pytest.raises(TypeError):
        check_learnt({"mean_dice": 0.9})


class _Fixed(nn.Module):
    """Returns a fixed segmentation, whatever the input."""

    def __init__(self, mask):
        super().__init__()
        self.mask = torch.from_numpy(mask).float().unsqueeze(1)

    def forward(self, x):
        return self.mask[: len(x)].clone()


# --------------------------------------------------------------------------- model files


def test_save_load_round_trip(tmp_path):
    model = build_unet({**TINY, "kernel_size": 4, "pooling": "max"}, seed=5)
    # make the batch-norm running statistics non-trivial
    model.train()
    model(torch.rand(4, 1, 16, 16))
    path = save_model(tmp_path / "models" / "m.pt", model, metadata={"dice": np.float64(0.9), "sample": "A", "ids": (1, 2)})
    loaded, metadata = load_model(path, device="cpu")
    assert loaded.config == model.config and not loaded.training
    assert metadata == {"dice": 0.9, "sample": "A", "ids": [1, 2], "foamlib_version": __version__}
    x = torch.rand(2, 1, 21, 17)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), loaded(x))
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "foamlib-unet" and raw["format_version"] == 1 and raw["foamlib_version"] == __version__
    assert set(raw) == {"format", "format_version", "model_config", "state_dict", "metadata", "foamlib_version"}


def test_save_model_rejects_unpicklable_metadata(tmp_path):
    with pytest.raises(TypeError, match="object"):
        save_model(tmp_path / "m.pt", build_unet(TINY, seed=0), metadata={"x": object()})
    assert not list(tmp_path.iterdir())


def test_load_model_errors_name_the_file(tmp_path):
    missing = tmp_path / "missing.pt"
    with pytest.raises(ModelFileError, match="missing.pt.*no such file"):
        load_model(missing)

    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"this is not a torch file" * 10)
    with pytest.raises(ValueError, match="corrupt.pt.*not a readable torch file"):
        load_model(corrupt)

    truncated = tmp_path / "truncated.pt"
    save_model(truncated, build_unet(TINY, seed=0), metadata={})
    truncated.write_bytes(truncated.read_bytes()[:200])
    with pytest.raises(ModelFileError, match="truncated.pt"):
        load_model(truncated)

    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(ModelFileError, match="foreign.pt.*not a foamlib model"):
        load_model(foreign)

    tensor = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), tensor)
    with pytest.raises(ModelFileError, match="tensor.pt.*not a foamlib model"):
        load_model(tensor)

    newer = tmp_path / "newer.pt"
    torch.save({"format": "foamlib-unet", "format_version": 2}, newer)
    with pytest.raises(ModelFileError, match="newer.pt.*version 2"):
        load_model(newer)

    broken = tmp_path / "broken.pt"
    torch.save({"format": "foamlib-unet", "format_version": 1, "model_config": {"levels": -1}, "state_dict": {}}, broken)
    with pytest.raises(ModelFileError, match="broken.pt.*cannot be rebuilt"):
        load_model(broken)

    with pytest.raises(ModelFileError, match=str(tmp_path.name)):
        load_model(tmp_path)  # a folder


# --------------------------------------------------------------------------- on_epoch_end


def test_on_epoch_end_sees_every_epoch_and_its_exception_propagates(data):
    train, val = data
    train = (train[0][:8], train[1][:8])
    config = TrainConfig(epochs=3, batch_size=4, patience=None)
    calls = []
    result = train_unet(
        build_unet(TINY, seed=0), train, val, config=config, progress=False,
        on_epoch_end=lambda epoch, row: calls.append((epoch, row)),
    )  # fmt: skip
    assert [epoch for epoch, _ in calls] == [1, 2, 3]
    assert [row for _, row in calls] == result.history

    class Stop(Exception):
        pass

    def stop_after_two(epoch, row):
        if epoch == 2:
            raise Stop(row["val_dice"])

    seen = []
    with pytest.raises(Stop):
        train_unet(
            build_unet(TINY, seed=0), train, val, config=config, progress=False,
            on_epoch_end=lambda epoch, row: (seen.append(epoch), stop_after_two(epoch, row)),
        )  # fmt: skip
    assert seen == [1, 2]


def test_data_fingerprint_sees_contents_dtype_shape_and_order():
    from foamlib.torchfiles import data_fingerprint

    a = np.zeros((2, 3), np.float32)
    b = a.copy()
    b[1, 2] = 1
    assert data_fingerprint(a) == data_fingerprint(a.copy())
    assert len({data_fingerprint(a), data_fingerprint(b), data_fingerprint(a.astype(np.float64)),
                data_fingerprint(a.reshape(3, 2)), data_fingerprint(a, b), data_fingerprint(b, a)}) == 6


def test_save_model_checks_the_metadata_that_segmentation_reads(tmp_path):
    from foamlib.segment import DEFAULT_NORMALISATION, IntensityNormalisation

    norm = IntensityNormalisation(low_percentile=0.1, high_percentile=99.9)
    good = {"task": "segmentation", "stage": "step1", "normalisation": norm.to_dict(),
            "intensity_range": np.array([4.0, 203.0]), "voxel_size_um": np.float64(10.0)}  # fmt: skip
    path = save_model(tmp_path / "m.pt", build_unet(TINY, seed=0), metadata=good)
    _, meta = load_model(path, device="cpu")
    assert IntensityNormalisation.from_dict(meta["normalisation"]) == norm != DEFAULT_NORMALISATION
    assert meta["intensity_range"] == [4.0, 203.0] and meta["voxel_size_um"] == 10.0 and meta["task"] == "segmentation"
    for key, value in [
        ("normalisation", {"low_percentile": 1}),
        ("normalisation", [0.5, 99.5]),
        ("intensity_range", [5, 5]),
        ("intensity_range", "0-255"),
        ("voxel_size_um", -1.0),
        ("voxel_size_um", "10 um"),
        ("task", 1),
    ]:
        bad = tmp_path / "bad.pt"
        with pytest.raises(ValueError, match=f"metadata '{key}'"):
            save_model(bad, build_unet(TINY, seed=0), metadata={**good, key: value})
        assert not bad.exists()
