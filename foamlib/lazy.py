"""Scans larger than memory: open without loading, read slab by slab.

:func:`open_scan` opens everything :func:`foamlib.io.read_scan` reads, with the
same validation and error messages, but reads no voxel yet. It returns a
:class:`LazyScan` whose :meth:`LazyScan.read` gives a z slab ``(z1 - z0, Y, X)``
in the dtype the scan is stored in (native byte order), and whose numpy-style
indexing (``scan[10:20]``, ``scan[:, 5:9, :]``, ``scan[::4, ::4, ::4]``) reads
only what it returns:

- multi-page TIFF and BigTIFF files whose image data are stored uncompressed
  and contiguously (what ImageJ, Fiji and :func:`foamlib.io.write_tiff` write)
  are memory-mapped with :func:`tifffile.memmap`;
- other TIFF files (compressed, tiled, scattered strips) are read page by page,
  one z slice at a time (so a slab across z, ``scan[:, y0:y1]``, decodes every
  page: convert such a scan once with :func:`foamlib.io.tiff_slab_writer` if it
  is to be read that way often, e.g. by ``segment_file(axes="xyz")``);
- folders of slices are read one file per z slice;
- raw files are memory-mapped with :class:`numpy.memmap`, ``.npy`` files with
  ``numpy.load(mmap_mode="r")``;
- a single PNG image (2D, small) is read at once;
- Zarr stores and OME-Zarr images (``.zarr`` folders; level 0 of an OME
  multiscale, voxel size from its scale and unit) are read chunk by chunk
  through :mod:`zarr` (see :mod:`foamlib.omezarr`).

Checks that need every voxel (NaN, infinities, a constant scan) are made by
:meth:`LazyScan.value_range`, which streams the scan once and raises the
:class:`foamlib.io.ScanError` that :func:`~foamlib.io.read_scan` would raise.
Memory maps only touch the pages they read, and a slab returned by
:meth:`LazyScan.read` is a copy, so the resident memory of a slab loop stays
near the size of one slab (the operating system's page cache is not counted
against the process, although ``ps`` may show recently mapped pages).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from . import io as _io
from .io import ScanError
from .progress import progress_bar

__all__ = [
    "LazyVolume",
    "LazyScan",
    "LazyMask",
    "open_scan",
    "open_mask",
    "slab_starts",
    "grid_step",
    "central_region",
    "STATS_SLAB_BYTES",
    "MAP_CHUNK_BYTES",
]

logger = logging.getLogger(__name__)

#: Bytes of stored grey values read per slab by :meth:`LazyScan.value_range`
#: and :meth:`LazyScan.count_outside` (64 MiB).
STATS_SLAB_BYTES = 64 * 2**20

#: Most bytes of a memory-mapped scan kept mapped at once by a read (64 MiB).
MAP_CHUNK_BYTES = 64 * 2**20


@dataclass(frozen=True)
class _Source:
    """How a LazyScan gets its voxels: a memory-mappable array, TIFF pages, slice files or an array in memory."""

    kind: str  # "array", "memmap", "tiff-pages", "folder", "zarr"
    array: Any = None  # an ndarray in memory, (Z, Y, X) or (Z, Y, X, S); a zarr.Array for "zarr"
    mmap: tuple[Any, ...] = ()  # (path, dtype, offset, shape, order) of a memory map, opened per read
    files: tuple[Path, ...] = ()
    first: np.ndarray | None = None  # first slice of a folder (its reference shape and dtype)
    samples: bool = False  # a trailing samples axis (grey stored as RGB(A)) to reduce
    axes: tuple[str, ...] = ()  # "zarr": the stored array's axes, "z"/"y"/"x" or "t"/"c"/"o" of length 1


class LazyVolume:
    """What :class:`LazyScan` and :class:`LazyMask` share: a ``(Z, Y, X)`` volume on disk, read slab by slab.

    A subclass sets ``shape`` (``(Z, Y, X)``, voxels) and defines ``read(z0, z1)``.
    """

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def ndim(self) -> int:
        """3."""
        return 3

    @property
    def size(self) -> int:
        """Number of voxels (a Python int, no overflow)."""
        return math.prod(self.shape)

    def slabs(self, depth: int) -> Iterator[tuple[int, int]]:
        """``(z0, z1)`` of consecutive slabs of ``depth`` slices (the last may be thinner)."""
        return iter(slab_starts(self.shape[0], depth))


class LazyScan(LazyVolume):
    """A scan on disk, opened by :func:`open_scan`, read slab by slab.

    Attributes
    ----------
    path : pathlib.Path
        The file or folder.
    shape : tuple of (int, int, int)
        ``(Z, Y, X)`` in voxels; a 2D image is ``(1, Y, X)``.
    dtype : numpy.dtype
        dtype of the grey values as stored, in native byte order (what
        :meth:`read` returns).
    voxel_size_um : float or None
        Voxel size in micrometres, from the argument or the file, as
        :func:`foamlib.io.read_scan` gives it.
    source : str
        How voxels are read: ``"memmap"``, ``"tiff-pages"``, ``"folder"``,
        ``"zarr"`` or ``"memory"``.
    """

    def __init__(self, path: Path, source: _Source, shape: tuple[int, int, int], dtype: np.dtype,
                 voxel_size_um: float | None) -> None:  # fmt: skip
        self.path = path
        self._source = source
        self.shape = shape
        self.dtype = dtype
        self.voxel_size_um = voxel_size_um
        self._range: tuple[float, float] | None = None
        self.source = "memory" if source.kind == "array" else source.kind

    def __repr__(self) -> str:
        return (f"LazyScan({str(self.path)!r}, shape={self.shape}, dtype={self.dtype.name}, "
                f"voxel_size_um={self.voxel_size_um}, source={self.source!r})")  # fmt: skip

    @property
    def nbytes(self) -> int:
        """Bytes of the stored grey values."""
        return self.size * self.dtype.itemsize

    @property
    def slice_nbytes(self) -> int:
        """Bytes of one z slice as stored."""
        return self.shape[1] * self.shape[2] * self.dtype.itemsize

    def read(self, z0: int, z1: int) -> np.ndarray:
        """The z slab ``[z0, z1)``.

        Parameters
        ----------
        z0, z1 : int
            First and one-past-last slice, ``0 <= z0 < z1 <= Z``.

        Returns
        -------
        ndarray, shape (z1 - z0, Y, X)
            A copy, in :attr:`dtype`.

        Raises
        ------
        ValueError
            If the range is empty or outside the scan.
        foamlib.io.ScanError
            If the file turns out to be damaged where the slab lies (names it).
        """
        for name, value in (("z0", z0), ("z1", z1)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ValueError(f"{self.path}: {name} must be an integer, got {value!r}")
        if not 0 <= z0 < z1 <= self.shape[0]:
            raise ValueError(f"{self.path}: slab [{z0}, {z1}) is empty or outside the scan's {self.shape[0]} slices")
        return self[int(z0) : int(z1)]

    def __getitem__(self, key: Any) -> np.ndarray:
        """numpy-style basic indexing: integers and slices for z, y and x; returns a copy in :attr:`dtype`."""
        key = key if isinstance(key, tuple) else (key,)
        if len(key) > 3 or not all(isinstance(k, (slice, int, np.integer)) and not isinstance(k, bool) for k in key):
            raise TypeError(f"{self.path}: index with up to three integers or slices (z, y, x), got {key!r}")
        key = key + (slice(None),) * (3 - len(key))
        zs = range(self.shape[0])[key[0]]  # IndexError for an integer outside, as numpy
        plane = key[1:]
        src = self._source
        if src.kind == "array":
            data = src.array[key if not src.samples else key + (slice(None),)]
            if src.samples:
                data = _io.to_grey(np.asarray(data), self.path)
            return np.array(data, dtype=self.dtype)  # a copy in native byte order
        single = isinstance(zs, int)
        if src.kind == "zarr":
            return self._zarr_read(zs, plane)
        indices = [zs] if single else list(zs)
        probe = np.empty(self.shape[1:], dtype=bool)[plane]
        out = np.empty((len(indices), *probe.shape), dtype=self.dtype)
        if src.kind == "memmap":
            # A memory map is opened per chunk of at most MAP_CHUNK_BYTES of whole slices and closed
            # after it, so a slab across all z (scan[:, y0:y1]) never keeps more than one chunk of the
            # file mapped (and counted in the resident memory).
            chunk = max(1, MAP_CHUNK_BYTES // max(1, self.slice_nbytes * (3 if src.samples else 1)))
            for n0 in range(0, len(indices), chunk):
                part = indices[n0 : n0 + chunk]
                array = _open_memmap(src.mmap)
                step = part[1] - part[0] if len(part) > 1 else 1
                data = array[slice(part[0], part[-1] + 1, step) if step > 0 else part][(slice(None), *plane)]
                if src.samples:
                    data = _io.to_grey(np.asarray(data), self.path)
                out[n0 : n0 + len(part)] = data
                del data, array
        elif src.kind == "folder":
            for n, z in enumerate(indices):
                out[n] = _io.read_slice(self.path, src.files[z], src.first, src.files[0])[plane]
        else:  # TIFF pages: the file is opened (and its pages indexed) once per read
            with _io.tifffile_errors() as collect:
                try:
                    with tifffile.TiffFile(self.path) as tif:
                        for n, z in enumerate(indices):
                            out[n] = self._tiff_page(tif, z)[plane]
                except (ScanError, MemoryError):
                    raise
                except Exception as exc:  # tifffile raises many exception types for damaged files
                    raise ScanError(f"{self.path}: slices {indices[0]}-{indices[-1]} could not be read "
                                    f"({type(exc).__name__}: {exc})") from exc  # fmt: skip
            _io.raise_collected(collect, self.path, out.shape)
        return out[0] if single else out

    def _zarr_read(self, zs: int | range, plane: tuple[Any, ...]) -> np.ndarray:
        """``scan[zs, plane]`` of a Zarr source: one read of the chunks it touches (steps > 0 for zarr)."""
        src = self._source
        keys: list[Any] = [zs, *(range(n)[k] for n, k in zip(self.shape[1:], plane))]
        flips = []
        for i, k in enumerate(keys):
            if isinstance(k, range):
                if len(k) == 0:
                    return np.empty(tuple(len(r) for r in keys if isinstance(r, range)), dtype=self.dtype)
                flips.append(k.step < 0)
                keys[i] = slice(k[0], k[-1] + 1, k.step) if k.step > 0 else slice(k[-1], k[0] + 1, -k.step)
        stored = {"z": keys[0], "y": keys[1], "x": keys[2]}
        key = tuple(stored[a] if a in stored else 0 for a in src.axes)
        try:
            data = np.asarray(src.array[key])
        except Exception as exc:  # zarr and its codecs raise many types for damaged chunks
            raise ScanError(f"{self.path}: voxels {key} could not be read ({type(exc).__name__}: {exc})") from exc
        if "z" not in src.axes:  # a 2D image seen as (1, Y, X)
            data = data[np.newaxis][keys[0] if isinstance(keys[0], slice) else 0]
        if any(flips):
            data = data[tuple(slice(None, None, -1) if f else slice(None) for f in flips)]
        return np.array(data, dtype=self.dtype)  # a copy in native byte order

    def _tiff_page(self, tif: tifffile.TiffFile, z: int) -> np.ndarray:
        """Slice ``z`` of a page-by-page TIFF, (Y, X) in :attr:`dtype`."""
        page = tif.asarray(key=z, series=0)
        if self._source.samples:
            page = _io.to_grey(page, self.path)
        if page.shape != self.shape[1:]:
            raise ScanError(f"{self.path}: slice {z} has shape {page.shape}, expected {self.shape[1:]}")
        return page.astype(self.dtype, copy=False)

    def grid_sample(self, max_samples: int) -> np.ndarray:
        """``scan[::s, ::s, ::s]`` with the smallest step ``s`` that leaves at most ``max_samples`` voxels.

        The same deterministic, spatially uniform grid that
        :class:`foamlib.segment.IntensityNormalisation` takes from an in-memory
        volume; only every ``s``-th slice is read.

        Returns
        -------
        ndarray, 3D, in :attr:`dtype`
        """
        step = grid_step(self.shape, max_samples)
        return self[::step, ::step, ::step]

    def default_depth(self) -> int:
        """Slices per slab of the streamed passes: :data:`STATS_SLAB_BYTES` of stored grey values, at least 1."""
        return max(1, STATS_SLAB_BYTES // max(1, self.slice_nbytes))

    def value_range(self, *, progress: bool = False) -> tuple[float, float]:
        """Minimum and maximum grey value, from one streamed pass (cached).

        Checks what :func:`foamlib.io.read_scan` checks on the whole volume.

        Parameters
        ----------
        progress : bool, optional
            Show a progress bar over the slabs. Default False.

        Returns
        -------
        (float, float)

        Raises
        ------
        foamlib.io.ScanError
            If the scan holds NaN or infinite values, only one value, or
            values outside the float32 range (names the file).
        """
        if self._range is not None:
            return self._range
        low, high = math.inf, -math.inf
        n_nan = n_inf = 0
        floating = self.dtype.kind == "f"
        for z0, z1 in progress_bar(list(self.slabs(self.default_depth())), desc="check", unit="slab", disable=not progress):
            slab = self.read(z0, z1)
            if floating:
                nan, inf = np.isnan(slab), np.isinf(slab)
                n_nan += int(np.count_nonzero(nan))
                n_inf += int(np.count_nonzero(inf))
                if n_nan or n_inf:
                    continue
            low, high = min(low, float(np.min(slab))), max(high, float(np.max(slab)))
        if n_nan or n_inf:
            raise ScanError(
                f"{self.path} contains {n_nan} NaN and {n_inf} infinite values; replace or mask them before segmentation"
            )
        if low == high:
            raise ScanError(f"{self.path} contains only the value {low:g}; nothing to segment")
        limit = float(np.finfo(np.float32).max)
        if low < -limit or high > limit:
            raise ScanError(f"{self.path} has values outside the float32 range ({low:g} to {high:g})")
        self._range = (low, high)
        return self._range

    def count_outside(self, low: float, high: float, *, progress: bool = False) -> int:
        """Voxels strictly below ``low`` or above ``high``, from one streamed pass (int64-safe Python int)."""
        total = 0
        for z0, z1 in progress_bar(list(self.slabs(self.default_depth())), desc="range", unit="slab", disable=not progress):
            slab = self.read(z0, z1)
            total += int(np.count_nonzero((slab < low) | (slab > high)))
        return total



class LazyMask(LazyVolume):
    """A mask TIFF on disk, opened by :func:`open_mask`, read slab by slab as bool (``True`` = solid).

    numpy-style basic indexing (``mask[10]``, ``mask[:, 5:9]``, ``mask[box]``)
    reads only what it returns, as :class:`LazyScan` does, and returns bool
    with the file's phase convention applied (:func:`foamlib.io.read_mask`:
    a mask labelled ``foreground=pore`` is inverted; any other is ``True``
    where the file holds a non-zero value).

    Attributes
    ----------
    path : pathlib.Path
        The file.
    shape : tuple of (int, int, int)
        ``(Z, Y, X)`` in voxels.
    dtype : numpy.dtype
        ``bool``.
    voxel_size_um : float or None
        Voxel size in micrometres from the file's metadata.
    label : str or None
        The phase the file stores as 255 (``"solid"``, ``"pore"``) or None.
    """

    def __init__(self, scan: LazyScan, label: str | None) -> None:
        self._scan = scan
        self.path = scan.path
        self.shape = scan.shape
        self.dtype = np.dtype(bool)
        self.voxel_size_um = scan.voxel_size_um
        self.label = label

    def __repr__(self) -> str:
        return f"LazyMask({str(self.path)!r}, shape={self.shape}, label={self.label!r})"

    def __getitem__(self, key: Any) -> np.ndarray:
        """Basic indexing as :meth:`LazyScan.__getitem__`; returns bool, True = solid."""
        return self._solid(self._scan[key])

    def read(self, z0: int, z1: int) -> np.ndarray:
        """The z slab ``[z0, z1)`` as bool, ``(z1 - z0, Y, X)`` (see :meth:`LazyScan.read`)."""
        return self._solid(self._scan.read(z0, z1))

    def _solid(self, data: np.ndarray) -> np.ndarray:
        """Stored values as bool, True = solid, by the file's phase convention."""
        return data == 0 if self.label == "pore" else data != 0

    def solid_voxels(self, *, progress: bool = False) -> int:
        """Number of solid voxels, counted slab by slab (:data:`STATS_SLAB_BYTES` per slab; a Python int)."""
        total = 0
        slabs = list(self.slabs(self._scan.default_depth()))
        for z0, z1 in progress_bar(slabs, desc="count", unit="slab", disable=not progress):
            total += int(np.count_nonzero(self.read(z0, z1)))
        return total

    def porosity(self, *, progress: bool = False) -> float:
        """Pore fraction, streamed; equal to :func:`foamlib.structure.porosity` of the mask read whole.

        ``1 - solid / voxels`` from int counts, the formula of
        :func:`~foamlib.structure.porosity`, so the two agree to the last bit.
        """
        return 1.0 - self.solid_voxels(progress=progress) / self.size


def open_mask(path: str | os.PathLike[str]) -> LazyMask:
    """Open a mask TIFF (uint8 0/255, as :func:`foamlib.io.write_tiff` and ``foamlib segment`` write it) lazily.

    Parameters
    ----------
    path : path-like
        A mask TIFF stack. Masks written by foamlib are stored uncompressed
        and contiguously, so they are memory-mapped (:func:`open_scan`).

    Returns
    -------
    LazyMask

    Raises
    ------
    FileNotFoundError
        If the file does not exist (names it and says to run the stage that writes it).
    ValueError
        If it is a probability map or holds floating-point values, or its
        label names no known phase.
    foamlib.io.ScanError
        If it cannot be read as a TIFF stack.

    Notes
    -----
    Unlike :func:`foamlib.io.read_mask`, the values are not checked (that
    would read the whole file): any non-zero value is the foreground.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; run the stage that writes it first")
    try:
        with tifffile.TiffFile(path) as tif:
            meta = tif.imagej_metadata or {}
    except Exception as exc:  # noqa: BLE001 - tifffile raises many kinds on a damaged file
        raise ValueError(f"{path} is not a readable TIFF ({type(exc).__name__}: {exc})") from exc
    if "probability" in meta:
        raise ValueError(f"{path} is a probability map (probability of {meta['probability']}), not a mask; "
                         "threshold it (>= 0.5) or read it with open_scan")  # fmt: skip
    scan = open_scan(path)
    if scan.dtype.kind not in "biu":
        raise ValueError(f"{path} is not a mask: it holds {scan.dtype} values; masks hold 0 and 255 (uint8)")
    return LazyMask(scan, _io.mask_label(path))


def slab_starts(n: int, depth: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of consecutive ranges of ``depth`` covering ``range(n)``, the last one possibly shorter.

    Raises
    ------
    ValueError
        If ``depth`` is not a positive integer.
    """
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 1:
        raise ValueError(f"slab depth must be an integer >= 1, got {depth!r}")
    return [(z0, min(z0 + int(depth), n)) for z0 in range(0, n, int(depth))]


def grid_step(shape: tuple[int, ...], max_samples: int) -> int:
    """Smallest step ``s`` for which ``volume[::s, ::s, ::s]`` of this ``shape`` holds at most ``max_samples`` voxels.

    The grid of :meth:`LazyScan.grid_sample` (and of
    :class:`foamlib.segment.IntensityNormalisation`): deterministic, spatially
    uniform, the whole volume (``s = 1``) where it holds at most ``max_samples``.

    Raises
    ------
    ValueError
        If ``max_samples`` is not an integer >= 1.

    Examples
    --------
    >>> grid_step((512, 512, 512), 2**24)
    2
    """
    if isinstance(max_samples, bool) or not isinstance(max_samples, (int, np.integer)) or max_samples < 1:
        raise ValueError(f"max_samples must be an integer >= 1, got {max_samples!r}")
    step = 1
    while math.prod(-(-int(n) // step) for n in shape) > max_samples:
        step += 1
    return step


def central_region(shape: tuple[int, ...], max_voxels: int) -> tuple[slice, ...]:
    """The centred box of a volume that holds at most ``max_voxels`` voxels, as large and as cubic as fits.

    Axes shorter than the box's edge stay whole; the others are cut to a
    common edge, centred (the start of each cut is ``(n - m) // 2``). A
    volume of at most ``max_voxels`` voxels is returned whole, so statistics
    computed on the box equal those of the volume wherever it fits.

    Parameters
    ----------
    shape : tuple of int
        ``(Z, Y, X)`` (any number of axes), voxels, each >= 1.
    max_voxels : int
        Most voxels of the box, >= 1.

    Returns
    -------
    tuple of slice
        One ``slice(start, stop)`` per axis; ``volume[box]`` is the box.

    Raises
    ------
    ValueError
        If ``max_voxels`` is not an integer >= 1 or an axis is empty.

    Examples
    --------
    >>> central_region((512, 512, 512), 2**24)
    (slice(128, 384, None), slice(128, 384, None), slice(128, 384, None))
    >>> central_region((40, 1000, 1000), 40 * 100 * 100)
    (slice(0, 40, None), slice(450, 550, None), slice(450, 550, None))
    """
    if isinstance(max_voxels, bool) or not isinstance(max_voxels, (int, np.integer)) or max_voxels < 1:
        raise ValueError(f"max_voxels must be an integer >= 1, got {max_voxels!r}")
    sizes = [int(n) for n in shape]
    if min(sizes, default=0) < 1:
        raise ValueError(f"every axis needs at least one voxel, got shape {tuple(shape)}")
    edges = list(sizes)
    budget = int(max_voxels)
    left = len(sizes)
    for axis in sorted(range(len(sizes)), key=lambda a: sizes[a]):  # short axes first: they may stay whole
        edge = max(1, int(round(budget ** (1.0 / left))))
        while edge > 1 and edge**left > budget:
            edge -= 1
        while (edge + 1) ** left <= budget:
            edge += 1
        edges[axis] = min(sizes[axis], edge)
        budget //= edges[axis]
        left -= 1
    return tuple(slice((n - m) // 2, (n - m) // 2 + m) for n, m in zip(sizes, edges))


def open_scan(
    path: str | os.PathLike[str],
    *,
    shape: tuple[int, int, int] | None = None,
    dtype: Any = None,
    byte_order: str = "little",
    voxel_size_um: float | None = None,
) -> LazyScan:
    """Open a scan without reading its voxels.

    Parameters
    ----------
    path, shape, dtype, byte_order, voxel_size_um
        As for :func:`foamlib.io.read_scan` (raw files need ``shape`` and
        ``dtype``; ``voxel_size_um`` overrides the file's).

    Returns
    -------
    LazyScan
        ``shape`` ``(Z, Y, X)`` (a 2D image as ``(1, Y, X)``), ``dtype`` as
        stored, ``voxel_size_um`` as :func:`~foamlib.io.read_scan` gives it.

    Raises
    ------
    foamlib.io.ScanError
        For everything :func:`~foamlib.io.read_scan` refuses that can be told
        without reading every voxel (missing file, unknown extension, raw file
        of the wrong size, unreadable header, colour channels, not 2D or 3D,
        empty, non-numeric or complex dtype); NaN, infinities and a constant
        scan are found by :meth:`LazyScan.value_range`.

    Examples
    --------
    >>> scan = open_scan("scan.tif")  # doctest: +SKIP
    >>> slab = scan.read(0, 16)  # doctest: +SKIP
    """
    path = Path(path)
    override = _io.check_voxel_size(voxel_size_um, ScanError, f"{path}: voxel_size_um")
    if byte_order not in ("little", "big"):
        raise ScanError(f"{path}: byte_order must be 'little' or 'big', got {byte_order!r}")
    from .omezarr import is_zarr_path

    kind = "zarr" if is_zarr_path(path) else _io.scan_kind(path, shape=shape, dtype=dtype)
    voxel = None
    if kind == "zarr":
        if shape is not None or dtype is not None:
            raise ScanError(f"{path}: shape and dtype apply only to raw files; a Zarr store records its own")
        source, data_shape, data_dtype, voxel = _open_zarr(path, override)
    elif kind == "folder":
        files, first, voxel = _io.folder_slices(path)
        source = _Source("folder", files=tuple(files), first=first)
        data_shape, data_dtype = (len(files), *first.shape), first.dtype
    elif kind == "raw":
        array = _io.read_raw(path, shape=shape, dtype=dtype, byte_order=byte_order)
        source, data_shape, data_dtype = _memmap_source(array), array.shape, array.dtype
    elif kind == "npy":
        array = _io.read_npy(path)
        source, data_shape, data_dtype = _memmap_source(array), array.shape, array.dtype
    elif kind == "tiff":
        source, data_shape, data_dtype, voxel = _open_tiff(path)
    else:  # a 2D PNG: small, read at once
        array = _io.read_png(path)
        source, data_shape, data_dtype = _Source("array", array=array), array.shape, array.dtype
    _io.check_dtype(np.dtype(data_dtype), str(path))
    if len(data_shape) not in (2, 3):
        raise ScanError(
            f"{path} has {len(data_shape)} dimensions (shape {tuple(data_shape)}); "
            "expected a 2D image or a 3D (z, y, x) volume"
        )
    if math.prod(data_shape) == 0:
        raise ScanError(f"{path} is empty (shape {tuple(data_shape)})")
    if len(data_shape) == 2:
        data_shape = (1, *data_shape)
        if source.kind == "array":
            source = _Source("array", array=source.array[np.newaxis], samples=source.samples)
        elif source.kind == "memmap":
            source = _Source("memmap", mmap=(*source.mmap[:3], (1, *source.mmap[3]), source.mmap[4]),
                             samples=source.samples)  # fmt: skip
        # a 2D zarr source keeps its ("y", "x") axes; _zarr_read adds the z axis
    scan = LazyScan(
        path, source, tuple(int(n) for n in data_shape), np.dtype(data_dtype).newbyteorder("="),
        override if override is not None else voxel,
    )  # fmt: skip
    logger.debug("opened %r", scan)
    return scan


def _open_zarr(path: Path, override: float | None) -> tuple[_Source, tuple[int, ...], np.dtype, float | None]:
    """The level-0 array of a Zarr or OME-Zarr store; shape without its length-1 non-spatial axes."""
    from .omezarr import open_zarr_array

    # a given voxel size replaces the store's, which is then not read (it may be anisotropic or in odd units)
    array, axes, voxel = open_zarr_array(path, voxel_size=override is None)
    spatial = [a for a in axes if a in "zyx"]
    if spatial != ["z", "y", "x"][3 - len(spatial) :]:
        raise ScanError(f"{path}: its spatial axes are stored in the order {''.join(spatial)!r}; "
                        "foamlib reads (z, y, x) volumes")  # fmt: skip
    shape = tuple(int(n) for a, n in zip(axes, array.shape) if a in "zyx")
    try:
        dtype = np.dtype(array.dtype)
    except TypeError as exc:
        raise ScanError(f"{path} stores {array.dtype}, which is not a numpy number dtype") from exc
    return _Source("zarr", array=array, axes=tuple(axes)), shape, dtype, voxel


def _memmap_source(array: np.ndarray, *, samples: bool = False) -> _Source:
    """The recipe to re-open ``array`` (a numpy.memmap) per read; the map itself is dropped."""
    if not isinstance(array, np.memmap):  # np.load of a tiny or odd file may give an array in memory
        return _Source("array", array=np.asarray(array), samples=samples)
    order = "F" if array.flags.f_contiguous and not array.flags.c_contiguous else "C"
    return _Source("memmap", mmap=(array.filename, array.dtype, array.offset, array.shape, order), samples=samples)


def _open_memmap(spec: tuple[Any, ...]) -> np.memmap:
    path, dtype, offset, shape, order = spec
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order=order)


def _open_tiff(path: Path) -> tuple[_Source, tuple[int, ...], np.dtype, float | None]:
    """Memory-map a contiguous TIFF series, else prepare page-by-page reading; shape without samples axis."""
    with _io.tifffile_errors() as collect, _io.unreadable_tiff(path), tifffile.TiffFile(path) as tif:
        if not tif.series:
            raise ScanError(f"{path} contains no images; is it a broken TIFF file?")
        series = tif.series[0]
        n_series, axes, shape, dtype = len(tif.series), series.axes, tuple(series.shape), series.dtype
        offset = series.dataoffset
        voxel = _io.tiff_voxel_size(tif, path)
        pages_per_z = len(series) if axes[0] not in "YX" else 1
    _io.raise_collected(collect, path, shape)
    if n_series > 1:
        logger.warning("%s holds %d image series; reading only the first, of shape %s", path, n_series, shape)
    if "C" in axes:
        raise ScanError(
            f"{path} has {shape[axes.index('C')]} channels (axes {axes!r}); "
            "save the channel to segment as a single-channel stack"
        )
    samples = axes.endswith("S")
    grey_shape = shape[:-1] if samples else shape
    if len(grey_shape) > 3:
        raise ScanError(
            f"{path} has {len(grey_shape)} dimensions (shape {grey_shape}, axes {axes!r}); "
            "expected a 2D image or a 3D (z, y, x) volume"
        )
    nbytes = math.prod(shape) * np.dtype(dtype).itemsize
    if offset is not None:
        size = path.stat().st_size
        if offset + nbytes > size:
            raise ScanError(
                f"{path} is truncated or corrupt (its {nbytes} bytes of image data would end at byte {offset + nbytes}, "
                f"but the file has {size}); refusing a partial scan"
            )
        array = tifffile.memmap(path, mode="r", series=0)
        logger.debug("%s: memory-mapped at byte %d", path, offset)
        return _memmap_source(array, samples=samples), grey_shape, dtype, voxel
    if len(grey_shape) == 3 and pages_per_z != grey_shape[0]:
        raise ScanError(f"{path}: its {pages_per_z} pages do not match its {grey_shape[0]} slices (axes {axes!r}); "
                        "re-save it as a plain stack")  # fmt: skip
    if len(grey_shape) == 2:  # one compressed image: small enough to read at once
        data, _ = _io.read_tiff(path)
        return _Source("array", array=data), data.shape, data.dtype, voxel
    logger.debug("%s: not memory-mappable (compressed or scattered); reading page by page", path)
    return _Source("tiff-pages", samples=samples), grey_shape, dtype, voxel
