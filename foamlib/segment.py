"""Segmenting whole CT volumes with a trained 2D U-Net, slice by slice.

:func:`segment_volume` runs the network on every slice of a ``(Z, Y, X)``
volume, either along z only (``axes="z"``, as Griem et al. did) or along all
three axes with the three probability volumes averaged (``axes="xyz"``), which
smooths the slice-to-slice jitter of a 2D network at three times the cost.
:func:`segment_file` reads a scan, segments it and writes a bool TIFF stack.

Tiling
------
Large slices are cut into square tiles of side ``tile`` (or the slice's side,
where smaller) that overlap by at least ``overlap`` pixels; the last tile of a
row or column is moved back so that it ends at the slice border, so any slice
size works, including slices smaller than a tile (then the slice is one tile).
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
value ``low`` to 0 and ``high`` to 1, linearly, clipping values outside. With
``intensity_range=None`` the range is inferred, in this order:

1. a model carrying ``intensity_range`` in its metadata: that range
   (:func:`segment_file` reads it from the model file; the training side
   stores the range its training images were scaled with);
2. unsigned-integer data (:func:`segment_volume` with an integer array, or
   :func:`segment_file` with a scan stored as integers): ``(0, max of the
   dtype)``, i.e. (0, 255) for uint8 and (0, 65535) for uint16 — the scaling
   :func:`foamlib.training.train_unet` applies to integer images;
3. float data: (0, 1) if all values lie in [0, 1]; (0, 255) if all values are
   whole numbers in [0, 255] (8-bit grey values held as floats, as
   :func:`foamlib.io.read_scan` returns them); otherwise a ValueError asks
   for ``intensity_range``.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from .device import pick_device
from .io import read_scan, write_tiff
from .training import load_model

__all__ = ["SegmentResult", "segment_volume", "segment_file", "infer_intensity_range", "scale_intensity"]

_AXES = ("z", "xyz")
_TIFF_SUFFIXES = (".tif", ".tiff")


@dataclass(frozen=True)
class SegmentResult:
    """What :func:`segment_file` did.

    Attributes
    ----------
    porosity : float
        Fraction of voxels segmented as pore (probability below the threshold).
    shape : tuple of int
        ``(Z, Y, X)`` of the scan.
    seconds : float
        Wall time of the whole call (reading, inference, writing).
    out_path : pathlib.Path
        The TIFF stack written (uint8, 255 = solid).
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
        }


# --------------------------------------------------------------------------- checks


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_range(value: Any) -> tuple[float, float]:
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
    if np.issubdtype(volume.dtype, np.unsignedinteger):
        return 0.0, float(np.iinfo(volume.dtype).max)
    if not np.issubdtype(volume.dtype, np.floating):
        raise ValueError(f"volume must hold unsigned integers or floats, got dtype {volume.dtype}")
    low, high = float(np.min(volume)), float(np.max(volume))
    if 0.0 <= low and high <= 1.0:
        return 0.0, 1.0
    if 0.0 <= low and high <= 255.0 and bool(np.all(volume == np.round(volume))):
        return 0.0, 255.0
    raise ValueError(
        f"cannot tell how to scale grey values from {low:.6g} to {high:.6g} to [0, 1]; "
        "pass intensity_range=(low, high)"
    )


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
    """
    low, high = _check_range(intensity_range)
    out = np.asarray(volume, dtype=np.float32) - np.float32(low)
    out *= np.float32(1.0 / (high - low))
    return np.clip(out, 0.0, 1.0, out=out)


def _starts(size: int, tile: int, overlap: int) -> list[int]:
    """Tile starts along one axis: stride ``tile - overlap``, the last tile ending at the border."""
    if size <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, size - tile, stride))
    starts.append(size - tile)
    return starts


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


def _tiling(height: int, width: int, tile: int, overlap: int) -> tuple[list[tuple[int, int, np.ndarray]], np.ndarray, int, int]:
    """Tiles ``(y0, x0, window)`` of one slice, the summed window, and the tile shape."""
    th, tw = min(tile, height), min(tile, width)
    ys, xs = _starts(height, tile, overlap), _starts(width, tile, overlap)
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


def _probabilities(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = model(x)
    return torch.sigmoid(out) if getattr(model, "output", "sigmoid") == "logits" else out


def _segment_axis(
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
) -> None:
    """Add ``weight`` x the blended probabilities of every slice ``stack[i]`` to ``out[i]`` (views)."""
    n, height, width = stack.shape
    tiles, total, th, tw = _tiling(height, width, tile, overlap)
    scale = (weight / total).astype(np.float32)
    jobs: Iterator[tuple[int, int, int, np.ndarray]] = ((i, y0, x0, w) for i in range(n) for y0, x0, w in tiles)
    inv = np.float32(1.0 / (high - low))
    while True:
        batch = [job for _, job in zip(range(batch_size), jobs)]
        if not batch:
            break
        x = np.stack([stack[i, y0 : y0 + th, x0 : x0 + tw] for i, y0, x0, _ in batch]).astype(np.float32)
        x -= np.float32(low)
        x *= inv
        np.clip(x, 0.0, 1.0, out=x)
        probs = _probabilities(model, torch.from_numpy(x).unsqueeze(1).to(device))[:, 0].float().cpu().numpy()
        for (i, y0, x0, w), p in zip(batch, probs):
            region = (i, slice(y0, y0 + th), slice(x0, x0 + tw))
            out[region] += p * w * scale[region[1:]]
        bar.update(1)


def segment_volume(
    model: nn.Module,
    volume: np.ndarray,
    *,
    axes: str = "z",
    tile: int = 256,
    overlap: int = 32,
    batch_size: int = 8,
    intensity_range: tuple[float, float] | None = None,
    device: str | torch.device | None = None,
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
        Side of the square tiles, >= 1; larger slices are tiled (module
        notes). Default 256.
    overlap : int, optional
        Minimum overlap of neighbouring tiles and width of the blending ramp,
        ``0 <= overlap < tile``. Default 32.
    batch_size : int, optional
        Tiles per forward pass, >= 1. Default 8.
    intensity_range : tuple of (float, float), optional
        Grey values mapped to 0 and 1 (clipped outside); None infers it
        from the data (module notes, rules 2 and 3).
    device : str, torch.device or None, optional
        See :func:`foamlib.device.pick_device`.
    progress : bool, optional
        Show a progress bar over the batches. Default False.

    Returns
    -------
    numpy.ndarray
        float32 ``(Z, Y, X)``, values in [0, 1].

    Raises
    ------
    ValueError
        If ``volume`` is not 3D or empty or of an unusable dtype, or an
        option is out of range.
    """
    volume = np.asarray(volume)
    if volume.ndim != 3 or volume.size == 0:
        raise ValueError(f"volume must be a non-empty (Z, Y, X) array, got shape {volume.shape}")
    if not (np.issubdtype(volume.dtype, np.integer) or np.issubdtype(volume.dtype, np.floating)):
        raise ValueError(f"volume must hold numbers, got dtype {volume.dtype}")
    if axes not in _AXES:
        raise ValueError(f"axes must be 'z' or 'xyz', got {axes!r}")
    tile = _check_int("tile", tile, 1)
    overlap = _check_int("overlap", overlap, 0)
    if overlap >= tile:
        raise ValueError(f"overlap must be smaller than tile ({tile}), got {overlap}")
    batch_size = _check_int("batch_size", batch_size, 1)
    low, high = infer_intensity_range(volume) if intensity_range is None else _check_range(intensity_range)
    dev = pick_device(device)

    directions = (0,) if axes == "z" else (0, 1, 2)
    out = np.zeros(volume.shape, dtype=np.float32)
    n_batches = 0
    for axis in directions:
        n, h, w = np.moveaxis(volume, axis, 0).shape
        per_slice = len(_starts(h, tile, overlap)) * len(_starts(w, tile, overlap))
        n_batches += math.ceil(n * per_slice / batch_size)

    was_training = model.training
    model.to(dev).eval()
    try:
        with torch.inference_mode(), tqdm(total=n_batches, desc="segment", unit="batch", disable=not progress) as bar:
            for axis in directions:
                _segment_axis(
                    model, np.moveaxis(volume, axis, 0), np.moveaxis(out, axis, 0), 1.0 / len(directions),
                    tile=tile, overlap=overlap, batch_size=batch_size, low=low, high=high, device=dev, bar=bar,
                )  # fmt: skip
    finally:
        model.train(was_training)
    np.clip(out, 0.0, 1.0, out=out)  # rounding of the weighted mean may step a hair outside
    return out


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def segment_file(
    scan_path: str | os.PathLike,
    model_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    axes: str = "z",
    threshold: float = 0.5,
    tile: int = 256,
    overlap: int = 32,
    batch_size: int = 8,
    intensity_range: tuple[float, float] | None = None,
    overwrite: bool = False,
    device: str | torch.device | None = None,
    progress: bool = False,
    **read_kwargs: Any,
) -> SegmentResult:
    """Segment a scan file with a saved model and write the result as a bool TIFF stack.

    Parameters
    ----------
    scan_path : path-like
        Anything :func:`foamlib.io.read_scan` reads.
    model_path : path-like
        A model written by :func:`foamlib.training.save_model`.
    out_path : path-like
        Output ``.tif``/``.tiff``: uint8, 255 = solid, with the scan's voxel
        size (ImageJ metadata).
    axes : {"z", "xyz"}, optional
        See :func:`segment_volume`.
    threshold : float, optional
        Probability at and above which a voxel is solid, in [0, 1]. Default 0.5.
    tile, overlap, batch_size : int, optional
        See :func:`segment_volume`.
    intensity_range : tuple of (float, float), optional
        Grey values mapped to 0 and 1. None: the model's metadata
        ``intensity_range`` if it has one; else ``(0, dtype max)`` if the scan
        was stored as unsigned integers; else inferred from the values (module
        notes).
    overwrite : bool, optional
        Replace an existing ``out_path``. Default False. The scan itself is
        never overwritten.
    device : str, torch.device or None, optional
        See :func:`foamlib.device.pick_device`.
    progress : bool, optional
        Show a progress bar. Default False.
    **read_kwargs
        Passed to :func:`foamlib.io.read_scan` (``shape``, ``dtype``,
        ``byte_order``, ``voxel_size_um``).

    Returns
    -------
    SegmentResult
        Porosity (from int64 voxel counts), shape, time and output path.

    Raises
    ------
    ValueError
        If ``out_path`` is the scan, is not a TIFF name, or an option is bad.
    FileExistsError
        If ``out_path`` exists and ``overwrite`` is False (checked before any
        work is done).
    foamlib.training.ModelFileError
        If the model file is missing or not a foamlib model (names the file).
    foamlib.io.ScanError
        If the scan cannot be read (names the file).
    """
    start = time.perf_counter()
    scan_path, model_path, out_path = Path(scan_path), Path(model_path), Path(out_path)
    if _same_file(scan_path, out_path):
        raise ValueError(f"output {out_path} is the input scan; refusing to overwrite the scan")
    if out_path.suffix.lower() not in _TIFF_SUFFIXES:
        raise ValueError(f"output {out_path} must end in .tif or .tiff")
    if out_path.exists() and not overwrite:
        raise FileExistsError(f"{out_path} already exists; pass overwrite=True (--overwrite) to replace it")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be a number in [0, 1], got {threshold!r}")
    if axes not in _AXES:
        raise ValueError(f"axes must be 'z' or 'xyz', got {axes!r}")

    model, metadata = load_model(model_path, device=device)
    scan = read_scan(scan_path, **read_kwargs)
    if intensity_range is None:
        stored = metadata.get("intensity_range") if isinstance(metadata, Mapping) else None
        if stored is not None:
            try:
                intensity_range = _check_range(stored)
            except ValueError as exc:
                raise ValueError(f"{model_path}: metadata {exc}") from exc
        elif np.issubdtype(np.dtype(scan.original_dtype), np.unsignedinteger):
            intensity_range = (0.0, float(np.iinfo(np.dtype(scan.original_dtype)).max))
        else:
            intensity_range = infer_intensity_range(scan.volume)
    low, high = _check_range(intensity_range)

    probs = segment_volume(
        model, scan.volume, axes=axes, tile=tile, overlap=overlap, batch_size=batch_size,
        intensity_range=(low, high), device=device, progress=progress,
    )  # fmt: skip
    solid = probs >= threshold
    del probs
    write_tiff(out_path, solid, voxel_size_um=scan.voxel_size_um, overwrite=overwrite)
    solid_voxels = int(np.count_nonzero(solid))
    total = int(np.prod(solid.shape, dtype=np.int64))
    return SegmentResult(
        porosity=float(np.int64(total - solid_voxels) / np.int64(total)),
        shape=tuple(int(s) for s in solid.shape),
        seconds=time.perf_counter() - start,
        out_path=out_path,
        solid_voxels=solid_voxels,
        total_voxels=total,
        voxel_size_um=scan.voxel_size_um,
        intensity_range=(low, high),
        axes=axes,
    )
