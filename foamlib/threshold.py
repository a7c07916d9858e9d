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
"""

from __future__ import annotations

import logging
import math

import numpy as np

log = logging.getLogger(__name__)

#: Methods understood by :func:`threshold_value` and :func:`segment`.
METHODS: tuple[str, ...] = ("otsu", "li", "triangle")

#: Above this many selected voxels the threshold is computed on a strided subsample.
MAX_SAMPLES: int = 50_000_000


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
        mask = np.asarray(mask)
        if mask.dtype != bool:
            raise TypeError(f"mask must be a boolean array, got dtype {mask.dtype}")
        if mask.shape != image.shape:
            raise ValueError(f"mask shape {mask.shape} does not match image shape {image.shape}")
        values = image[mask]
        if values.size == 0:
            raise ValueError("mask selects no voxels")
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
