"""Closing open cells: thin walls drawn where the watershed pores of the pore space meet.

In step 2 of Griem et al. the GAN is trained on the step-1 U-Net segmentation
of the real scan. That segmentation misses the thinnest cell walls, so the GAN
learns foams whose cells are open. Before the binary images are translated
into CT-like images, walls are put back on a fraction of them (half in the
paper; later notebooks sweep 0, 0.25, 0.5, 0.75 and 1): the pore space is split
into pores by a distance-transform watershed and the lines where neighbouring
pores meet become thin solid walls.

Design choices
--------------
* **Markers and flooding as in** :func:`foamlib.structure.pore_sizes` (and
  its helper ``watershed_markers``, reused): the Euclidean distance
  transform (EDT) of the pore space is smoothed with a Gaussian of ``sigma``
  pixels, its local maxima at least ``min_distance`` apart are the markers,
  and maxima joined by a plateau are merged into one marker. The pore space
  is flooded from them on the unsmoothed ``-EDT``
  (:func:`skimage.segmentation.watershed`; Beucher & Meyer 1993), so two
  pores meet where the pore space is narrowest: across the window of an open
  cell wall.
* **Over-segmentation** (walls across a single pore) is held off by the
  smoothing (the raw EDT of a digitised pore has many spurious maxima), by
  ``min_distance`` and by the plateau merging (a stadium-shaped or elongated
  pore, or a pore cut by the border, whose EDT maximum is a ridge, keeps one
  marker). Round, elliptical and stadium-shaped pores get no wall.
* **Noise**: a stray solid pixel in a pore (GAN noise) pulls the EDT to 0
  around it and would make two pore centres of one pore, with a wall from
  the pixel to the nearest real wall. Markers are therefore picked on the EDT
  of the solid without its specks, components of at most ``speck_size``
  pixels (full connectivity; default 2). The flooding still sees the specks,
  so where only specks are left of a wall the new wall runs through them.
  The price: a stray pixel right next to a window pulls the wall towards it.
  Specks are never removed.
* **"Closed" means closed under 8-connectivity** (26 in 3D) of the pore
  space, the stricter notion: no pixel of one pore is even a diagonal
  neighbour of a pixel of another, so a cell closed here is closed under
  4-connectivity too. A one-pixel line that is only 8-connected (a diagonal
  of pixels touching at corners) would leak. The walls are derived from the
  label image instead of skimage's ``watershed_line=True``: every pore pixel
  that has a pixel of a lower-ranked pore in its full (3 x 3) neighbourhood
  becomes wall, where pores rank by area (ties: by label). Whatever two
  pores touch, one of the two touching pixels is then wall, so the pores
  are separated under full connectivity; the wall is the one-pixel boundary
  band of the larger pore (half a pixel off the watershed boundary),
  straight across an axis-parallel neck and a 4-connected staircase across
  a diagonal one. (skimage's own line with
  ``connectivity=2`` re-queues line pixels and took up to 18 s on one
  256 x 256 foam slice, against 15 ms for the plain watershed; with
  ``connectivity=1`` its lines are 8-connected and leak.)
* **Walls only in the pore space, only between two pores**: solid is never
  removed, and pore regions that received no marker (small pores beside a
  larger one, separated from it by solid) get no wall.
* ``wall_width=2`` adds the face neighbours of the wall pixels in the same
  (larger) pore, so the smaller pore keeps its size. The thinnest walls of
  the real segmentations are one or two pixels; one pixel is the thinnest
  wall that closes a cell.
* **Short walls** (``min_wall_length``): the wall pixels of one pore that
  touch one other pore form one wall; walls of fewer pixels are not drawn
  (their windows stay open). Off by default: a window missed by the U-Net is
  often only a few pixels wide, and dropping short walls leaves exactly those
  open.

Image border
------------
As in :mod:`foamlib.structure`, the image border is not a wall: the EDT sees
no solid outside the image, so the pore space is taken to continue beyond
the field of view. A pore cut by the border has its EDT maximum on the
border (often a flat ridge along it, merged into one marker), so the cut pore
is one pore and gets no wall along the border. A wall between two pores that
both reach the border runs to the edge of the image and stops there; the two
pores are separated inside the image only.

Measured
--------
CPU time on one core, 2D foam slices: about 1.5 ms per 64 x 64 image, 4 ms
per 128 x 128, 16 ms per 256 x 256. Recovery of removed walls, on slices of
closed-cell foams (:func:`foamlib.foam.closed_cell_foam`, walls 2 pixels
thick) from which the thin wall pixels between half of the pairs of
neighbouring cells were removed (6 slices per row; "near": new wall pixels
within 1 / 2 pixels, chessboard distance, of a removed pixel; "closed":
removed walls whose two cells are separated again; "stray": new wall pixels
more than 2 pixels from any solid of the intact foam):

====================  ============================  ============  ======  =====
slice, cells          parameters                    near (1 / 2)  closed  stray
====================  ============================  ============  ======  =====
128^2, 28 px          defaults                      97 / 97 %     95 %    16 %
same, 10 stray px     defaults                      94 / 94 %     92 %    19 %
same, 40 stray px     defaults                      89 / 90 %     89 %    19 %
same, 40 stray px     ``speck_size=0``              99 / 99 %     94 %    59 %
128^2, 28 px          ``sigma=3, min_distance=7``   93 / 94 %     89 %    4 %
64^2, 14 px           defaults                      90 / 93 %     88 %    0 %
64^2, 14 px           ``sigma=2, min_distance=5``   78 / 83 %     72 %    5 %
====================  ============================  ============  ======  =====

The stray walls at the defaults on large cells cross large pores; for cells
of 25 pixels and more ``sigma`` about 3 and ``min_distance`` about a quarter
of the cell diameter avoid most of them. ``min_wall_length=3`` lowered
"closed" from 95 % to 81 %.
"""

from __future__ import annotations

import itertools
import logging
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from . import streams
from .checks import check_int, check_real
from .progress import progress_bar
from .structure import as_solid, watershed_markers

__all__ = ["add_walls", "boundary_band", "pore_markers", "wall_statistics", "watershed_walls"]

logger = logging.getLogger(__name__)

#: Keyword arguments of :func:`watershed_walls` that :func:`add_walls` passes on.
_WALL_PARAMS = ("wall_width", "sigma", "min_distance", "min_wall_length", "speck_size")


# --------------------------------------------------------------------------- validation


def _check_params(
    *, wall_width: Any = 1, sigma: Any = 1.0, min_distance: Any = 3, min_wall_length: Any = 0, speck_size: Any = 2
) -> tuple[int, float, int, int, int]:
    """Validated parameters of :func:`watershed_walls` (TypeError for an unknown keyword)."""
    wall_width = check_int("wall_width", wall_width, low=1)
    if wall_width not in (1, 2):
        raise ValueError(f"wall_width must be 1 or 2 pixels, got {wall_width}")
    sigma = check_real("sigma", sigma, low=0.0)
    min_distance = check_int("min_distance", min_distance, low=1)
    min_wall_length = check_int("min_wall_length", min_wall_length, low=0)
    speck_size = check_int("speck_size", speck_size, low=0)
    return wall_width, sigma, min_distance, min_wall_length, speck_size


def _neighbour(array: np.ndarray, offset: tuple[int, ...], fill: Any) -> np.ndarray:
    """``out[i] = array[i + offset]`` (offsets -1, 0 or 1 per axis), `fill` where that falls outside."""
    out = np.full_like(array, fill)
    src, dst = [], []
    for step in offset:
        if step > 0:
            src.append(slice(step, None))
            dst.append(slice(None, -step))
        elif step < 0:
            src.append(slice(None, step))
            dst.append(slice(-step, None))
        else:
            src.append(slice(None))
            dst.append(slice(None))
    out[tuple(dst)] = array[tuple(src)]
    return out


# --------------------------------------------------------------------------- one image


def pore_markers(solid: np.ndarray, *, sigma: float = 1.0, min_distance: int = 3,
                 speck_size: int = 2) -> tuple[np.ndarray, np.ndarray, int] | None:
    """Pore centres of a binary image, as :func:`watershed_walls` picks them.

    Parameters
    ----------
    solid : ndarray of bool, shape (H, W) or (Z, Y, X)
        ``True`` = solid, ``False`` = pore.
    sigma, min_distance, speck_size
        As in :func:`watershed_walls`.

    Returns
    -------
    (dist, markers, n_markers) or None
        The Euclidean distance map of the pore space (float32, pixels), the
        marker labels (int, 0 = none) and their number; None where the
        pore space cannot be split (no solid, all solid, only specks, or
        fewer than two markers).
    """
    n_solid = np.count_nonzero(solid)
    if n_solid == 0 or n_solid == solid.size:
        return None
    full = np.ones((3,) * solid.ndim, dtype=bool)
    dist = ndi.distance_transform_edt(~solid).astype(np.float32)
    # Markers come from the distance map of the solid without its specks (e.g. GAN noise), so a
    # speck inside a pore does not make two pore centres of it; the flooding still sees the
    # specks, so a wall of which only specks are left is drawn through them.
    barrier = solid
    if speck_size > 0:
        parts, n_parts = ndi.label(solid, structure=full)
        sizes = np.bincount(parts.ravel(), minlength=n_parts + 1)
        barrier = solid & (sizes[parts] > speck_size)
        del parts
    if not barrier.any():
        return None
    marker_dist = dist if barrier is solid else ndi.distance_transform_edt(~barrier).astype(np.float32)
    smooth = ndi.gaussian_filter(marker_dist, sigma) if sigma > 0 else marker_dist.copy()
    smooth[barrier] = 0.0
    markers, n_markers = watershed_markers(smooth, ~barrier, min_distance)
    if n_markers < 2:
        return None
    return dist, markers, n_markers


def boundary_band(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The one-pixel band where pores of a label image meet: the walls that close them.

    Pores rank by area (ties: by label); every pore pixel with a pixel of a
    lower-ranked pore in its full (3 x 3 or 3 x 3 x 3) neighbourhood is a
    wall pixel, so that for any two neighbouring pixels of different pores
    one of them is wall and the pores are separated under full
    connectivity. The band lies in the larger pore of each pair.

    Parameters
    ----------
    labels : ndarray of int, shape (H, W) or (Z, Y, X)
        Pore labels 1..n, 0 = solid (a watershed of the pore space).

    Returns
    -------
    pixels : ndarray of int64, shape (K,)
        Flat indices of the band's pixels; a pixel next to several lower-ranked
        pores (a junction) appears once per neighbour touched.
    contact : ndarray of int64, shape (K,)
        For each entry of `pixels` the pair of pores it separates, coded
        ``own_label * (n + 1) + other_label``: one code per wall.
    """
    labels = np.asarray(labels, dtype=np.int64)
    big = np.int64(int(labels.max()) + 1)
    area = np.bincount(labels.ravel(), minlength=int(big)).astype(np.int64)
    area[0] = 0
    rank = np.where(labels > 0, area[labels] * big + labels, 0)
    del area
    own, contacts = [], []
    for offset in itertools.product((-1, 0, 1), repeat=labels.ndim):
        if not any(offset):
            continue
        other = _neighbour(rank, offset, 0)
        hit = np.flatnonzero((other > 0) & (other < rank))
        own.append(hit)
        contacts.append(labels.flat[hit] * big + other.flat[hit] % big)
    return np.concatenate(own), np.concatenate(contacts)


def watershed_walls(
    solid: np.ndarray,
    *,
    wall_width: int = 1,
    sigma: float = 1.0,
    min_distance: int = 3,
    min_wall_length: int = 0,
    speck_size: int = 2,
) -> np.ndarray:
    """Add thin solid walls where two pores of the pore space meet.

    Parameters
    ----------
    solid : ndarray of bool, shape (H, W) or (Z, Y, X)
        ``True`` = solid, ``False`` = pore (0/1 integers are accepted). 3D
        volumes work the same way (walls are then surfaces).
    wall_width : int, default 1
        1: a wall one pixel wide, the boundary band of the larger of the two
        pores that meet (a 4-connected chain of pixels in 2D, see the module
        notes on connectivity). 2: also the face neighbours of that band in
        the same pore.
    sigma : float, default 1.0
        Gaussian smoothing, in pixels, of the distance map on which markers
        (pore centres) are picked; 0 disables it. Larger values merge more
        maxima: fewer, larger pores, fewer walls.
    min_distance : int, default 3
        Minimum distance in pixels between two markers, >= 1.
    min_wall_length : int, default 0
        Walls (the wall pixels of one pore that touch one other pore) of
        fewer pixels (voxels in 3D) are not drawn; 0 and 1 draw every wall.
        A pixel where several walls meet is drawn if any of them is.
    speck_size : int, default 2
        Solid components (full connectivity) of at most this many pixels are
        ignored when the pore centres (markers) are picked, so noise specks
        inside a pore do not split it; they stay solid and still guide
        where a wall runs. 0: every solid pixel counts.

    Returns
    -------
    ndarray of bool, same shape as `solid`
        A new array: `solid` plus the walls. Every solid pixel of the input
        stays solid. An image that is all solid or has no solid pixel (its
        pore space cannot be split) is returned unchanged (as a copy).

    Raises
    ------
    TypeError
        If `solid` is not binary or a parameter has the wrong type.
    ValueError
        If `solid` is not 2D or 3D or is empty, `wall_width` is not 1 or 2,
        `sigma` < 0, `min_distance` < 1, or `min_wall_length` or
        `speck_size` < 0.

    Notes
    -----
    Markers and flooding follow :func:`foamlib.structure.pore_sizes` (same
    `sigma` and `min_distance`); see the module docstring for how
    over-segmentation is avoided, what "closed" means and what happens at the
    image border. After the walls are drawn, the watershed pores are
    separated under both 4- and 8-connectivity (6 and 26 in 3D), except
    across walls left out by `min_wall_length`. An image with a single pore
    comes back unchanged.
    """
    from skimage.segmentation import watershed

    solid = as_solid(solid)
    wall_width, sigma, min_distance, min_wall_length, speck_size = _check_params(
        wall_width=wall_width, sigma=sigma, min_distance=min_distance, min_wall_length=min_wall_length,
        speck_size=speck_size,
    )

    out = solid.copy()
    found = pore_markers(solid, sigma=sigma, min_distance=min_distance, speck_size=speck_size)
    if found is None:
        return out
    dist, markers, n_markers = found
    labels = watershed(-dist, markers, mask=~solid, connectivity=solid.ndim).astype(np.int64, copy=False)
    del dist, markers
    own_idx, contact = boundary_band(labels)
    if min_wall_length > 1 and own_idx.size:
        # a wall is the set of pixels of one pore that touch one other pore (one contact code)
        pairs = np.unique(np.stack([own_idx, contact]), axis=1)
        codes, counts = np.unique(pairs[1], return_counts=True)
        long_enough = codes[counts >= min_wall_length]
        keep = np.isin(contact, long_enough)  # a junction pixel stays if any of its walls is long enough
        logger.debug("dropped %d of %d walls shorter than %d pixels",
                     int(np.sum(counts < min_wall_length)), len(codes), min_wall_length)
        own_idx = own_idx[keep]
    line = np.zeros(solid.shape, dtype=bool)
    line.flat[own_idx] = True
    out |= line
    if wall_width == 2 and own_idx.size:
        # second pixel: the face neighbours of the wall in the same pore, further from the other pore
        line_label = np.where(line, labels, 0)
        thick = np.zeros_like(line)
        for axis in range(solid.ndim):
            for step in (-1, 1):
                offset = tuple(step if k == axis else 0 for k in range(solid.ndim))
                thick |= _neighbour(line_label, offset, 0) == labels
        out |= thick & (labels > 0)
    return out


# --------------------------------------------------------------------------- a stack


def add_walls(
    images: np.ndarray,
    fraction: float,
    *,
    rng: streams.RngLike = None,
    seed: int | None = None,
    progress: bool = False,
    **watershed_walls_kwargs: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """Add watershed walls to a random fraction of a stack of binary images.

    Parameters
    ----------
    images : ndarray of bool, shape (N, H, W)
        Binary images, ``True`` = solid (0/1 integers are accepted), e.g.
        GAN outputs. Not modified.
    fraction : float
        Share of the images that get walls, in [0, 1]. Exactly
        ``round(fraction * N)`` images are treated (Python's ``round``: halves
        go to the even number, 0.25 of 10 images treats 2).
    rng : None, int or numpy.random.Generator, optional
        Source of the images' pick (SPEC 7); default the seed 0, so that a
        call without ``rng`` picks the same images every time. The pick is
        the first ``round(fraction * N)`` entries of one random permutation
        of ``range(N)``, so with the same integer ``rng`` and stack the
        images treated at a smaller fraction are also treated at every
        larger one (nested sweeps; a Generator gives another permutation at
        every call). The permutation comes from a stream of its own
        (``foamlib.streams.rng(base_seed(rng), "walls", "order")``), not from the
        stream of the train/val/test split drawn later with the same seed
        (:func:`foamlib.datasets.write_dataset`): a shared stream would
        put exactly the treated images first, and every fraction above the
        training share would give the same training set.
    seed : int, optional
        The earlier name of an integer ``rng`` (>= 0); give one of the two.
    progress : bool, default False
        Show a tqdm progress bar over the treated images.
    **watershed_walls_kwargs
        ``wall_width``, ``sigma``, ``min_distance``, ``min_wall_length``,
        ``speck_size`` of :func:`watershed_walls`.

    Returns
    -------
    images_out : ndarray of bool, shape (N, H, W)
        A new stack: the treated images with walls, the others as they were.
    treated : ndarray of bool, shape (N,)
        Which images were treated (``treated.sum() == round(fraction * N)``).
        A treated image can come out unchanged, e.g. if it has a single pore.

    Raises
    ------
    TypeError
        If `images` is not binary or `seed` is not an int, or for an unknown
        keyword argument.
    ValueError
        If `images` is not 3D (N, H, W) or `fraction` is not in [0, 1], or
        for invalid :func:`watershed_walls` parameters.
    """
    arr = np.asarray(images)
    if arr.ndim != 3:
        raise ValueError(f"images must be a stack of shape (N, H, W), got shape {arr.shape}")
    fraction = check_real("fraction", fraction, low=0.0, high=1.0)
    if seed is not None:
        if rng is not None:
            raise ValueError(f"give rng or seed, not both (got rng={rng!r}, seed={seed!r})")
        rng = check_int("seed", seed, low=0)
    base = streams.base_seed(0 if rng is None else rng)
    unknown = sorted(set(watershed_walls_kwargs) - set(_WALL_PARAMS))
    if unknown:
        raise TypeError(f"unknown keyword arguments for watershed_walls: {unknown}; valid: {list(_WALL_PARAMS)}")
    _check_params(**watershed_walls_kwargs)  # also when no image is treated
    n = arr.shape[0]
    if n == 0:
        if arr.dtype != bool and not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"images must be binary (bool or integers 0/1), got dtype {arr.dtype}")
        return np.zeros(arr.shape, dtype=bool), np.zeros(0, dtype=bool)
    solid = as_solid(arr, name="images")

    n_treat = round(float(fraction) * n)
    order = streams.rng(base, "walls", "order").permutation(n)
    treated = np.zeros(n, dtype=bool)
    treated[order[:n_treat]] = True
    out = solid.copy()
    for i in progress_bar(np.flatnonzero(treated), desc="walls", unit="image", disable=not progress):
        out[i] = watershed_walls(solid[i], **watershed_walls_kwargs)
    logger.info("added walls to %d of %d images (fraction %.3g)", n_treat, n, float(fraction))
    return out, treated


# --------------------------------------------------------------------------- statistics


def wall_statistics(
    before: np.ndarray,
    after: np.ndarray,
    *,
    connectivity: int = 2,
    min_pore_pixels: int = 1,
) -> dict[str, Any]:
    """What adding walls did to one image or a stack of images.

    Parameters
    ----------
    before, after : ndarray of bool, shape (H, W) or (N, H, W)
        The images without and with walls, ``True`` = solid (0/1 integers are
        accepted); same shape. A 3D array is a stack of 2D images: pores are
        counted in each image separately.
    connectivity : int, default 2
        Neighbourhood of pore pixels that counts as connected: 1 (4-neighbours)
        or 2 (8-neighbours). The default 2 counts a pore that leaks through a
        diagonal gap as open (the stricter notion, the one
        :func:`watershed_walls` closes).
    min_pore_pixels : int, default 1
        Pore components of fewer pixels are not counted (1: all of them).

    Returns
    -------
    dict
        Python numbers only:

        ``n_images``
            Number of images.
        ``n_changed``
            Images in which at least one pixel differs.
        ``porosity_before``, ``porosity_after``
            Pore fractions (0.89, not 89) over all images.
        ``porosity_loss_pp``
            ``100 * (porosity_before - porosity_after)``, percentage points
            of porosity lost.
        ``added_solid_fraction``
            Pixels that are solid only in `after`, as a fraction of all
            pixels (equal to ``porosity_loss_pp / 100`` when no solid was
            removed).
        ``removed_solid_fraction``
            Pixels that are solid only in `before`, as a fraction (0 for
            :func:`watershed_walls`).
        ``n_pores_before``, ``n_pores_after``
            Connected pore components (summed over the images).
        ``mean_pores_per_image_before``, ``mean_pores_per_image_after``
            The same per image.

    Raises
    ------
    TypeError
        If the images are not binary.
    ValueError
        If they are not 2D or 3D, their shapes differ, `connectivity` is not 1
        or 2, or `min_pore_pixels` < 1.
    """
    b = as_solid(before, name="before")
    a = as_solid(after, name="after")
    if a.shape != b.shape:
        raise ValueError(f"after shape {a.shape} does not match before shape {b.shape}")
    connectivity = check_int("connectivity", connectivity, low=1)
    if connectivity not in (1, 2):
        raise ValueError(f"connectivity must be 1 (4-neighbours) or 2 (8-neighbours), got {connectivity}")
    min_pore_pixels = check_int("min_pore_pixels", min_pore_pixels, low=1)
    if b.ndim == 2:
        b, a = b[np.newaxis], a[np.newaxis]
    n_images = b.shape[0]
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1] = ndi.generate_binary_structure(2, connectivity)  # no connection between images

    def count_pores(stack: np.ndarray) -> int:
        labels, n = ndi.label(~stack, structure=structure)
        if min_pore_pixels <= 1:
            return int(n)
        sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:]
        return int(np.count_nonzero(sizes >= min_pore_pixels))

    total = int(b.size)
    n_before = count_pores(b)
    n_after = count_pores(a)
    porosity_before = 1.0 - int(np.count_nonzero(b)) / total
    porosity_after = 1.0 - int(np.count_nonzero(a)) / total
    return {
        "n_images": int(n_images),
        "n_changed": int(np.count_nonzero((a != b).reshape(n_images, -1).any(axis=1))),
        "porosity_before": porosity_before,
        "porosity_after": porosity_after,
        "porosity_loss_pp": 100.0 * (porosity_before - porosity_after),
        "added_solid_fraction": int(np.count_nonzero(a & ~b)) / total,
        "removed_solid_fraction": int(np.count_nonzero(b & ~a)) / total,
        "n_pores_before": n_before,
        "n_pores_after": n_after,
        "mean_pores_per_image_before": n_before / n_images,
        "mean_pores_per_image_after": n_after / n_images,
    }
