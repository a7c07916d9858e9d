"""Tests of foamlib.gan (tiny networks, a few steps each)."""

import csv
import dataclasses

import imageio.v3 as iio
import numpy as np
import pytest
import torch

import foamlib.gan as gan_module
from foamlib.gan import (
    Discriminator,
    GanConfig,
    Generator,
    ModelFileError,
    build_gan,
    generate,
    load_generator,
    save_generator,
    train_gan,
)
from foamlib.torchfiles import load_torch_file

pytestmark = pytest.mark.usefixtures("torch_one_thread")

TINY = GanConfig(
    image_size=16, latent_dim=8, base_channels=4, steps=4, batch_size=4, checkpoint_every=2, sample_every=2, seed=3
)


@pytest.fixture(scope="module")
def patches() -> np.ndarray:
    """40 binary 16 x 16 blob images (True = solid, about 30 %)."""
    from scipy import ndimage as ndi

    rng = np.random.default_rng(0)
    field = ndi.gaussian_filter(rng.normal(size=(40, 16, 16)), (0, 1.5, 1.5), mode="wrap")
    return field > 0.1


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


def _checkpoint(run_dir) -> dict:
    return load_torch_file(run_dir / "checkpoint.pt", gan_module.CHECKPOINT_FORMAT, kind="GAN checkpoint")


def _without_seconds(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


# --------------------------------------------------------------------------- networks


@pytest.mark.parametrize("size", [16, 32, 64])
def test_shapes_and_output_range(size):
    g = Generator(latent_dim=5, image_size=size, base_channels=2)
    d = Discriminator(image_size=size, base_channels=2)
    out = g(torch.randn(3, 5) * 10)
    assert out.shape == (3, 1, size, size)
    assert out.min() >= 0 and out.max() <= 1
    assert d(out).shape == (3,)
    assert Generator(**g.config).config == g.config == {"latent_dim": 5, "image_size": size, "base_channels": 2}
    assert Discriminator(**d.config).config == d.config == {"image_size": size, "base_channels": 2, "minibatch_std": True}
    plain = Discriminator(image_size=size, base_channels=2, minibatch_std=False)
    assert plain(out).shape == (3,) and plain(out[:1]).shape == (1,) and d(out[:1]).shape == (1,)


def test_networks_validate_arguments_and_inputs():
    with pytest.raises(ValueError, match="image_size must be a power of 2"):
        Generator(image_size=48)
    with pytest.raises(ValueError, match="image_size must be an integer >= 16"):
        Discriminator(image_size=8)
    with pytest.raises(ValueError, match="latent_dim"):
        Generator(latent_dim=0)
    g = Generator(latent_dim=4, image_size=16, base_channels=2)
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        g(torch.randn(2, 5))
    with pytest.raises(ValueError, match=r"\(N, 1, 16, 16\)"):
        Discriminator(image_size=16, base_channels=2)(torch.rand(2, 1, 32, 32))


def test_discriminator_is_spectrally_normalised_and_sees_batch_spread():
    d = Discriminator(image_size=16, base_channels=2)
    layers = [m for m in d.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert layers and all(torch.nn.utils.parametrize.is_parametrized(m, "weight") for m in layers)
    d.eval()  # no power iteration: the same weights for every call
    x = torch.rand(4, 1, 16, 16)
    same = x[:1].expand(4, -1, -1, -1)
    # with minibatch_std the score of image 0 depends on the rest of the batch
    assert not torch.allclose(d(x)[0], d(same)[0])
    plain = Discriminator(image_size=16, base_channels=2, minibatch_std=False).eval()
    torch.testing.assert_close(plain(x)[0], plain(same)[0])


def test_build_gan_is_seeded_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    g1, d1 = build_gan(TINY)
    g2, d2 = build_gan(TINY)
    assert torch.equal(before, torch.get_rng_state())
    _assert_same_state(_state(g1), _state(g2))
    _assert_same_state(_state(d1), _state(d2))
    g3, _ = build_gan(dataclasses.replace(TINY, seed=4))
    assert not torch.equal(g1.project.weight, g3.project.weight)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"image_size": 24}, "image_size"),
        ({"image_size": 8}, "image_size"),
        ({"latent_dim": 0}, "latent_dim"),
        ({"base_channels": 0}, "base_channels"),
        ({"steps": 0}, "steps"),
        ({"batch_size": 1}, "batch_size"),
        ({"lr_g": 0.0}, "lr_g"),
        ({"lr_d": float("nan")}, "lr_d"),
        ({"beta1": 1.0}, "beta1"),
        ({"beta2": -0.1}, "beta2"),
        ({"d_steps": 0}, "d_steps"),
        ({"instance_noise": -0.1}, "instance_noise"),
        ({"binarize": "sigmoid"}, "binarize"),
        ({"minibatch_std": None}, "minibatch_std"),
        ({"checkpoint_every": 0}, "checkpoint_every"),
        ({"seed": -1}, "seed"),
    ],
)
def test_config_validation(changes, field):
    with pytest.raises(ValueError, match=f"GanConfig.{field} "):
        GanConfig(**changes)


@pytest.mark.parametrize(("changes", "field"), [({"image_size": True}, "image_size"), ({"sample_every": 1.5}, "sample_every"),
                                                ({"lr_g": "1e-3"}, "lr_g")])
def test_config_type_errors(changes, field):
    with pytest.raises(TypeError, match=f"^GanConfig.{field} must be"):
        GanConfig(**changes)


def test_config_accepts_numpy_numbers_and_stores_plain_ones():
    config = GanConfig(steps=np.int64(5), lr_g=np.float32(1e-3), seed=np.int64(2))
    assert type(config.steps) is int and type(config.lr_g) is float and type(config.seed) is int


def test_config_accepts_edge_values():
    config = GanConfig(beta1=0.0, instance_noise=0.0, checkpoint_every=None, sample_every=None, image_size=16)
    assert config.beta1 == 0.0


# --------------------------------------------------------------------------- training


def test_training_changes_both_networks_and_writes_files(patches, tmp_path):
    g0, d0 = build_gan(TINY)
    result = train_gan(patches, config=TINY, run_dir=tmp_path, progress=False)
    assert result.steps_run == 4 and len(result.history) == 4
    assert not result.generator.training
    assert result.seconds == pytest.approx(sum(h["seconds"] for h in result.history))
    for key, value in _state(g0).items():
        if key.endswith("num_batches_tracked"):
            continue
        assert not torch.equal(value, result.generator.state_dict()[key]), key
    d_trained = _checkpoint(tmp_path)["discriminator_state"]
    changed = [k for k, v in _state(d0).items() if k.endswith("original") and not torch.equal(v, d_trained[k])]
    assert len(changed) == len([k for k in d_trained if k.endswith("original")]) > 0

    with open(tmp_path / "history.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    for column in ("loss_d", "loss_g", "d_real", "d_fake", "porosity", "porosity_std", "real_porosity", "seconds"):
        assert column in rows[0]
    first = result.history[0]
    assert 0 <= first["porosity"] <= 1 and first["loss_d"] >= 0
    assert first["loss_d"] == pytest.approx(max(0, 1 - first["d_real"]) + max(0, 1 + first["d_fake"]), abs=0.5)
    assert 0 <= first["real_porosity"] <= 1
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == ["step_000002.png", "step_000004.png"]
    grid = iio.imread(tmp_path / "samples" / "step_000004.png")
    assert grid.dtype == np.uint8 and set(np.unique(grid)) <= {0, 128, 255}


@pytest.mark.parametrize("binarize", ["bernoulli", "threshold", "none"])
def test_discriminator_inputs(patches, monkeypatch, binarize):
    seen = []
    forward = Discriminator.forward

    def recording(self, x):
        seen.append(x.detach().clone())
        return forward(self, x)

    monkeypatch.setattr(Discriminator, "forward", recording)
    probabilities = []
    g_forward = Generator.forward
    monkeypatch.setattr(Generator, "forward", lambda self, z: probabilities.append(g_forward(self, z)) or probabilities[-1])
    config = dataclasses.replace(TINY, steps=1, instance_noise=0.0, binarize=binarize)
    train_gan(patches, config=config, progress=False)
    assert len(seen) == 3  # D: real and fake; G: the same fake batch
    p = probabilities[0].detach()  # the training batch (later calls estimate batch-norm statistics)
    real, fake_d, fake_g = seen
    assert bool(((real == 0) | (real == 1)).all())
    if binarize == "none":
        torch.testing.assert_close(fake_d, p, rtol=0, atol=0)
        torch.testing.assert_close(fake_g, p, rtol=0, atol=0)
    elif binarize == "threshold":
        torch.testing.assert_close(fake_d, (p >= 0.5).float(), rtol=0, atol=0)
        torch.testing.assert_close(fake_g, (p >= 0.5).float(), rtol=0, atol=0)
    else:  # independent draws: pixels certain to be 0/1 agree, the rest follow p on average
        for fake in (fake_d, fake_g):
            assert bool(((fake == 0) | (fake == 1)).all())
        assert not torch.equal(fake_d, fake_g)
        assert float(fake_d.mean()) == pytest.approx(float(p.mean()), abs=0.05)


def test_straight_through_gradient_reaches_the_generator(patches):
    """With binarised fakes the generator still learns (its last layer changes)."""
    for binarize in ("bernoulli", "threshold"):
        config = dataclasses.replace(TINY, steps=2, binarize=binarize)
        g0, _ = build_gan(config)
        trained = train_gan(patches, config=config, progress=False).generator
        assert not torch.equal(g0.head.weight, trained.head.weight)


@pytest.mark.parametrize("decay", [0.0, 0.5])
def test_returned_generator_is_the_weight_average(patches, tmp_path, monkeypatch, decay):
    config = dataclasses.replace(TINY, steps=3, ema_decay=decay, checkpoint_every=1, sample_every=None)
    g0, _ = build_gan(config)
    gan_module._start_at_the_solid_fraction(g0, patches)  # as train_gan starts it
    states = []
    real_save = gan_module.save_torch_file

    def keep(obj, path):
        states.append({k: v.clone() for k, v in obj["generator_state"].items()})
        return real_save(obj, path)

    monkeypatch.setattr(gan_module, "save_torch_file", keep)
    result = train_gan(patches, config=config, run_dir=tmp_path, progress=False)
    assert len(states) == 3
    trained = dict(result.generator.named_parameters())
    for name, initial in g0.named_parameters():
        expected = initial.detach().clone()
        for state in states:
            expected = decay * expected + (1 - decay) * state[name]
        torch.testing.assert_close(trained[name].detach(), expected, rtol=1e-5, atol=1e-6, msg=name)
    # batch-norm statistics: re-estimated for the returned weights (not the trained generator's)
    assert int(result.generator.project_norm.num_batches_tracked) == gan_module._STAT_BATCHES
    assert result.generator.head.weight.requires_grad


def test_same_seed_gives_identical_weights(patches):
    a = train_gan(patches, config=TINY, progress=False)
    b = train_gan(patches, config=TINY, progress=False)
    _assert_same_state(_state(a.generator), _state(b.generator))
    assert _without_seconds(a.history) == _without_seconds(b.history)
    c = train_gan(patches, config=dataclasses.replace(TINY, seed=9), progress=False)
    assert not torch.equal(a.generator.head.weight, c.generator.head.weight)


def test_resume_after_interruption_equals_uninterrupted_run(patches, tmp_path, monkeypatch):
    config = dataclasses.replace(TINY, steps=6, checkpoint_every=2, sample_every=None, instance_noise=0.2)
    full = train_gan(patches, config=config, run_dir=tmp_path / "full", progress=False)

    # crash while writing the checkpoint of step 4: the one of step 2 stays
    real_save = gan_module.save_torch_file
    calls = []

    def crash_on_second(obj, path):
        calls.append(obj["step"])
        if len(calls) == 2:
            raise KeyboardInterrupt("simulated crash")
        return real_save(obj, path)

    monkeypatch.setattr(gan_module, "save_torch_file", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        train_gan(patches, config=config, run_dir=tmp_path / "crash", progress=False)
    monkeypatch.undo()
    assert calls == [2, 4]
    assert _checkpoint(tmp_path / "crash")["step"] == 2
    resumed = train_gan(patches, config=config, run_dir=tmp_path / "crash", progress=False)
    assert resumed.steps_run == 6
    _assert_same_state(_state(full.generator), _state(resumed.generator))
    _assert_same_state(_checkpoint(tmp_path / "full")["discriminator_state"], _checkpoint(tmp_path / "crash")["discriminator_state"])
    assert _without_seconds(full.history) == _without_seconds(resumed.history)

    # extending a finished run (steps, checkpoint_every, sample_every may change)
    short = dataclasses.replace(config, steps=3, checkpoint_every=None)
    train_gan(patches, config=short, run_dir=tmp_path / "extend", progress=False)
    extended = train_gan(patches, config=dataclasses.replace(config, sample_every=5), run_dir=tmp_path / "extend", progress=False)
    _assert_same_state(_state(full.generator), _state(extended.generator))
    assert (tmp_path / "extend" / "samples" / "step_000005.png").is_file()

    # a finished run resumes without training
    again = train_gan(patches, config=config, run_dir=tmp_path / "full", progress=False)
    assert again.steps_run == 6
    _assert_same_state(_state(full.generator), _state(again.generator))


def test_checkpoint_mismatch_is_refused(patches, tmp_path):
    train_gan(patches, config=TINY, run_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match=r"different GanConfig \(batch_size: 4 -> 8\)"):
        train_gan(patches, config=dataclasses.replace(TINY, batch_size=8), run_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match=r"different GanConfig \(instance_noise"):
        train_gan(patches, config=dataclasses.replace(TINY, instance_noise=0.0), run_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match=r"patches of shape \[40, 16, 16\], not \[39, 16, 16\]"):
        train_gan(patches[:39], config=TINY, run_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="other patches of the same shape"):
        train_gan(~patches, config=TINY, run_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="already run 4 steps"):
        train_gan(patches, config=dataclasses.replace(TINY, steps=3), run_dir=tmp_path, progress=False)
    (tmp_path / "other").mkdir()
    torch.save({"format": "foamlib-checkpoint"}, tmp_path / "other" / "checkpoint.pt")
    with pytest.raises(ModelFileError, match="not a foamlib GAN checkpoint"):
        train_gan(patches, config=TINY, run_dir=tmp_path / "other", progress=False)


def test_train_gan_validates_patches(patches):
    with pytest.raises(ValueError, match="must be 16 x 16"):
        train_gan(np.zeros((4, 32, 32), dtype=bool), config=TINY, progress=False)
    with pytest.raises(ValueError, match="dtype float32"):
        train_gan(patches.astype(np.float32) * 0.5, config=TINY, progress=False)
    with pytest.raises(ValueError, match="GanConfig"):
        train_gan(patches, config={"steps": 1}, progress=False)
    # 0/1 integers and fewer patches than a batch are fine
    few = train_gan(patches[:3].astype(np.uint8), config=dataclasses.replace(TINY, steps=1), progress=False)
    assert few.steps_run == 1


# --------------------------------------------------------------------------- sampling and files


def test_generate_is_seeded_and_binary():
    g, _ = build_gan(TINY)
    g.train()
    a = generate(g, 10, seed=1, batch_size=3)
    assert a.dtype == bool and a.shape == (10, 16, 16)
    assert g.training  # mode restored
    np.testing.assert_array_equal(a, generate(g, 10, seed=1, batch_size=64))
    assert not np.array_equal(a, generate(g, 10, seed=2))
    probs = generate(g, 10, seed=1, threshold=None)
    assert probs.dtype == np.float32 and probs.min() >= 0 and probs.max() <= 1
    np.testing.assert_array_equal(a, probs >= 0.5)
    np.testing.assert_array_equal(generate(g, 10, seed=1, threshold=0.3), probs >= 0.3)
    for kwargs in ({"threshold": 1.5}, {"batch_size": 0}, {"seed": -1}):
        with pytest.raises(ValueError):
            generate(g, 2, **kwargs)
    with pytest.raises(ValueError, match="n must"):
        generate(g, 0)


def test_save_load_round_trip_and_foreign_files(tmp_path):
    g, _ = build_gan(TINY)
    with torch.no_grad():  # non-trivial batch-norm statistics
        g.project_norm.running_mean.add_(0.3)
    path = save_generator(tmp_path / "sub" / "gen.pt", g, metadata={"porosity": np.float64(0.86), "shape": (2, 3)})
    loaded, metadata = load_generator(path, device="cpu")
    assert isinstance(loaded, Generator) and not loaded.training
    assert loaded.config == g.config
    _assert_same_state(_state(g), _state(loaded))
    assert metadata["porosity"] == 0.86 and metadata["shape"] == [2, 3] and "foamlib_version" in metadata
    np.testing.assert_array_equal(generate(g, 5, seed=7, threshold=None), generate(loaded, 5, seed=7, threshold=None))

    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(ModelFileError, match="not a foamlib GAN generator file"):
        load_generator(foreign)
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(ModelFileError, match="not a readable torch file"):
        load_generator(tmp_path / "text.pt")
    with pytest.raises(ModelFileError, match="no such file"):
        load_generator(tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="Generator"):
        save_generator(tmp_path / "d.pt", Discriminator(image_size=16, base_channels=2))


def test_check_not_collapsed_refuses_a_set_of_one_phase():
    from foamlib.gan import check_not_collapsed

    images = np.zeros((4, 8, 8), bool)
    with pytest.raises(ValueError, match="collapsed: all 4 generated images are pore"):
        check_not_collapsed(images)
    with pytest.raises(ValueError, match="are solid everywhere"):
        check_not_collapsed(~images)
    images[1, 2, 3] = True
    check_not_collapsed(images)


def test_training_starts_the_generator_at_the_real_solid_fraction(tmp_path):
    from foamlib.gan import _start_at_the_solid_fraction

    g = Generator(latent_dim=4, image_size=16, base_channels=2)
    patches = np.zeros((10, 16, 16), bool)
    patches[:, :, :12] = True  # 75 % solid
    _start_at_the_solid_fraction(g, patches)
    assert float(g.head.bias.detach()) == pytest.approx(np.log(3.0))
    _start_at_the_solid_fraction(g, np.ones((2, 16, 16), bool))  # one phase: a finite bias
    assert np.isfinite(float(g.head.bias.detach()))
