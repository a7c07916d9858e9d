"""Square 2D patches of a segmented volume, and the statistics that compare patch sets.

Step 2 of Griem et al. trains a GAN on 2D slices of the segmented real foam and
feeds the generated binary images to the rest of the pipeline. This module
cuts the training patches out of the step-1 segmentation
(:func:`extract_patches`) and measures whether a set of generated patches looks
like the real ones (:func:`patch_statistics`, :func:`compare_patch_sets`).

Design choices
--------------
* **Slices across every requested axis.** A foam scan is not quite isotropic
  (cells are stretched along the rise direction), and a generator trained on
  slices perpendicular to one axis learns only that view. ``axes="zyx"``
  draws each patch's slicing axis uniformly from the given ones; the slice
  index and the patch's corner are then uniform over all positions where the
  patch fits. Slices follow :func:`foamlib.foam.slice_volume`: perpendicular to
  z a patch is ``(Y, X)``, to y ``(Z, X)``, to x ``(Z, Y)``.
* **Per-patch statistics, compared as distributions.** Mean porosity alone
  does not reveal mode collapse: a generator that always produces the same
  few images can hit the mean exactly. Real 64-pixel patches of a foam vary a
  lot (a patch may lie inside one large pore or cut through a strut), so the
  *spread* of the per-patch porosity across a set is the check: a collapsed
  generator has a tiny one. :func:`compare_patch_sets` reports each set's
  mean and standard deviation, their difference and ratio to the reference,
  and the two-sample Kolmogorov-Smirnov statistic (the largest gap between
  the two empirical distribution functions, 0 for identical samples, 1 for
  disjoint ones; :func:`scipy.stats.ks_2samp`).
* **Pore sizes in 2D** come from :func:`foamlib.structure.pore_sizes` on each
  patch (distance-transform watershed; circle-equivalent diameters). Pores cut
  by the patch border are kept: in a 64-pixel patch of 20-30 pixel cells
  nearly every pore touches the border, and real and generated patches are
  cut the same way, so the comparison stays fair even though the absolute
  diameters are smaller than the 3D cell size.
* **Scans larger than memory.** :func:`extract_patches` takes a volume opened
  lazily (:class:`foamlib.lazy.LazyScan`, :class:`foamlib.lazy.LazyMask`) and
  reads one patch at a time, with the same patches as from the volume in
  memory; :class:`ScanSlices` is :func:`orthogonal_slices` of such a scan,
  read one tile at a time (the CycleGAN's real domain).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from ._optional import requires_extra

if TYPE_CHECKING:
    import pandas as pd

from .checks import check_int, check_real
from .lazy import LazyMask, LazyScan
from .streams import RngLike

__all__ = [
    "extract_patches",
    "orthogonal_slices",
    "ScanSlices",
    "tile_starts",
    "patch_statistics",
    "compare_patch_sets",
    "STATISTICS",
]

logger = logging.getLogger(__name__)

_AXIS_INDEX = {"z": 0, "y": 1, "x": 2}

#: Columns of :func:`patch_statistics`, in order; the rows of :func:`compare_patch_sets`.
STATISTICS = ("porosity", "n_pores", "mean_pore_diameter_um", "median_pore_diameter_um")


def _check_axes(axes: Any) -> tuple[int, ...]:
    if not isinstance(axes, str) or not axes:
        raise ValueError(f"axes must be a non-empty string of 'z', 'y', 'x' (e.g. 'z' or 'zyx'), got {axes!r}")
    letters = axes.lower()
    unknown = sorted(set(letters) - set(_AXIS_INDEX))
    if unknown:
        raise ValueError(f"axes must contain only 'z', 'y' and 'x', got {axes!r} (unknown {unknown})")
    if len(set(letters)) != len(letters):
        raise ValueError(f"axes must not repeat an axis, got {axes!r}")
    return tuple(_AXIS_INDEX[a] for a in letters)


def extract_patches(
    volume: np.ndarray, size: int, n: int, *, axes: str = "z", rng: RngLike = None, seed: int | None = None
) -> np.ndarray:
    """Random square crops of 2D slices of a volume.

    Parameters
    ----------
    volume : numpy.ndarray, foamlib.lazy.LazyScan or foamlib.lazy.LazyMask
        ``(Z, Y, X)``, any dtype (typically bool, True = solid). A volume
        opened lazily is read one patch at a time (the same patches as from
        the volume in memory).
    size : int
        Side of the square patches in pixels, >= 1 and no larger than either
        side of the slices along every requested axis.
    n : int
        Number of patches, >= 1.
    axes : str, optional
        Axes the slices are perpendicular to, any non-empty combination of
        ``"z"``, ``"y"`` and ``"x"`` without repeats (``"z"``: slices
        ``volume[k]``, ``"zyx"``: all three). Default ``"z"``.
    rng : None, int or numpy.random.Generator, optional
        Source of the positions (SPEC 7, normalised with
        :func:`numpy.random.default_rng`; e.g.
        ``foamlib.streams.rng(seed, "gan", "real-patches")``). The same
        arguments give the same patches; the global NumPy RNG is not used.
        Default: the seed 0 (``seed``'s default), so that a call without
        either gives the same patches every time.
    seed : int, optional
        The earlier name of an integer ``rng`` (>= 0); give one of the two.

    Returns
    -------
    numpy.ndarray
        ``(n, size, size)``, the dtype of ``volume``, a new array. Patch ``i``
        comes from an axis drawn uniformly from ``axes``, a slice index drawn
        uniformly along it, and a corner drawn uniformly over all positions
        where the patch fits in the slice. Orientation as in
        :func:`foamlib.foam.slice_volume`: perpendicular to z a patch is
        ``(Y, X)``, to y ``(Z, X)``, to x ``(Z, Y)``.

    Raises
    ------
    ValueError
        If ``volume`` is not 3D or empty, ``size``, ``n`` or ``seed`` are
        out of range, ``axes`` is malformed, ``size`` exceeds a slice
        side along one of the requested axes, or both ``rng`` and ``seed``
        are given.
    TypeError
        If ``size``, ``n`` or ``seed`` is not an integer.

    Examples
    --------
    >>> vol = np.zeros((10, 20, 30), dtype=bool)
    >>> extract_patches(vol, 8, 5, axes="zyx").shape
    (5, 8, 8)
    """
    lazy = isinstance(volume, (LazyScan, LazyMask))
    vol = volume if lazy else np.asarray(volume)
    if vol.ndim != 3 or vol.size == 0:
        raise ValueError(f"volume must be a non-empty 3D (Z, Y, X) array, got shape {vol.shape}")
    size = check_int("size", size, low=1)
    n = check_int("n", n, low=1)
    if seed is not None:
        if rng is not None:
            raise ValueError(f"give rng or seed, not both (got rng={rng!r}, seed={seed!r})")
        rng = check_int("seed", seed, low=0)
    axis_ids = _check_axes(axes)
    for axis in axis_ids:
        plane = tuple(s for i, s in enumerate(vol.shape) if i != axis)
        if size > min(plane):
            name = "zyx"[axis]
            raise ValueError(
                f"size {size} does not fit in the slices perpendicular to {name} of a volume of shape "
                f"{vol.shape} (slices are {plane[0]} x {plane[1]})"
            )

    rng = np.random.default_rng(0 if rng is None else rng)
    which = rng.integers(0, len(axis_ids), size=n)
    out = np.empty((n, size, size), dtype=vol.dtype)
    offsets = np.arange(size)
    for k, axis in enumerate(axis_ids):
        picked = np.flatnonzero(which == k)
        if picked.size == 0:
            continue
        depth, rows, cols = (vol.shape[axis], *(s for i, s in enumerate(vol.shape) if i != axis))
        index = rng.integers(0, depth, size=picked.size)
        top = rng.integers(0, rows - size + 1, size=picked.size)
        left = rng.integers(0, cols - size + 1, size=picked.size)
        if lazy:
            for p, i, t, l in zip(picked, index, top, left):
                out[p] = vol[_slice_key(axis, int(i), slice(int(t), int(t) + size), slice(int(l), int(l) + size))]
            continue
        slices = np.moveaxis(vol, axis, 0)  # a view: (depth, rows, cols)
        out[picked] = slices[
            index[:, None, None],
            (top[:, None] + offsets)[:, :, None],
            (left[:, None] + offsets)[:, None, :],
        ]
    return out


def _slice_key(axis: int, index: int, rows: Any, cols: Any) -> tuple[Any, Any, Any]:
    """Index of ``np.moveaxis(volume, axis, 0)[index, rows, cols]`` in ``volume`` itself (basic indexing)."""
    if axis == 0:
        return index, rows, cols
    if axis == 1:
        return rows, index, cols
    return rows, cols, index


def tile_starts(length: int, size: int) -> np.ndarray:
    """Start indices of tiles of edge `size` that cover ``range(length)``.

    Tiles are laid edge to edge from 0; where `size` does not divide
    `length` one more tile is aligned to the end, overlapping its
    neighbour, so every index is covered and no tile sticks out.

    Parameters
    ----------
    length : int
        Number of pixels to cover, >= 1.
    size : int
        Tile edge in pixels, 1 <= `size` <= `length`.

    Returns
    -------
    ndarray of int64, shape (ceil(length / size),)
        Increasing start indices, the first 0 and the last ``length - size``.

    Examples
    --------
    >>> tile_starts(10, 4).tolist()
    [0, 4, 6]
    """
    length = check_int("length", length, low=1)
    size = check_int("size", size, low=1)
    if size > length:
        raise ValueError(f"tile size {size} is larger than the length {length} to cover")
    starts = np.arange(0, length - size + 1, size, dtype=np.int64)
    if starts[-1] != length - size:
        starts = np.append(starts, length - size)
    return starts


def orthogonal_slices(volume: np.ndarray, *, axes: str = "zyx", size: int | None = None) -> np.ndarray:
    """Every slice of a volume along the given axes, cut into square tiles of one common edge.

    Slices of a non-cubic volume have up to three different shapes (for a
    ``(Z, Y, X)`` volume: ``(Y, X)``, ``(Z, X)`` and ``(Z, Y)``). To stack
    them into one image set (e.g. the real domain of the CycleGAN, which
    trains on random crops of these), each slice is covered by square tiles
    of edge `size`, laid edge to edge with the last tile of a row or column
    aligned to the slice's edge (overlapping where `size` does not divide
    the edge, see :func:`tile_starts`).

    Parameters
    ----------
    volume : ndarray, shape (Z, Y, X)
        Any dtype (grey values or bool); every axis >= 1 voxel.
    axes : str, default "zyx"
        Axes the slices are perpendicular to, any non-empty combination of
        ``"z"``, ``"y"`` and ``"x"`` without repeats.
    size : int, optional
        Tile edge in pixels, at most the shortest slice edge over `axes`
        (otherwise no tile fits in that slice). Default: that shortest edge,
        so the tiles are as large as possible (for ``"zyx"`` the shortest
        axis of the volume, for ``"z"`` ``min(Y, X)``).

    Returns
    -------
    ndarray, shape (N, size, size), dtype of `volume`
        A new array. Tiles come axis by axis in the order of `axes`, then
        slice by slice, then row of tiles by row, then column by column.
        Orientation as in :func:`foamlib.foam.slice_volume`: perpendicular
        to z a tile is a piece of ``(Y, X)``, to y of ``(Z, X)``, to x of
        ``(Z, Y)``. With ``t(n) = ceil(n / size)`` tiles along an edge of
        ``n`` pixels, ``N`` sums ``Z * t(Y) * t(X)`` (axis z),
        ``Y * t(Z) * t(X)`` (axis y) and ``X * t(Z) * t(Y)`` (axis x) over
        the requested axes. For example a 100 x 200 x 200 volume gives
        100-pixel tiles, 4 per z slice and 2 per y or x slice: N = 400 +
        200 + 200 = 800.

    Raises
    ------
    ValueError
        If `volume` is not a non-empty 3D array, `axes` is malformed, or
        `size` is not an integer >= 1 that fits in every slice.

    Examples
    --------
    >>> orthogonal_slices(np.zeros((100, 200, 200), dtype=np.uint8)).shape
    (1200, 100, 100)
    >>> orthogonal_slices(np.zeros((40, 64, 56), dtype=bool), axes="z").shape
    (160, 56, 56)
    """
    vol = np.asarray(volume)
    if vol.ndim != 3 or vol.size == 0:
        raise ValueError(f"volume must be a non-empty 3D (Z, Y, X) array, got shape {vol.shape}")
    axis_ids = _check_axes(axes)
    planes = {axis: tuple(s for i, s in enumerate(vol.shape) if i != axis) for axis in axis_ids}
    largest = min(min(plane) for plane in planes.values())
    if size is None:
        size = largest
    size = check_int("size", size, low=1)
    if size > largest:
        axis = min(axis_ids, key=lambda a: min(planes[a]))
        raise ValueError(
            f"size {size} does not fit in the slices perpendicular to {'zyx'[axis]} of a volume of shape "
            f"{vol.shape} (slices are {planes[axis][0]} x {planes[axis][1]}); use size <= {largest}"
        )
    stacks = []
    for axis in axis_ids:
        slices = np.moveaxis(vol, axis, 0)
        rows, cols = slices.shape[1:]
        for top in tile_starts(rows, size):
            for left in tile_starts(cols, size):
                stacks.append(slices[:, top:top + size, left:left + size])
    # order: axis, slice, row of tiles, column of tiles
    out = []
    start = 0
    for axis in axis_ids:
        depth = vol.shape[axis]
        rows, cols = planes[axis]
        k = len(tile_starts(rows, size)) * len(tile_starts(cols, size))
        block = np.stack(stacks[start:start + k], axis=1)  # (depth, k, size, size)
        out.append(block.reshape(depth * k, size, size))
        start += k
    return np.ascontiguousarray(np.concatenate(out, axis=0))


class ScanSlices:
    """:func:`orthogonal_slices` of a scan opened lazily, scaled to [0, 1], read one tile at a time.

    The same tiles, in the same order, as
    ``orthogonal_slices(scale_intensity(scan[:], intensity_range), axes=axes, size=size)``
    (:func:`foamlib.segment.scale_intensity`), without the scan or the tiles in
    memory: indexing reads only the tiles (or the parts of a tile) it returns.
    It is what :func:`foamlib.cyclegan.train_cyclegan` takes as its real
    domain for a scan larger than memory.

    Parameters
    ----------
    scan : foamlib.lazy.LazyScan
        The scan, ``(Z, Y, X)``.
    intensity_range : tuple of (float, float)
        Grey values mapped to 0 and 1 (clipped outside).
    axes : str, default "zyx"
        As for :func:`orthogonal_slices`.
    size : int, optional
        As for :func:`orthogonal_slices` (default the shortest slice edge).

    Attributes
    ----------
    shape : tuple of (int, int, int)
        ``(N, size, size)``, as :func:`orthogonal_slices` gives it.
    dtype : numpy.dtype
        float32.

    Notes
    -----
    ``images[i]``, ``images[i, rows, cols]`` (integer ``i``, slices ``rows``
    and ``cols``) and ``images[indices, rows, cols]`` (a sequence of
    integers) are supported; the result is a new float32 array.

    Examples
    --------
    >>> from foamlib.lazy import open_scan
    >>> real = ScanSlices(open_scan("scan.tif"), intensity_range=(40.0, 220.0))  # doctest: +SKIP
    >>> real[0].shape == real.shape[1:]  # doctest: +SKIP
    True
    """

    def __init__(self, scan: LazyScan, *, intensity_range: tuple[float, float], axes: str = "zyx",
                 size: int | None = None) -> None:  # fmt: skip
        from .segment import check_intensity_range

        if not isinstance(scan, LazyScan):
            raise TypeError(f"scan must be a foamlib.lazy.LazyScan (open_scan); for an array use orthogonal_slices, "
                            f"got {type(scan).__name__}")  # fmt: skip
        self.scan = scan
        self.intensity_range = check_intensity_range(intensity_range)
        self.axes = tuple(_check_axes(axes))
        planes = {axis: tuple(s for i, s in enumerate(scan.shape) if i != axis) for axis in self.axes}
        largest = min(min(plane) for plane in planes.values())
        size = largest if size is None else check_int("size", size, low=1)
        if size > largest:
            raise ValueError(f"size {size} does not fit in the slices of {scan.path} of shape {scan.shape}; "
                             f"use size <= {largest}")  # fmt: skip
        self.size = size
        self._blocks = []  # (axis, first index, rows' tile starts, cols' tile starts)
        start = 0
        for axis in self.axes:
            rows, cols = (tile_starts(n, size) for n in planes[axis])
            self._blocks.append((axis, start, rows, cols))
            start += scan.shape[axis] * len(rows) * len(cols)
        self.shape = (start, size, size)
        self.dtype = np.dtype(np.float32)

    def __repr__(self) -> str:
        return f"ScanSlices({str(self.scan.path)!r}, shape={self.shape}, axes={''.join('zyx'[a] for a in self.axes)!r})"

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def ndim(self) -> int:
        """3."""
        return 3

    def _tile(self, i: int, rows: slice, cols: slice) -> np.ndarray:
        """Tile ``i`` (a Python int in range), cut to ``rows`` and ``cols``, scaled."""
        from .segment import scale_intensity

        axis, start, row_starts, col_starts = next(b for b in reversed(self._blocks) if b[1] <= i)
        per_slice = len(row_starts) * len(col_starts)
        index, tile = divmod(i - start, per_slice)
        top, left = int(row_starts[tile // len(col_starts)]), int(col_starts[tile % len(col_starts)])
        r0, r1, rs = rows.indices(self.size)
        c0, c1, cs = cols.indices(self.size)
        if rs == 1 and cs == 1:  # read only the part asked for
            key = _slice_key(axis, index, slice(top + r0, top + max(r0, r1)), slice(left + c0, left + max(c0, c1)))
            data = self.scan[key]
        else:
            data = self.scan[_slice_key(axis, index, slice(top, top + self.size), slice(left, left + self.size))][rows, cols]
        return scale_intensity(data, self.intensity_range)

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        if len(key) > 3 or not all(isinstance(k, slice) for k in key[1:]):
            raise TypeError(f"index ScanSlices with i, (i, rows, cols) or (indices, rows, cols), got {key!r}")
        first, rows, cols = (*key, slice(None), slice(None))[:3]
        n = self.shape[0]
        if isinstance(first, (int, np.integer)) and not isinstance(first, bool):
            return self._tile(range(n)[int(first)], rows, cols)  # IndexError outside, as numpy
        indices = np.asarray(first)
        if indices.ndim != 1 or indices.dtype.kind not in "iu":
            raise TypeError(f"index ScanSlices with an integer or a sequence of integers, got {first!r}")
        return np.stack([self._tile(range(n)[int(i)], rows, cols) for i in indices]) if len(indices) else (
            np.empty((0, *np.empty(self.shape[1:])[rows, cols].shape), dtype=np.float32))  # fmt: skip

    def fingerprint(self) -> str:
        """A hash of the grey values of the scan, streamed slab by slab, and of the tiling and range.

        Stands for :func:`foamlib.torchfiles.data_fingerprint` of the tiles in
        a checkpoint: the same scan, range and tiling give the same hash.
        """
        import hashlib

        digest = hashlib.blake2b(digest_size=16)
        digest.update(f"ScanSlices{self.scan.shape}{self.scan.dtype.str}{self.intensity_range}{self.axes}{self.size};".encode())
        for z0, z1 in self.scan.slabs(self.scan.default_depth()):
            digest.update(memoryview(np.ascontiguousarray(self.scan.read(z0, z1))).cast("B"))
        return digest.hexdigest()


def _as_binary_patches(patches: Any, name: str) -> np.ndarray:
    arr = np.asarray(patches)
    if arr.ndim != 3 or arr.shape[0] == 0 or arr.shape[1] == 0 or arr.shape[2] == 0:
        raise ValueError(f"{name} must be a non-empty (N, H, W) stack, got shape {arr.shape}")
    if arr.dtype == np.bool_:
        return arr
    if np.issubdtype(arr.dtype, np.integer) and np.isin(arr, (0, 1)).all():
        return arr == 1
    raise TypeError(
        f"{name} must be binary (bool, True = solid, or integers 0/1), got dtype {arr.dtype}; "
        "threshold generator output first (foamlib.gan.generate does by default)"
    )


def patch_statistics(
    patches: np.ndarray,
    *,
    voxel_size_um: float = 1.0,
    sigma: float = 1.0,
    min_distance: int = 3,
    min_pixels: int = 1,
) -> pd.DataFrame:
    """Porosity and 2D pore sizes of every patch of a stack.

    Parameters
    ----------
    patches : numpy.ndarray
        ``(N, H, W)`` bool, True = solid (0/1 integers are accepted).
    voxel_size_um : float, optional
        Pixel edge in micrometres; with the default 1.0 diameters are in
        pixels (the columns keep their ``_um`` names).
    sigma, min_distance : optional
        Passed to :func:`foamlib.structure.pore_sizes` (smoothing of the
        distance map before marker detection, in pixels; minimum distance
        between pore centres, in pixels). Defaults 1.0 and 3.
    min_pixels : int, optional
        ``min_voxels`` of :func:`foamlib.structure.pore_sizes`: pores of fewer
        pixels are not counted (they still count as pore space for the
        porosity). Default 1 (every pore counts), which makes speckle in
        generated images visible as many tiny pores.

    Returns
    -------
    pandas.DataFrame
        One row per patch (index 0..N-1) with columns ``porosity`` (fraction of
        pore pixels), ``n_pores``, ``mean_pore_diameter_um`` and
        ``median_pore_diameter_um`` (circle-equivalent diameters, pores cut by
        the patch border included). An all-solid patch has 0 pores and NaN
        diameters; an all-pore patch counts as one pore filling the patch
        (its diameter is that of a circle of the patch's area).

    Raises
    ------
    TypeError
        If ``patches`` is not binary.
    ValueError
        If ``patches`` is not a non-empty ``(N, H, W)`` stack, or a setting is
        out of range (see :func:`foamlib.structure.pore_sizes`).
    """
    with requires_extra("study"):
        import pandas as pd

    from .structure import pore_sizes

    arr = _as_binary_patches(patches, "patches")
    voxel_size_um = check_real("voxel_size_um", voxel_size_um, low=0.0, low_open=True)
    sigma = check_real("sigma", sigma, low=0.0)
    min_distance = check_int("min_distance", min_distance, low=1)
    min_pixels = check_int("min_pixels", min_pixels, low=1)

    n, h, w = arr.shape
    solid_counts = np.count_nonzero(arr.reshape(n, -1), axis=1)
    rows = []
    for patch, n_solid in zip(arr, solid_counts):
        por = (h * w - int(n_solid)) / (h * w)  # one rounding: exact for exact fractions
        if n_solid == h * w:
            n_pores, mean_d, median_d = 0, math.nan, math.nan
        elif n_solid == 0:
            d = math.sqrt(4.0 * h * w / math.pi) * voxel_size_um
            n_pores, mean_d, median_d = 1, d, d
        else:
            ps = pore_sizes(
                patch, voxel_size_um=voxel_size_um, sigma=sigma, min_distance=min_distance, min_voxels=min_pixels
            )
            n_pores = ps.n_pores
            mean_d = float(ps.diameters_um.mean()) if n_pores else math.nan
            median_d = float(np.median(ps.diameters_um)) if n_pores else math.nan
        rows.append((por, n_pores, mean_d, median_d))
    frame = pd.DataFrame(rows, columns=list(STATISTICS))
    frame["n_pores"] = frame["n_pores"].astype(np.int64)
    return frame


def compare_patch_sets(
    sets: Mapping[str, Any],
    *,
    reference: str | None = None,
    voxel_size_um: float = 1.0,
    sigma: float = 1.0,
    min_distance: int = 3,
    min_pixels: int = 1,
) -> pd.DataFrame:
    """Compare the per-patch statistics of several patch sets with a reference set.

    Parameters
    ----------
    sets : mapping of str to numpy.ndarray or pandas.DataFrame
        Named patch sets: bool ``(N, H, W)`` stacks (True = solid), or tables
        already computed by :func:`patch_statistics` (used as they are, the
        other keyword arguments then do not apply to them). At least one set.
    reference : str, optional
        The key of the set the others are compared with; default the first key
        (typically the real patches).
    voxel_size_um, sigma, min_distance, min_pixels : optional
        Passed to :func:`patch_statistics`.

    Returns
    -------
    pandas.DataFrame
        Index: ``(statistic, set)`` with the statistics of :data:`STATISTICS`
        (porosity first) and the sets in the order given. Columns:

        * ``n``: patches with a finite value (all-solid patches have no pore
          diameter);
        * ``mean``, ``std``: over the patches of the set (std with ``ddof=1``;
          NaN for a single patch);
        * ``mean_diff``: ``mean - mean of the reference``;
        * ``std_ratio``: ``std / std of the reference``, the mode-collapse
          check: a collapsed generator has a porosity spread far below the real
          one (ratio well under 1);
        * ``ks_statistic``, ``ks_pvalue``: two-sample Kolmogorov-Smirnov test
          against the reference (:func:`scipy.stats.ks_2samp`); 0 and 1 for
          identical samples.

        The comparison columns are NaN in the reference's own rows.

    Raises
    ------
    ValueError
        If ``sets`` is empty, ``reference`` is not one of its keys, or a set
        is malformed (see :func:`patch_statistics`).
    TypeError
        If a set is neither a binary stack nor a DataFrame with the columns of
        :func:`patch_statistics`.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> real = rng.random((20, 16, 16)) < 0.2
    >>> table = compare_patch_sets({"real": real, "copy": real.copy()})
    >>> float(table.loc[("porosity", "copy"), "ks_statistic"])
    0.0
    """
    with requires_extra("study"):
        import pandas as pd

    from scipy.stats import ks_2samp

    if not isinstance(sets, Mapping) or len(sets) == 0:
        raise ValueError(f"sets must be a non-empty mapping of names to patch stacks, got {sets!r:.80}")
    names = list(sets)
    if reference is None:
        reference = names[0]
    if reference not in sets:
        raise ValueError(f"reference {reference!r} is not one of the sets {names}")

    tables: dict[str, pd.DataFrame] = {}
    for name, value in sets.items():
        if isinstance(value, pd.DataFrame):
            missing = [c for c in STATISTICS if c not in value.columns]
            if missing:
                raise TypeError(f"sets[{name!r}] is a DataFrame without the column(s) {missing} of patch_statistics")
            tables[name] = value
        else:
            tables[name] = patch_statistics(
                _as_binary_patches(value, f"sets[{name!r}]"),
                voxel_size_um=voxel_size_um,
                sigma=sigma,
                min_distance=min_distance,
                min_pixels=min_pixels,
            )

    rows, index = [], []
    for stat in STATISTICS:
        values = {name: tables[name][stat].to_numpy(dtype=np.float64) for name in names}
        values = {name: v[np.isfinite(v)] for name, v in values.items()}
        ref = values[reference]
        ref_mean = float(ref.mean()) if ref.size else math.nan
        ref_std = float(ref.std(ddof=1)) if ref.size > 1 else math.nan
        for name in names:
            v = values[name]
            mean = float(v.mean()) if v.size else math.nan
            std = float(v.std(ddof=1)) if v.size > 1 else math.nan
            row = {"n": int(v.size), "mean": mean, "std": std}
            if name == reference:
                row.update(mean_diff=math.nan, std_ratio=math.nan, ks_statistic=math.nan, ks_pvalue=math.nan)
            else:
                if v.size and ref.size:
                    ks = ks_2samp(v, ref)
                    ks_stat, ks_p = float(ks.statistic), float(ks.pvalue)
                else:
                    ks_stat = ks_p = math.nan
                ratio = std / ref_std if ref_std > 0 else math.nan
                row.update(mean_diff=mean - ref_mean, std_ratio=ratio, ks_statistic=ks_stat, ks_pvalue=ks_p)
            rows.append(row)
            index.append((stat, name))
    return pd.DataFrame(rows, index=pd.MultiIndex.from_tuples(index, names=["statistic", "set"]))
