"""Binary (or partial-volume) foam slices rendered as CT-like grey images.

Step 1 of Griem et al. turns binary slices of a generated foam into training
images with a Fiji macro: binary to 8 bit, Gaussian blur, contrast
adjustment and additive Gaussian noise, each with a parameter drawn per image
from a range. This module does the same in numpy/scipy:

* :class:`GreyModel` holds the grey levels of pore and solid, the noise and
  the blur of a scan; :func:`fit_grey_model` measures them on a real scan and
  its (Otsu) segmentation;
* :class:`RenderRanges` holds the relative per-image jitter of those
  parameters; :func:`draw_render_parameters` draws one :class:`GreyModel`
  per image;
* :func:`render_slices` renders a stack of slices with drawn parameters
  (``pore + (solid - pore) * fraction``, in-plane Gaussian blur, additive
  Gaussian noise, mapping to uint8);
* :func:`physics_render` is the second renderer: the simulated scanner
  :func:`foamlib.phantom.simulate_ct`, rescaled to a model's grey levels.

Conventions: volumes ``(Z, Y, X)``, image stacks ``(N, H, W)``; ``True`` and
fraction 1 mean solid, which is bright.
"""
from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.ndimage import distance_transform_edt, gaussian_filter
from scipy.optimize import minimize_scalar

from .checks import check_int, check_real
from .foam import slice_volume
from .phantom import simulate_ct

__all__ = [
    "GreyModel",
    "RenderRanges",
    "draw_render_parameters",
    "fit_grey_model",
    "phase_statistics",
    "physics_render",
    "render_slices",
    "to_uint8",
]

logger = logging.getLogger(__name__)

#: Largest blur (pixels) that :func:`fit_grey_model` reports.
MAX_FIT_BLUR: float = 5.0
#: Fewest voxels a region (far pore, solid cores) needs before the fit falls back.
_MIN_VOXELS = 100
#: Voxels used by the blur fit of :func:`fit_grey_model` (whole slices, at least one).
_BLUR_FIT_VOXELS = 1 << 22
#: Output dtypes of :func:`render_slices`.
_DTYPES = (np.dtype(np.uint8), np.dtype(np.float32))


# --------------------------------------------------------------------------- checks


def _grey_range(grey_range) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in grey_range)
    except (TypeError, ValueError):
        raise TypeError(f"grey_range must be two numbers (low, high), got {grey_range!r}") from None
    if not (math.isfinite(low) and math.isfinite(high)) or not low < high:
        raise ValueError(f"grey_range must be two finite numbers with low < high, got {grey_range!r}")
    return low, high


def _fraction_stack(slices, name: str, ndim: int) -> np.ndarray:
    """``slices`` as float32 fractions in [0, 1] with ``ndim`` dimensions."""
    arr = np.asarray(slices)
    if arr.ndim != ndim or min(arr.shape, default=0) < 1:
        want = "(N, H, W)" if ndim == 3 else "(Z, Y, X)"
        raise ValueError(f"{name} must be a non-empty {ndim}-d array {want}, got shape {arr.shape}")
    if arr.dtype == bool:
        return arr.astype(np.float32)
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"{name} must be bool or solid fractions (real numbers), got dtype {arr.dtype}")
    arr = arr.astype(np.float32, copy=False)
    if not np.all(np.isfinite(arr)) or arr.min() < 0.0 or arr.max() > 1.0:
        raise ValueError(
            f"{name} must hold solid fractions in [0, 1], got values in [{arr.min()!r}, {arr.max()!r}]"
        )
    return arr


# --------------------------------------------------------------------------- models


@dataclass(frozen=True)
class GreyModel:
    """Grey-value model of a CT scan of a two-phase (pore/solid) material.

    Attributes
    ----------
    pore_level : float
        Mean grey value of pore (air), in the scan's own grey units.
    solid_level : float
        Mean grey value of fully solid voxels, same units; must exceed
        ``pore_level`` (solid is bright).
    noise_sigma : float
        Standard deviation of the additive Gaussian noise, grey units, >= 0.
    blur_sigma : float
        Standard deviation of the in-plane Gaussian blur, pixels, >= 0.
    """

    pore_level: float
    solid_level: float
    noise_sigma: float = 0.0
    blur_sigma: float = 0.0

    def __post_init__(self):
        pore = check_real("pore_level", self.pore_level)
        solid = check_real("solid_level", self.solid_level)
        if not solid > pore:
            raise ValueError(f"solid_level ({solid!r}) must be greater than pore_level ({pore!r}); solid is bright")
        object.__setattr__(self, "pore_level", pore)
        object.__setattr__(self, "solid_level", solid)
        object.__setattr__(self, "noise_sigma", check_real("noise_sigma", self.noise_sigma, low=0.0))
        object.__setattr__(self, "blur_sigma", check_real("blur_sigma", self.blur_sigma, low=0.0))

    @property
    def contrast(self) -> float:
        """``solid_level - pore_level`` (grey units, > 0)."""
        return self.solid_level - self.pore_level

    def to_dict(self) -> dict[str, float]:
        """The four fields as a JSON-ready dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GreyModel:
        """Inverse of :meth:`to_dict`; unknown or missing keys raise ValueError."""
        return _from_dict(cls, data)


def _from_dict(cls, data):
    if not isinstance(data, Mapping):
        raise TypeError(f"{cls.__name__}.from_dict needs a mapping, got {type(data).__name__}")
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys {unknown}; expected {names}")
    return cls(**dict(data))


@dataclass(frozen=True)
class RenderRanges:
    """Relative per-image jitter of the rendering parameters.

    Each image draws its parameters uniformly from these ranges around a
    :class:`GreyModel` (see :func:`draw_render_parameters`).

    Attributes
    ----------
    contrast : float, default 0.10
        ``solid_level - pore_level`` is multiplied by a factor in
        ``[1 - contrast, 1 + contrast]`` (about the mid grey); in [0, 1).
    noise : float, default 0.30
        ``noise_sigma`` is multiplied by a factor in ``[1 - noise, 1 + noise]``;
        in [0, 1].
    blur : float, default 0.30
        ``blur_sigma`` is multiplied by a factor in ``[1 - blur, 1 + blur]``;
        in [0, 1].
    offset : float, default 0.05
        Both levels are shifted by the same amount in
        ``[-offset, offset] * (solid_level - pore_level)``; >= 0.
    """

    contrast: float = 0.10
    noise: float = 0.30
    blur: float = 0.30
    offset: float = 0.05

    def __post_init__(self):
        object.__setattr__(self, "contrast", check_real("contrast", self.contrast, low=0.0))
        if self.contrast >= 1.0:
            raise ValueError(f"contrast must be < 1 (the contrast must stay positive), got {self.contrast!r}")
        object.__setattr__(self, "noise", check_real("noise", self.noise, low=0.0, high=1.0))
        object.__setattr__(self, "blur", check_real("blur", self.blur, low=0.0, high=1.0))
        object.__setattr__(self, "offset", check_real("offset", self.offset, low=0.0))

    @classmethod
    def none(cls) -> RenderRanges:
        """No jitter: every image gets exactly the model's parameters."""
        return cls(contrast=0.0, noise=0.0, blur=0.0, offset=0.0)

    def to_dict(self) -> dict[str, float]:
        """The four fields as a JSON-ready dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RenderRanges:
        """Inverse of :meth:`to_dict`; unknown keys raise ValueError."""
        return _from_dict(cls, data)


# --------------------------------------------------------------------------- fit


def _crop(shape: tuple[int, ...], max_voxels: int, rng: np.random.Generator) -> tuple[slice, ...]:
    """A random box of at most about ``max_voxels`` voxels (the whole array if it is smaller)."""
    size = math.prod(shape)
    if size <= max_voxels:
        return tuple(slice(None) for _ in shape)
    f = (max_voxels / size) ** (1.0 / len(shape))
    out = []
    for n in shape:
        m = max(1, min(n, math.ceil(n * f)))
        start = int(rng.integers(0, n - m + 1))
        out.append(slice(start, start + m))
    return tuple(out)


def fit_grey_model(
    scan,
    solid,
    *,
    pore_distance: float = 3.0,
    core_depth: float = 3.0,
    max_voxels: int = 1 << 23,
    rng=None,
) -> GreyModel:
    """Fit a :class:`GreyModel` to a real scan and its binary segmentation.

    Parameters
    ----------
    scan : array_like, shape (Z, Y, X) or (Y, X), real, or foamlib.lazy.LazyScan
        Grey values of the scan. A scan opened lazily is read only where the
        fit looks (the box below), with the same result as in memory.
    solid : array_like of bool, same shape, or foamlib.lazy.LazyMask
        Its segmentation (e.g. Otsu, :func:`foamlib.threshold.segment`);
        ``True`` = solid.
    pore_distance : float, default 3.0
        Pore voxels farther than this (voxels, Euclidean distance transform
        in 3-d) from any solid voxel are "far pore", free of blur and partial
        volume.
    core_depth : float, default 3.0
        Solid voxels at least this far (voxels) from any pore voxel are
        "strut cores".
    max_voxels : int, default 2**23
        Larger scans are fitted on a random box of about this many voxels
        (the distance transforms need 8 bytes per voxel).
    rng : int, numpy.random.Generator or None
        Picks that box and the slices of the blur fit.

    Returns
    -------
    GreyModel
        In the grey units of ``scan``:

        * ``pore_level``: median of the far-pore voxels;
        * ``noise_sigma``: robust standard deviation (1.4826 x median
          absolute deviation) of the far-pore voxels;
        * ``solid_level``: median of the strut cores. Cores are deep enough
          that blur and partial volume have faded, so their median is not
          biased by noise the way a high percentile would be;
        * ``blur_sigma``: the in-plane Gaussian blur (pixels, in
          ``[0, MAX_FIT_BLUR]``) that minimises the squared difference
          between the scan and ``pore + (solid - pore) * blur(segmentation)``
          on the voxels within 4 voxels of the phase boundary (a bounded 1-d
          minimisation over at most about 4 M voxels of whole z-slices). The
          blur is in-plane (axes Y, X), like :func:`render_slices`.

        Fallbacks, each logged: fewer than 100 far-pore voxels -> pore
        voxels at least 1.5 voxels from solid, then all pore voxels; fewer
        than 100 core voxels -> solid voxels at least 2 voxels deep, then the
        90th percentile of all solid voxels.

    Raises
    ------
    ValueError
        If the shapes differ or are not 2-d/3-d, ``scan`` is not finite,
        ``solid`` lacks either phase, or the fitted solid level is not above
        the pore level.
    TypeError
        If ``solid`` is not boolean or ``scan`` not numeric.
    """
    from .lazy import LazyMask, LazyScan

    img = scan if isinstance(scan, LazyScan) else np.asarray(scan)
    seg = solid if isinstance(solid, LazyMask) else np.asarray(solid)
    if img.ndim not in (2, 3) or min(img.shape) < 1:
        raise ValueError(f"scan must have shape (Z, Y, X) or (Y, X), got {img.shape}")
    if seg.shape != img.shape:
        raise ValueError(f"solid must have the shape of scan {img.shape}, got {seg.shape}")
    if seg.dtype != bool:
        raise TypeError(f"solid must be a boolean segmentation, got dtype {seg.dtype}")
    if img.dtype == bool or not (np.issubdtype(img.dtype, np.floating) or np.issubdtype(img.dtype, np.integer)):
        raise TypeError(f"scan must hold real grey values, got dtype {img.dtype}")
    pore_distance = check_real("pore_distance", pore_distance, low=0.0)
    core_depth = check_real("core_depth", core_depth, low=0.0)
    max_voxels = check_int("max_voxels", max_voxels, low=1)
    rng = np.random.default_rng(rng)
    if img.ndim == 2:
        img, seg = img[None], seg[None]

    box = _crop(img.shape, int(max_voxels), rng)
    img = img[box].astype(np.float32)
    seg = np.asarray(seg[box])
    if not np.all(np.isfinite(img)):
        raise ValueError("scan contains NaN or infinite grey values")
    n_solid = int(seg.sum())
    if n_solid == 0 or n_solid == seg.size:
        raise ValueError(f"solid must contain both phases, got {n_solid} solid voxels of {seg.size}")

    to_solid = distance_transform_edt(~seg)  # for pore voxels: distance to the nearest solid voxel
    to_pore = distance_transform_edt(seg)  # for solid voxels: distance to the nearest pore voxel

    far = img[to_solid > pore_distance]
    if far.size < _MIN_VOXELS:
        logger.info("only %d far-pore voxels; using pore voxels >= 1.5 voxels from solid", far.size)
        far = img[to_solid >= 1.5]
        if far.size < _MIN_VOXELS:
            logger.info("only %d such voxels; using all pore voxels", far.size)
            far = img[~seg]
    pore_level = float(np.median(far))
    noise = float(1.4826 * np.median(np.abs(far - pore_level)))

    cores = img[to_pore >= core_depth]
    if cores.size >= _MIN_VOXELS:
        solid_level = float(np.median(cores))
    else:
        cores = img[to_pore >= 2.0]
        if cores.size >= _MIN_VOXELS:
            logger.info("few strut cores >= %g voxels deep; using solid voxels >= 2 voxels deep", core_depth)
            solid_level = float(np.median(cores))
        else:
            logger.info("few strut cores; solid level = 90th percentile of all solid voxels")
            solid_level = float(np.percentile(img[seg], 90.0))
    if not solid_level > pore_level:
        raise ValueError(
            f"fitted solid level {solid_level:g} is not above the pore level {pore_level:g}; "
            "is solid the bright phase of scan?"
        )

    # blur: bounded 1-d least squares over whole z-slices near the phase boundary
    nz = img.shape[0]
    per_slice = img.shape[1] * img.shape[2]
    n_fit = max(1, min(nz, _BLUR_FIT_VOXELS // per_slice))
    zs = np.sort(rng.choice(nz, size=n_fit, replace=False))
    sub, sharp = img[zs], seg[zs].astype(np.float32)
    band = np.where(seg[zs], to_pore[zs], to_solid[zs]) <= 4.0
    target = sub[band]
    contrast = solid_level - pore_level

    def cost(sigma: float) -> float:
        model = gaussian_filter(sharp, sigma=(0.0, sigma, sigma), mode="reflect")
        return float(np.mean((target - (pore_level + contrast * model[band])) ** 2))

    res = minimize_scalar(cost, bounds=(0.0, MAX_FIT_BLUR), method="bounded", options={"xatol": 1e-3})
    blur = float(np.clip(res.x, 0.0, MAX_FIT_BLUR))
    if cost(0.0) <= res.fun:  # the bounded search never evaluates the bound itself
        blur = 0.0
    model = GreyModel(pore_level=pore_level, solid_level=solid_level, noise_sigma=noise, blur_sigma=blur)
    logger.info("fitted grey model %s", model)
    return model


# --------------------------------------------------------------------------- rendering


def draw_render_parameters(
    n: int, model: GreyModel, *, ranges: RenderRanges = RenderRanges(), rng=None
) -> list[GreyModel]:
    """Draw the rendering parameters of ``n`` images.

    Parameters
    ----------
    n : int
        Number of images, >= 0.
    model : GreyModel
        Nominal parameters.
    ranges : RenderRanges, optional
        Relative jitter; :meth:`RenderRanges.none` returns ``n`` copies of
        ``model``.
    rng : int, numpy.random.Generator or None
        Random source; one ``(n, 4)`` uniform draw in [-1, 1) (contrast,
        offset, noise, blur factors in that order).

    Returns
    -------
    list of GreyModel
        Per image: contrast ``c = model.contrast * (1 + ranges.contrast * u0)``
        about the mid grey shifted by ``ranges.offset * model.contrast * u1``;
        ``noise_sigma * (1 + ranges.noise * u2)``;
        ``blur_sigma * (1 + ranges.blur * u3)``.
    """
    n = check_int("n", n, low=0)
    if not isinstance(model, GreyModel):
        raise TypeError(f"model must be a GreyModel, got {type(model).__name__}")
    if not isinstance(ranges, RenderRanges):
        raise TypeError(f"ranges must be a RenderRanges, got {type(ranges).__name__}")
    rng = np.random.default_rng(rng)
    u = rng.uniform(-1.0, 1.0, size=(int(n), 4))
    c0 = model.contrast
    contrast = c0 * (1.0 + ranges.contrast * u[:, 0])
    mid = 0.5 * (model.pore_level + model.solid_level) + ranges.offset * c0 * u[:, 1]
    noise = model.noise_sigma * (1.0 + ranges.noise * u[:, 2])
    blur = model.blur_sigma * (1.0 + ranges.blur * u[:, 3])
    return [
        GreyModel(pore_level=float(m - c / 2), solid_level=float(m + c / 2), noise_sigma=float(s), blur_sigma=float(b))
        for c, m, s, b in zip(contrast, mid, noise, blur)
    ]


def to_uint8(images, *, grey_range=(0.0, 255.0)) -> np.ndarray:
    """Map grey values linearly to 8 bit, rounding and clipping.

    Parameters
    ----------
    images : array_like, real
        Grey values, any shape.
    grey_range : (float, float), default (0, 255)
        Grey values mapped to 0 and 255.

    Returns
    -------
    ndarray, same shape, uint8
    """
    low, high = _grey_range(grey_range)
    arr = np.asarray(images, dtype=np.float32)
    scaled = (arr - np.float32(low)) * np.float32(255.0 / (high - low))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def render_slices(
    slices,
    model: GreyModel,
    *,
    ranges: RenderRanges = RenderRanges(),
    rng=None,
    dtype="uint8",
    grey_range=None,
) -> np.ndarray:
    """Render binary or partial-volume slices as CT-like grey images.

    Parameters
    ----------
    slices : array_like, shape (N, H, W), bool or real
        ``True``/1 = solid; real values are solid fractions in [0, 1].
    model : GreyModel
        Nominal grey levels (grey units), noise (grey units) and blur (pixels).
    ranges : RenderRanges, optional
        Per-image jitter of the parameters (:func:`draw_render_parameters`).
    rng : int, numpy.random.Generator or None
        Random source: the parameters are drawn first (one draw for the
        stack), then the noise image by image.
    dtype : {"uint8", "float32"}, default "uint8"
        ``"uint8"``: grey values mapped by :func:`to_uint8` with
        ``grey_range``; ``"float32"``: the grey values themselves (no
        clipping), ``grey_range`` must then be None.
    grey_range : (float, float), optional
        Grey values mapped to 0 and 255 for uint8 output; default (0, 255),
        i.e. the model is in 8-bit units.

    Returns
    -------
    ndarray, shape (N, H, W), uint8 or float32
        Per image ``i`` with drawn parameters ``p``:
        ``p.pore_level + p.contrast * fraction``, Gaussian blur of
        ``p.blur_sigma`` pixels in-plane (mode "reflect"), plus Gaussian noise
        of ``p.noise_sigma``; then the dtype mapping.

    Raises
    ------
    ValueError
        Wrong ``slices`` shape, fractions outside [0, 1], unknown ``dtype``,
        a bad ``grey_range``.
    TypeError
        ``model`` / ``ranges`` of the wrong type, non-numeric ``slices``.
    """
    frac = _fraction_stack(slices, "slices", 3)
    try:
        out_dtype = np.dtype(dtype)
    except TypeError:
        raise ValueError(f"dtype must be 'uint8' or 'float32', got {dtype!r}") from None
    if out_dtype not in _DTYPES:
        raise ValueError(f"dtype must be 'uint8' or 'float32', got {dtype!r}")
    if out_dtype == np.float32:
        if grey_range is not None:
            raise ValueError("grey_range applies to uint8 output only; leave it None for dtype='float32'")
    else:
        grey_range = _grey_range((0.0, 255.0) if grey_range is None else grey_range)
    rng = np.random.default_rng(rng)
    params = draw_render_parameters(frac.shape[0], model, ranges=ranges, rng=rng)
    out = np.empty(frac.shape, dtype=out_dtype)
    for i, p in enumerate(params):
        img = np.float32(p.pore_level) + np.float32(p.contrast) * frac[i]
        if p.blur_sigma > 0:
            img = gaussian_filter(img, sigma=p.blur_sigma, mode="reflect")
        if p.noise_sigma > 0:
            img += np.float32(p.noise_sigma) * rng.standard_normal(img.shape, dtype=np.float32)
        out[i] = img if out_dtype == np.float32 else to_uint8(img, grey_range=grey_range)
    return out


def physics_render(fraction_volume, *, model: GreyModel, axis: int = 0, rng=None, **simulate_ct_kwargs) -> np.ndarray:
    """Render a foam with the simulated scanner, rescaled to a model's grey levels.

    Parameters
    ----------
    fraction_volume : array_like, shape (Z, Y, X), bool or real in [0, 1]
        Solid fraction per voxel (e.g. :attr:`foamlib.foam.Foam.fraction`).
    model : GreyModel
        Only ``pore_level`` and ``solid_level`` are used; noise and blur come
        from the scanner settings.
    axis : int, default 0
        Slicing axis of the output (:func:`foamlib.foam.slice_volume`); the
        scan itself always rotates about z.
    rng : int, numpy.random.Generator or None
        Passed to :func:`foamlib.phantom.simulate_ct`.
    **simulate_ct_kwargs
        Further scanner settings (``photons_per_ray``, ``ring_strength``,
        ``blur_sigma``, ...).

    Returns
    -------
    ndarray, shape (N, H, W), float32
        Grey values mapped linearly so that the mean over voxels of fraction 0
        is ``model.pore_level`` and over voxels of fraction 1 is
        ``model.solid_level`` (least-squares ``grey ~ a + b * fraction`` over
        all voxels if either set has fewer than 100 voxels).
    """
    frac = _fraction_stack(fraction_volume, "fraction_volume", 3)
    if not isinstance(model, GreyModel):
        raise TypeError(f"model must be a GreyModel, got {type(model).__name__}")
    ct = simulate_ct(frac, rng=rng, **simulate_ct_kwargs).astype(np.float64)
    pore, full = frac <= 1e-6, frac >= 1.0 - 1e-6
    if pore.sum() >= _MIN_VOXELS and full.sum() >= _MIN_VOXELS:
        g0, g1 = float(ct[pore].mean()), float(ct[full].mean())
    else:
        b, a = np.polyfit(frac.ravel().astype(np.float64), ct.ravel(), 1)
        g0, g1 = float(a), float(a + b)
    if not g1 > g0:
        raise ValueError(f"the simulated scan has no solid/pore contrast (pore {g0:g}, solid {g1:g})")
    scale = model.contrast / (g1 - g0)
    out = (model.pore_level + scale * (ct - g0)).astype(np.float32)
    return np.ascontiguousarray(slice_volume(out, axis=axis))


def phase_statistics(images, labels) -> dict[str, float]:
    """Grey values of each phase under a binary label, to compare real and synthetic images.

    Parameters
    ----------
    images : array_like, real, any shape
        Grey values (a scan, or a stack of synthetic images), in any units.
    labels : array_like of bool, same shape
        True = solid: the exact labels of synthetic images, or a segmentation
        of a real scan.

    Returns
    -------
    dict
        ``pore_mean``, ``pore_std``, ``solid_mean``, ``solid_std`` (grey units),
        ``cnr``: contrast-to-noise ratio ``(solid_mean - pore_mean) /
        sqrt((pore_std**2 + solid_std**2) / 2)``, and ``otsu_dice``: Dice
        coefficient of an Otsu threshold of ``images`` against ``labels``
        (solid as the positive class), i.e. how well the easiest segmentation
        recovers the labels. Synthetic training images should make a U-Net
        work as hard as the real scan does, so these numbers should be close
        for the two.

    Raises
    ------
    ValueError
        If the shapes differ or a phase is empty.
    """
    from skimage.filters import threshold_otsu

    images = np.asarray(images, dtype=np.float64)
    labels = np.asarray(labels, dtype=bool)
    if images.shape != labels.shape:
        raise ValueError(f"images and labels must have the same shape, got {images.shape} and {labels.shape}")
    solid, pore = images[labels], images[~labels]
    if solid.size == 0 or pore.size == 0:
        raise ValueError("labels must contain both solid (True) and pore (False) pixels")
    otsu = images > threshold_otsu(images)
    overlap = np.count_nonzero(otsu & labels)
    stats = {
        "pore_mean": float(pore.mean()),
        "pore_std": float(pore.std()),
        "solid_mean": float(solid.mean()),
        "solid_std": float(solid.std()),
    }
    noise = math.sqrt((stats["pore_std"] ** 2 + stats["solid_std"] ** 2) / 2)
    stats["cnr"] = (stats["solid_mean"] - stats["pore_mean"]) / noise if noise > 0 else math.inf
    stats["otsu_dice"] = 2 * overlap / (np.count_nonzero(otsu) + solid.size)
    return stats
