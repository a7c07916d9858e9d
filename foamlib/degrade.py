"""Controlled degradations of real CT crops: does an encoder's FID see them?

A feature encoder is fit for FID / KID on CT images of foams if the distance
between real crops and *degraded* real crops grows with the strength of the
degradation, from the real-vs-real floor upwards. This module makes such
series and measures them:

* :func:`degrade` -- one degradation at one level;
* :func:`degradation_series` -- one degradation at several levels, with the same
  random draws at every level (common random numbers), so the series only
  differs in strength;
* :func:`fid_degradation_curve` -- a tidy table of FID (and KID) between one
  half of the real crops and the degraded other half, per kind and level,
  beside the real-vs-real floor; run it for several encoders and compare;
* :func:`plot_degradation_curves` -- one panel per kind, FID over its floor
  against the level, one line per encoder.

Kinds of degradation (images are grey values in [0, 1]; ``level = 0`` always
leaves the images unchanged):

``"noise"``
    Additive Gaussian noise of standard deviation ``level`` (grey-value units),
    then clipped to [0, 1] -- a noisier scan.
``"blur"``
    Gaussian blur of standard deviation ``level`` pixels
    (:func:`scipy.ndimage.gaussian_filter`, ``mode="reflect"``) -- lower
    resolution.
``"contrast"``
    Contrast reduced towards each image's mean grey value:
    ``mean + (1 - level) * (x - mean)``, ``level`` in [0, 1] (1: flat image).
``"ring"``
    A ring artefact as from miscalibrated detector pixels: concentric rings
    (one-pixel radial bins, about 15 % of them offset by a standard normal
    amount) around a centre drawn uniformly over each image, scaled by
    ``level`` (grey-value units), then clipped to [0, 1]. The ring profile is
    drawn once per call, as a detector's defects are fixed for a scan.
``"opening"``
    Wall removal by grey opening (:func:`scipy.ndimage.grey_opening`) with a
    disk of radius ``level`` pixels (an integer): bright structures thinner
    than the disk -- the cell walls and thin struts of a foam -- disappear,
    thick ones stay. Assumes solid is bright.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import ndimage as ndi

from ._optional import requires_extra
from foamlib.checks import check_real

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure
    from torch import nn

__all__ = ["KINDS", "DEFAULT_LEVELS", "degrade", "degradation_series", "fid_degradation_curve",
           "plot_degradation_curves"]

logger = logging.getLogger(__name__)

#: The degradations :func:`degrade` knows, see the module docstring.
KINDS = ("noise", "blur", "contrast", "ring", "opening")

#: Levels that run in seconds on 64-pixel crops and span "barely visible" to "obvious".
DEFAULT_LEVELS: dict[str, tuple[float, ...]] = {
    "noise": (0.0, 0.02, 0.05, 0.1, 0.2),
    "blur": (0.0, 0.5, 1.0, 2.0, 4.0),
    "contrast": (0.0, 0.2, 0.4, 0.6, 0.8),
    "ring": (0.0, 0.02, 0.05, 0.1, 0.2),
    "opening": (0, 1, 2, 3, 5),
}

_RING_FRACTION = 0.15


def _as_images(images: Any, name: str = "images") -> np.ndarray:
    """``(N, H, W)`` uint8 (scaled by 1/255) or float in [0, 1] -> float32 copy."""
    arr = np.asarray(images)
    if arr.ndim != 3 or 0 in arr.shape:
        raise ValueError(f"{name} must be a non-empty (N, H, W) array, got shape {arr.shape}")
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    if not np.issubdtype(arr.dtype, np.floating):
        raise TypeError(f"{name} must be uint8 or floating point, got {arr.dtype}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contain NaN or infinite values")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"float {name} must lie in [0, 1], got values in [{lo:.4g}, {hi:.4g}]")
    return arr.astype(np.float32, copy=True)


def _check_kind(kind: object) -> str:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(map(repr, KINDS))}, got {kind!r}")
    return str(kind)


def _check_level(kind: str, level: object) -> float:
    value = check_real(f"{kind} level", level, low=0.0)
    if kind == "contrast" and value > 1:
        raise ValueError(f"contrast level must lie in [0, 1], got {level!r}")
    if kind == "opening" and value != int(value):
        raise ValueError(f"opening level is a disk radius in whole pixels, got {level!r}")
    return value


def _disk(radius: int) -> np.ndarray:
    r = np.arange(-radius, radius + 1)
    return (r[:, None] ** 2 + r[None, :] ** 2) <= radius**2


class _Draws:
    """The random fields of one series, drawn once so that every level reuses them."""

    def __init__(self, kind: str, shape: tuple[int, int, int], rng: np.random.Generator) -> None:
        n, h, w = shape
        self.noise = rng.standard_normal(shape, dtype=np.float32) if kind == "noise" else None
        self.rings = None
        if kind == "ring":
            n_bins = int(np.ceil(np.hypot(h, w))) + 1
            profile = rng.standard_normal(n_bins) * (rng.random(n_bins) < _RING_FRACTION)
            cy = rng.uniform(0, h, size=n)
            cx = rng.uniform(0, w, size=n)
            yy, xx = np.mgrid[0:h, 0:w]
            radius = np.hypot(yy[None] - cy[:, None, None], xx[None] - cx[:, None, None])
            self.rings = profile[np.round(radius).astype(int)].astype(np.float32)


def _apply(x: np.ndarray, kind: str, level: float, draws: _Draws) -> np.ndarray:
    if level == 0:
        return x.copy()
    if kind == "noise":
        return np.clip(x + np.float32(level) * draws.noise, 0.0, 1.0)
    if kind == "blur":
        return np.stack([ndi.gaussian_filter(img, level, mode="reflect") for img in x])
    if kind == "contrast":
        mean = x.mean(axis=(1, 2), keepdims=True)
        return np.clip(mean + np.float32(1.0 - level) * (x - mean), 0.0, 1.0)
    if kind == "ring":
        return np.clip(x + np.float32(level) * draws.rings, 0.0, 1.0)
    footprint = _disk(int(level))
    return np.stack([ndi.grey_opening(img, footprint=footprint, mode="reflect") for img in x])


def degradation_series(
    images: Any,
    kind: str,
    levels: Sequence[float],
    *,
    rng: int | np.random.Generator | None = None,
) -> np.ndarray:
    """Degrade a set of images at several strengths with the same random draws.

    Parameters
    ----------
    images : (N, H, W) ndarray of uint8 or float
        Grey images; uint8 is divided by 255, float must lie in [0, 1].
    kind : {"noise", "blur", "contrast", "ring", "opening"}
        The degradation, see the module docstring for what ``level`` means.
    levels : sequence of float
        Strengths, each >= 0 (``0`` returns the images unchanged); ``"contrast"``
        in [0, 1], ``"opening"`` whole pixels.
    rng : int, numpy.random.Generator or None, optional
        Source of the noise field and the ring pattern (drawn once, shared by
        all levels).

    Returns
    -------
    (L, N, H, W) ndarray of float32
        ``out[i]`` is ``images`` at ``levels[i]``, values in [0, 1].
    """
    x = _as_images(images)
    kind = _check_kind(kind)
    if isinstance(levels, (str, bytes)) or not isinstance(levels, Sequence) or len(levels) == 0:
        raise TypeError(f"levels must be a non-empty sequence of numbers, got {levels!r}")
    values = [_check_level(kind, level) for level in levels]
    draws = _Draws(kind, x.shape, np.random.default_rng(rng))
    return np.stack([_apply(x, kind, level, draws) for level in values])


def degrade(images: Any, kind: str, level: float, *, rng: int | np.random.Generator | None = None) -> np.ndarray:
    """One degradation at one strength: ``degradation_series(images, kind, [level], rng=rng)[0]``.

    Parameters
    ----------
    images : (N, H, W) ndarray of uint8 or float
        Grey images (uint8, or float in [0, 1]).
    kind : {"noise", "blur", "contrast", "ring", "opening"}
        The degradation.
    level : float
        Its strength (see the module docstring).
    rng : int, numpy.random.Generator or None, optional
        Source of the random fields.

    Returns
    -------
    (N, H, W) ndarray of float32
        Values in [0, 1].
    """
    return degradation_series(images, kind, [level], rng=rng)[0]


def fid_degradation_curve(
    encoder: nn.Module,
    crops: Any,
    levels: Mapping[str, Sequence[float]] | None = None,
    *,
    reference: Any = None,
    rng: int | np.random.Generator | None = None,
    kid_subset_size: int = 1000,
    kid_subsets: int = 10,
    batch_size: int = 64,
    device: Any = None,
) -> pd.DataFrame:
    """FID and KID between real crops and degraded real crops, per kind and level.

    Without ``reference``, the crops are split at random into two halves: the
    first is the reference, the second is degraded. The FID between the two
    undegraded halves is the real-vs-real floor (what two draws of the same
    scan give at this ``N``); a useful encoder puts the degraded sets above it,
    rising with the level.

    Parameters
    ----------
    encoder : torch.nn.Module
        A :class:`foamlib.features.FeatureEncoder` (its ``name`` goes into the
        table) or any module accepted by :func:`foamlib.features.extract_features`.
    crops : (N, H, W) ndarray of uint8 or float
        Real crops (uint8, or float in [0, 1]); ``N >= 4`` without ``reference``.
    levels : mapping of str to sequence of float, optional
        Kinds to run and their levels; default :data:`DEFAULT_LEVELS`.
    reference : (M, H', W') ndarray, optional
        Separate reference crops; then all ``crops`` are degraded.
    rng : int, numpy.random.Generator or None, optional
        Source of the split and of the degradations' random draws.
    kid_subset_size, kid_subsets : int, optional
        KID settings (see :func:`foamlib.fid.kid`); the subset size is capped
        at the set sizes.
    batch_size : int, optional
        Images per forward pass.
    device : str or torch.device, optional
        Where to run the encoder; default: where it is.

    Returns
    -------
    pandas.DataFrame
        One row per kind and level, columns ``encoder`` (its ``name``, or the
        class name), ``kind``, ``level``, ``n`` (degraded crops),
        ``n_reference``, ``fid``, ``fid_floor`` (undegraded vs reference, equal
        for all rows), ``fid_ratio`` (``fid / fid_floor``) and ``kid``.
    """
    with requires_extra("study"):
        import pandas as pd

    from foamlib.features import extract_features
    from foamlib.fid import fid, kid

    gen = np.random.default_rng(rng)
    x = _as_images(crops, "crops")
    if reference is None:
        if x.shape[0] < 4:
            raise ValueError(f"crops must hold at least 4 images to be split in two, got {x.shape[0]}")
        order = gen.permutation(x.shape[0])
        half = x.shape[0] // 2
        ref, x = x[order[:half]], x[order[half:]]
    else:
        ref = _as_images(reference, "reference")
        if ref.shape[0] < 2 or x.shape[0] < 2:
            raise ValueError(f"reference and crops need at least 2 images each, got {ref.shape[0]} and {x.shape[0]}")
    if levels is None:
        levels = DEFAULT_LEVELS
    if not isinstance(levels, Mapping) or not levels:
        raise TypeError(f"levels must be a non-empty mapping of kind to levels, got {type(levels).__name__}")
    for kind in levels:
        _check_kind(kind)

    def features(images: np.ndarray) -> np.ndarray:
        return extract_features(encoder, images, batch_size=batch_size, device=device)

    ref_features = features(ref)
    floor = fid(ref_features, features(x))
    subset = min(kid_subset_size, ref.shape[0], x.shape[0])
    name = getattr(encoder, "name", type(encoder).__name__)
    rows = []
    for kind, kind_levels in levels.items():
        series = degradation_series(x, kind, kind_levels, rng=gen)
        for level, images in zip(kind_levels, series):
            feats = features(images)
            value = fid(ref_features, feats)
            rows.append({
                "encoder": name, "kind": kind, "level": float(level), "n": x.shape[0], "n_reference": ref.shape[0],
                "fid": value, "fid_floor": floor, "fid_ratio": value / floor if floor > 0 else np.nan,
                "kid": kid(ref_features, feats, subset_size=subset, n_subsets=kid_subsets, rng=gen).mean,
            })
        logger.info("%s: %s done", name, kind)
    return pd.DataFrame(rows)


_LEVEL_UNITS = {"noise": "noise sd (grey value)", "blur": "blur sigma (px)", "contrast": "contrast lost (fraction)",
                "ring": "ring amplitude (grey value)", "opening": "opening radius (px)"}
_CURVE_COLUMNS = ("encoder", "kind", "level", "fid_ratio")


def plot_degradation_curves(table: pd.DataFrame, *, log_y: bool = True) -> Figure:
    """FID over the real-vs-real floor against the degradation level: one panel per kind, one line per encoder.

    Parameters
    ----------
    table : pandas.DataFrame
        Output of :func:`fid_degradation_curve`, or several concatenated (one
        per encoder); needs the columns ``encoder``, ``kind``, ``level`` and
        ``fid_ratio``.
    log_y : bool, optional
        Logarithmic ratio axis (default), so that encoders whose FIDs differ by
        orders of magnitude fit in one panel.

    Returns
    -------
    matplotlib.figure.Figure
        Panels in the order the kinds first appear; a dotted line marks the
        floor (ratio 1). An encoder fit for FID rises above it, monotonically.
    """
    with requires_extra("study"):
        import matplotlib.pyplot as plt
        import pandas as pd

    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"table must be a pandas DataFrame, got {type(table).__name__}")
    missing = [c for c in _CURVE_COLUMNS if c not in table.columns]
    if missing or table.empty:
        raise ValueError(f"table must be non-empty with columns {list(_CURVE_COLUMNS)}; missing {missing}")
    kinds = list(dict.fromkeys(table["kind"]))
    fig, axes = plt.subplots(1, len(kinds), figsize=(2.6 * len(kinds), 2.8), layout="constrained", squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        part = table[table["kind"] == kind]
        for encoder, group in part.groupby("encoder", sort=False):
            group = group.sort_values("level")
            ax.plot(group["level"], group["fid_ratio"], marker="o", label=str(encoder))
        ax.axhline(1.0, color="0.5", ls=":")
        ax.set(title=kind, xlabel=_LEVEL_UNITS.get(kind, "level"), yscale="log" if log_y else "linear")
    axes[0, 0].set_ylabel("FID / real-vs-real FID")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=max(1, len(labels)), fontsize="small")
    return fig
