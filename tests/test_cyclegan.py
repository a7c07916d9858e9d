"""Tests of foamlib.cyclegan: networks, image pool, schedule, training, resume, files, translation."""
import csv
import dataclasses
import math

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from foamlib.cyclegan import (
    HISTORY_COLUMNS,
    CycleGanConfig,
    ImagePool,
    PatchDiscriminator,
    build_cyclegan,
    learning_rate_at,
    train_cyclegan,
    translate,
)
from foamlib.torchfiles import ModelFileError, load_torch_file
from foamlib.training import load_model, save_model
from foamlib.unet import UNet

pytestmark = pytest.mark.usefixtures("torch_one_thread")

TINY = dict(
    generator={"levels": 2, "base_channels": 4},
    discriminator_channels=4,
    discriminator_layers=2,
    crop_size=16,
    batch_size=2,
    steps=4,
    pool_size=3,
    checkpoint_every=2,
    sample_every=2,
    seed=0,
)


def tiny(**changes) -> CycleGanConfig:
    return CycleGanConfig(**{**TINY, **changes})


def make_data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Binary blobs (3, 24, 24) and uint8 grey images (3, 20, 28) with bright walls."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:24, :24]
    binary = np.stack([np.sin(xx / rng.uniform(2, 4) + rng.uniform(0, 6)) * np.cos(yy / 3.0) > 0.4 for _ in range(3)])
    grey = rng.normal(50, 10, (3, 20, 28))
    grey[:, ::5, :] += 120
    return binary, np.clip(grey, 0, 255).astype(np.uint8)


def states(model) -> dict[str, dict[str, torch.Tensor]]:
    nets = ("g", "f", "d_x", "d_y")
    return {name: {k: v.detach().clone() for k, v in getattr(model, name).state_dict().items()} for name in nets}


def assert_same_weights(a, b) -> None:
    for name in a:
        for key in a[name]:
            torch.testing.assert_close(a[name][key], b[name][key], rtol=0, atol=0, msg=f"{name}.{key} differs")


def without_seconds(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


@pytest.fixture(scope="module")
def data():
    return make_data()


# --------------------------------------------------------------------------- networks


@pytest.mark.parametrize(
    "n_layers, height, width",
    [(3, 24, 24), (3, 70, 64), (3, 101, 37), (2, 33, 50), (1, 7, 9)],
)
def test_discriminator_output_shape(n_layers, height, width):
    d = PatchDiscriminator(base_channels=4, n_layers=n_layers)
    out = d(torch.rand(2, 1, height, width))
    expected = (2, 1, height // 2**n_layers - 2, width // 2**n_layers - 2)
    assert tuple(out.shape) == expected
    assert PatchDiscriminator.output_size(height, n_layers) == expected[2]
    assert min(expected[2:]) >= 1


def test_discriminator_is_70x70_patchgan_by_default():
    d = PatchDiscriminator()
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.stride[0] for c in convs] == [2, 2, 2, 1, 1]
    assert [c.out_channels for c in convs] == [64, 128, 256, 512, 1]
    assert all(c.kernel_size == (4, 4) for c in convs)
    norms = [m for m in d.modules() if isinstance(m, torch.nn.InstanceNorm2d)]
    assert len(norms) == 3  # none after the first convolution
    # receptive field of one output logit: 70 pixels
    rf = 1
    for c in reversed(convs):
        rf = (rf - 1) * c.stride[0] + c.kernel_size[0]
    assert rf == 70


def test_discriminator_rejects_small_or_wrong_input():
    d = PatchDiscriminator(base_channels=4, n_layers=3)
    assert PatchDiscriminator.min_input_size(3) == 24
    with pytest.raises(ValueError, match="at least 24x24"):
        d(torch.rand(1, 1, 23, 40))
    with pytest.raises(ValueError, match="shape"):
        d(torch.rand(1, 2, 32, 32))
    with pytest.raises(ValueError, match="n_layers"):
        PatchDiscriminator(n_layers=0)


def test_generators_keep_odd_sizes():
    model = build_cyclegan(tiny())
    for net in (model.g, model.f):
        assert isinstance(net, UNet) and net.normalization == "instance" and net.output == "sigmoid"
        with torch.no_grad():
            out = net(torch.rand(2, 1, 17, 23))
        assert out.shape == (2, 1, 17, 23)
        assert 0 <= float(out.min()) and float(out.max()) <= 1


def test_build_is_seeded_and_leaves_global_rng_alone():
    before = torch.get_rng_state()
    a, b, c = build_cyclegan(tiny()), build_cyclegan(tiny()), build_cyclegan(tiny(seed=1))
    assert torch.equal(torch.get_rng_state(), before)
    assert_same_weights(states(a), states(b))
    for name in ("g", "f", "d_x", "d_y"):
        first = next(iter(states(a)[name]))
        assert not torch.equal(states(a)[name][first], states(c)[name][first])
    # the four networks have different initial weights
    assert not torch.equal(a.g.head.weight, a.f.head.weight)
    assert not torch.equal(a.d_x.model[0].weight, a.d_y.model[0].weight)


# --------------------------------------------------------------------------- image pool


def constant_images(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 1, 2, 2).contiguous()


def ids(images: torch.Tensor) -> list[int]:
    return [int(v) for v in images[:, 0, 0, 0]]


def test_image_pool_fills_first_then_mixes():
    pool = ImagePool(3, np.random.default_rng(0))
    assert ids(pool.query(constant_images([0, 1]))) == [0, 1]
    assert ids(pool.query(constant_images([2]))) == [2]
    assert len(pool) == 3
    returned = []
    for value in range(3, 403):
        returned += ids(pool.query(constant_images([value])))
    fresh = sum(r == v for r, v in zip(returned, range(3, 403)))
    older = sum(r < v for r, v in zip(returned, range(3, 403)))
    assert fresh + older == 400  # never a value from the future
    assert 140 < older < 260  # about half are swapped for a stored image
    assert len(pool) == 3


def test_image_pool_is_seeded_and_restorable():
    def run(pool, start):
        return [ids(pool.query(constant_images([v, v + 0.5]))) for v in range(start, start + 40)]

    a, b, c = ImagePool(4, 7), ImagePool(4, np.random.default_rng(7)), ImagePool(4, 8)
    assert run(a, 0) == run(b, 0)
    assert run(ImagePool(4, 7), 0) != run(c, 0)
    copy = ImagePool(4, 123)
    copy.load_state_dict(a.state_dict())
    assert run(copy, 100) == run(a, 100)
    with pytest.raises(ValueError, match="size"):
        ImagePool(5, 0).load_state_dict(a.state_dict())


def test_image_pool_of_size_zero_passes_images_through():
    pool = ImagePool(0, 0)
    images = torch.rand(3, 1, 4, 4, requires_grad=True)
    out = pool.query(images)
    assert torch.equal(out, images) and not out.requires_grad
    assert len(pool) == 0


# --------------------------------------------------------------------------- config and schedule


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"generator": {"levels": 0}}, "generator"),
        ({"generator": {"depth": 3}}, "generator"),
        ({"generator": {"output": "logits"}}, "generator"),
        ({"generator": {"in_channels": 2}}, "generator"),
        ({"discriminator_channels": 0}, "discriminator_channels"),
        ({"discriminator_layers": 0}, "discriminator_layers"),
        ({"crop_size": 8}, "crop_size"),  # discriminator with 2 layers needs 12
        ({"crop_size": 12, "discriminator_layers": 1, "generator": {"levels": 5}}, "crop_size"),  # generator needs 17
        ({"batch_size": 0}, "batch_size"),
        ({"steps": 0}, "steps"),
        ({"lambda_cycle": -1.0}, "lambda_cycle"),
        ({"lambda_identity": math.nan}, "lambda_identity"),
        ({"pool_size": -1}, "pool_size"),
        ({"learning_rate": -1e-4}, "learning_rate"),
        ({"betas": (0.5,)}, "betas"),
        ({"betas": (0.5, 1.0)}, "betas"),
        ({"decay_start": 1.5}, "decay_start"),
        ({"checkpoint_every": 0}, "checkpoint_every"),
        ({"sample_every": 0}, "sample_every"),
        ({"seed": -1}, "seed"),
    ],
)
def test_config_validation(changes, field):
    with pytest.raises(ValueError, match=f"CycleGanConfig.{field}"):
        tiny(**changes)


@pytest.mark.parametrize("changes, field", [({"steps": 2.0}, "steps"), ({"seed": True}, "seed")])
def test_config_type_errors(changes, field):
    with pytest.raises(TypeError, match=f"^CycleGanConfig.{field} must be an integer"):
        tiny(**changes)


def test_config_defaults_and_round_trip():
    config = CycleGanConfig()
    assert config.generator["normalization"] == "instance" and config.generator["kernel_size"] == 3
    assert (config.lambda_cycle, config.lambda_identity, config.pool_size) == (10.0, 0.5, 50)
    assert (config.learning_rate, config.betas, config.decay_start) == (2e-4, (0.5, 0.999), 0.5)
    again = CycleGanConfig(**config.to_dict())
    assert again == config
    assert dataclasses.replace(config, betas=[0.9, 0.99]).betas == (0.9, 0.99)


def test_learning_rate_constant_then_linear_to_zero():
    config = tiny(steps=10, decay_start=0.5, learning_rate=1e-3)
    rates = [learning_rate_at(config, s) for s in range(11)]
    assert rates[:6] == [1e-3] * 6
    np.testing.assert_allclose(rates[5:], [1e-3, 8e-4, 6e-4, 4e-4, 2e-4, 0.0], atol=1e-15)
    assert learning_rate_at(config, 50) == 0.0
    never = tiny(steps=4, decay_start=1.0, learning_rate=1e-3)
    assert [learning_rate_at(never, s) for s in range(4)] == [1e-3] * 4
    at_once = tiny(steps=4, decay_start=0.0, learning_rate=1e-3)
    np.testing.assert_allclose([learning_rate_at(at_once, s) for s in range(4)], [1e-3, 7.5e-4, 5e-4, 2.5e-4])
    with pytest.raises(ValueError, match="step"):
        learning_rate_at(config, -1)


# --------------------------------------------------------------------------- training


def test_training_changes_all_networks_and_is_reproducible(data):
    binary, real = data
    config = tiny(steps=3)
    initial = states(build_cyclegan(config))
    before = torch.get_rng_state()
    first = train_cyclegan(binary, real, config=config, progress=False)
    assert torch.equal(torch.get_rng_state(), before)
    assert [list(row) for row in first.history] == [list(HISTORY_COLUMNS)] * 3
    assert [row["step"] for row in first.history] == [1, 2, 3]
    for row in first.history:
        assert all(math.isfinite(row[k]) and row[k] >= 0 for k in HISTORY_COLUMNS)
        assert row["loss_identity"] > 0 and row["loss_cycle"] > 0
    assert [row["learning_rate"] for row in first.history] == [learning_rate_at(config, s) for s in range(3)]
    trained = states(first.model)
    for name in trained:
        assert any(not torch.equal(initial[name][k], trained[name][k]) for k in trained[name]), f"{name} did not change"
    assert not first.model.training and not first.g.training
    assert first.steps_run == 3 and first.seconds > 0

    second = train_cyclegan(binary, real, config=config, progress=False)
    assert_same_weights(trained, states(second.model))
    assert without_seconds(second.history) == without_seconds(first.history)
    other = train_cyclegan(binary, real, config=tiny(steps=3, seed=1), progress=False)
    assert not torch.equal(other.g.head.weight, first.g.head.weight)


def test_identity_loss_can_be_switched_off(data):
    binary, real = data
    result = train_cyclegan(binary, real, config=tiny(steps=1, lambda_identity=0.0, pool_size=0), progress=False)
    assert result.history[0]["loss_identity"] == 0.0


def test_resume_is_exact_and_files_are_written(data, tmp_path):
    binary, real = data
    config = tiny(steps=5)
    full = train_cyclegan(binary, real, config=config, run_dir=tmp_path / "full", progress=False)

    class Stop(Exception):
        pass

    def stop_after_3(step, row):
        if step == 3:
            raise Stop

    run = tmp_path / "resumed"
    with pytest.raises(Stop):
        train_cyclegan(binary, real, config=config, run_dir=run, progress=False, on_step=stop_after_3)
    checkpoint = load_torch_file(run / "checkpoint.pt", "foamlib-cyclegan-checkpoint", kind="checkpoint")
    assert checkpoint["step"] == 2  # step 3 was trained but not saved: resuming redoes it
    assert len(checkpoint["pools"]["x"]["images"]) == 3  # pools are full (2 + 2 fakes, size 3)
    seen = []
    resumed = train_cyclegan(
        binary, real, config=config, run_dir=run, progress=False, on_step=lambda step, row: seen.append(step)
    )
    assert seen == [3, 4, 5]
    assert_same_weights(states(full.model), states(resumed.model))
    assert without_seconds(resumed.history) == without_seconds(full.history)

    # history.csv: every step, the documented columns
    with open(run / "history.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == list(HISTORY_COLUMNS)
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5]
    np.testing.assert_allclose([float(r["loss_cycle"]) for r in rows], [h["loss_cycle"] for h in full.history])
    # samples every 2 steps and after the last: rows x, G(x), F(G(x)), y, F(y), G(F(y)) of 4 crops
    # of side 20 (the smallest image side), with 2 pixels of padding
    names = sorted(p.name for p in (run / "samples").iterdir())
    assert names == ["step_000002.png", "step_000004.png", "step_000005.png"]
    grid = iio.imread(run / "samples" / "step_000005.png")
    assert grid.shape == (6 * 22 + 2, 4 * 22 + 2)
    assert grid.dtype == np.uint8
    # the x row of the grid is binary, the y row is the grey data
    x_row = grid[2:22, 2:22]
    assert set(np.unique(x_row)) <= {0, 255}

    # a finished run is not trained again; extending steps continues it
    again = train_cyclegan(binary, real, config=config, run_dir=run, progress=False)
    assert_same_weights(states(full.model), states(again.model))
    extended = tiny(steps=6, checkpoint_every=3, sample_every=None)
    longer = train_cyclegan(binary, real, config=extended, run_dir=run, progress=False)
    assert longer.steps_run == 6 and [r["step"] for r in longer.history] == list(range(1, 7))


def test_resume_refuses_other_config_or_data(data, tmp_path):
    binary, real = data
    train_cyclegan(binary, real, config=tiny(steps=2), run_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match=r"different CycleGanConfig \(lambda_cycle: 10.0 -> 5.0\)"):
        train_cyclegan(binary, real, config=tiny(steps=2, lambda_cycle=5.0), run_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="other training images"):
        train_cyclegan(~binary, real, config=tiny(steps=2), run_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match=r"real_shape \[3, 20, 28\] -> \[2, 20, 28\]"):
        train_cyclegan(binary, real[:2], config=tiny(steps=2), run_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="beyond config.steps"):
        train_cyclegan(binary, real, config=tiny(steps=1), run_dir=tmp_path, progress=False)
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelFileError, match="not a readable torch file"):
        train_cyclegan(binary, real, config=tiny(steps=2), run_dir=tmp_path, progress=False)


@pytest.mark.parametrize(
    "binary, real, message",
    [
        (np.zeros((2, 24, 24), bool), np.zeros((2, 15, 30), np.uint8), "real images"),
        (np.zeros((2, 24, 10), bool), np.zeros((2, 20, 20), np.uint8), "binary images"),
        (np.full((2, 24, 24), 2), np.zeros((2, 20, 20), np.uint8), "binary must be bool"),
        (np.zeros((24, 24), bool), np.zeros((2, 20, 20), np.uint8), "binary must have shape"),
        (np.zeros((2, 24, 24), bool), np.full((2, 20, 20), 1.5), r"real as floats must lie in \[0, 1\]"),
        (np.zeros((2, 24, 24), bool), np.zeros((2, 20, 20), np.int16), "real must be"),
    ],
)
def test_training_data_validation(binary, real, message):
    with pytest.raises(ValueError, match=message):
        train_cyclegan(binary, real, config=tiny(), progress=False)


# --------------------------------------------------------------------------- translation


def test_translate_shapes_ranges_and_batches(data, tmp_path):
    binary, real = data
    result = train_cyclegan(binary, real, config=tiny(steps=2), progress=False)
    g = result.g
    images = np.random.default_rng(1).random((5, 19, 26)) > 0.7
    out = translate(g, images, batch_size=2)
    assert out.shape == (5, 19, 26) and out.dtype == np.float32
    assert 0 <= out.min() and out.max() <= 1
    np.testing.assert_allclose(out, translate(g, images.astype(np.float32), batch_size=32), atol=1e-6)
    np.testing.assert_allclose(out[3:4], translate(g, images[3:4]), atol=1e-6)  # instance norm: no batch coupling
    g.train()
    translate(g, images)
    assert g.training  # mode restored
    grey = translate(result.f, real)  # F on uint8 grey images
    assert grey.shape == real.shape and grey.dtype == np.float32

    # the exported generator is a plain foamlib U-Net file
    path = save_model(tmp_path / "g.pt", g, metadata={"kind": "cyclegan-g"})
    loaded, metadata = load_model(path, device="cpu")
    assert metadata["kind"] == "cyclegan-g"
    np.testing.assert_array_equal(translate(loaded, images, batch_size=2), out)

    with pytest.raises(ValueError, match="too small"):
        translate(g, np.zeros((1, 2, 9), bool))
    with pytest.raises(ValueError, match="batch_size"):
        translate(g, images, batch_size=0)
    with pytest.raises(ValueError, match=r"images as floats must lie in \[0, 1\]"):
        translate(g, images * 2.0)


def test_a_scan_read_tile_by_tile_trains_as_its_slices_in_memory(data, tmp_path):
    from foamlib.io import write_tiff
    from foamlib.lazy import open_scan
    from foamlib.patches import ScanSlices, orthogonal_slices
    from foamlib.segment import scale_intensity

    binary, _ = data
    volume = np.random.default_rng(3).integers(0, 4000, (20, 24, 28)).astype(np.uint16)
    lazy = ScanSlices(open_scan(write_tiff(tmp_path / "scan.tif", volume)), intensity_range=(100.0, 3900.0))
    in_memory = orthogonal_slices(scale_intensity(volume, (100.0, 3900.0)))
    a = train_cyclegan(binary, in_memory, config=tiny(), progress=False)
    b = train_cyclegan(binary, lazy, config=tiny(), run_dir=tmp_path / "run", progress=False)
    assert without_seconds(a.history) == without_seconds(b.history)
    assert_same_weights(states(a.model), states(b.model))
    again = train_cyclegan(binary, lazy, config=tiny(steps=6), run_dir=tmp_path / "run", progress=False)
    assert again.steps_run == 6  # the checkpoint's fingerprint of the scan matched: it resumed
