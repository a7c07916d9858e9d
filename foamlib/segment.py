"""Segmenting whole CT volumes with a trained 2D U-Net, slice by slice, in bounded memory.

:func:`segment_volume` runs the network on every slice of a ``(Z, Y, X)``
volume, either along z only (``axes="z"``, as Griem et al. did) or along all
three axes with the three probability volumes averaged (``axes="xyz"``), which
smooths the slice-to-slice jitter of a 2D network at three times the cost.
:func:`segment_file` segments a scan file slab by slab within a memory budget
and writes a mask TIFF stack or OME-Zarr image (uint8, 255 = solid, or 255 =
pore with ``label="pore"``; the output's metadata says which, see
:mod:`foamlib.io`) and, on request, the float32 probability of solid as a
second stack, in this process or as Dask tasks (:mod:`foamlib.distributed`).

Tiling
------
Large slices are cut into tiles that overlap by at least ``overlap`` pixels:
along each axis longer than ``tile``, the fewest tiles of length at most
``tile`` that can overlap so, all of one length (the shortest that covers the
axis with that overlap), spread evenly from border to border
(:func:`~foamlib.tiling.tile_layout`). A 1024-pixel side with ``tile=512, overlap=32`` takes
three tiles of 363 pixels, not two of 512 and a third moved back to the border,
which would run the network on 2.25 times the slice's pixels instead of 1.13.
Any slice size works, including slices smaller than a tile (then the slice is
one tile).
Tiles are predicted in batches (across slices) and blended with a window that
rises as ``sin^2`` over ``overlap`` pixels on every side that borders another
tile (and is flat on sides at the slice border), each pixel's probability being
the window-weighted mean of the tiles covering it. Near its border a tile sees
zero padding instead of the neighbouring grey values, which changes the output
there; the window gives those pixels little weight, so seams vanish once
``overlap`` is comparable to the network's effective receptive field.

Grey values
-----------
The network expects inputs in [0, 1]. ``intensity_range=(low, high)`` maps grey
value ``low`` to 0 and ``high`` to 1, linearly, clipping values outside.

A model must see the same [0, 1] inputs on every scan of the same material,
whatever the scan's dtype, offset or scale (uint8, uint16 written as
``200 * x + 5000``, int16 with a negative offset, float with negative values).
So the range is a property of each scan, derived by one documented rule that
training and segmentation share: :class:`IntensityNormalisation` (robust
percentiles of the scan itself, :data:`DEFAULT_NORMALISATION`). Models record
theirs in the metadata key ``"normalisation"``. :func:`segment_file` derives the
range of each scan by, in this order:

1. an explicit ``intensity_range=(low, high)`` (CLI ``--intensity-range``);
2. the model's ``"normalisation"`` applied to the scan;
3. a model with only a legacy ``"intensity_range"`` (written before per-scan
   normalisation existed, when that was the training scan's (min, max)): the
   scan's own (min, max), :data:`MINMAX_NORMALISATION`, with a warning;
4. a model recording neither: :data:`DEFAULT_NORMALISATION`, with a warning.

:func:`normalisation_from_metadata` implements rules 2-4 for callers of
:func:`segment_volume`. Whatever the source, a range that clips more than
:data:`CLIP_WARN_FRACTION` of the voxels is reported with a warning.

:func:`segment_volume` itself takes the range it is given; with
``intensity_range=None`` it falls back to the dtype rules of
:func:`infer_intensity_range` (``(0, dtype max)`` for unsigned integers; (0, 1)
or (0, 255) for floats within those ranges), which suit images already scaled
as :func:`foamlib.training.train_unet` scales them, not raw scans.

Model files
-----------
:func:`segment_file` accepts only segmentation models
(:func:`check_segmentation_model`): metadata ``"task": "segmentation"``, or,
for files written before ``"task"`` existed, ``"stage"`` ``"step1"`` or
``"step2"`` or no ``"stage"`` at all. A CycleGAN generator
(``"stage": "cyclegan"`` or ``"task": "translation"``) is refused. A model's
``"voxel_size_um"`` is compared with the scan's; a ratio beyond
:data:`VOXEL_SIZE_WARN_FACTOR` either way is reported with a warning.

Scans larger than memory
------------------------
:func:`segment_file` never holds the scan or its probabilities whole. It opens
the scan with :func:`foamlib.lazy.open_scan` (memory-mapped TIFF, raw and
``.npy``; page by page or file by file otherwise), checks it in one streamed
pass (NaN, infinities, a constant scan) and derives its grey-value range from
the strided grid ``scan[::s, ::s, ::s]`` of at most
:attr:`IntensityNormalisation.max_samples` voxels (deterministic, every
``s``-th slice read; the exact minimum and maximum, where the normalisation
asks for them, come from the streamed pass). Then:

- ``axes="z"``: slabs of whole z slices are read, segmented, thresholded and
  written to the output TIFF (:func:`foamlib.io.tiff_slab_writer`), and their
  probabilities to the probability stack where one is asked for;
- ``axes="xyz"``: a z pass writes its share of the probabilities to a
  temporary float32 file beside the output (4 bytes per voxel of disk); a y
  pass over slabs of whole xz slices (``scan[:, y0:y1, :]``) and an x pass
  over slabs of whole yz slices add theirs; a last pass thresholds the file
  slab by slab into the output (and copies it into the probability stack). Each direction's slices are whole, so no halo
  is needed: a halo wide enough to make 3D blocks exact would be a whole tile
  (the tiling of the long axes must stay the same), i.e. most of each block.

:func:`plan_stream` derives the slab depths from the budget ``memory_gb`` and
rounds them to whole batches of tiles, so every slice is tiled as by
:func:`segment_volume`, the network sees the same batches (a CPU or GPU
convolution can differ in the last bit between batch sizes), and the
probabilities are summed per voxel in the same order: the result equals the
in-memory one bit for bit, whatever the budget.

Tile limits
-----------
:func:`tiling_limits` derives from a U-Net's configuration the smallest tile
worth running (the deepest level must still see one whole kernel of real
pixels: ``2 ** (levels - 1) * kernel_size``; 64 for the paper's network) and
the smallest overlap that keeps seams small (one pixel of the deepest level:
``2 ** (levels - 1)``; 16 for five levels). Smaller tiles raise ValueError;
smaller overlaps, where a slice is really tiled, log a warning.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from .checks import check_int, check_real, is_real
from .device import autocast, pick_device, pick_precision
from .io import MASK_LABELS, check_tiff_output, path_inside, same_path, tiff_slab_writer
from .lazy import open_scan
from .progress import progress_bar
from .tiling import DEFAULT_BATCH_SIZE, DEFAULT_OVERLAP, DEFAULT_TILE, batch_unit, tile_layout, tiles_per_slice
from .tiling import tile_origins as tile_origins  # re-exported: it lived here before foamlib.tiling
from .training import load_model

__all__ = [
    "SegmentResult",
    "IntensityNormalisation",
    "DEFAULT_NORMALISATION",
    "MINMAX_NORMALISATION",
    "CLIP_WARN_FRACTION",
    "VOXEL_SIZE_WARN_FACTOR",
    "SEGMENTATION_TASK",
    "SEGMENTATION_STAGES",
    "TilingLimits",
    "tiling_limits",
    "tile_layout",
    "normalisation_from_metadata",
    "check_segmentation_model",
    "clipped_fraction",
    "segment_volume",
    "segment_file",
    "segment_scan",
    "StreamPlan",
    "plan_stream",
    "DEFAULT_MEMORY_GB",
    "infer_intensity_range",
    "scale_intensity",
]

logger = logging.getLogger(__name__)

_AXES = ("z", "xyz")
_TIFF_SUFFIXES = (".tif", ".tiff")


@dataclass(frozen=True)
class SegmentResult:
    """What :func:`segment_file` (or :func:`segment_scan`) did.

    Attributes
    ----------
    porosity : float
        Fraction of voxels segmented as pore (probability below the threshold).
    shape : tuple of int
        ``(Z, Y, X)`` of the scan.
    seconds : float
        Wall time of the whole call (reading, inference, writing).
    out_path : pathlib.Path
        The mask written (uint8; 255 = the phase ``label``, 0 = the other).
    solid_voxels : int
        Voxels segmented as solid.
    total_voxels : int
        All voxels.
    voxel_size_um : float or None
        Voxel size written with the stack.
    intensity_range : tuple of (float, float)
        The grey values mapped to 0 and 1.
    axes : str
        ``"z"`` or ``"xyz"``.
    clipped_fraction : float
        Fraction of voxels outside ``intensity_range`` (clipped to 0 or 1).
    memory_estimate_bytes : int
        Estimated peak memory of the run's arrays and network
        (:attr:`StreamPlan.peak_bytes`), bytes.
    label : str
        The phase stored as 255 in ``out_path``: ``"solid"`` or ``"pore"``.
    probabilities_path : pathlib.Path or None
        The float32 stack of solid probabilities written, or None.
    """

    porosity: float
    shape: tuple[int, int, int]
    seconds: float
    out_path: Path
    solid_voxels: int = 0
    total_voxels: int = 0
    voxel_size_um: float | None = None
    intensity_range: tuple[float, float] = (0.0, 1.0)
    axes: str = "z"
    clipped_fraction: float = 0.0
    memory_estimate_bytes: int = 0
    label: str = "solid"
    probabilities_path: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict of the fields."""
        return {
            "porosity": self.porosity,
            "shape": list(self.shape),
            "seconds": self.seconds,
            "out_path": str(self.out_path),
            "solid_voxels": self.solid_voxels,
            "total_voxels": self.total_voxels,
            "voxel_size_um": self.voxel_size_um,
            "intensity_range": list(self.intensity_range),
            "axes": self.axes,
            "clipped_fraction": self.clipped_fraction,
            "memory_estimate_bytes": self.memory_estimate_bytes,
            "label": self.label,
            "probabilities_path": None if self.probabilities_path is None else str(self.probabilities_path),
        }


# --------------------------------------------------------------------------- checks


def check_tiling_options(axes: Any, tile: Any, overlap: Any, batch_size: Any) -> tuple[int, int, int]:
    """Validate the options shared by :func:`segment_volume` and :func:`plan_stream`; return tile, overlap, batch size."""
    if axes not in _AXES:
        raise ValueError(f"axes must be 'z' or 'xyz', got {axes!r}")
    tile = check_int("tile", tile, low=1)
    overlap = check_int("overlap", overlap, low=0)
    if overlap >= tile:
        raise ValueError(f"overlap must be smaller than tile ({tile}), got {overlap}")
    return tile, overlap, check_int("batch_size", batch_size, low=1)


def check_intensity_range(value: Any) -> tuple[float, float]:
    ok = isinstance(value, (tuple, list, np.ndarray)) and len(value) == 2
    if ok:
        try:
            low, high = float(value[0]), float(value[1])
        except (TypeError, ValueError):
            ok = False
    if not ok or not (math.isfinite(low) and math.isfinite(high) and high > low):
        raise ValueError(f"intensity_range must be (low, high) with finite low < high, got {value!r}")
    return low, high


def infer_intensity_range(volume: np.ndarray) -> tuple[float, float]:
    """Grey values mapped to 0 and 1 when none are given (rules 2 and 3 of the module notes).

    Parameters
    ----------
    volume : numpy.ndarray
        Grey values, unsigned integers or floats.

    Returns
    -------
    tuple of (float, float)

    Raises
    ------
    ValueError
        If the dtype is not unsigned integer or float, or float values are
        neither within [0, 1] nor whole numbers within [0, 255].
    """
    volume = np.asarray(volume)
    if not np.issubdtype(volume.dtype, np.floating):
        return dtype_range_rule(volume.dtype, 0.0, 0.0, True)
    low, high = float(np.min(volume)), float(np.max(volume))
    return dtype_range_rule(volume.dtype, low, high, lambda: bool(np.all(volume == np.round(volume))))


def dtype_range_rule(dtype: Any, low: float, high: float, whole: Any) -> tuple[float, float]:
    """Rules 2 and 3 from the dtype, a float volume's minimum and maximum and whether all are whole
    (a bool, or a callable giving it, evaluated only where needed); shared with foamlib.distributed."""
    if np.issubdtype(dtype, np.unsignedinteger):
        return 0.0, float(np.iinfo(dtype).max)
    if not np.issubdtype(dtype, np.floating):
        raise ValueError(f"volume must hold unsigned integers or floats, got dtype {dtype}")
    if 0.0 <= low and high <= 1.0:
        return 0.0, 1.0
    if 0.0 <= low and high <= 255.0 and (whole() if callable(whole) else whole):
        return 0.0, 255.0
    raise ValueError(
        f"cannot tell how to scale grey values from {low:.6g} to {high:.6g} to [0, 1]; "
        "pass intensity_range=(low, high)"
    )


# --------------------------------------------------------------------------- settings

#: Fraction of voxels outside the intensity range above which :func:`segment_file`
#: warns. A derived percentile range clips ``(low_percentile + 100 - high_percentile) / 100``
#: of the voxels by construction (1 % for :data:`DEFAULT_NORMALISATION`), so 2 % leaves
#: room for that and still catches an explicit or stored range that misses the scan.
CLIP_WARN_FRACTION = 0.02

#: Ratio of the scan's voxel size to the model's ``"voxel_size_um"`` (either way) above
#: which :func:`segment_file` warns: the pores and walls then appear at another scale
#: than the network was trained on.
VOXEL_SIZE_WARN_FACTOR = 1.5

#: Default memory budget of :func:`segment_file`, GB (10^9 bytes): see :func:`plan_stream`.
DEFAULT_MEMORY_GB = 2.0

#: Metadata ``"task"`` of a segmentation model (what :func:`segment_file` accepts).
SEGMENTATION_TASK = "segmentation"

#: Metadata ``"stage"`` values of segmentation models written before ``"task"`` existed.
SEGMENTATION_STAGES = ("step1", "step2")

_NORMALISATION_METHODS = ("percentile",)


@dataclass(frozen=True)
class IntensityNormalisation:
    """Per-scan grey-value range: robust percentiles of the scan itself.

    A scan's range ``(low, high)`` is the ``low_percentile`` and
    ``high_percentile`` of its grey values; :func:`scale_intensity` then maps
    ``low`` to 0 and ``high`` to 1. The result is the same for a scan stored as
    uint8, as uint16 ``200 * x + 5000``, as int16 with an offset or as float
    with negative values, because percentiles move with any increasing affine
    map of the grey values. Training (the range that rendered images are mapped
    into) and segmentation must use the same instance: models store it in
    their metadata under ``"normalisation"`` (:meth:`to_dict`).

    Attributes
    ----------
    low_percentile, high_percentile : float
        Percentiles in [0, 100], ``low < high``. The default 0.5 and 99.5 are
        what nnU-Net clips CT intensities to (Isensee et al., 2021, *Nature
        Methods* 18, 203): far enough into the tails that a handful of bright
        or dark outliers (ring artefacts, metal, dead pixels) do not stretch
        the range, close enough that both phases of a foam lie inside it as
        long as each holds more than 0.5 % of the voxels (porosities up to
        99 %). 0.1/99.9 would let 0.1 % of outliers decide the range. 0 and 100
        mean the exact minimum and maximum of the whole volume
        (:data:`MINMAX_NORMALISATION`).
    max_samples : int
        Percentiles strictly between 0 and 100 are computed on at most this
        many voxels, >= 1: the regular grid ``volume[::s, ::s, ::s]`` with the
        smallest step ``s`` that fits, which is deterministic and spatially
        uniform. Default ``2 ** 24`` (a 256^3 volume is used whole; a 512^3
        one on every second voxel along each axis).

    Examples
    --------
    >>> import numpy as np
    >>> norm = IntensityNormalisation(low_percentile=0.0, high_percentile=100.0)
    >>> norm.range_for(np.array([[[3, 7], [5, 9]]], dtype=np.uint16))
    (3.0, 9.0)
    >>> IntensityNormalisation.from_dict(DEFAULT_NORMALISATION.to_dict()) == DEFAULT_NORMALISATION
    True
    """

    low_percentile: float = 0.5
    high_percentile: float = 99.5
    max_samples: int = 2**24

    def __post_init__(self) -> None:
        for name in ("low_percentile", "high_percentile"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise TypeError(f"{name} must be a number in [0, 100], got {value!r}")
            if not 0.0 <= float(value) <= 100.0:
                raise ValueError(f"{name} must lie in [0, 100], got {value!r}")
            object.__setattr__(self, name, float(value))
        if not self.low_percentile < self.high_percentile:
            raise ValueError(
                f"low_percentile ({self.low_percentile}) must be below high_percentile ({self.high_percentile})"
            )
        object.__setattr__(self, "max_samples", check_int("max_samples", self.max_samples, low=1))

    def range_for(self, volume: np.ndarray) -> tuple[float, float]:
        """The grey values of ``volume`` that map to 0 and 1.

        Parameters
        ----------
        volume : ndarray or foamlib.lazy.LazyScan
            Grey values of any real dtype and shape, usually ``(Z, Y, X)``.
            Not modified; a memory map is read once, on the subsample grid.
            A :class:`~foamlib.lazy.LazyScan` (a scan larger than memory) is
            sampled on the same grid, reading only every ``s``-th slice, with
            its grey values taken as float32 as :func:`foamlib.io.read_scan`
            takes them, so the range equals that of the scan read into memory;
            the exact minimum and maximum (percentiles 0 and 100) come from
            :meth:`~foamlib.lazy.LazyScan.value_range`, one streamed pass.

        Returns
        -------
        (float, float)
            ``(low, high)`` with ``low < high``, in the units of ``volume``.
            Where the two percentiles coincide (more than 99 % of the voxels
            share one value), the volume's minimum and maximum are used
            instead, with a warning.

        Raises
        ------
        ValueError
            If ``volume`` is empty, not real numbers, holds NaN or infinities,
            or is constant.
        """
        from .lazy import LazyScan

        if isinstance(volume, LazyScan):
            scan = volume
            # grey values as float32, as read_scan gives them, so a scan read lazily and in memory agree
            sample_of = lambda: scan.grid_sample(self.max_samples).astype(np.float32)  # noqa: E731
            min_of = lambda: float(np.float32(scan.value_range()[0]))  # noqa: E731
            max_of = lambda: float(np.float32(scan.value_range()[1]))  # noqa: E731
        else:
            volume = np.asarray(volume)
            if volume.size == 0:
                raise ValueError(f"cannot normalise an empty volume (shape {volume.shape})")
            if volume.dtype.kind not in "biuf":
                raise ValueError(f"volume must hold real numbers, got dtype {volume.dtype}")
            sample_of = lambda: _grid_sample(volume, self.max_samples)  # noqa: E731
            min_of = lambda: float(np.min(volume))  # noqa: E731
            max_of = lambda: float(np.max(volume))  # noqa: E731
        exact_low = self.low_percentile == 0.0
        exact_high = self.high_percentile == 100.0
        low = high = math.nan
        if not (exact_low and exact_high):
            sample = sample_of().astype(np.float64, copy=False)
            low, high = (float(v) for v in np.percentile(sample, [self.low_percentile, self.high_percentile]))
            del sample
        vmin = min_of() if exact_low or not low < high else low
        vmax = max_of() if exact_high or not low < high else high
        if not (math.isfinite(vmin) and math.isfinite(vmax)):
            raise ValueError("volume holds NaN or infinite values; cannot derive its grey-value range")
        if not (exact_low and exact_high) and not low < high:
            if vmin == vmax:
                raise ValueError(f"volume holds only the value {vmin:g}; it has no grey-value range")
            logger.warning(
                "percentiles %g and %g of the scan are both %g (one value fills most of it); "
                "using its minimum and maximum (%g, %g) instead",
                self.low_percentile, self.high_percentile, low, vmin, vmax,
            )  # fmt: skip
            return vmin, vmax
        low = vmin if exact_low else low
        high = vmax if exact_high else high
        if not low < high:
            raise ValueError(f"volume holds only the value {low:g}; it has no grey-value range")
        return low, high

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for model metadata (``metadata["normalisation"]``); see :meth:`from_dict`."""
        return {
            "method": "percentile",
            "low_percentile": self.low_percentile,
            "high_percentile": self.high_percentile,
            "max_samples": self.max_samples,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IntensityNormalisation:
        """Rebuild from :meth:`to_dict` output.

        Raises
        ------
        ValueError
            If ``data`` is not a mapping, names another method, lacks a key or
            has unknown keys or bad values.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"normalisation must be a dict as written by IntensityNormalisation.to_dict, got {data!r}")
        method = data.get("method", "percentile")
        if method not in _NORMALISATION_METHODS:
            raise ValueError(f"normalisation method {method!r} is not known; known: {', '.join(_NORMALISATION_METHODS)}")
        known = {"method", "low_percentile", "high_percentile", "max_samples"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"normalisation has unknown key(s) {unknown}; known keys are {sorted(known)}")
        missing = sorted({"low_percentile", "high_percentile"} - set(data))
        if missing:
            raise ValueError(f"normalisation lacks {missing}")
        kwargs = {k: data[k] for k in ("low_percentile", "high_percentile", "max_samples") if k in data}
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise ValueError(str(exc)) from exc


#: The normalisation of new models: percentiles 0.5 and 99.5 of each scan.
DEFAULT_NORMALISATION = IntensityNormalisation()

#: Each scan's exact (min, max): what models with only a legacy ``"intensity_range"`` were trained with.
MINMAX_NORMALISATION = IntensityNormalisation(low_percentile=0.0, high_percentile=100.0)


def _grid_sample(volume: np.ndarray, max_samples: int) -> np.ndarray:
    """``volume[::s, ::s, ...]`` with the smallest step ``s`` that leaves at most ``max_samples`` values."""
    step = 1
    while math.prod(-(-n // step) for n in volume.shape) > max_samples:
        step += 1
    return np.asarray(volume[(slice(None, None, step),) * volume.ndim])


def normalisation_from_metadata(metadata: Mapping[str, Any] | None, *, source: str = "the model") -> IntensityNormalisation:
    """The per-scan normalisation a model was trained with (rules 2-4 of the module notes).

    Parameters
    ----------
    metadata : mapping or None
        The model's metadata (:func:`foamlib.training.load_model`).
    source : str, optional
        What to name in messages, e.g. the model file.

    Returns
    -------
    IntensityNormalisation
        ``metadata["normalisation"]``; else :data:`MINMAX_NORMALISATION` if the
        model has a legacy ``"intensity_range"`` (logs a warning); else
        :data:`DEFAULT_NORMALISATION` (logs a warning).

    Raises
    ------
    ValueError
        If ``metadata["normalisation"]`` is malformed (names ``source``).

    Examples
    --------
    >>> normalisation_from_metadata({"normalisation": DEFAULT_NORMALISATION.to_dict()}) == DEFAULT_NORMALISATION
    True
    """
    metadata = metadata if isinstance(metadata, Mapping) else {}
    if metadata.get("normalisation") is not None:
        try:
            return IntensityNormalisation.from_dict(metadata["normalisation"])
        except ValueError as exc:
            raise ValueError(f"{source}: metadata {exc}") from exc
    if metadata.get("intensity_range") is not None:
        logger.warning(
            "%s predates per-scan normalisation (it stores only the training scan's intensity_range %s); "
            "mapping each scan's own minimum and maximum to 0 and 1, as it was trained. Retrain, or pass "
            "intensity_range (--intensity-range) to choose the range yourself",
            source, list(metadata["intensity_range"]) if isinstance(metadata["intensity_range"], (list, tuple)) else metadata["intensity_range"],
        )  # fmt: skip
        return MINMAX_NORMALISATION
    logger.warning(
        "%s records no grey-value normalisation; using percentiles %g and %g of each scan. "
        "Pass intensity_range (--intensity-range) if the model expects another range",
        source, DEFAULT_NORMALISATION.low_percentile, DEFAULT_NORMALISATION.high_percentile,
    )  # fmt: skip
    return DEFAULT_NORMALISATION


def clipped_fraction(volume: np.ndarray, intensity_range: tuple[float, float]) -> float:
    """Fraction of voxels strictly outside ``intensity_range`` (clipped by :func:`scale_intensity`).

    Parameters
    ----------
    volume : ndarray
        Grey values, any shape; counted slice by slice along the first axis.
    intensity_range : (float, float)
        ``(low, high)``.

    Returns
    -------
    float
        In [0, 1].
    """
    low, high = check_intensity_range(intensity_range)
    volume = np.asarray(volume)
    if volume.size == 0:
        return 0.0
    planes = volume.reshape(1, -1) if volume.ndim < 2 else volume
    outside = sum(int(np.count_nonzero((p < low) | (p > high))) for p in planes)
    return outside / volume.size


def check_segmentation_model(metadata: Mapping[str, Any] | None, *, source: str = "the model") -> None:
    """Refuse a model whose metadata says it is not a segmentation model.

    The rule: ``metadata["task"]``, where present, must be
    :data:`SEGMENTATION_TASK`; without ``"task"``, ``metadata["stage"]`` (or,
    without that, ``metadata["kind"]``), where present, must be one of
    :data:`SEGMENTATION_STAGES` (the step 1 and step 2 U-Nets of the study,
    written before ``"task"`` existed) or :data:`SEGMENTATION_TASK`. A file
    that records none of them is accepted (it cannot be told apart).

    Parameters
    ----------
    metadata : mapping or None
        The model's metadata.
    source : str, optional
        What to name in the message, e.g. the model file.

    Raises
    ------
    foamlib.torchfiles.ModelFileError
        (a ValueError) naming ``source`` and what the model says it is.
    """
    from .torchfiles import ModelFileError

    metadata = metadata if isinstance(metadata, Mapping) else {}
    task = metadata.get("task")
    key = "stage" if metadata.get("stage") is not None else "kind"
    stage = metadata.get(key)
    if task is not None:
        if task != SEGMENTATION_TASK:
            raise ModelFileError(
                f"{source} is not a segmentation model: its metadata says task {task!r}"
                + (f" ({key} {stage!r})" if stage is not None else "")
                + f"; segmentation needs task {SEGMENTATION_TASK!r}"
            )
        return
    if stage is not None and stage not in SEGMENTATION_STAGES + (SEGMENTATION_TASK,):
        what = " (a CycleGAN generator, which translates grey images)" if "cyclegan" in str(stage) else ""
        raise ModelFileError(
            f"{source} is not a segmentation model: its metadata says {key} {stage!r}{what}; "
            f"segmentation models have task {SEGMENTATION_TASK!r} or stage "
            + " or ".join(map(repr, SEGMENTATION_STAGES))
        )


@dataclass(frozen=True)
class TilingLimits:
    """What tiles a U-Net needs, from its configuration (see :func:`tiling_limits`).

    Attributes
    ----------
    receptive_field : int
        Side of the square of input pixels that can influence one output
        pixel (theoretical, within 2 px of a gradient measurement), pixels.
    min_tile : int
        Smallest tile side worth running: ``2 ** (levels - 1) * kernel_size``,
        pixels. Below it the deepest level sees less than one kernel of real
        pixels, the rest being padding.
    min_overlap : int
        Smallest overlap that keeps seams small: ``2 ** (levels - 1)``, one
        pixel of the deepest level, pixels.
    """

    receptive_field: int
    min_tile: int
    min_overlap: int


def tiling_limits(config: Mapping[str, Any]) -> TilingLimits:
    """Tile limits of a :class:`~foamlib.unet.UNet` configuration.

    Parameters
    ----------
    config : mapping
        ``model.config``; ``levels``, ``convs_per_level`` and ``kernel_size``
        are used (defaults of :class:`~foamlib.unet.UNet` where missing).

    Returns
    -------
    TilingLimits

    Notes
    -----
    Measured with the untrained paper network (5 levels, kernel 4, theoretical
    receptive field 367 px) on a smooth 384^2 image, tiled output against the
    whole slice: mean absolute difference 0.0103 without overlap, 0.0056 with
    16 px and 0.0038 with 32 px (tile 128); with overlap 16, 0.0094 for tile 64
    and 0.028 for tile 16. The effective receptive field is much smaller than
    the theoretical one (Luo et al., 2016), so the defaults ``tile=256,
    overlap=32`` pass both limits.

    Examples
    --------
    >>> tiling_limits({"levels": 5, "convs_per_level": 2, "kernel_size": 4})
    TilingLimits(receptive_field=367, min_tile=64, min_overlap=16)
    """
    levels = int(config.get("levels", 5))
    convs = int(config.get("convs_per_level", 2))
    k = int(config.get("kernel_size", 3))
    deep = 2 ** (levels - 1)
    field = (
        1
        + convs * (k - 1) * (2**levels - 1)  # encoder convolutions, level i at stride 2**i
        + (deep - 1)  # 2x2 pooling
        + (2**levels - 2)  # bilinear upsampling (two coarse pixels)
        + (convs + 1) * (k - 1) * (deep - 1)  # decoder: resize-convolution plus block
    )
    return TilingLimits(receptive_field=field, min_tile=deep * k, min_overlap=deep)


def _model_limits(model: nn.Module) -> TilingLimits | None:
    config = getattr(model, "config", None)
    if not isinstance(config, Mapping) or "levels" not in config:
        return None
    return tiling_limits(config)


# --------------------------------------------------------------------------- tiling


def scale_intensity(volume: np.ndarray, intensity_range: tuple[float, float]) -> np.ndarray:
    """Map grey values to the [0, 1] inputs of the network, as :func:`segment_volume` does.

    Parameters
    ----------
    volume : ndarray
        Grey values of any shape and real dtype (a volume or a stack of slices).
    intensity_range : (float, float)
        ``(low, high)``: ``low`` maps to 0 and ``high`` to 1; values outside are
        clipped. Use the range stored with the model (``metadata["intensity_range"]``).

    Returns
    -------
    ndarray of float32, same shape, in [0, 1]

    Raises
    ------
    ValueError
        If the range is not finite with ``low < high``.

    Notes
    -----
    ``(value - low) / (high - low)`` is computed in float32 with a division:
    for integer grey values below 2 ** 24 both differences are exact and the
    quotient is correctly rounded, so the same scan stored with another integer
    scale and offset (uint8, uint16 ``200 * x + 5000``, int16) gives bit-identical
    inputs, including grey values exactly at the network's threshold (uint8
    scans have many). Multiplying by ``1 / (high - low)`` would round twice.
    """
    low, high = check_intensity_range(intensity_range)
    out = np.asarray(volume, dtype=np.float32) - np.float32(low)
    out /= np.float32(high - low)
    return np.clip(out, 0.0, 1.0, out=out)


def _ramp(length: int, overlap: int, rise: bool, fall: bool) -> np.ndarray:
    """1D window: ``sin^2`` rise over ``overlap`` pixels at the start and/or end, 1 elsewhere (all > 0)."""
    w = np.ones(length, dtype=np.float64)
    n = min(overlap, length)
    if n > 0:
        edge = np.sin(0.5 * np.pi * (np.arange(n) + 0.5) / n) ** 2
        if rise:
            w[:n] = np.minimum(w[:n], edge)
        if fall:
            w[length - n :] = np.minimum(w[length - n :], edge[::-1])
    return w


def _tiling(height: int, width: int, tile: int, overlap: int, min_length: int = 0) -> tuple[list[tuple[int, int, np.ndarray]], np.ndarray, int, int]:
    """Tiles ``(y0, x0, window)`` of one slice, the summed window, and the tile shape."""
    (ys, th), (xs, tw) = tile_layout(height, tile, overlap, min_length), tile_layout(width, tile, overlap, min_length)
    tiles = []
    total = np.zeros((height, width), dtype=np.float64)
    for i, y0 in enumerate(ys):
        wy = _ramp(th, overlap, i > 0, i < len(ys) - 1)
        for j, x0 in enumerate(xs):
            wx = _ramp(tw, overlap, j > 0, j < len(xs) - 1)
            window = np.outer(wy, wx)
            tiles.append((y0, x0, window.astype(np.float32)))
            total[y0 : y0 + th, x0 : x0 + tw] += window
    return tiles, total, th, tw


def _check_tiling(model: nn.Module, shape: tuple[int, ...], directions: tuple[int, ...], *, tile: int, overlap: int) -> None:
    """Refuse a tile below the U-Net's minimum; warn on an overlap below its minimum where slices are tiled."""
    limits = check_tile(model, tile)
    if limits is None:
        return
    tiled = any(max(np.delete(np.asarray(shape), axis)) > tile for axis in directions)
    if tiled and overlap < limits.min_overlap:
        logger.warning(
            "overlap %d is below the %d px this U-Net needs between tiles (one pixel of its deepest level; "
            "receptive field %d px): expect seams along the tile borders",
            overlap, limits.min_overlap, limits.receptive_field,
        )  # fmt: skip


def check_tile(model: nn.Module, tile: int) -> TilingLimits | None:
    """The U-Net's tiling limits (None for other modules); raise ValueError for a tile below its minimum."""
    limits = _model_limits(model)
    if limits is not None and tile < limits.min_tile:
        raise ValueError(
            f"tile {tile} is too small for this U-Net: its deepest level would see less than one kernel of "
            f"real pixels; use tile >= {limits.min_tile} (2 ** (levels - 1) * kernel_size)"
        )
    return limits


def solid_probabilities(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = model(x)
    return torch.sigmoid(out) if getattr(model, "output", "sigmoid") == "logits" else out


def segment_axis(
    model: nn.Module,
    stack: np.ndarray,
    out: np.ndarray,
    weight: float,
    *,
    tile: int,
    overlap: int,
    batch_size: int,
    low: float,
    high: float,
    device: torch.device,
    bar: tqdm,
    precision: str = "fp32",
) -> None:
    """Add ``weight`` x the blended probabilities of every slice ``stack[i]`` to ``out[i]`` (views).

    ``precision`` is a resolved :func:`foamlib.device.pick_precision` value (autocast on CUDA).
    """
    n, height, width = stack.shape
    limits = _model_limits(model)
    tiles, total, th, tw = _tiling(height, width, tile, overlap, limits.min_tile if limits is not None else 0)
    scale = (weight / total).astype(np.float32)
    jobs: Iterator[tuple[int, int, int, np.ndarray]] = ((i, y0, x0, w) for i in range(n) for y0, x0, w in tiles)
    width = np.float32(high - low)
    while True:
        batch = [job for _, job in zip(range(batch_size), jobs)]
        if not batch:
            break
        x = np.stack([stack[i, y0 : y0 + th, x0 : x0 + tw] for i, y0, x0, _ in batch]).astype(np.float32)
        x -= np.float32(low)
        x /= width  # a division, not a product with 1 / width: exact where the ratio is (see scale_intensity)
        np.clip(x, 0.0, 1.0, out=x)
        with autocast(device, precision):
            probs = solid_probabilities(model, torch.from_numpy(x).unsqueeze(1).to(device))[:, 0].float().cpu().numpy()
        for (i, y0, x0, w), p in zip(batch, probs):
            region = (i, slice(y0, y0 + th), slice(x0, x0 + tw))
            out[region] += p * w * scale[region[1:]]
        bar.update(1)


def segment_volume(
    model: nn.Module,
    volume: np.ndarray,
    *,
    axes: str = "z",
    tile: int = DEFAULT_TILE,
    overlap: int = DEFAULT_OVERLAP,
    batch_size: int = DEFAULT_BATCH_SIZE,
    intensity_range: tuple[float, float] | None = None,
    device: str | torch.device | None = None,
    precision: str = "auto",
    progress: bool = False,
) -> np.ndarray:
    """Probability of solid for every voxel, from a 2D network applied slice by slice.

    Parameters
    ----------
    model : torch.nn.Module
        A :class:`~foamlib.unet.UNet` (or any module mapping ``(N, 1, H, W)``
        in [0, 1] to probabilities of the same shape; one with ``output ==
        "logits"`` gets a sigmoid). Moved to ``device`` and run in evaluation
        mode; its mode is restored.
    volume : numpy.ndarray
        ``(Z, Y, X)`` grey values, unsigned integers or floats. Not modified.
    axes : {"z", "xyz"}, optional
        ``"z"``: segment the z slices. ``"xyz"``: segment the slices along z,
        y and x and average the three probabilities. Default ``"z"``.
    tile : int, optional
        Side of the square tiles, >= 1, and for a U-Net at least
        :attr:`TilingLimits.min_tile` of :func:`tiling_limits` (64 for the
        paper's network); larger slices are tiled (module notes). Default 256.
    overlap : int, optional
        Minimum overlap of neighbouring tiles and width of the blending ramp,
        ``0 <= overlap < tile``. Below :attr:`TilingLimits.min_overlap` (16 for
        five levels) a warning is logged where a slice is really tiled.
        Default 32.
    batch_size : int, optional
        Tiles per forward pass, >= 1. Default 8.
    intensity_range : tuple of (float, float), optional
        Grey values mapped to 0 and 1 (clipped outside). For a raw scan and
        a saved model pass the scan's own range under the model's rule,
        ``normalisation_from_metadata(metadata).range_for(volume)``, as
        :func:`segment_file` does. None applies the dtype rules of
        :func:`infer_intensity_range` (module notes), meant for images
        already scaled as in training.
    device : str, torch.device or None, optional
        See :func:`foamlib.device.pick_device`.
    precision : {"auto", "fp32", "bf16", "fp16"}, optional
        Arithmetic of the forward passes (:func:`foamlib.device.pick_precision`):
        "auto" (default) is bf16 autocast on a CUDA device that supports it,
        fp32 on the CPU (unchanged bit for bit).
    progress : bool, optional
        Show a progress bar over the batches. Default False.

    Returns
    -------
    numpy.ndarray
        float32 ``(Z, Y, X)``, the probability of solid, values in [0, 1].
        :func:`foamlib.io.write_probabilities` writes it as a labelled TIFF
        stack (what ``segment_file(..., probabilities=PATH)`` writes);
        ``>= 0.5`` gives the solid, which :func:`foamlib.io.write_tiff` writes
        as a mask (``label="pore"`` for 255 = pore).

    Raises
    ------
    ValueError
        If ``volume`` is not 3D or empty or of an unusable dtype, or an
        option is out of range (a tile below the U-Net's minimum names it).
    """
    volume = np.asarray(volume)
    if volume.ndim != 3 or volume.size == 0:
        raise ValueError(f"volume must be a non-empty (Z, Y, X) array, got shape {volume.shape}")
    if not (np.issubdtype(volume.dtype, np.integer) or np.issubdtype(volume.dtype, np.floating)):
        raise ValueError(f"volume must hold numbers, got dtype {volume.dtype}")
    tile, overlap, batch_size = check_tiling_options(axes, tile, overlap, batch_size)
    directions = (0,) if axes == "z" else (0, 1, 2)
    _check_tiling(model, volume.shape, directions, tile=tile, overlap=overlap)
    low, high = infer_intensity_range(volume) if intensity_range is None else check_intensity_range(intensity_range)
    dev = pick_device(device)
    precision = pick_precision(precision, dev)

    out = np.zeros(volume.shape, dtype=np.float32)
    n_batches = 0
    for axis in directions:
        n, h, w = np.moveaxis(volume, axis, 0).shape
        per_slice = tiles_per_slice(h, w, tile, overlap)
        n_batches += math.ceil(n * per_slice / batch_size)

    was_training = model.training
    model.to(dev).eval()
    try:
        with torch.inference_mode(), progress_bar(total=n_batches, desc="segment", unit="batch", disable=not progress) as bar:
            for axis in directions:
                segment_axis(
                    model, np.moveaxis(volume, axis, 0), np.moveaxis(out, axis, 0), 1.0 / len(directions),
                    tile=tile, overlap=overlap, batch_size=batch_size, low=low, high=high, device=dev, bar=bar,
                    precision=precision,
                )  # fmt: skip
    finally:
        model.train(was_training)
    np.clip(out, 0.0, 1.0, out=out)  # rounding of the weighted mean may step a hair outside
    return out


def segment_file(
    scan_path: str | os.PathLike,
    model_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    axes: str = "z",
    threshold: float = 0.5,
    tile: int = DEFAULT_TILE,
    overlap: int = DEFAULT_OVERLAP,
    batch_size: int = DEFAULT_BATCH_SIZE,
    intensity_range: tuple[float, float] | None = None,
    overwrite: bool = False,
    memory_gb: float = DEFAULT_MEMORY_GB,
    device: str | torch.device | None = None,
    precision: str = "auto",
    scheduler: str | None = None,
    progress: bool = False,
    label: str = "solid",
    probabilities: str | os.PathLike | None = None,
    **read_kwargs: Any,
) -> SegmentResult:
    """Segment a scan file with a saved model and write the result as a mask TIFF stack.

    Parameters
    ----------
    scan_path : path-like
        Anything :func:`foamlib.io.read_scan` reads; opened with
        :func:`foamlib.lazy.open_scan` and read slab by slab (module notes,
        "Scans larger than memory").
    model_path : path-like
        A segmentation model written by :func:`foamlib.training.save_model`
        (see :func:`check_segmentation_model`).
    out_path : path-like
        Output ``.tif``/``.tiff``: uint8, 255 = solid and 0 = pore (or the
        reverse with ``label="pore"``), with the scan's voxel size and the
        phase convention in its ImageJ metadata (:mod:`foamlib.io`); or
        ``.zarr``: an OME-Zarr 0.5 image of the same values, the convention in
        its ``foamlib`` attributes (:func:`foamlib.omezarr.zarr_slab_writer`).
        Neither the scan, nor the model, nor inside the scan's folder of slices.
    axes : {"z", "xyz"}, optional
        See :func:`segment_volume`.
    threshold : float, optional
        Probability at and above which a voxel is solid, in [0, 1]. Default 0.5.
    tile, overlap, batch_size : int, optional
        See :func:`segment_volume`; a tile below the model's
        :attr:`TilingLimits.min_tile` is refused before the scan is read.
    intensity_range : tuple of (float, float), optional
        Grey values of this scan mapped to 0 and 1, overriding the model's
        normalisation. None (default): derived from the scan with the model's
        normalisation (module notes, rules 2-4). Either way a warning is
        logged if more than :data:`CLIP_WARN_FRACTION` of the voxels fall
        outside the range.
    overwrite : bool, optional
        Replace an existing ``out_path``. Default False. The scan itself is
        never overwritten.
    memory_gb : float, optional
        Memory budget in GB (10^9 bytes) for the slabs, probabilities, tiling
        weights and network activations, > 0; the slab depths follow from it
        (:func:`plan_stream`), whatever the size of the scan. Python and torch
        need about 0.4 GB on top. Default :data:`DEFAULT_MEMORY_GB`.
    device : str, torch.device or None, optional
        See :func:`foamlib.device.pick_device`.
    precision : {"auto", "fp32", "bf16", "fp16"}, optional
        See :func:`segment_volume`.
    scheduler : str, optional
        None (default): segment in this process. ``"local"`` (a Dask
        ``LocalCluster`` of the idle cores) or the address of a Dask
        scheduler: segment the slabs as Dask tasks there
        (:func:`foamlib.distributed.stream_segment`); the result is the same.
    progress : bool, optional
        Show a progress bar. Default False.
    label : {"solid", "pore"}, optional
        The phase written as 255 in ``out_path``. ``"solid"`` (default) is
        foamlib's convention; ``"pore"`` gives PoreSpy's (``True`` = pore).
        :func:`foamlib.io.read_mask` reads either as ``True`` = solid.
    probabilities : path-like, optional
        Also write the probability of solid (float32, 0 to 1, before the
        threshold; labelled ``probability=solid``) as a TIFF stack with the
        scan's voxel size here, 4 bytes per voxel, slab by slab as the mask,
        within the same memory budget. Same rules as ``out_path``, and not
        ``out_path``.
    **read_kwargs
        Passed to :func:`foamlib.lazy.open_scan` (``shape``, ``dtype``,
        ``byte_order``, ``voxel_size_um``).

    Returns
    -------
    SegmentResult
        Porosity (from int64 voxel counts), shape, time, output paths, the
        label, the intensity range used and the fraction of voxels it clipped.

    Raises
    ------
    ValueError
        If ``out_path`` is the scan or the model, lies inside the scan's
        folder, is neither a TIFF nor a ``.zarr`` name, or an option is bad (a
        tile below the model's minimum names the minimum); if the memory budget cannot hold
        the smallest slab, or (``axes="xyz"``) the output's folder lacks the
        temporary disk space (both name what would do).
    FileExistsError
        If ``out_path`` (or ``probabilities``) exists and ``overwrite`` is
        False (checked before any work is done).
    foamlib.torchfiles.ModelFileError
        If the model file is missing, not a foamlib model, or not a
        segmentation model (names the file).
    foamlib.io.ScanError
        If the scan cannot be read (names the file).

    Notes
    -----
    Logged warnings (``logging.getLogger("foamlib.segment")``; the CLI shows
    them): a model that predates per-scan normalisation or records none; a
    range that clips more than :data:`CLIP_WARN_FRACTION` of the voxels; a
    scan voxel size more than :data:`VOXEL_SIZE_WARN_FACTOR` times larger or
    smaller than the model's ``"voxel_size_um"`` (no warning where either is
    unknown); an overlap below the model's :attr:`TilingLimits.min_overlap`.
    """
    start = time.perf_counter()
    scan_path, model_path, out_path = Path(scan_path), Path(model_path), Path(out_path)
    from .omezarr import check_zarr_output, is_zarr_path, zarr_slab_writer

    to_zarr = is_zarr_path(out_path)
    prob_path = None if probabilities is None else Path(probabilities)
    for path in [out_path] + ([prob_path] if prob_path is not None else []):
        if same_path(scan_path, path):
            raise ValueError(f"output {path} is the input scan; refusing to overwrite the scan")
        if same_path(model_path, path):
            raise ValueError(f"output {path} is the model file; refusing to overwrite the model")
        if scan_path.is_dir() and path_inside(path, scan_path):
            raise ValueError(
                f"output {path} lies inside the input folder of slices {scan_path}; the next read of that folder "
                "would take it for a slice. Write it elsewhere"
            )
    (check_zarr_output if to_zarr else check_tiff_output)(out_path, overwrite=overwrite)
    if prob_path is not None:
        check_tiff_output(prob_path, overwrite=overwrite)
        if same_path(prob_path, out_path):
            raise ValueError(f"probabilities {prob_path} and the mask {out_path} are the same file; give each its own name")
        if scheduler is not None:
            raise ValueError("probabilities cannot be written when segmenting on Dask (scheduler=...): the workers "
                             "return thresholded slabs only; run without a scheduler to write them")  # fmt: skip
    if label not in MASK_LABELS:
        raise ValueError(f"label must be one of {', '.join(map(repr, MASK_LABELS))} (the phase written as 255), "
                         f"got {label!r}")  # fmt: skip
    threshold = check_real("threshold", threshold, low=0.0, high=1.0)
    if axes not in _AXES:
        raise ValueError(f"axes must be 'z' or 'xyz', got {axes!r}")
    if intensity_range is not None:
        intensity_range = check_intensity_range(intensity_range)
    tile = check_int("tile", tile, low=1)

    batch_size = check_int("batch_size", batch_size, low=1)
    overlap = check_int("overlap", overlap, low=0)
    if overlap >= tile:
        raise ValueError(f"overlap must be smaller than tile ({tile}), got {overlap}")

    model, metadata = load_model(model_path, device=device)
    check_segmentation_model(metadata, source=str(model_path))
    check_tile(model, tile)
    normalisation = None if intensity_range is not None else normalisation_from_metadata(metadata, source=str(model_path))
    scan = open_scan(scan_path, **read_kwargs)
    config = getattr(model, "config", None)
    base_channels = int(config.get("base_channels", 16)) if isinstance(config, Mapping) else 16
    plan = plan_stream(scan.shape, scan.dtype, axes=axes, tile=tile, overlap=overlap, batch_size=batch_size,
                       memory_gb=memory_gb, base_channels=base_channels)  # fmt: skip
    if axes == "xyz":
        _check_disk(out_path, plan.temp_disk_bytes + scan.size + (4 * scan.size if prob_path is not None else 0))
    _warn_voxel_size(metadata.get("voxel_size_um"), scan.voxel_size_um, model_path=model_path, scan_path=scan_path)
    _check_tiling(model, scan.shape, (0,) if axes == "z" else (0, 1, 2), tile=tile, overlap=overlap)
    dev = pick_device(device)
    precision = pick_precision(precision, dev)
    was_training = model.training
    model.to(dev).eval()
    try:
        per_batch = _seconds_per_batch(model, scan.shape, tile=tile, overlap=overlap, batch_size=batch_size,
                                       device=dev, precision=precision)  # fmt: skip
        logger.info(
            "%s: %s; about %s on %s (%.3g s per batch measured), plus two reads of the scan to check it and "
            "derive its grey-value range",
            scan_path, plan.describe(), _duration(per_batch * plan.n_batches), dev, per_batch,
        )  # fmt: skip
        scan.value_range(progress=progress)  # one streamed pass: NaN, infinities, a constant scan
        low, high = intensity_range if intensity_range is not None else normalisation.range_for(scan)
        source = "the given intensity_range" if intensity_range is not None else "the range derived from the scan"
        clipped = _clipped_fraction(scan, low, high, source=source, progress=progress)
        temp_path = out_path.with_name(f".{out_path.name}.{uuid.uuid4().hex}.tmp.f32") if axes == "xyz" else None
        try:
            open_writer = zarr_slab_writer if to_zarr else tiff_slab_writer
            with torch.inference_mode(), contextlib.ExitStack() as stack:
                # both outputs are moved into place only when every slice of both is written
                prob_writer = None
                if prob_path is not None:
                    prob_writer = stack.enter_context(tiff_slab_writer(
                        prob_path, scan.shape, voxel_size_um=scan.voxel_size_um, dtype=np.float32, label="solid",
                        overwrite=overwrite))  # fmt: skip
                writer = stack.enter_context(open_writer(
                    out_path, scan.shape, voxel_size_um=scan.voxel_size_um, label=label, overwrite=overwrite))  # fmt: skip
                options = dict(tile=tile, overlap=overlap, batch_size=batch_size, low=low, high=high,
                               threshold=float(threshold), device=dev, precision=precision, progress=progress)
                if scheduler is None:
                    solid_voxels = _stream_segment(model, scan, writer, plan, temp_path=temp_path,
                                                   prob_writer=prob_writer, **options)  # fmt: skip
                else:
                    from .distributed import stream_segment

                    solid_voxels = stream_segment(model, scan, writer, plan, scheduler=scheduler, **options)
        finally:
            if temp_path is not None:
                temp_path.unlink(missing_ok=True)
    finally:
        model.train(was_training)
    total = scan.size
    return SegmentResult(
        porosity=float(np.int64(total - solid_voxels) / np.int64(total)),
        shape=scan.shape,
        seconds=time.perf_counter() - start,
        out_path=out_path,
        solid_voxels=solid_voxels,
        total_voxels=total,
        voxel_size_um=scan.voxel_size_um,
        intensity_range=(float(low), float(high)),
        axes=axes,
        clipped_fraction=clipped,
        memory_estimate_bytes=plan.peak_bytes,
        label=label,
        probabilities_path=prob_path,
    )


def segment_scan(
    model: nn.Module,
    scan: Any,
    out_path: str | os.PathLike,
    *,
    intensity_range: tuple[float, float],
    axes: str = "z",
    threshold: float = 0.5,
    tile: int = DEFAULT_TILE,
    overlap: int = DEFAULT_OVERLAP,
    batch_size: int = DEFAULT_BATCH_SIZE,
    memory_gb: float = DEFAULT_MEMORY_GB,
    device: str | torch.device | None = None,
    precision: str = "auto",
    overwrite: bool = False,
    progress: bool = False,
) -> SegmentResult:
    """Segment a scan opened lazily with a model in memory, slab by slab, into a mask TIFF stack.

    What :func:`segment_file` does after it has loaded the model and opened
    the scan, for a caller that has both (the study's stages): the scan is
    read slab by slab within ``memory_gb`` (:func:`plan_stream`), each slab is
    segmented, thresholded and written, and neither the scan nor its
    probabilities are ever held whole. The mask equals
    ``segment_volume(model, scan[:], ...) >= threshold`` bit for bit
    (module notes, "Scans larger than memory").

    Parameters
    ----------
    model : torch.nn.Module
        As for :func:`segment_volume`; moved to ``device``, run in evaluation
        mode, its mode restored.
    scan : foamlib.lazy.LazyScan
        The scan (:func:`foamlib.lazy.open_scan`, :func:`foamlib.samples.load_sample`).
    out_path : path-like
        Output ``.tif``/``.tiff``: uint8, 255 = solid, with the scan's voxel
        size (:func:`foamlib.io.tiff_slab_writer`; written atomically).
    intensity_range : tuple of (float, float)
        Grey values mapped to 0 and 1 (the model's ``"intensity_range"`` for
        the scan it was trained for, or its normalisation applied to this scan).
        A warning is logged if more than :data:`CLIP_WARN_FRACTION` of the
        voxels lie outside (one streamed pass).
    axes, tile, overlap, batch_size, device, precision
        As for :func:`segment_volume`.
    threshold : float, optional
        Probability at and above which a voxel is solid, in [0, 1]. Default 0.5.
    memory_gb : float, optional
        Memory budget in GB for the slabs, probabilities, tiling weights and
        network activations (:func:`plan_stream`). Default :data:`DEFAULT_MEMORY_GB`.
    overwrite : bool, optional
        Replace an existing ``out_path``. Default False.
    progress : bool, optional
        Show a progress bar. Default False.

    Returns
    -------
    SegmentResult
        ``probabilities_path`` None, ``label`` ``"solid"``.

    Raises
    ------
    ValueError
        For a bad option, an output that is the scan itself, a budget too
        small for one slab, or (``axes="xyz"``) too little disk beside the output.
    FileExistsError
        If ``out_path`` exists and ``overwrite`` is False.
    """
    start = time.perf_counter()
    out_path = Path(out_path)
    tile, overlap, batch_size = check_tiling_options(axes, tile, overlap, batch_size)
    low, high = check_intensity_range(intensity_range)
    threshold = check_real("threshold", threshold, low=0.0, high=1.0)
    if same_path(scan.path, out_path):
        raise ValueError(f"output {out_path} is the input scan; refusing to overwrite the scan")
    check_tiff_output(out_path, overwrite=overwrite)
    _check_tiling(model, scan.shape, (0,) if axes == "z" else (0, 1, 2), tile=tile, overlap=overlap)
    config = getattr(model, "config", None)
    base_channels = int(config.get("base_channels", 16)) if isinstance(config, Mapping) else 16
    plan = plan_stream(scan.shape, scan.dtype, axes=axes, tile=tile, overlap=overlap, batch_size=batch_size,
                       memory_gb=memory_gb, base_channels=base_channels)  # fmt: skip
    if axes == "xyz":
        _check_disk(out_path, plan.temp_disk_bytes + scan.size)
    logger.info("%s: %s", scan.path, plan.describe())
    clipped = _clipped_fraction(scan, low, high, source="the given intensity_range", progress=progress)
    dev = pick_device(device)
    precision = pick_precision(precision, dev)
    temp_path = out_path.with_name(f".{out_path.name}.{uuid.uuid4().hex}.tmp.f32") if axes == "xyz" else None
    was_training = model.training
    model.to(dev).eval()
    try:
        with torch.inference_mode(), tiff_slab_writer(out_path, scan.shape, voxel_size_um=scan.voxel_size_um,
                                                      label="solid", overwrite=overwrite) as writer:  # fmt: skip
            solid_voxels = _stream_segment(model, scan, writer, plan, tile=tile, overlap=overlap, batch_size=batch_size,
                                           low=low, high=high, threshold=float(threshold), device=dev,
                                           precision=precision, temp_path=temp_path, progress=progress)  # fmt: skip
    finally:
        model.train(was_training)
        if temp_path is not None:
            temp_path.unlink(missing_ok=True)
    total = scan.size
    return SegmentResult(
        porosity=float(np.int64(total - solid_voxels) / np.int64(total)), shape=scan.shape,
        seconds=time.perf_counter() - start, out_path=out_path, solid_voxels=solid_voxels, total_voxels=total,
        voxel_size_um=scan.voxel_size_um, intensity_range=(low, high), axes=axes, clipped_fraction=clipped,
        memory_estimate_bytes=plan.peak_bytes, label="solid",
    )  # fmt: skip


def _clipped_fraction(scan: Any, low: float, high: float, *, source: str, progress: bool) -> float:
    """Fraction of the scan's voxels outside ``(low, high)``, streamed; warn above :data:`CLIP_WARN_FRACTION`."""
    clipped = scan.count_outside(low, high, progress=progress) / scan.size
    if clipped > CLIP_WARN_FRACTION:
        logger.warning(
            "%s: %.1f %% of the voxels lie outside %s (%g, %g) and are clipped (more than %g %%); "
            "the segmentation of those voxels is unreliable",
            scan.path, 100 * clipped, source, low, high, 100 * CLIP_WARN_FRACTION,
        )  # fmt: skip
    return clipped

def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _check_disk(out_path: Path, needed: int) -> None:
    """ValueError naming the folder if it lacks ``needed`` bytes of free space."""
    folder = out_path.absolute().parent
    while not folder.exists():  # the output's folder is created later; its nearest existing parent has the disk
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise ValueError(
            f"{folder} has {_gb(free)} free, but segmenting with axes='xyz' needs about {_gb(needed)} there "
            "(a temporary float32 probability volume and the output); free space, write elsewhere or use axes='z'"
        )


def _warn_voxel_size(model_um: Any, scan_um: float | None, *, model_path: Path, scan_path: Path) -> None:
    """Warn where the scan's voxel size is more than VOXEL_SIZE_WARN_FACTOR from the model's."""
    if model_um is None or scan_um is None:
        return
    if not (is_real(model_um) and math.isfinite(model_um) and model_um > 0):
        raise ValueError(f"{model_path}: metadata voxel_size_um must be a positive number of micrometres, got {model_um!r}")
    ratio = scan_um / model_um
    if max(ratio, 1.0 / ratio) > VOXEL_SIZE_WARN_FACTOR:
        logger.warning(
            "%s has voxels of %g um, but %s was trained for %g um (%.2g times %s); pores and walls appear at another "
            "scale than in training, so expect a worse segmentation. Resample the scan or use a model trained for it",
            scan_path, scan_um, model_path, model_um, max(ratio, 1 / ratio), "larger" if ratio > 1 else "smaller",
        )  # fmt: skip


# --------------------------------------------------------------------------- streaming (scans larger than memory)

#: Bytes per voxel of a plane's tiling weights (float64 sum, float32 scale, float32 windows with overlap).
_TILING_BYTES = 24


@dataclass(frozen=True)
class StreamPlan:
    """How :func:`segment_file` streams a scan through the network in bounded memory.

    Every pass works on slabs of whole slices, so each slice is tiled and
    blended exactly as :func:`segment_volume` tiles it, and slab depths are
    multiples of the number of slices whose tiles fill whole batches, so the
    network sees the same batches: the result does not depend on the depths.

    Attributes
    ----------
    shape : tuple of (int, int, int)
        ``(Z, Y, X)`` of the scan, voxels.
    axes : str
        ``"z"`` or ``"xyz"``.
    memory_budget_bytes : int
        The budget the depths were derived from.
    peak_bytes : int
        Estimated peak of what the run allocates: the largest slab of grey
        values and probabilities, the tiling weights and the network's
        activations (``network_bytes``); the Python interpreter and torch
        (about 0.3-0.5 GB) come on top.
    network_bytes : int
        Estimated activations of one batch: ``batch * tile^2 * 4 * (8 * base_channels + 4)``.
    z_depth : int
        z slices per slab of the z pass (and of the final threshold pass).
    y_depth, x_depth : int
        Rows (``y``) and columns (``x``) per slab of the y and x passes of
        ``axes="xyz"``; 0 for ``axes="z"``.
    n_batches : int
        Forward passes of the whole run.
    temp_disk_bytes : int
        Temporary disk space beside the output: a float32 probability volume
        (4 bytes per voxel) for ``axes="xyz"``, 0 for ``"z"``.
    """

    shape: tuple[int, int, int]
    axes: str
    memory_budget_bytes: int
    peak_bytes: int
    network_bytes: int
    z_depth: int
    y_depth: int
    x_depth: int
    n_batches: int
    temp_disk_bytes: int

    def describe(self) -> str:
        """One line: slab depths, estimated peak memory and temporary disk space."""
        depths = f"z slabs of {self.z_depth} slices"
        if self.axes == "xyz":
            depths += f", y slabs of {self.y_depth} rows, x slabs of {self.x_depth} columns"
        text = (f"{' x '.join(map(str, self.shape))} voxels ({self.axes}) in {depths}, {self.n_batches} batches; "
                f"peak memory about {_gb(self.peak_bytes)} (budget {_gb(self.memory_budget_bytes)}, "
                f"network {_gb(self.network_bytes)}, plus about 0.4 GB for Python and torch)")  # fmt: skip
        if self.temp_disk_bytes:
            text += f"; {_gb(self.temp_disk_bytes)} of temporary disk space beside the output"
        return text


def _gb(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.2f} MB"


def plan_stream(
    shape: tuple[int, int, int],
    dtype: Any,
    *,
    axes: str = "z",
    tile: int = DEFAULT_TILE,
    overlap: int = DEFAULT_OVERLAP,
    batch_size: int = DEFAULT_BATCH_SIZE,
    memory_gb: float = DEFAULT_MEMORY_GB,
    base_channels: int = 16,
) -> StreamPlan:
    """Slab depths that keep a streamed segmentation within a memory budget.

    Parameters
    ----------
    shape : tuple of (int, int, int)
        ``(Z, Y, X)`` of the scan, voxels.
    dtype : numpy dtype
        dtype of the scan as stored.
    axes : {"z", "xyz"}, optional
        See :func:`segment_volume`.
    tile, overlap, batch_size : int, optional
        See :func:`segment_volume`.
    memory_gb : float, optional
        Budget in GB (10^9 bytes) for the arrays of the run and the network's
        activations, > 0. Default :data:`DEFAULT_MEMORY_GB`.
    base_channels : int, optional
        Channels of the U-Net's first level (``model.config``), for the
        activation estimate. Default 16 (the paper's network).

    Returns
    -------
    StreamPlan

    Raises
    ------
    ValueError
        If an option is out of range, or the budget cannot hold the
        smallest slab (the message gives the budget that would).

    Notes
    -----
    Bytes per voxel of a slab, with ``b`` the stored bytes per grey value:
    z pass ``b + 4`` (grey values, float32 probabilities) plus 2 for the
    threshold (bool and uint8); y and x passes of ``"xyz"`` ``b + 4`` (grey
    values, the slab of the probability volume). Fixed: tiling weights, 24
    bytes per pixel of the slice plane; memory-mapped chunks of at most 64
    MiB (reads of the scan and, for ``"xyz"``, of the probability file). The smallest slab of a pass is the number of slices
    whose tiles fill whole batches (at most ``batch_size``).
    """
    tile, overlap, batch_size = check_tiling_options(axes, tile, overlap, batch_size)
    memory_gb = check_real("memory_gb (gigabytes)", memory_gb, low=0.0, low_open=True)
    z, y, x = (int(n) for n in shape)
    b = np.dtype(dtype).itemsize
    budget = int(memory_gb * 1e9)
    network = batch_size * min(tile, max(y, z)) * min(tile, max(x, y)) * 4 * (8 * int(base_channels) + 4)
    # memory-mapped chunks in flight: one of the scan, and (xyz) one of the probability file
    from . import lazy

    chunk = lazy.MAP_CHUNK_BYTES
    maps = min(chunk, b * z * y * x) + (min(chunk, 4 * z * y * x) if axes == "xyz" else 0)
    passes = [("z", z, y * x, y, x, b + 4 + (2 if axes == "z" else 0))]
    if axes == "xyz":
        passes += [("y", y, z * x, z, x, b + 4), ("x", x, z * y, z, y, b + 4)]
    depths: dict[str, int] = {}
    peak = 0
    n_batches = 0
    for name, n, area, h, w, per_voxel in passes:
        per_slice = tiles_per_slice(h, w, tile, overlap)
        unit = batch_unit(per_slice, batch_size)
        fixed = network + _TILING_BYTES * area + maps
        per = per_voxel * area
        fits = (budget - fixed) // per if budget > fixed else 0
        depth = n if fits >= n else (fits // unit) * unit  # whole batches, except in the last slab
        if depth < min(n, unit):
            need = fixed + per * min(n, unit)
            raise ValueError(
                f"a memory budget of {_gb(budget)} is too small for a {' x '.join(map(str, shape))} scan: the "
                f"smallest {name} slab ({min(n, unit)} slices of {h} x {w}) with the network needs {_gb(need)}; "
                f"give at least memory_gb={math.ceil(need / 1e6) / 1e3:g} (--memory), or a smaller batch_size or tile"
            )
        depths[name] = depth
        peak = max(peak, fixed + per * depth)
        n_batches += math.ceil(n * per_slice / batch_size)
    if axes == "xyz":  # the final pass reads the probability volume back slab by slab
        peak = max(peak, 6 * y * x * depths["z"])
    return StreamPlan(
        shape=(z, y, x), axes=axes, memory_budget_bytes=budget, peak_bytes=int(peak), network_bytes=int(network),
        z_depth=depths["z"], y_depth=depths.get("y", 0), x_depth=depths.get("x", 0), n_batches=n_batches,
        temp_disk_bytes=4 * z * y * x if axes == "xyz" else 0,
    )  # fmt: skip


def _stream_segment(
    model: nn.Module,
    scan: Any,
    writer: Any,
    plan: StreamPlan,
    *,
    tile: int,
    overlap: int,
    batch_size: int,
    low: float,
    high: float,
    threshold: float,
    device: torch.device,
    temp_path: Path | None,
    progress: bool,
    precision: str = "fp32",
    prob_writer: Any = None,
) -> int:
    """Segment a LazyScan slab by slab into ``writer``; return the number of solid voxels.

    ``prob_writer``, where given, gets every slab's clipped probabilities (float32) before the threshold.

    ``axes="z"``: each z slab is segmented, thresholded and written. ``"xyz"``: the z pass writes
    one third of its probabilities to a float32 file at ``temp_path``; the y and x passes add theirs
    to it slab by slab; a last pass thresholds it into ``writer``. Per voxel the additions happen in
    the order of :func:`segment_volume`, on the same tiles and batches, so the result is the same.
    """
    from .lazy import slab_starts

    z, y, x = plan.shape
    common = dict(tile=tile, overlap=overlap, batch_size=batch_size, low=low, high=high, device=device,
                  precision=precision)  # fmt: skip

    def emit(z0: int, out: np.ndarray) -> int:
        """Clip a slab's probabilities, write them (where asked) and its mask; return its solid voxels."""
        np.clip(out, 0.0, 1.0, out=out)
        if prob_writer is not None:
            prob_writer.write(z0, out)
        solid = out >= threshold
        writer.write(z0, solid)
        return int(np.count_nonzero(solid))

    solid_voxels = 0
    with progress_bar(total=plan.n_batches, desc="segment", unit="batch", disable=not progress) as bar:
        if plan.axes == "z":
            for z0, z1 in slab_starts(z, plan.z_depth):
                out = np.zeros((z1 - z0, y, x), dtype=np.float32)
                segment_axis(model, scan.read(z0, z1), out, 1.0, bar=bar, **common)
                solid_voxels += emit(z0, out)
                del out
            return solid_voxels
        weight = 1.0 / 3.0
        with open(temp_path, "w+b") as handle:
            handle.truncate(4 * z * y * x)  # sparse until written
            for z0, z1 in slab_starts(z, plan.z_depth):
                out = np.zeros((z1 - z0, y, x), dtype=np.float32)
                segment_axis(model, scan.read(z0, z1), out, weight, bar=bar, **common)
                handle.seek(4 * z0 * y * x)
                handle.write(out.data)
                del out
        for axis, n, depth in ((1, y, plan.y_depth), (2, x, plan.x_depth)):
            for s0, s1 in slab_starts(n, depth):
                key = (slice(None), slice(s0, s1)) if axis == 1 else (slice(None), slice(None), slice(s0, s1))
                grey = scan[key]
                region = _probability_region(temp_path, plan.shape, key)
                segment_axis(model, np.moveaxis(grey, axis, 0), np.moveaxis(region, axis, 0), weight, bar=bar, **common)
                del grey
                _probability_region(temp_path, plan.shape, key, region)
                del region
        with open(temp_path, "rb") as handle:
            for z0, z1 in slab_starts(z, plan.z_depth):
                handle.seek(4 * z0 * y * x)
                out = np.fromfile(handle, dtype=np.float32, count=(z1 - z0) * y * x).reshape(z1 - z0, y, x)
                solid_voxels += emit(z0, out)
                del out
    return solid_voxels


def _probability_region(path: Path, shape: tuple[int, int, int], key: tuple[slice, ...],
                        values: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """Read ``probs[key]`` of the float32 file at ``path`` (or write ``values`` there), in chunks of z.

    Each chunk of at most :data:`foamlib.lazy.MAP_CHUNK_BYTES` of whole slices is mapped and unmapped
    in turn, so the pages touched do not accumulate in the resident memory.
    """
    from . import lazy

    z, y, x = shape
    plane = key[1:]
    reading = values is None
    if reading:
        values = np.empty((z, *np.empty((y, x), dtype=bool)[plane].shape), dtype=np.float32)
    chunk = max(1, lazy.MAP_CHUNK_BYTES // (4 * y * x))
    for z0 in range(0, z, chunk):
        z1 = min(z, z0 + chunk)
        mapped = np.memmap(path, dtype=np.float32, mode="r" if reading else "r+", offset=4 * z0 * y * x,
                           shape=(z1 - z0, y, x))  # fmt: skip
        if reading:
            values[z0:z1] = mapped[(slice(None), *plane)]
        else:
            mapped[(slice(None), *plane)] = values[z0:z1]
            mapped.flush()
        del mapped
    return values


def _seconds_per_batch(model: nn.Module, shape: tuple[int, int, int], *, tile: int, overlap: int, batch_size: int,
                       device: torch.device, precision: str = "fp32") -> float:  # fmt: skip
    """Wall time of one forward pass of a batch of z-slice tiles (after one warm-up pass)."""
    limits = _model_limits(model)
    shortest = limits.min_tile if limits is not None else 0
    th, tw = (tile_layout(side, tile, overlap, shortest)[1] for side in shape[1:])
    x = torch.zeros((batch_size, 1, th, tw), device=device)
    with torch.inference_mode(), autocast(device, precision):
        solid_probabilities(model, x)
        start = time.perf_counter()
        solid_probabilities(model, x)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    return time.perf_counter() - start
