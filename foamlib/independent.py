"""Foreign test scans with exact truth, made without foamlib's own synthesis.

The study's demo samples come from :mod:`foamlib.foam` and :mod:`foamlib.phantom`, the
same generator family that step 1 fits and samples from. This module builds test cases
that no part of that pipeline made, so that a validation of the method says something
about scans from other processes:

Structures (other generators)
    :func:`closed_cells` (a random Voronoi tessellation whose cell boundaries are drawn
    at a chosen, possibly sub-voxel, thickness: the paper's Fig. 1 case),
    :func:`open_cells` (PoreSpy's ``voronoi_edges``), :func:`sphere_packing` (random
    sequential addition of non-overlapping spheres) and :func:`fibre_mat` (straight
    cylinders lying near the x-y plane). Each is drawn on a grid ``supersample`` times
    finer than the scan (a boolean ``(Z*s, Y*s, X*s)`` array); :func:`block_mean` averages
    it over blocks, so every voxel holds the solid volume fraction it contains,
    ``(Z, Y, X)`` float32 in [0, 1].
Scanner (an independent projector and reconstruction)
    :func:`ct_scan`: scikit-image ``radon`` / ``iradon`` (filtered back-projection),
    slice by slice, with Poisson photon noise, detector-gain errors that reconstruct as
    ring artefacts, and beam hardening (a sub-linear line integral) that reconstructs
    as cupping. :func:`store` writes the reconstruction the way reconstruction software
    does: float32 attenuation with negative values, uint16 of a fixed window, or uint8
    stretched between percentiles.
Truth and scores
    The truth of a case is the solid at the scan's resolution, ``fraction >= 0.5``
    (:func:`truth_from_fraction`); :func:`pore_statistics` counts its separate pores
    and their mean size, :func:`dice` and :func:`porosity` score a segmentation.

Nothing here imports :mod:`foamlib.foam`, :mod:`foamlib.phantom`, :mod:`foamlib.render`
or :mod:`foamlib.fitting` (a test checks the imports). Every random step takes ``rng``
(``int``, :class:`numpy.random.Generator` or None), and a case is rebuilt exactly from
its :class:`CaseSpec`; nothing is committed.

Conventions: volumes are ``(Z, Y, X)``; True = solid; porosity is a fraction; lengths
are in voxels of the scan.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from . import streams
from ._optional import requires_extra
from .checks import check_int, check_real

__all__ = [
    "STRUCTURES",
    "STORAGE",
    "CaseSpec",
    "Case",
    "PoreStatistics",
    "closed_cells",
    "open_cells",
    "sphere_packing",
    "fibre_mat",
    "block_mean",
    "ct_scan",
    "store",
    "truth_from_fraction",
    "pore_statistics",
    "dice",
    "porosity",
    "make_case",
]

#: Structure generators by name (see :class:`CaseSpec`).
STRUCTURES = ("closed_cells", "open_cells", "spheres", "fibres")

#: Storage forms of a reconstruction (see :func:`store`).
STORAGE = ("float32", "uint16", "uint8")


def _shape(shape: Any) -> tuple[int, int, int]:
    shape = tuple(shape)
    whole = all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n > 0 for n in shape)
    if len(shape) != 3 or not whole:
        raise ValueError(f"shape must be three positive integers (z, y, x), got {shape!r}")
    return tuple(int(n) for n in shape)  # type: ignore[return-value]


def _supersample(value: Any) -> int:
    return check_int("supersample", value, low=1)


def _fine_centres(n: int, s: int) -> np.ndarray:
    """Centres of the ``n * s`` fine samples along an axis, in voxel units of the scan (voxel i spans [i, i+1))."""
    return (np.arange(n * s, dtype=np.float64) + 0.5) / s


def block_mean(fine: np.ndarray, s: int) -> np.ndarray:
    """Average a fine boolean grid over blocks of ``s`` samples per axis.

    Parameters
    ----------
    fine : (Z*s, Y*s, X*s) ndarray of bool
        The structure on the fine grid, True = solid.
    s : int
        Supersampling factor, >= 1.

    Returns
    -------
    (Z, Y, X) ndarray of float32
        Solid volume fraction of each scan voxel, in [0, 1].
    """
    s = _supersample(s)
    if fine.ndim != 3 or any(n % s for n in fine.shape):
        raise ValueError(f"fine grid of shape {fine.shape} is not three axes divisible by supersample {s}")
    z, y, x = (n // s for n in fine.shape)
    counts = fine.reshape(z, s, y, s, x, s).sum(axis=(1, 3, 5), dtype=np.int64)
    return (counts / float(s**3)).astype(np.float32)


# ---------------------------------------------------------------------------------------------- structures


def closed_cells(
    shape: Any,
    *,
    cell_size: float,
    wall_thickness: float,
    supersample: int = 4,
    rng: int | np.random.Generator | None = None,
) -> np.ndarray:
    """Closed cells: a random Voronoi tessellation whose boundaries are walls of a given thickness.

    Cell centres are drawn uniformly (a Poisson process) in the box widened by one cell
    on every side, so cells are cut by the faces as in a scan. A fine sample is solid
    where its exact distance to the bisector plane between its two nearest centres,
    ``(|x - b|^2 - |x - a|^2) / (2 |a - b|)``, is below half the wall thickness: walls
    are flat slabs of that thickness, and they meet in edges and corners without the
    Plateau-border struts of :mod:`foamlib.foam`.

    Parameters
    ----------
    shape : (int, int, int)
        ``(Z, Y, X)`` of the scan, voxels.
    cell_size : float
        Cube root of the mean cell volume, voxels: the centres have density ``1 / cell_size**3``.
    wall_thickness : float
        Wall thickness, voxels; may be below 1 (sub-voxel walls).
    supersample : int, optional
        Fine samples per voxel and axis. Default 4 (a 0.25-voxel grid).
    rng : int, numpy.random.Generator or None

    Returns
    -------
    (Z*s, Y*s, X*s) ndarray of bool
        The structure on the fine grid (``s = supersample``), True = solid;
        :func:`block_mean` gives the solid volume fraction per scan voxel.
    """
    shape = _shape(shape)
    cell = check_real("cell_size", cell_size, low=0.0, low_open=True)
    half = check_real("wall_thickness", wall_thickness, low=0.0, low_open=True) / 2.0
    s = _supersample(supersample)
    rng = np.random.default_rng(rng)
    lo = -cell
    hi = np.array(shape, dtype=np.float64) + cell
    n = max(2, int(rng.poisson(np.prod(hi - lo) / cell**3)))
    centres = lo + rng.random((n, 3)) * (hi - lo)
    tree = cKDTree(centres)
    zc, yc, xc = (_fine_centres(k, s) for k in shape)
    yy, xx = np.meshgrid(yc, xc, indexing="ij")
    plane = np.stack([np.zeros(yy.size), yy.ravel(), xx.ravel()], axis=1)
    fine = np.empty((len(zc), len(yc), len(xc)), dtype=bool)
    for k, z in enumerate(zc):
        plane[:, 0] = z
        d, i = tree.query(plane, k=2)
        a, b = centres[i[:, 0]], centres[i[:, 1]]
        gap = (d[:, 1] ** 2 - d[:, 0] ** 2) / (2.0 * np.linalg.norm(a - b, axis=1))
        fine[k] = (gap < half).reshape(len(yc), len(xc))
    return fine


def open_cells(
    shape: Any,
    *,
    cell_size: float,
    strut_radius: int,
    supersample: int = 2,
    rng: int | np.random.Generator | None = None,
) -> np.ndarray:
    """Open cells: the struts of a Voronoi tessellation, by PoreSpy's ``voronoi_edges``.

    PoreSpy draws the edges on a grid ``supersample`` times finer than the scan, dilated
    by ``strut_radius`` fine samples; the fine grid is averaged over blocks.
    ``voronoi_edges`` seeds NumPy's global generator; this function saves and restores
    that state, so it leaves no trace on the caller's global random state.

    Parameters
    ----------
    shape : (int, int, int)
        ``(Z, Y, X)`` of the scan, voxels.
    cell_size : float
        Cube root of the mean cell volume, voxels (the number of cells is the volume over ``cell_size**3``).
    strut_radius : int
        Dilation radius of the edges in fine samples (PoreSpy's ``r``), >= 0.
    supersample : int, optional
        Default 2.
    rng : int, numpy.random.Generator or None

    Returns
    -------
    (Z*s, Y*s, X*s) ndarray of bool
        The structure on the fine grid (``s = supersample``), True = solid;
        :func:`block_mean` gives the solid volume fraction per scan voxel.
    """
    with requires_extra("validate"):
        import porespy

    shape = _shape(shape)
    cell = check_real("cell_size", cell_size, low=0.0, low_open=True)
    if isinstance(strut_radius, bool) or not isinstance(strut_radius, (int, np.integer)) or strut_radius < 0:
        raise ValueError(f"strut_radius must be an integer >= 0 (fine samples), got {strut_radius!r}")
    s = _supersample(supersample)
    rng = np.random.default_rng(rng)
    ncells = max(2, round(float(np.prod(shape)) / cell**3))
    state = np.random.get_state()
    try:
        pore = porespy.generators.voronoi_edges(
            shape=[n * s for n in shape], ncells=ncells, r=int(strut_radius), seed=int(rng.integers(2**31 - 1))
        )
    finally:
        np.random.set_state(state)
    return ~np.asarray(pore, dtype=bool)


def _paint(fine: np.ndarray, s: int, lo: np.ndarray, hi: np.ndarray, inside) -> int:
    """Set the fine samples within the voxel box [lo, hi) where ``inside(z, y, x)`` (voxel units) holds.

    Returns the number of samples that turned solid.
    """
    shape = np.array(fine.shape) // s
    a = np.clip(np.floor(lo).astype(int), 0, shape)
    b = np.clip(np.ceil(hi).astype(int), 0, shape)
    if np.any(b <= a):
        return 0
    axes = [_fine_centres(n, s)[a[k] * s:b[k] * s] for k, n in enumerate(shape)]
    z, y, x = np.meshgrid(*axes, indexing="ij", sparse=True)
    region = fine[a[0] * s:b[0] * s, a[1] * s:b[1] * s, a[2] * s:b[2] * s]
    new = inside(z, y, x) & ~region
    region |= new
    return int(np.count_nonzero(new))


def sphere_packing(
    shape: Any,
    *,
    radius: float,
    solid_fraction: float,
    radius_spread: float = 0.3,
    supersample: int = 4,
    max_attempts: int = 20000,
    rng: int | np.random.Generator | None = None,
) -> np.ndarray:
    """Grains: non-overlapping spheres placed by random sequential addition.

    Radii are uniform in ``radius * (1 +- radius_spread)``; a sphere whose centre lies
    in the box widened by its radius is kept when it overlaps no earlier one, until the
    spheres' volume reaches ``solid_fraction`` of the box or ``max_attempts`` draws
    (random sequential addition jams near a solid fraction of 0.38).

    Parameters
    ----------
    shape : (int, int, int)
        ``(Z, Y, X)`` of the scan, voxels.
    radius : float
        Mean sphere radius, voxels.
    solid_fraction : float
        Target solid fraction, in (0, 0.38].
    radius_spread : float, optional
        Relative half-width of the radius distribution, in [0, 1). Default 0.3.
    supersample : int, optional
        Default 4.
    max_attempts : int, optional
        Default 20000.
    rng : int, numpy.random.Generator or None

    Returns
    -------
    (Z*s, Y*s, X*s) ndarray of bool
        The structure on the fine grid (``s = supersample``), True = solid;
        :func:`block_mean` gives the solid volume fraction per scan voxel.
    """
    shape = _shape(shape)
    r0 = check_real("radius", radius, low=0.0, low_open=True)
    target = check_real("solid_fraction", solid_fraction, low=0.0, low_open=True)
    if target > 0.38:
        raise ValueError(f"solid_fraction {target} is above what random sequential addition reaches (0.38)")
    if not 0 <= radius_spread < 1:
        raise ValueError(f"radius_spread must lie in [0, 1), got {radius_spread}")
    s = _supersample(supersample)
    rng = np.random.default_rng(rng)
    box = np.array(shape, dtype=np.float64)
    volume, placed = 0.0, []
    for _ in range(int(max_attempts)):
        r = r0 * (1 + radius_spread * (2 * rng.random() - 1))
        c = -r + rng.random(3) * (box + 2 * r)
        if any(np.sum((c - pc) ** 2) < (r + pr) ** 2 for pc, pr in placed):
            continue
        placed.append((c, r))
        volume += float(np.prod(np.clip(np.minimum(c + r, box) - np.maximum(c - r, 0), 0, None))) * math.pi / 6
        if volume >= target * float(np.prod(box)):
            break
    fine = np.zeros(tuple(n * s for n in shape), dtype=bool)
    for c, r in placed:
        _paint(fine, s, c - r, c + r,
               lambda z, y, x, c=c, r=r: (z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2 < r * r)
    return fine


def fibre_mat(
    shape: Any,
    *,
    radius: float,
    solid_fraction: float,
    max_tilt_deg: float = 15.0,
    supersample: int = 4,
    rng: int | np.random.Generator | None = None,
) -> np.ndarray:
    """Fibres: straight cylinders of one radius lying within ``max_tilt_deg`` of the x-y plane.

    Fibres (infinite lines through the box) are added until the solid fraction of the
    fine grid reaches ``solid_fraction``; they may cross, as in a felt or a preform.

    Parameters
    ----------
    shape : (int, int, int)
        ``(Z, Y, X)`` of the scan, voxels.
    radius : float
        Fibre radius, voxels; may be below 1.
    solid_fraction : float
        Target solid fraction, in (0, 0.6].
    max_tilt_deg : float, optional
        Largest angle between a fibre and the x-y plane, degrees. Default 15.
    supersample : int, optional
        Default 4.
    rng : int, numpy.random.Generator or None

    Returns
    -------
    (Z*s, Y*s, X*s) ndarray of bool
        The structure on the fine grid (``s = supersample``), True = solid;
        :func:`block_mean` gives the solid volume fraction per scan voxel.
    """
    shape = _shape(shape)
    r = check_real("radius", radius, low=0.0, low_open=True)
    target = check_real("solid_fraction", solid_fraction, low=0.0, low_open=True)
    if target > 0.6:
        raise ValueError(f"solid_fraction {target} is too high for a fibre mat (at most 0.6)")
    s = _supersample(supersample)
    rng = np.random.default_rng(rng)
    box = np.array(shape, dtype=np.float64)
    fine = np.zeros(tuple(n * s for n in shape), dtype=bool)
    tilt = math.radians(float(max_tilt_deg))
    total = fine.size
    solid = 0
    for _ in range(100000):
        if solid >= target * total:
            break
        phi, theta = rng.uniform(0, 2 * math.pi), rng.uniform(-tilt, tilt)
        d = np.array([math.sin(theta), math.cos(theta) * math.sin(phi), math.cos(theta) * math.cos(phi)])
        p = rng.random(3) * box

        def inside(z, y, x, p=p, d=d):
            rel = (z - p[0], y - p[1], x - p[2])
            along = rel[0] * d[0] + rel[1] * d[1] + rel[2] * d[2]
            return rel[0] ** 2 + rel[1] ** 2 + rel[2] ** 2 - along**2 < r * r

        for z0 in range(0, shape[0], 8):  # slabs of 8 voxels: paint only the fibre's box within each
            lo = np.array([z0 - r, -r, -r])
            hi = np.array([min(z0 + 8, shape[0]) + r, box[1] + r, box[2] + r])
            with np.errstate(divide="ignore", invalid="ignore"):
                t1, t2 = (lo - p) / d, (hi - p) / d
            t1, t2 = np.where(d == 0, -np.inf, np.minimum(t1, t2)), np.where(d == 0, np.inf, np.maximum(t1, t2))
            if np.any((d == 0) & ((p < lo) | (p > hi))):
                continue
            ta, tb = t1.max(), t2.min()
            if ta > tb:
                continue
            ends = np.array([p + ta * d, p + tb * d])
            box_lo = np.maximum(ends.min(axis=0) - r, [z0, 0, 0])
            box_hi = np.minimum(ends.max(axis=0) + r, [min(z0 + 8, shape[0]), box[1], box[2]])
            solid += _paint(fine, s, box_lo, box_hi, inside)
    return fine


# ---------------------------------------------------------------------------------------------- scanner


def ct_scan(
    fraction: np.ndarray,
    *,
    mu_solid: float = 0.02,
    mu_pore: float = 0.0,
    angles: int | None = None,
    photons: float = 2e4,
    ring_strength: float = 0.0,
    ring_fraction: float = 0.1,
    cupping: float = 0.0,
    rng: int | np.random.Generator | None = None,
) -> np.ndarray:
    """Simulate a CT scan of a solid-fraction volume: projection, noise, artefacts, FBP.

    Slice by slice (each z slice is one fan-less parallel-beam acquisition):
    the attenuation image ``mu_pore + (mu_solid - mu_pore) * fraction`` is projected
    with :func:`skimage.transform.radon` over ``angles`` angles in [0, 180) degrees,
    giving line integrals ``p``; beam hardening lowers them to
    ``p - cupping * p**2 / (2 p_max)`` (``p_max`` the volume's largest line integral, so
    the longest paths lose ``cupping / 2`` of their attenuation and the reconstruction
    is darker in the middle: cupping); the detector counts ``photons * exp(-p) * g``
    are drawn from a Poisson distribution, where the gains ``g`` are 1 except for a
    random ``ring_fraction`` of the detector bins, whose gains are drawn once per
    volume from ``N(1, ring_strength)`` (fixed errors per bin reconstruct as rings);
    the measured line integrals ``-log(counts / photons)`` are reconstructed by
    :func:`skimage.transform.iradon` (ramp filter).

    Parameters
    ----------
    fraction : (Z, Y, X) ndarray of float
        Solid volume fraction per voxel, in [0, 1].
    mu_solid, mu_pore : float, optional
        Linear attenuation of solid and pore, per voxel. Defaults 0.02 and 0.
    angles : int, optional
        Projection angles; default ``ceil(pi / 2 * max(Y, X))`` (fully sampled).
    photons : float, optional
        Unattenuated photon count per detector bin; fewer photons, more noise.
        Default 2e4.
    ring_strength : float, optional
        Standard deviation of the faulty bins' gains; 0 for no rings. Default 0.
    ring_fraction : float, optional
        Fraction of the detector bins with a gain error. Default 0.1.
    cupping : float, optional
        Beam-hardening strength in [0, 1); 0 for none. Default 0.
    rng : int, numpy.random.Generator or None

    Returns
    -------
    (Z, Y, X) ndarray of float32
        Reconstructed attenuation per voxel (same units as ``mu_solid``); pores scatter
        around ``mu_pore`` with negative values where ``mu_pore`` is 0.
    """
    from skimage.transform import iradon, radon

    fraction = np.asarray(fraction)
    if fraction.ndim != 3 or fraction.size == 0:
        raise ValueError(f"fraction must be a non-empty (Z, Y, X) array, got shape {fraction.shape}")
    if not np.issubdtype(fraction.dtype, np.floating) or fraction.min() < 0 or fraction.max() > 1:
        raise ValueError("fraction must be floats in [0, 1] (solid volume fraction per voxel)")
    photons = check_real("photons", photons, low=0.0, low_open=True)
    if not 0 <= cupping < 1:
        raise ValueError(f"cupping must lie in [0, 1), got {cupping}")
    if ring_strength < 0 or not 0 <= ring_fraction <= 1:
        raise ValueError(
            f"ring_strength must be >= 0 and ring_fraction in [0, 1], got {ring_strength}, {ring_fraction}"
        )
    rng = np.random.default_rng(rng)
    nz, ny, nx = fraction.shape
    side = max(ny, nx)
    n_angles = int(angles) if angles is not None else math.ceil(math.pi / 2 * side)
    if n_angles < 1:
        raise ValueError(f"angles must be at least 1, got {angles}")
    theta = np.linspace(0.0, 180.0, n_angles, endpoint=False)
    mu = mu_pore + (mu_solid - mu_pore) * fraction.astype(np.float64)
    pad = np.zeros((side, side))
    sinograms = []
    for z in range(nz):
        pad[:ny, :nx] = mu[z]
        sinograms.append(radon(pad, theta=theta, circle=False))
    p = np.stack(sinograms)
    p_max = float(p.max()) or 1.0
    p = p - cupping * p**2 / (2 * p_max)
    gains = np.ones(p.shape[1])
    faulty = rng.random(p.shape[1]) < ring_fraction
    gains[faulty] = rng.normal(1.0, ring_strength, int(faulty.sum())) if ring_strength > 0 else 1.0
    counts = rng.poisson(photons * np.exp(-p) * np.clip(gains, 0.01, None)[None, :, None])
    measured = -np.log(np.maximum(counts, 1) / photons)
    out = np.empty(fraction.shape, dtype=np.float32)
    for z in range(nz):
        image = iradon(measured[z], theta=theta, output_size=side, filter_name="ramp", circle=False)
        out[z] = image[:ny, :nx]
    return out


def store(reconstruction: np.ndarray, dtype: str, *, scale: float = 100.0) -> np.ndarray:
    """The reconstruction as reconstruction software writes it.

    ``"float32"``: attenuation times ``scale`` (per voxel to a per-centimetre-like
    unit), negative values kept. ``"uint16"``: a fixed window from 10 % below the 0.01st
    to 10 % above the 99.99th percentile mapped linearly to 0-65535 (most of the range
    unused, as in a 16-bit export). ``"uint8"``: the 0.5th to 99.5th percentiles
    stretched to 0-255 and clipped (as an 8-bit export for viewing).

    Parameters
    ----------
    reconstruction : (Z, Y, X) ndarray of float
    dtype : {"float32", "uint16", "uint8"}
    scale : float, optional
        Factor of the float32 form. Default 100.

    Returns
    -------
    (Z, Y, X) ndarray of the given dtype
    """
    if dtype not in STORAGE:
        raise ValueError(f"unknown storage form {dtype!r}; use one of {', '.join(STORAGE)}")
    rec = np.asarray(reconstruction, dtype=np.float64)
    if dtype == "float32":
        return (rec * scale).astype(np.float32)
    if dtype == "uint16":
        lo, hi = np.percentile(rec, [0.01, 99.99])
        lo, hi = lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo)
        return np.round(np.clip((rec - lo) / (hi - lo), 0, 1) * 65535).astype(np.uint16)
    lo, hi = np.percentile(rec, [0.5, 99.5])
    return np.round(np.clip((rec - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------- truth, scores


def truth_from_fraction(fraction: np.ndarray) -> np.ndarray:
    """The binary truth at the scan's resolution: solid where a voxel is at least half solid.

    Parameters
    ----------
    fraction : (Z, Y, X) ndarray of float
        Solid volume fraction per voxel.

    Returns
    -------
    (Z, Y, X) ndarray of bool
        True = solid.
    """
    return np.asarray(fraction) >= 0.5


def porosity(solid: np.ndarray) -> float:
    """Pore fraction of a binary volume (True = solid), counted in int64."""
    solid = np.asarray(solid, dtype=bool)
    if solid.size == 0:
        raise ValueError("porosity of an empty array is undefined")
    return 1.0 - int(np.count_nonzero(solid)) / solid.size


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice coefficient ``2 |a & b| / (|a| + |b|)`` of two binary arrays of one shape.

    Returns 1.0 where both are empty (they agree).
    """
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"dice of arrays of different shapes {a.shape} and {b.shape}")
    total = int(np.count_nonzero(a)) + int(np.count_nonzero(b))
    return 1.0 if total == 0 else 2.0 * int(np.count_nonzero(a & b)) / total


@dataclass(frozen=True)
class PoreStatistics:
    """Separate pores of a binary volume, in voxels of the scan.

    Attributes
    ----------
    count : int
        Connected pore regions (face connectivity) of at least ``min_voxels`` voxels.
    mean_volume : float
        Their mean volume, voxels (NaN when ``count`` is 0).
    mean_diameter : float
        Diameter of the sphere of the mean volume, voxels (NaN when ``count`` is 0).
    mean_chord : float
        Mean length of the pore runs along z, y and x, voxels (NaN without pore):
        a pore size that also means something where the pore space is one connected
        region (open cells, packings, fibres).
    min_voxels : int
        The size below which a region was not counted, voxels.
    """

    count: int
    mean_volume: float
    mean_diameter: float
    mean_chord: float
    min_voxels: int


def _mean_chord(pore: np.ndarray) -> float:
    """Mean length of the runs of True along every axis, in samples (runs cut by the faces included)."""
    lengths, runs = 0, 0
    for axis in range(pore.ndim):
        moved = np.moveaxis(pore, axis, -1).astype(np.int8)
        padded = np.pad(moved, [(0, 0)] * (pore.ndim - 1) + [(1, 1)])
        starts = np.count_nonzero(np.diff(padded, axis=-1) == 1)
        lengths += int(np.count_nonzero(moved))
        runs += starts
    return math.nan if runs == 0 else lengths / runs


def pore_statistics(solid: np.ndarray, *, supersample: int = 1, min_voxels: int = 27) -> PoreStatistics:
    """Count the separate pores of a binary volume and their mean size.

    Pores are the connected components of the pore phase under face (6-)connectivity,
    so a wall broken by one voxel merges two cells into one pore: the count falls where
    a segmentation loses thin walls, even when its porosity is right. Pores cut by the
    faces of the volume are counted like the others.

    Parameters
    ----------
    solid : ndarray of bool
        ``(Z, Y, X)`` or, with ``supersample = s``, the fine grid ``(Z*s, Y*s, X*s)``
        of a structure; True = solid. The truth of a case is counted on its fine grid,
        where walls thinner than a voxel are still closed.
    supersample : int, optional
        Fine samples per scan voxel and axis; sizes are returned in scan voxels. Default 1.
    min_voxels : int, optional
        Smallest region counted, scan voxels. Default 27 (a 3^3 cube: noise specks are not pores).

    Returns
    -------
    PoreStatistics
    """
    solid = np.asarray(solid, dtype=bool)
    s = _supersample(supersample)
    if solid.ndim != 3:
        raise ValueError(f"pore statistics need a (Z, Y, X) volume, got shape {solid.shape}")
    labels, n = ndimage.label(~solid)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:] / float(s**3)
    del labels
    kept = sizes[sizes >= min_voxels]
    chord = float(_mean_chord(~solid) / s)
    if kept.size == 0:
        return PoreStatistics(0, math.nan, math.nan, chord, int(min_voxels))
    mean = float(kept.mean())
    return PoreStatistics(int(kept.size), mean, float((6 * mean / math.pi) ** (1 / 3)), chord, int(min_voxels))


# ---------------------------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class CaseSpec:
    """Everything that defines a foreign case; the case is rebuilt exactly from it.

    Attributes
    ----------
    name : str
        Case and run-folder name.
    structure : str
        One of :data:`STRUCTURES`.
    structure_options : dict
        Keyword arguments of the structure generator (besides shape and rng).
    scanner_options : dict
        Keyword arguments of :func:`ct_scan` (besides rng).
    storage : str
        One of :data:`STORAGE`.
    seed : int
        Seed of the case: the structure and the scanner draw from its named streams
        (:func:`foamlib.streams.seed_for` of ``(seed, "independent", "structure")`` and ``"scanner"``).
    """

    name: str
    structure: str
    structure_options: dict = field(default_factory=dict)
    scanner_options: dict = field(default_factory=dict)
    storage: str = "float32"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.structure not in STRUCTURES:
            raise ValueError(
                f"case {self.name}: unknown structure {self.structure!r}; use one of {', '.join(STRUCTURES)}"
            )
        if self.storage not in STORAGE:
            raise ValueError(f"case {self.name}: unknown storage {self.storage!r}; use one of {', '.join(STORAGE)}")


@dataclass(frozen=True)
class Case:
    """A built foreign case: the stored scan and its exact truth.

    Attributes
    ----------
    spec : CaseSpec
    scan : (Z, Y, X) ndarray
        The scan as stored (dtype of ``spec.storage``).
    fraction : (Z, Y, X) ndarray of float32
        Solid volume fraction per voxel.
    truth : (Z, Y, X) ndarray of bool
        ``fraction >= 0.5``, True = solid.
    porosity : float
        Porosity of ``truth``.
    exact_porosity : float
        ``1 - mean(fraction)``, the porosity of the supersampled structure.
    pores : PoreStatistics
        Of the structure on its fine grid (:func:`pore_statistics` with ``supersample``),
        where walls thinner than a voxel still separate the cells.
    """

    spec: CaseSpec
    scan: np.ndarray
    fraction: np.ndarray
    truth: np.ndarray
    porosity: float
    exact_porosity: float
    pores: PoreStatistics

    def record(self) -> dict[str, Any]:
        """JSON-ready description: the spec, the truth's porosities and pore statistics, the scan's dtype and range."""
        return {
            "spec": asdict(self.spec),
            "shape": list(self.scan.shape),
            "dtype": str(self.scan.dtype),
            "scan_min": float(self.scan.min()),
            "scan_max": float(self.scan.max()),
            "porosity": self.porosity,
            "exact_porosity": self.exact_porosity,
            "pores": asdict(self.pores),
        }


_DEFAULT_SUPERSAMPLE = {"closed_cells": 4, "open_cells": 2, "spheres": 4, "fibres": 4}

_GENERATORS = {"closed_cells": closed_cells, "open_cells": open_cells, "spheres": sphere_packing, "fibres": fibre_mat}


def make_case(spec: CaseSpec, shape: Any) -> Case:
    """Build a case: structure, scan, storage and truth, from its spec alone.

    Parameters
    ----------
    spec : CaseSpec
    shape : (int, int, int)
        ``(Z, Y, X)`` of the scan, voxels.

    Returns
    -------
    Case
    """
    shape = _shape(shape)
    options = dict(spec.structure_options)
    s = _supersample(options.setdefault("supersample", _DEFAULT_SUPERSAMPLE[spec.structure]))
    fine = _GENERATORS[spec.structure](shape, rng=streams.seed_for(spec.seed, "independent", "structure"), **options)
    fraction = block_mean(fine, s)
    pores = pore_statistics(fine, supersample=s)
    del fine
    reconstruction = ct_scan(fraction, rng=streams.seed_for(spec.seed, "independent", "scanner"), **spec.scanner_options)
    truth = truth_from_fraction(fraction)
    return Case(
        spec=spec,
        scan=store(reconstruction, spec.storage),
        fraction=fraction,
        truth=truth,
        porosity=porosity(truth),
        exact_porosity=1.0 - float(fraction.mean(dtype=np.float64)),
        pores=pores,
    )
