"""Walls that a segmentation broke but the scan still shows.

A cell wall thinner than a voxel is a faint ridge of grey in the scan: its
partial volume lifts the grey values along it above the pore's level, by
about its thickness times the contrast between the phases. A segmentation
that needs a voxel to be mostly solid (a threshold, a U-Net trained on
voxelised labels) drops such walls, and the cells on either side merge. The
random half of watershed walls of the paper's step 2 (:mod:`foamlib.walls`)
puts walls back where the *geometry* of the pore space suggests them; this
module puts them back where the *scan* shows them, and nowhere else.

Method
------
1. Pore centres are picked on the segmentation's pore space exactly as
   :func:`foamlib.walls.watershed_walls` picks them
   (:func:`foamlib.walls.pore_markers`).
2. The pore space is flooded from them on the scan's grey values, smoothed
   with a Gaussian of ``sigma`` voxels, so that two pores meet on the
   brightest ridge between them: where a faint wall lies, if there is one.
   Of every two neighbouring voxels of different pores the brighter one
   (on the smoothed grey values) is a wall voxel: a one-voxel band on the
   ridge that separates the two pores under full connectivity, the
   *candidate wall* of that pair.
3. Each candidate is weighed by the scan alone. The grey values are taken
   relative to the local pore level (the pore interior, voxels at least
   ``interior_distance`` from the solid, averaged with a Gaussian of
   ``level_sigma`` voxels, which follows cupping); the contrast is the
   :data:`CONTRAST_PERCENTILE` th percentile of that over the segmentation's
   solid (its bright core, not the partial-volume voxels at its rims); the
   noise is the robust standard deviation (1.4826 x MAD) over the pore
   interior. Only a wall's *middle* counts, its voxels at least
   ``middle_distance`` from the solid: next to a strut the blur lifts the
   grey values as a wall would, so an open window narrower than the blur
   would otherwise pass for a wall. A wall's *apparent thickness* is the
   mean of its middle's grey values over the contrast, in voxels (a solid
   voxel counts 1, a pore voxel 0); its *z-score* is that mean over the
   noise's standard error.
4. A candidate of apparent thickness at least ``min_thickness`` and z-score
   at least ``min_z`` becomes solid.

The grey values are oriented by the segmentation (solid brighter than pore
or the other way round), so the scan may come as it was reconstructed:
any dtype, any offset, negative values.

Measured
--------
``benchmarks/bench_faint_walls.py`` on the validation suite's foreign scans
(radon / iradon with Poisson noise, rings and cupping; exact truth) and on the
demo samples, at the defaults, applied to each segmentation of the study:

* walls of 0.7 voxels (``closed_thin``): separate pores 53 -> 130 after step 1
  (truth 123), 80 -> 92 after Otsu, 34 -> 111 after step 2; of step 1's
  candidates, 557 of the 589 that lie within a voxel of the true solid are
  kept, 7 of the 32 that do not;
* walls of 3 voxels (``closed_thick``): 127 -> 129 pores after step 1 (truth
  129), 114 -> 128 after step 2, porosity and Dice unchanged;
* PoreSpy's open cells, which have no walls: at most 2 of about 160
  candidates kept, porosity and Dice unchanged;
* the demo foams (walls thinner than half a voxel, cells of 17-37 voxels):
  hardly any cell closes (5 -> 29 of 348 pores on foam82 after step 1),
  although the pore centres match the cells (347 for 348) and 1602 of the
  1604 candidates lie within a voxel of a true wall: these walls are
  fainter (apparent thickness quartiles 0.29 / 0.32 / 0.35), 585 of them fall
  below the thresholds, and a cell closes only when all its walls are kept.

The added walls are one voxel thick: where the true walls are thinner than a
voxel they cost porosity (closed_thin after step 1: -6.4 -> -9.6 pp, Dice
0.72 -> 0.63) in exchange for the cells. Which of the two a study needs
decides whether to use them. The thresholds (:data:`MIN_THICKNESS`,
:data:`MIN_Z`, :data:`CONTRAST_PERCENTILE`, ``middle_distance``) were set once
on closed_thin, closed_thick, open_cells and foamlib's own foams with struts
only, and are the same for every scan.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from .checks import check_int, check_real
from .structure import as_solid
from .walls import pore_markers

__all__ = ["CONTRAST_PERCENTILE", "MIN_THICKNESS", "MIN_Z", "WallEvidence", "restore_faint_walls", "wall_evidence"]

logger = logging.getLogger(__name__)

#: Apparent thickness (voxels: mean excess grey over the contrast) from which a candidate wall is kept.
MIN_THICKNESS = 0.3
#: z-score (mean excess over its standard error) from which a candidate wall is kept.
MIN_Z = 3.0
#: Percentile of the grey over the segmentation's solid taken as the solid's level: its bright core, not
#: the partial-volume voxels at its rims (the median of a thin-walled foam's solid is half that).
CONTRAST_PERCENTILE = 90.0
#: Fewer pore-interior voxels than this and the interior is taken closer to the solid (down to 1 voxel).
_MIN_INTERIOR = 100


@dataclass(frozen=True)
class WallEvidence:
    """Candidate walls between the pores of a segmentation, each weighed by the scan.

    Attributes
    ----------
    shape : tuple of int
        Shape of the scan and the segmentation.
    pixels : ndarray of int64, shape (K,)
        Flat indices of the candidates' voxels (a voxel where walls meet
        appears once per wall).
    wall : ndarray of int64, shape (K,)
        Index of the wall (into the per-wall arrays) of each entry of `pixels`.
    size : ndarray of int64, shape (W,)
        Voxels per candidate wall.
    thickness : ndarray of float64, shape (W,)
        Apparent thickness in voxels: mean grey above the local pore level
        over the contrast (1 = as bright as the solid, 0 = as the pores),
        over the wall's middle (see `middle_distance` of :func:`wall_evidence`).
    z : ndarray of float64, shape (W,)
        That mean grey above the pore level over its standard error.
    contrast : float
        Grey of the solid's bright core above the pore level (the
        :data:`CONTRAST_PERCENTILE` th percentile over the segmentation's
        solid), in the scan's units (oriented: always positive).
    noise : float
        Robust standard deviation of the grey values in the pore interior,
        in the scan's units.
    """

    shape: tuple[int, ...]
    pixels: np.ndarray
    wall: np.ndarray
    size: np.ndarray
    thickness: np.ndarray
    z: np.ndarray
    contrast: float
    noise: float

    @property
    def n_walls(self) -> int:
        """Number of candidate walls."""
        return int(self.size.size)

    def kept(self, min_thickness: float = MIN_THICKNESS, min_z: float = MIN_Z) -> np.ndarray:
        """Which candidate walls the scan supports: bool, shape (W,)."""
        min_thickness = check_real("min_thickness", min_thickness)
        min_z = check_real("min_z", min_z)
        return (self.thickness >= min_thickness) & (self.z >= min_z)

    def apply(self, solid: np.ndarray, min_thickness: float = MIN_THICKNESS, min_z: float = MIN_Z) -> np.ndarray:
        """`solid` with the supported walls added (a new array; no solid voxel is removed)."""
        solid = as_solid(solid)
        if solid.shape != self.shape:
            raise ValueError(f"solid has shape {solid.shape}, the evidence was measured on {self.shape}")
        out = solid.copy()
        keep = self.kept(min_thickness, min_z)
        out.flat[self.pixels[keep[self.wall]]] = True
        return out


def _interior(dist: np.ndarray, interior_distance: int) -> np.ndarray:
    """The pore interior: voxels at least `interior_distance` from the solid, closer where too few are."""
    for d in range(interior_distance, 0, -1):
        interior = dist >= d
        if np.count_nonzero(interior) >= _MIN_INTERIOR:
            break
    return interior


def _pore_level(grey: np.ndarray, interior: np.ndarray, level_sigma: float) -> np.ndarray:
    """Local grey level of the pore interior, everywhere (normalised Gaussian convolution)."""
    weight = ndi.gaussian_filter(interior.astype(np.float32), level_sigma, mode="nearest")
    total = ndi.gaussian_filter(np.where(interior, grey, 0).astype(np.float32), level_sigma, mode="nearest")
    level = np.full(grey.shape, np.float32(np.median(grey[interior])), dtype=np.float32)
    np.divide(total, weight, out=level, where=weight > 1e-3)
    return level


def _ridge_band(labels: np.ndarray, relief: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Of every two neighbouring voxels of different pores, the brighter one: the band on the ridge.

    Returns flat voxel indices and, for each, the pair of pores it separates (``low * (n + 1) + high``).
    Every two touching pores then have a band voxel between them under full connectivity.
    """
    big = np.int64(int(labels.max()) + 1)
    index = np.arange(labels.size).reshape(labels.shape)
    own, contacts = [], []
    for offset in itertools.product((-1, 0, 1), repeat=labels.ndim):
        if offset <= (0,) * labels.ndim:  # each unordered neighbour pair once
            continue
        here = tuple(slice(0, n - o) if o >= 0 else slice(-o, n) for n, o in zip(labels.shape, offset))
        there = tuple(slice(o, n) if o >= 0 else slice(0, n + o) for n, o in zip(labels.shape, offset))
        a, b = labels[here], labels[there]
        meet = (a > 0) & (b > 0) & (a != b)
        if not meet.any():
            continue
        ia, ib = index[here][meet], index[there][meet]
        brighter = relief.flat[ia] >= relief.flat[ib]
        own.append(np.where(brighter, ia, ib))
        la, lb = a[meet], b[meet]
        contacts.append(np.minimum(la, lb) * big + np.maximum(la, lb))
    if not own:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(own).astype(np.int64), np.concatenate(contacts).astype(np.int64)


def wall_evidence(
    scan: np.ndarray,
    solid: np.ndarray,
    *,
    sigma: float = 0.7,
    marker_sigma: float = 1.0,
    min_distance: int = 3,
    speck_size: int = 2,
    interior_distance: int = 3,
    level_sigma: float = 8.0,
    middle_distance: float = 2.0,
) -> WallEvidence:
    """Find the candidate walls between the pores of a segmentation and weigh each by the scan.

    Parameters
    ----------
    scan : ndarray, shape (H, W) or (Z, Y, X)
        The grey values (any real dtype; either phase may be the brighter).
    solid : ndarray of bool, same shape
        The segmentation of `scan`, ``True`` = solid.
    sigma : float, default 0.7
        Gaussian smoothing of the scan, in voxels, for the flooding that
        places the candidates on the grey ridges (0: none). The evidence is
        measured on the unsmoothed scan.
    marker_sigma, min_distance, speck_size : default 1.0, 3, 2
        Pore centres, as ``sigma``, ``min_distance`` and ``speck_size`` of
        :func:`foamlib.walls.watershed_walls`.
    interior_distance : int, default 3
        Pore voxels at least this far (Euclidean, voxels) from the solid are
        the pore interior, which sets the pore level and the noise (taken
        closer, down to 1, where fewer than 100 voxels are that far).
    level_sigma : float, default 8.0
        Gaussian, in voxels, over which the pore level is averaged: long
        against the noise, short against cupping.
    middle_distance : float, default 2.0
        A wall's evidence is the mean over its voxels at least this far
        (Euclidean, voxels) from the segmentation's solid, its middle: next
        to the solid the blur of a strut lifts the grey values as a wall
        would. A wall with no voxel that far is weighed by its farthest ones.

    Returns
    -------
    WallEvidence
        The candidates and their apparent thickness and z-score; no
        candidate where the pore space holds fewer than two pores.

    Raises
    ------
    ValueError
        If the shapes differ, the scan is not 2D or 3D or holds non-finite
        values, the segmentation is all solid or all pore, or its solid is
        not brighter (or darker) than its pore interior.
    """
    from skimage.segmentation import watershed

    solid = as_solid(solid)
    grey = np.asarray(scan)
    if grey.shape != solid.shape:
        raise ValueError(f"scan has shape {grey.shape} and solid {solid.shape}: they must be equal")
    if grey.ndim not in (2, 3):
        raise ValueError(f"scan must be 2D or 3D, got shape {grey.shape}")
    if not np.issubdtype(grey.dtype, np.number) or np.iscomplexobj(grey):
        raise TypeError(f"scan must hold real numbers, got dtype {grey.dtype}")
    grey = grey.astype(np.float32)
    if not np.isfinite(grey).all():
        raise ValueError("scan holds NaN or infinite values")
    sigma = check_real("sigma", sigma, low=0.0)
    level_sigma = check_real("level_sigma", level_sigma, low=0.0)
    interior_distance = check_int("interior_distance", interior_distance, low=1)
    middle_distance = check_real("middle_distance", middle_distance, low=0.0)
    n_solid = int(np.count_nonzero(solid))
    if n_solid in (0, solid.size):
        raise ValueError(f"the segmentation is all {'solid' if n_solid else 'pore'}: no wall to weigh")

    found = pore_markers(solid, sigma=marker_sigma, min_distance=min_distance, speck_size=speck_size)
    # the pore space's distance map: pore_markers made it, unless the pore space cannot be split
    dist = ndi.distance_transform_edt(~solid).astype(np.float32) if found is None else found[0]
    # orient: solid brighter than the pores
    if np.median(grey[solid]) < np.median(grey[~solid]):
        grey = -grey
    interior = _interior(dist, interior_distance)
    residual = grey - _pore_level(grey, interior, level_sigma)
    # the solid's bright core: a segmentation's solid is partly partial-volume voxels at its rims
    contrast = float(np.percentile(residual[solid], CONTRAST_PERCENTILE))
    pore_values = residual[interior]
    noise = float(1.4826 * np.median(np.abs(pore_values - np.median(pore_values))))
    if not contrast > 0:
        raise ValueError(
            f"the segmentation's solid is not brighter or darker than its pores in the scan (contrast {contrast:.3g}): "
            "the segmentation does not belong to this scan, or the scan has no contrast"
        )
    empty = np.zeros(0, dtype=np.int64)
    if found is None:
        return WallEvidence(solid.shape, empty, empty, empty, np.zeros(0), np.zeros(0), contrast, noise)
    _, markers, _ = found
    del found  # markers is dropped after the flooding below; dist is used for the walls' middles
    relief = ndi.gaussian_filter(grey, sigma) if sigma > 0 else grey
    labels = watershed(relief, markers, mask=~solid, connectivity=solid.ndim).astype(np.int64, copy=False)
    del markers
    pixels, contact = _ridge_band(labels, relief)
    del relief
    pairs = np.unique(np.stack([contact, pixels]), axis=1)  # one entry per (wall, voxel)
    codes, wall = np.unique(pairs[0], return_inverse=True)
    pixels = pairs[1]
    size = np.bincount(wall, minlength=codes.size).astype(np.int64)
    # weigh each wall by its middle: next to the solid the blur of a strut lifts the grey as a wall
    # would, so only voxels at least middle_distance from the solid count (the farthest ones of a wall
    # that has none so far)
    far = dist.ravel()[pixels]
    farthest = np.zeros(codes.size, dtype=np.float32)
    np.maximum.at(farthest, wall, far)
    used = far >= np.minimum(middle_distance, farthest[wall])
    n_used = np.bincount(wall, weights=used, minlength=codes.size)
    excess = np.bincount(wall, weights=np.where(used, residual.ravel()[pixels], 0.0), minlength=codes.size) / n_used
    thickness = excess / contrast
    z = excess / (max(noise, np.finfo(np.float32).tiny) / np.sqrt(n_used))
    logger.info("%d candidate walls (%d voxels); contrast %.4g, noise %.4g", codes.size, pixels.size, contrast, noise)
    return WallEvidence(solid.shape, pixels.astype(np.int64), wall.astype(np.int64), size, thickness, z,
                        contrast, noise)


def restore_faint_walls(
    scan: np.ndarray,
    solid: np.ndarray,
    *,
    min_thickness: float = MIN_THICKNESS,
    min_z: float = MIN_Z,
    **evidence_kwargs,
) -> np.ndarray:
    """Close the cells of a segmentation along the walls that the scan shows.

    Parameters
    ----------
    scan : ndarray, shape (H, W) or (Z, Y, X)
        The grey values the segmentation was made from.
    solid : ndarray of bool, same shape
        The segmentation, ``True`` = solid. Not modified.
    min_thickness : float, default :data:`MIN_THICKNESS`
        Apparent thickness in voxels from which a candidate wall is drawn.
    min_z : float, default :data:`MIN_Z`
        z-score from which a candidate wall is drawn.
    **evidence_kwargs
        Passed to :func:`wall_evidence`.

    Returns
    -------
    ndarray of bool, same shape
        `solid` with the supported walls, each one voxel thick, added; no
        solid voxel is removed.

    Examples
    --------
    >>> import numpy as np
    >>> from foamlib.faint_walls import restore_faint_walls
    >>> rng = np.random.default_rng(0)
    >>> solid = np.zeros((40, 80), bool)
    >>> solid[[0, -1], :] = True                  # two thick walls ...
    >>> solid[:, [0, -1]] = True
    >>> solid[:12, 40] = solid[28:, 40] = True    # ... and a wall with a gap
    >>> scan = solid + 0.4 * (np.arange(80) == 40) + rng.normal(0, 0.05, solid.shape)
    >>> closed = restore_faint_walls(scan, solid)
    >>> bool(closed[12:28, 40].all()), int((closed != solid).sum())
    (True, 16)
    """
    return wall_evidence(scan, solid, **evidence_kwargs).apply(solid, min_thickness, min_z)
