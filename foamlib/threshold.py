"""Global grey-value thresholds: the paper's Otsu baseline and two alternatives.

Griem et al. segment CT scans of polyurethane foam with a global Otsu threshold
as their baseline, and fit the foam generator (step 1) to the structure
measured on that segmentation. This module computes such global thresholds
and the binary segmentation that goes with them.

Conventions: volumes are ``(Z, Y, X)``, a single slice ``(Y, X)`` works the
same way. In CT the solid is bright, so :func:`segment` returns ``True``
(solid) where the grey value is *above* the threshold.

Large inputs: for more than :data:`MAX_SAMPLES` selected voxels the threshold
is computed from an evenly strided subsample of about that many voxels (every
k-th voxel in memory order). For the histogram-based methods this changes the
threshold by far less than one histogram bin on any realistic scan, and it
keeps the memory and time of a 1000^3 scan bounded.

Scans read by :mod:`foamlib.io` are float32; when their values are whole
numbers (a uint8 or uint16 scan) they are thresholded exactly as the integer
scan would be.

Scans larger than memory (:func:`foamlib.lazy.open_scan`): :func:`threshold_scan`
computes the Otsu threshold from a histogram of every voxel accumulated slab by
slab (:func:`scan_histogram`; exact, one bin per grey value, for integer grey
values; ``nbins`` equal bins for floats) and :func:`count_above` counts the solid
voxels slab by slab in int64, so the porosity equals that of the scan in memory.
:func:`scan_thresholds` gives all three methods of a scan opened lazily (Li and
triangle from a bounded grid sample), and :func:`write_threshold_mask` writes
the segmentation slab by slab.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .checks import check_mask
from .progress import progress_bar

log = logging.getLogger(__name__)

#: Methods understood by :func:`threshold_value` and :func:`segment`.
METHODS: tuple[str, ...] = ("otsu", "li", "triangle")

#: Above this many selected voxels the threshold is computed on a strided subsample.
MAX_SAMPLES: int = 50_000_000

#: Bytes of stored grey values read per slab by the functions for scans larger than memory (64 MiB).
_SLAB_BYTES = 64 * 2**20


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"unknown threshold method {method!r}; valid methods are {', '.join(map(repr, METHODS))}")


def _integral_offset(values: np.ndarray) -> float | None:
    """For floats that are all whole numbers within a 16-bit range: their minimum; else None.

    Scans are read as float32 (:mod:`foamlib.io`), so a uint8 or uint16 scan
    arrives here as whole-numbered floats; thresholding those as integers (one
    histogram bin per grey value, as scikit-image does for integer dtypes)
    gives exactly the threshold of the original integer scan.
    """
    if not np.issubdtype(values.dtype, np.floating):
        return None
    lo, hi = float(values.min()), float(values.max())
    if hi - lo > np.iinfo(np.uint16).max or not np.array_equal(values, np.rint(values)):
        return None
    return lo


def _compute(values: np.ndarray, method: str, nbins: int) -> float:
    from skimage import filters

    if method == "li":
        # threshold_li iterates on the grey values themselves and has no bins.
        return float(filters.threshold_li(values))
    func = filters.threshold_otsu if method == "otsu" else filters.threshold_triangle
    if np.issubdtype(values.dtype, np.integer):
        return float(func(values))  # one histogram bin per grey value; nbins does not apply
    offset = _integral_offset(values)
    if offset is not None:
        return float(func((values - offset).astype(np.uint16))) + offset
    if method == "triangle":
        return float(filters.threshold_triangle(values, nbins=nbins))
    # Otsu on a float histogram: scikit-image returns the centre of the last bin of the dark class,
    # so voxels of that bin above its centre would be called solid although Otsu's split put them
    # in the dark class. Return the bin's upper edge, the split itself.
    centre = float(filters.threshold_otsu(values, nbins=nbins))
    half_bin = (float(values.max()) - float(values.min())) / (2 * nbins)
    return centre + half_bin


def _selected_values(image: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """The grey values the threshold is computed from, as a 1D array (maybe a strided subsample)."""
    image = np.asarray(image)
    if image.ndim not in (2, 3):
        raise ValueError(f"expected a 2D (Y, X) slice or a 3D (Z, Y, X) volume, got an array of shape {image.shape}")
    if image.dtype == bool or not (np.issubdtype(image.dtype, np.integer) or np.issubdtype(image.dtype, np.floating)):
        raise TypeError(f"expected a grey-value image of integer or floating dtype, got dtype {image.dtype}")
    if mask is None:
        values = image.reshape(-1)
    else:
        values = image[check_mask(mask, image.shape, like="image")]
    if values.size > MAX_SAMPLES:
        step = math.ceil(values.size / MAX_SAMPLES)
        log.debug("threshold from every %d-th of %d voxels", step, values.size)
        values = values[::step]
    if np.issubdtype(values.dtype, np.floating) and not np.all(np.isfinite(values)):
        raise ValueError("image contains NaN or infinite grey values; mask them out with `mask`")
    if values.min() == values.max():
        raise ValueError(f"image is constant (all selected voxels equal {values.flat[0]!r}); no threshold separates two phases")
    return values


def threshold_value(
    image: np.ndarray,
    *,
    method: str = "otsu",
    nbins: int = 256,
    mask: np.ndarray | None = None,
) -> float:
    """Global grey-value threshold separating the dark (pore) and bright (solid) phase.

    Parameters
    ----------
    image : ndarray, shape (Z, Y, X) or (Y, X), integer or floating dtype
        Grey values of a CT volume or of one slice.
    method : {"otsu", "li", "triangle"}, default "otsu"
        ``"otsu"`` (the paper's baseline) maximises the between-class variance
        (:func:`skimage.filters.threshold_otsu`); ``"li"`` minimises the
        cross-entropy (:func:`skimage.filters.threshold_li`); ``"triangle"``
        is the triangle method (:func:`skimage.filters.threshold_triangle`).
    nbins : int, default 256
        Number of histogram bins for ``"otsu"`` and ``"triangle"`` on
        floating-point grey values; ignored by ``"li"``. Integer images, and
        float images whose values are all whole numbers spanning at most
        65535 (a uint8 or uint16 scan read as float32), use one bin per grey
        value, so they get exactly the threshold of the integer scan.
    mask : ndarray of bool, same shape as `image`, optional
        Only the voxels where `mask` is ``True`` are used (e.g. to leave out
        the background outside a cylindrical field of view).

    Returns
    -------
    float
        The threshold, in the grey-value units of `image`. Voxels strictly
        brighter than it are solid (see :func:`segment`).

    Raises
    ------
    ValueError
        If `method` is unknown (the message lists the valid ones), if the
        selected voxels are constant, if `mask` selects nothing or has the
        wrong shape, if the image is not 2D or 3D, or if it has NaN or
        infinite values among the selected voxels.
    TypeError
        If `image` is boolean or not numeric, or `mask` is not boolean.

    Notes
    -----
    For Otsu on a float histogram the threshold returned is the upper edge of
    the last bin of the dark class (scikit-image returns that bin's centre),
    so ``image > threshold`` reproduces Otsu's split of the histogram.

    When more than :data:`MAX_SAMPLES` (50 million) voxels are selected the
    threshold is computed from an evenly strided subsample of about that many.
    """
    _check_method(method)
    if int(nbins) < 2:
        raise ValueError(f"nbins must be at least 2, got {nbins}")
    values = _selected_values(image, mask)
    return _compute(values, method, int(nbins))


def segment(
    image: np.ndarray,
    *,
    method: str = "otsu",
    nbins: int = 256,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """Binary segmentation by a global threshold: ``True`` = solid (bright), ``False`` = pore.

    Parameters
    ----------
    image : ndarray, shape (Z, Y, X) or (Y, X), integer or floating dtype
        Grey values of a CT volume or of one slice.
    method : {"otsu", "li", "triangle"}, default "otsu"
        Threshold method, see :func:`threshold_value`.
    nbins : int, default 256
        Histogram bins, see :func:`threshold_value`.
    mask : ndarray of bool, same shape as `image`, optional
        Only these voxels are used to *compute* the threshold; the whole image
        is segmented with it.

    Returns
    -------
    ndarray of bool, same shape as `image`
        ``image > threshold_value(image, ...)``: ``True`` where solid.

    Raises
    ------
    ValueError, TypeError
        As :func:`threshold_value`.
    """
    level = threshold_value(image, method=method, nbins=nbins, mask=mask)
    return np.asarray(image) > level


# --------------------------------------------------------------------------- scans larger than memory


@dataclass(frozen=True)
class ScanHistogram:
    """Histogram of every grey value of a scan, accumulated slab by slab (:func:`scan_histogram`).

    Attributes
    ----------
    counts : ndarray of int64, shape (n,)
        Voxels per bin (int64: no overflow for any real scan).
    centres : ndarray of float64, shape (n,)
        Bin centres, grey-value units.
    integral : bool
        True: one bin per grey value (integer grey values spanning at most
        65535), as :func:`threshold_value` bins an integer scan; False:
        ``nbins`` equal bins from the minimum to the maximum.
    bin_width : float
        1.0 for integral bins, else ``(max - min) / nbins``.
    """

    counts: np.ndarray
    centres: np.ndarray
    integral: bool
    bin_width: float

    @property
    def total(self) -> int:
        """Number of voxels counted."""
        return int(self.counts.sum(dtype=np.int64))


def scan_histogram(scan: Any, *, nbins: int = 256, progress: bool = False) -> ScanHistogram:
    """Histogram of a :class:`~foamlib.lazy.LazyScan`, read slab by slab in bounded memory.

    Parameters
    ----------
    scan : foamlib.lazy.LazyScan
        The scan (see :func:`foamlib.lazy.open_scan`).
    nbins : int, default 256
        Bins for grey values that are not integers spanning at most 65535
        (floats, or integers of a wider range), >= 2.
    progress : bool, default False
        Show a progress bar over the slabs.

    Returns
    -------
    ScanHistogram

    Raises
    ------
    foamlib.io.ScanError
        If the scan holds NaN or infinite values or is constant (names it).

    Notes
    -----
    The binning is that of :func:`threshold_value` on the scan read by
    :func:`foamlib.io.read_scan` (float32 grey values), without its subsample:
    grey values that are whole numbers spanning at most 65535 (any uint8,
    uint16, int16 scan; a float scan holding only whole numbers) get one bin
    per value and so an exact histogram; other float scans get ``nbins`` equal
    bins between the float32 minimum and maximum, counted per slab with
    :func:`numpy.histogram` on float32 values, which bins each voxel as a call
    on the whole volume would. Reads the scan two or three times (minimum and
    maximum, cached on ``scan``; for floats, whether all values are whole; the
    counts).
    """
    if int(nbins) < 2:
        raise ValueError(f"nbins must be at least 2, got {nbins}")
    low, high = scan.value_range(progress=progress)
    low32, high32 = float(np.float32(low)), float(np.float32(high))
    depth = max(1, _SLAB_BYTES // max(1, scan.slice_nbytes))
    slabs = list(scan.slabs(depth))
    integral = high32 - low32 <= np.iinfo(np.uint16).max and (
        scan.dtype.kind in "biu"
        or all(_whole(scan.read(z0, z1)) for z0, z1 in progress_bar(slabs, desc="integral", unit="slab", disable=not progress))
    )
    if integral:
        offset = int(low32)
        counts = np.zeros(int(high32) - offset + 1, dtype=np.int64)
        for z0, z1 in progress_bar(slabs, desc="histogram", unit="slab", disable=not progress):
            values = scan.read(z0, z1).astype(np.float32).astype(np.int64).ravel() - offset
            counts += np.bincount(values, minlength=counts.size)
        centres = np.arange(offset, offset + counts.size, dtype=np.float64)
        return ScanHistogram(counts=counts, centres=centres, integral=True, bin_width=1.0)
    counts = np.zeros(int(nbins), dtype=np.int64)
    edges = None
    for z0, z1 in progress_bar(slabs, desc="histogram", unit="slab", disable=not progress):
        part, edges = np.histogram(scan.read(z0, z1).astype(np.float32), bins=int(nbins), range=(low32, high32))
        counts += part
    centres = ((edges[:-1] + edges[1:]) / 2.0).astype(np.float64)
    return ScanHistogram(counts=counts, centres=centres, integral=False, bin_width=(high32 - low32) / int(nbins))


def _whole(values: np.ndarray) -> bool:
    return bool(np.array_equal(values, np.rint(values)))


def threshold_scan(scan: Any, *, method: str = "otsu", nbins: int = 256, progress: bool = False) -> float:
    """Global Otsu threshold of a scan larger than memory, from its streamed histogram.

    Parameters
    ----------
    scan : foamlib.lazy.LazyScan
        The scan.
    method : {"otsu"}, default "otsu"
        Only Otsu works from a histogram; ``"li"`` iterates on the grey values
        themselves and ``"triangle"`` has no histogram interface, so both need
        the scan in memory (:func:`threshold_value`).
    nbins : int, default 256
        See :func:`scan_histogram`.
    progress : bool, default False
        Show progress bars.

    Returns
    -------
    float
        Voxels strictly brighter are solid. Equal to :func:`threshold_value`
        of the scan read into memory wherever that uses every voxel (up to
        :data:`MAX_SAMPLES`); above, this one is exact and the in-memory one
        comes from a subsample.

    Raises
    ------
    ValueError
        For another method (names what to do) or a bad ``nbins``.
    foamlib.io.ScanError
        If the scan holds NaN or infinite values or is constant.
    """
    from skimage import filters

    _check_method(method)
    if method != "otsu":
        raise ValueError(
            f"{scan.path}: the {method!r} threshold needs the scan in memory; use method 'otsu' (--method otsu), "
            "which works on the streamed histogram, or raise the memory budget"
        )
    hist = scan_histogram(scan, nbins=nbins, progress=progress)
    centre = float(filters.threshold_otsu(hist=(hist.counts, hist.centres)))
    # as threshold_value: integral bins give the grey value itself; float bins the upper edge of the split
    return centre if hist.integral else centre + hist.bin_width / 2


def count_above(scan: Any, level: float, *, progress: bool = False) -> int:
    """Voxels strictly brighter than ``level`` (solid, as :func:`segment`), counted slab by slab in int64.

    Parameters
    ----------
    scan : foamlib.lazy.LazyScan
        The scan; grey values compared as float32, as :func:`foamlib.io.read_scan` gives them.
    level : float
        The threshold.
    progress : bool, default False
        Show a progress bar over the slabs.

    Returns
    -------
    int
    """
    depth = max(1, _SLAB_BYTES // max(1, scan.slice_nbytes))
    total = 0
    for z0, z1 in progress_bar(list(scan.slabs(depth)), desc="count", unit="slab", disable=not progress):
        total += int(np.count_nonzero(scan.read(z0, z1).astype(np.float32) > level))
    return total


def scan_thresholds(
    scan: Any, *, methods: tuple[str, ...] | list[str] = METHODS, max_samples: int, nbins: int = 256,
    progress: bool = False,
) -> dict[str, float]:
    """Global thresholds of a scan opened lazily, by several methods, without reading it whole.

    Parameters
    ----------
    scan : foamlib.lazy.LazyScan
        The scan.
    methods : sequence of {"otsu", "li", "triangle"}, optional
        Default all of :data:`METHODS`.
    max_samples : int
        Most voxels of the grid sample for Li and triangle, >= 1.
    nbins : int, default 256
        As for :func:`threshold_value`.
    progress : bool, default False
        Show progress bars.

    Returns
    -------
    dict
        Method -> threshold, in the order of ``methods``. Otsu comes from the
        streamed histogram of every voxel (:func:`threshold_scan`, exact);
        Li and triangle, which need the grey values themselves, are
        :func:`threshold_value` of the grid sample ``scan[::s, ::s, ::s]`` of
        at most ``max_samples`` voxels as float32 (:meth:`~foamlib.lazy.LazyScan.grid_sample`).
        A scan of at most ``max_samples`` voxels is its own sample, so every
        threshold then equals :func:`threshold_value` of the scan read by
        :func:`foamlib.io.read_scan`.

    Raises
    ------
    ValueError
        For an unknown method (names the valid ones).
    foamlib.io.ScanError
        If the scan holds NaN or infinite values or is constant.
    """
    for method in methods:
        _check_method(method)
    levels: dict[str, float] = {}
    sample = None
    for method in methods:
        if method == "otsu":
            levels[method] = threshold_scan(scan, method="otsu", nbins=nbins, progress=progress)
            continue
        if sample is None:
            sample = scan.grid_sample(max_samples).astype(np.float32)
        levels[method] = threshold_value(sample, method=method, nbins=nbins)
    return levels


def write_threshold_mask(scan: Any, level: float, path: Any, *, overwrite: bool = False, progress: bool = False) -> int:
    """Write ``scan > level`` (solid) as a mask TIFF stack, slab by slab; return the number of solid voxels.

    Parameters
    ----------
    scan : foamlib.lazy.LazyScan
        The scan; grey values compared as float32, as :func:`segment` compares
        the scan read by :func:`foamlib.io.read_scan`.
    level : float
        The threshold (e.g. from :func:`scan_thresholds`).
    path : path-like
        Output ``.tif``/``.tiff``: uint8, 255 = solid, the scan's voxel size
        (:func:`foamlib.io.tiff_slab_writer`; written atomically).
    overwrite : bool, default False
        Replace an existing file.
    progress : bool, default False
        Show a progress bar over the slabs.

    Returns
    -------
    int
        Solid voxels (a Python int).
    """
    from .io import tiff_slab_writer

    depth = max(1, _SLAB_BYTES // max(1, scan.slice_nbytes))
    total = 0
    with tiff_slab_writer(path, scan.shape, voxel_size_um=scan.voxel_size_um, label="solid", overwrite=overwrite) as out:
        for z0, z1 in progress_bar(list(scan.slabs(depth)), desc="threshold", unit="slab", disable=not progress):
            solid = scan.read(z0, z1).astype(np.float32) > level
            out.write(z0, solid)
            total += int(np.count_nonzero(solid))
    return total
