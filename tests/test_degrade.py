"""Tests for foamlib.degrade: each degradation on hand-checkable images, the series, the FID curve."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from foamlib import degrade as G


def _smooth_images(n: int = 3, size: int = 32, seed: int = 0) -> np.ndarray:
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    z = ndi.gaussian_filter(rng.standard_normal((n, size, size)), (0, 3, 3))
    return ((z - z.min()) / (z.max() - z.min()) * 0.6 + 0.2).astype(np.float32)  # values in [0.2, 0.8]


@pytest.mark.parametrize("kind", G.KINDS)
def test_level_zero_is_identity_and_output_shape(kind):
    x = _smooth_images()
    out = G.degradation_series(x, kind, [0, 1 if kind != "contrast" else 0.5], rng=0)
    assert out.shape == (2, *x.shape) and out.dtype == np.float32
    np.testing.assert_array_equal(out[0], x)
    assert not np.array_equal(out[1], x)
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_uint8_input_is_scaled():
    x = np.full((1, 8, 8), 255, dtype=np.uint8)
    np.testing.assert_allclose(G.degrade(x, "blur", 0.0), 1.0)


def test_noise_has_the_requested_sd_and_reuses_its_draws():
    x = np.full((4, 64, 64), 0.5, dtype=np.float32)
    out = G.degradation_series(x, "noise", [0.02, 0.04], rng=1)
    assert np.std(out[0] - x) == pytest.approx(0.02, rel=0.05)
    np.testing.assert_allclose(out[1] - x, 2 * (out[0] - x), atol=1e-6)  # common random numbers
    np.testing.assert_array_equal(G.degrade(x, "noise", 0.02, rng=1), out[0])


def test_blur_lowers_variance_monotonically():
    x = np.random.default_rng(0).random((2, 32, 32)).astype(np.float32)
    out = G.degradation_series(x, "blur", [0.0, 1.0, 2.0, 4.0])
    variances = [float(o.var()) for o in out]
    assert variances == sorted(variances, reverse=True)


def test_contrast_shrinks_towards_each_image_mean():
    x = _smooth_images()
    out = G.degrade(x, "contrast", 0.75)
    mean = x.mean(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(out, mean + 0.25 * (x - mean), atol=1e-6)
    np.testing.assert_allclose(G.degrade(x, "contrast", 1.0), np.broadcast_to(mean, x.shape), atol=1e-6)


def test_ring_adds_concentric_offsets_scaled_by_level():
    x = np.full((2, 40, 40), 0.5, dtype=np.float32)
    a, b = G.degradation_series(x, "ring", [0.05, 0.1], rng=3)
    delta = a - x
    np.testing.assert_allclose(b - x, 2 * delta, atol=1e-6)
    assert 0.05 < np.mean(delta != 0) < 0.5  # sparse rings, not a noise field
    # values are constant on circles: few distinct offsets compared with pixels
    assert len(np.unique(np.round(delta[0], 6))) < 60


def test_opening_removes_thin_bright_walls_and_keeps_thick_ones():
    x = np.zeros((1, 40, 40), dtype=np.float32)
    x[0, 5:35, 8] = 1.0  # a wall 1 px thick
    x[0, 10:30, 20:32] = 1.0  # a strut 12 px thick
    out = G.degrade(x, "opening", 2)
    assert out[0, 5:35, 8].max() == 0.0
    np.testing.assert_array_equal(out[0, 12:28, 22:30], 1.0)  # the strut's interior (the disk rounds corners)
    assert G.degrade(x, "opening", 0)[0, 20, 8] == 1.0


@pytest.mark.parametrize(
    ("images", "kind", "levels", "exc", "match"),
    [
        (np.zeros((2, 8)), "noise", [0.1], ValueError, r"\(N, H, W\)"),
        (np.full((1, 8, 8), 2.0), "noise", [0.1], ValueError, r"\[0, 1\]"),
        (np.zeros((1, 8, 8), dtype=np.int16), "noise", [0.1], TypeError, "uint8"),
        (np.zeros((1, 8, 8)), "jpeg", [0.1], ValueError, "kind"),
        (np.zeros((1, 8, 8)), "noise", [-0.1], ValueError, ">= 0"),
        (np.zeros((1, 8, 8)), "contrast", [1.5], ValueError, r"\[0, 1\]"),
        (np.zeros((1, 8, 8)), "opening", [1.5], ValueError, "whole pixels"),
        (np.zeros((1, 8, 8)), "noise", [], TypeError, "non-empty"),
        (np.zeros((1, 8, 8)), "noise", 0.1, TypeError, "sequence"),
        (np.zeros((1, 8, 8)), "noise", ["a"], TypeError, "number"),
    ],
)
def test_bad_arguments_are_named(images, kind, levels, exc, match):
    with pytest.raises(exc, match=match):
        G.degradation_series(images, kind, levels)


class _Stats(torch.nn.Module):
    """A cheap stand-in encoder: per-channel mean, std and gradient energy."""

    name = "stats"

    def __init__(self) -> None:
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grad = (x[..., 1:, :] - x[..., :-1, :]).abs().mean(dim=(2, 3))
        return torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3)), grad], dim=1)


def test_fid_degradation_curve_table_and_floor():
    crops = _smooth_images(n=12, size=24, seed=2)
    levels = {"noise": (0.0, 0.05, 0.2), "blur": (0.0, 2.0)}
    table = G.fid_degradation_curve(_Stats(), crops, levels, rng=0, device="cpu")
    assert list(table.columns) == ["encoder", "kind", "level", "n", "n_reference", "fid", "fid_floor", "fid_ratio",
                                   "kid"]
    assert len(table) == 5 and (table["encoder"] == "stats").all()
    assert (table[["n", "n_reference"]] == 6).all().all()
    first = table[table["level"] == 0.0]
    np.testing.assert_allclose(first["fid"], first["fid_floor"])
    np.testing.assert_allclose(first["fid_ratio"], 1.0)
    noise = table[table["kind"] == "noise"]["fid"].to_numpy()
    assert noise[0] < noise[1] < noise[2]
    again = G.fid_degradation_curve(_Stats(), crops, levels, rng=0, device="cpu")
    assert again.equals(table)
    separate = G.fid_degradation_curve(_Stats(), crops[:5], {"blur": (0, 1)}, reference=crops[5:], device="cpu")
    assert (separate["n"] == 5).all() and (separate["n_reference"] == 7).all()
    with pytest.raises(ValueError, match="at least 4"):
        G.fid_degradation_curve(_Stats(), crops[:3], levels)
    with pytest.raises(ValueError, match="kind"):
        G.fid_degradation_curve(_Stats(), crops, {"jpeg": (0, 1)})
    with pytest.raises(TypeError, match="mapping"):
        G.fid_degradation_curve(_Stats(), crops, [0, 1])  # type: ignore[arg-type]


def test_plot_degradation_curves_one_panel_per_kind_one_line_per_encoder():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    crops = _smooth_images(n=8, size=16, seed=1)
    levels = {"noise": (0.0, 0.1), "contrast": (0.0, 0.5), "opening": (0, 1)}
    first = G.fid_degradation_curve(_Stats(), crops, levels, rng=0, device="cpu")
    second = first.assign(encoder="other", fid_ratio=first["fid_ratio"] * 2)
    fig = G.plot_degradation_curves(pd.concat([first, second]))
    assert [ax.get_title() for ax in fig.axes] == ["noise", "contrast", "opening"]
    assert all(len(ax.get_lines()) == 3 for ax in fig.axes)  # two encoders and the floor
    assert fig.axes[0].get_yscale() == "log"
    plt.close(fig)
    with pytest.raises(ValueError, match="fid_ratio"):
        G.plot_degradation_curves(first.drop(columns="fid_ratio"))
    with pytest.raises(TypeError, match="DataFrame"):
        G.plot_degradation_curves({"kind": []})  # type: ignore[arg-type]


@pytest.mark.shared_data
@pytest.mark.usefixtures("torch_one_thread")
def test_trained_encoder_fid_rises_with_every_degradation_on_a_real_scan(shared_data):
    """24 crops (48 px) of the cement scan, 3 levels per kind: FID rises monotonically above the floor.

    Measured for seeds 0-3 (crops and split): monotonic in every case, the top level 2.5-9.6 times the
    floor; the bone scan gives 1.15-1.66 times (its crops include the air around the bone).
    """
    import tifffile

    from foamlib.features import load_encoder
    from foamlib.patches import extract_patches

    volume = tifffile.imread(shared_data / "cement" / "cement_128x128x128.tif")
    crops = extract_patches(volume, 48, 24, axes="zyx", seed=0)
    levels = {"noise": (0, 0.1, 0.2), "blur": (0, 1, 3), "contrast": (0, 0.5, 0.9), "ring": (0, 0.1, 0.2),
              "opening": (0, 2, 4)}
    encoder = load_encoder("efficientnet-lite0", device="cpu")
    table = G.fid_degradation_curve(encoder, crops, levels, rng=0)
    for kind, group in table.groupby("kind"):
        fids = group.sort_values("level")["fid"].to_numpy()
        assert np.all(np.diff(fids) > 0), (kind, fids)
        assert fids[-1] > 2.0 * fids[0], (kind, fids)
