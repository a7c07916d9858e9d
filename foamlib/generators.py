"""Step-1 structures for materials other than closed-cell foams: open cells, grains and fibres.

Step 1 of Griem et al. generates 3D structures with the statistics of a
scan's Otsu segmentation; for another material "only the generation
algorithm of the first step needs to be replaced". The closed-cell foam is
:func:`foamlib.foam.closed_cell_foam`; this module adds three generators, each
with a parameter class that :mod:`foamlib.fitting` fits to a measured
:class:`~foamlib.structure.StructureReport` and varies for a training set:

========================  ============================  =====================================================
kind                      generator                     materials
========================  ============================  =====================================================
``"open-cell"``           :func:`open_cell_foam`        reticulated polymer foams, open-cell metal foams,
                                                        scaffolds: a network of struts, no walls
``"spheres"``             :func:`overlapping_spheres`   sand, powders, sintered grains, granular packings
``"fibres"``              :func:`overlapping_fibres`    nonwovens, felts, paper, fibre preforms
========================  ============================  =====================================================

How they are built
    :func:`open_cell_foam` is the Laguerre-tessellation foam of
    :mod:`foamlib.foam` without walls: only the Plateau borders along the
    cell edges, scaled to the porosity. :func:`overlapping_spheres` and
    :func:`overlapping_fibres` are Boolean models (objects placed
    independently, overlaps allowed) of polydisperse spheres and of straight
    fibres with rounded ends lying near the x-y plane. Their number follows
    from the porosity of a Boolean model, ``porosity = exp(-n * V / |box|)``
    for ``n`` objects of mean volume ``V``.
Porosity targeting and partial volume
    Spheres and fibres are described by the signed distance ``f`` to their
    surface (negative inside), evaluated at the voxel centres. Every radius
    is then grown or shrunk by one common offset ``lambda`` (a fraction of a
    voxel), chosen by bisection so that the porosity is met to about 1e-4,
    and each voxel's solid fraction is ``clip(lambda + 0.5 - f, 0, 1)``: the
    share of a voxel cut by a plane at that distance from its centre. So thin
    fibres become faint partial-volume voxels as in a real scan, and the
    binary structure (``fraction >= 0.5``) is the set of voxel centres
    inside the objects. On curved surfaces the ramp holds slightly more
    than the object (a sphere of radius ``r`` as ``4/3 pi r^3 + pi r / 3``,
    a cylinder as ``pi r^2 + pi / 12`` per unit length), which the offset
    takes back: radii come out about ``1 / (12 r)`` voxel smaller for
    spheres, ``1 / (24 r)`` for fibres.
Periodicity
    Every structure is periodic with the box as period (objects that cross a
    face re-enter at the opposite one), like the foams of :mod:`foamlib.foam`,
    so a structure can be cropped or tiled without edge effects.

Each parameter class (a frozen dataclass) names its ``kind`` and the field of its fitted size
(``size_name``), makes a structure with ``generate(shape, rng=...)``, and round-trips through JSON
with ``to_dict()`` and the class method ``from_dict(data)``, which requires ``porosity`` and the size
and names any unknown or missing key in its ValueError.

Lengths are in voxels, porosity is a fraction, volumes are ``(Z, Y, X)`` with
True (or 1) = solid. Nothing here shares code with
:mod:`foamlib.independent`, the validation suite's own structures.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import numpy as np

from .checks import check_int, check_real
from .foam import Foam, closed_cell_foam

__all__ = [
    "FibreParameters",
    "OpenCellParameters",
    "SphereParameters",
    "Structure",
    "open_cell_foam",
    "overlapping_fibres",
    "overlapping_spheres",
]

logger = logging.getLogger(__name__)

#: Voxels beyond an object's surface (plus this share of its radius) that the distance field is computed
#: for; the offset that meets the porosity must stay within it (else the field is computed again, wider).
_REACH = 1.5
_REACH_PER_RADIUS = 0.25
#: Bisection on the offset stops when its bracket is this narrow (voxels): porosity to about 1e-4.
_OFFSET_TOLERANCE = 1e-4
#: Fibres are painted as pieces of at most this many diameters (tight bounding boxes).
_PIECE_DIAMETERS = 2.0


# --------------------------------------------------------------------------- result


@dataclass(frozen=True)
class Structure:
    """A voxelised structure of spheres or fibres.

    Attributes
    ----------
    fraction : (Z, Y, X) ndarray of float32
        Solid volume fraction of each voxel, in [0, 1].
    solid : (Z, Y, X) ndarray of bool
        Binary structure, ``fraction >= 0.5`` (True = solid).
    porosity : float
        ``1 - fraction.mean()``.
    offset : float
        What was added to every radius to meet the porosity, in voxels
        (usually a fraction of a voxel).
    count : int
        Number of objects (spheres or fibres) in the box.
    """

    fraction: np.ndarray
    solid: np.ndarray
    porosity: float
    offset: float
    count: int


# --------------------------------------------------------------------------- generators


def open_cell_foam(shape, *, cell_diameter: float, porosity: float, cell_size_cv: float = 0.0,
                   supersample: int = 1, rng=None) -> Foam:
    """A random, periodic open-cell foam: the struts of a Laguerre tessellation, without walls.

    The foam of :func:`foamlib.foam.closed_cell_foam` with ``wall_thickness=0``:
    Plateau borders along the cell edges, their diameter scaled so that the
    porosity is met; the pore space is one connected network.

    Parameters
    ----------
    shape : tuple of 3 int
        Output shape ``(Z, Y, X)`` in voxels (also the period).
    cell_diameter : float
        Mean nominal cell diameter in voxels, > 0.
    porosity : float
        Target porosity in (0, 1), met by the solid fraction to about 1e-4.
    cell_size_cv : float, default 0.0
        Coefficient of variation of the cell sizes, in [0, 1].
    supersample : int, default 1
        Sub-points per voxel and axis (partial volume), 1 to 16.
    rng : int, numpy.random.Generator or None
        Random source, normalised with :func:`numpy.random.default_rng`.

    Returns
    -------
    Foam
        ``fraction`` (Z, Y, X) float32, ``solid`` (Z, Y, X) bool, ``porosity``;
        ``wall_thickness`` is 0 and ``strut_diameter`` the one used.

    Examples
    --------
    >>> foam = open_cell_foam((48, 48, 48), cell_diameter=16, porosity=0.92, rng=0)
    >>> round(foam.porosity, 3), foam.wall_thickness
    (0.92, 0.0)
    """
    return closed_cell_foam(shape, cell_diameter=cell_diameter, wall_thickness=0.0, strut_diameter=1.0,
                            porosity=porosity, cell_size_cv=cell_size_cv, supersample=supersample, rng=rng)


def overlapping_spheres(shape, *, grain_diameter: float, porosity: float, grain_size_cv: float = 0.0,
                        rng=None) -> Structure:
    """Grains: a periodic Boolean model of polydisperse spheres that may overlap.

    Centres are uniform in the box; diameters are log-normal with mean
    `grain_diameter` and coefficient of variation `grain_size_cv`. The number
    of spheres is that of a Boolean model with the target porosity,
    ``n = -ln(porosity) |box| / E[V]``, and a common offset on all radii
    meets the porosity exactly (see the module notes).

    Parameters
    ----------
    shape : tuple of 3 int
        Output shape ``(Z, Y, X)`` in voxels (also the period).
    grain_diameter : float
        Mean sphere diameter in voxels, > 0.
    porosity : float
        Target porosity in (0, 1), met by the solid fraction to about 1e-4.
    grain_size_cv : float, default 0.0
        Coefficient of variation of the diameters, in [0, 1].
    rng : int, numpy.random.Generator or None
        Random source, normalised with :func:`numpy.random.default_rng`.

    Returns
    -------
    Structure
        Solid fraction and binary structure of shape `shape`.

    Examples
    --------
    >>> s = overlapping_spheres((32, 32, 32), grain_diameter=8, porosity=0.4, rng=0)
    >>> round(s.porosity, 3), s.solid.dtype
    (0.4, dtype('bool'))
    """
    shape = _check_shape(shape)
    d0 = check_real("grain_diameter", grain_diameter, low=0.0, low_open=True)
    p = _check_porosity(porosity)
    cv = check_real("grain_size_cv", grain_size_cv, low=0.0, high=1.0)
    gen = np.random.default_rng(rng)
    mean_volume = math.pi / 6.0 * d0**3 * (1.0 + cv**2) ** 3  # E[D^3] of a log-normal
    n = max(1, round(-math.log(p) * math.prod(shape) / mean_volume))
    centres = gen.uniform(0.0, 1.0, size=(n, 3)) * np.asarray(shape, dtype=np.float64)
    radii = 0.5 * d0 * _lognormal(gen, n, cv)
    return _target(shape, centres, centres, radii, p)


def overlapping_fibres(shape, *, fibre_diameter: float, porosity: float, aspect_ratio: float = 20.0,
                       max_tilt: float = 15.0, rng=None) -> Structure:
    """A fibre mat: a periodic Boolean model of straight fibres with rounded ends that may cross.

    Each fibre is a cylinder of diameter `fibre_diameter` around a segment
    of length ``aspect_ratio * fibre_diameter`` (with hemispherical ends),
    its centre uniform in the box, its direction uniform in azimuth and
    within `max_tilt` degrees of the x-y plane (uniform on that band of the
    unit sphere, so ``max_tilt=90`` gives isotropic fibres). The number of
    fibres is that of a Boolean model with the target porosity, and a
    common offset on all radii meets the porosity exactly (see the module
    notes).

    Parameters
    ----------
    shape : tuple of 3 int
        Output shape ``(Z, Y, X)`` in voxels (also the period).
    fibre_diameter : float
        Fibre diameter in voxels, > 0 (may be below one voxel: partial volume).
    porosity : float
        Target porosity in (0, 1), met by the solid fraction to about 1e-4.
    aspect_ratio : float, default 20.0
        Length of a fibre's axis over its diameter, >= 0.
    max_tilt : float, default 15.0
        Largest angle between a fibre and the x-y plane, degrees, in [0, 90].
    rng : int, numpy.random.Generator or None
        Random source, normalised with :func:`numpy.random.default_rng`.

    Returns
    -------
    Structure
        Solid fraction and binary structure of shape `shape`.

    Examples
    --------
    >>> s = overlapping_fibres((32, 32, 32), fibre_diameter=3, porosity=0.85, rng=0)
    >>> round(s.porosity, 3)
    0.85
    """
    shape = _check_shape(shape)
    d = check_real("fibre_diameter", fibre_diameter, low=0.0, low_open=True)
    p = _check_porosity(porosity)
    aspect = check_real("aspect_ratio", aspect_ratio, low=0.0)
    tilt = check_real("max_tilt", max_tilt, low=0.0, high=90.0)
    gen = np.random.default_rng(rng)
    r, length = 0.5 * d, aspect * d
    volume = math.pi * r**2 * length + 4.0 / 3.0 * math.pi * r**3
    n = max(1, round(-math.log(p) * math.prod(shape) / volume))
    centres = gen.uniform(0.0, 1.0, size=(n, 3)) * np.asarray(shape, dtype=np.float64)
    uz = gen.uniform(-1.0, 1.0, size=n) * math.sin(math.radians(tilt))
    phi = gen.uniform(0.0, 2.0 * math.pi, size=n)
    across = np.sqrt(1.0 - uz**2)
    direction = np.stack([uz, across * np.sin(phi), across * np.cos(phi)], axis=1)
    # pieces of at most two diameters each, so that every piece has a tight bounding box
    pieces = max(1, math.ceil(length / max(_PIECE_DIAMETERS * d, 1.0)))
    t = np.linspace(-0.5, 0.5, pieces + 1) * length
    starts = (centres[:, None, :] + t[None, :-1, None] * direction[:, None, :]).reshape(-1, 3)
    ends = (centres[:, None, :] + t[None, 1:, None] * direction[:, None, :]).reshape(-1, 3)
    structure = _target(shape, starts, ends, np.full(len(starts), r), p)
    return Structure(structure.fraction, structure.solid, structure.porosity, structure.offset, n)


# --------------------------------------------------------------------------- parameters


class _Parameters:
    """What the parameter classes share: a kind, the name of their fitted size, its check, and dict round trips."""

    kind: ClassVar[str]
    size_name: ClassVar[str]

    def __post_init__(self):
        # porosity and the fitted size (> 0) as Python floats; a subclass checks its other fields after these
        object.__setattr__(self, "porosity", _check_porosity(self.porosity))
        size = self.size_name
        object.__setattr__(self, size, check_real(size, getattr(self, size), low=0.0, low_open=True))

    def to_dict(self) -> dict[str, Any]:
        """All fields as a JSON-ready dict of Python ``float`` and ``int``."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]):
        """Inverse of ``to_dict``; ``porosity`` and the size (the field named ``size_name``) are required.

        Raises
        ------
        ValueError
            For unknown or missing keys, or bad values.
        """
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} keys {unknown}; known: {sorted(names)}")
        missing = [k for k in ("porosity", cls.size_name) if k not in data]
        if missing:
            raise ValueError(f"{cls.__name__} needs the keys {missing}")
        return cls(**dict(data))


@dataclass(frozen=True)
class OpenCellParameters(_Parameters):
    """Parameters of :func:`open_cell_foam` (generator kind ``"open-cell"``).

    Attributes
    ----------
    porosity : float
        Target porosity, a fraction in (0, 1).
    cell_diameter : float
        Mean nominal cell diameter in voxels, > 0 (the size the fit scales).
    cell_size_cv : float, default 0.25
        Coefficient of variation of the cell diameters, in [0, 1].
    supersample : int, default 1
        Sub-points per voxel and axis (partial volume), 1 to 16.
    """

    kind: ClassVar[str] = "open-cell"
    size_name: ClassVar[str] = "cell_diameter"

    porosity: float
    cell_diameter: float
    cell_size_cv: float = 0.25
    supersample: int = 1

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "cell_size_cv", check_real("cell_size_cv", self.cell_size_cv, low=0.0, high=1.0))
        object.__setattr__(self, "supersample", check_int("supersample", self.supersample, low=1, high=16))

    def generate(self, shape=(64, 64, 64), *, rng=None) -> Foam:
        """One structure of `shape` ``(Z, Y, X)`` voxels; see :func:`open_cell_foam`."""
        return open_cell_foam(shape, cell_diameter=self.cell_diameter, porosity=self.porosity,
                              cell_size_cv=self.cell_size_cv, supersample=self.supersample, rng=rng)


@dataclass(frozen=True)
class SphereParameters(_Parameters):
    """Parameters of :func:`overlapping_spheres` (generator kind ``"spheres"``).

    Attributes
    ----------
    porosity : float
        Target porosity, a fraction in (0, 1).
    grain_diameter : float
        Mean sphere diameter in voxels, > 0 (the size the fit scales).
    grain_size_cv : float, default 0.2
        Coefficient of variation of the diameters, in [0, 1].
    """

    kind: ClassVar[str] = "spheres"
    size_name: ClassVar[str] = "grain_diameter"

    porosity: float
    grain_diameter: float
    grain_size_cv: float = 0.2

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "grain_size_cv",
                           check_real("grain_size_cv", self.grain_size_cv, low=0.0, high=1.0))

    def generate(self, shape=(64, 64, 64), *, rng=None) -> Structure:
        """One structure of `shape` ``(Z, Y, X)`` voxels; see :func:`overlapping_spheres`."""
        return overlapping_spheres(shape, grain_diameter=self.grain_diameter, porosity=self.porosity,
                                   grain_size_cv=self.grain_size_cv, rng=rng)


@dataclass(frozen=True)
class FibreParameters(_Parameters):
    """Parameters of :func:`overlapping_fibres` (generator kind ``"fibres"``).

    Attributes
    ----------
    porosity : float
        Target porosity, a fraction in (0, 1).
    fibre_diameter : float
        Fibre diameter in voxels, > 0 (the size the fit scales).
    aspect_ratio : float, default 20.0
        Fibre length over diameter, >= 0.
    max_tilt : float, default 15.0
        Largest angle between a fibre and the x-y plane, degrees, in [0, 90].
    """

    kind: ClassVar[str] = "fibres"
    size_name: ClassVar[str] = "fibre_diameter"

    porosity: float
    fibre_diameter: float
    aspect_ratio: float = 20.0
    max_tilt: float = 15.0

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "aspect_ratio", check_real("aspect_ratio", self.aspect_ratio, low=0.0))
        object.__setattr__(self, "max_tilt", check_real("max_tilt", self.max_tilt, low=0.0, high=90.0))

    def generate(self, shape=(64, 64, 64), *, rng=None) -> Structure:
        """One structure of `shape` ``(Z, Y, X)`` voxels; see :func:`overlapping_fibres`."""
        return overlapping_fibres(shape, fibre_diameter=self.fibre_diameter, porosity=self.porosity,
                                  aspect_ratio=self.aspect_ratio, max_tilt=self.max_tilt, rng=rng)


# --------------------------------------------------------------------------- internals


def _check_shape(shape) -> tuple[int, int, int]:
    try:
        dims = tuple(shape)
    except TypeError:
        raise TypeError(f"shape must be a tuple of 3 positive ints (Z, Y, X), got {shape!r}") from None
    if len(dims) != 3:
        raise TypeError(f"shape must be a tuple of 3 positive ints (Z, Y, X), got {shape!r}")
    return tuple(check_int(f"shape[{i}]", n, low=1) for i, n in enumerate(dims))


def _check_porosity(porosity) -> float:
    return check_real("porosity", porosity, low=0.0, high=1.0, low_open=True, high_open=True)


def _lognormal(gen: np.random.Generator, n: int, cv: float) -> np.ndarray:
    """``n`` log-normal factors of mean 1 and coefficient of variation `cv` (ones for cv = 0)."""
    if cv == 0.0:
        return np.ones(n)
    sigma2 = math.log1p(cv**2)
    return gen.lognormal(-0.5 * sigma2, math.sqrt(sigma2), size=n)


def _distance_field(shape, starts, ends, radii, reach: float) -> np.ndarray:
    """Signed distance to the union of capsules (segment ``starts[i]``-``ends[i]``, radius ``radii[i]``), periodic.

    Exact outside the objects (clipped at `reach` voxels), a lower bound of
    the depth inside (the depth in the deepest single object), which is
    exact within the half voxel of the surface that the fractions read.

    Returns
    -------
    (Z, Y, X) ndarray of float32
    """
    box = np.asarray(shape, dtype=np.float64)
    field = np.full(shape, reach, dtype=np.float32)
    lows = np.minimum(starts, ends) - (radii + reach)[:, None]
    highs = np.maximum(starts, ends) + (radii + reach)[:, None]
    # the periodic images (shift k * box per axis) whose bounding box meets the voxel centres 0 .. n-1
    k_low = np.ceil(-highs / box).astype(int)
    k_high = np.floor((box - 1.0 - lows) / box).astype(int)
    for i in range(len(radii)):
        a, b, r = starts[i], ends[i], float(radii[i])
        ab = b - a
        length2 = float(ab @ ab)
        for kz in range(k_low[i, 0], k_high[i, 0] + 1):
            for ky in range(k_low[i, 1], k_high[i, 1] + 1):
                for kx in range(k_low[i, 2], k_high[i, 2] + 1):
                    shift = np.array([kz, ky, kx]) * box
                    lo = np.maximum(np.ceil(lows[i] + shift), 0).astype(int)
                    hi = np.minimum(np.floor(highs[i] + shift), box - 1).astype(int) + 1
                    if np.any(hi <= lo):
                        continue
                    z, y, x = (np.arange(lo[k], hi[k], dtype=np.float64) - (a[k] + shift[k]) for k in range(3))
                    z, y, x = z[:, None, None], y[None, :, None], x[None, None, :]
                    if length2 > 0.0:
                        t = np.clip((z * ab[0] + y * ab[1] + x * ab[2]) / length2, 0.0, 1.0)
                        z, y, x = z - t * ab[0], y - t * ab[1], x - t * ab[2]
                    d = np.sqrt(z * z + y * y + x * x) - r
                    region = field[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
                    np.minimum(region, d, out=region, casting="same_kind")
    return field


def _solid_fraction(field: np.ndarray, offset: float) -> np.ndarray:
    """Partial-volume solid fraction of each voxel for objects grown by `offset` voxels."""
    return np.clip(np.float32(offset + 0.5) - field, 0.0, 1.0)


def _porosity(field: np.ndarray, offset: float) -> float:
    return 1.0 - float(np.mean(_solid_fraction(field, offset), dtype=np.float64))


def _target(shape, starts, ends, radii, porosity: float) -> Structure:
    """Grow or shrink all radii by one offset so that the solid fraction has the target porosity."""
    r_max = float(radii.max())
    reach = _REACH + _REACH_PER_RADIUS * r_max
    while True:
        field = _distance_field(shape, starts, ends, radii, reach)
        # the fractions read the field up to offset + 0.5: it is exact up to `reach`
        low, high = -r_max - 0.5, reach - 0.5
        if _porosity(field, high) <= porosity:
            break
        if reach > 4.0 * (r_max + 1.0) + max(shape):
            raise ValueError(f"the objects cannot fill a {shape} box to porosity {porosity:.3f}")
        logger.debug("porosity %.4f not reached within %.3g voxels of the surfaces: wider field", porosity, reach)
        reach *= 2.0
    while high - low > _OFFSET_TOLERANCE:
        mid = 0.5 * (low + high)
        if _porosity(field, mid) > porosity:
            low = mid
        else:
            high = mid
    offset = 0.5 * (low + high)
    fraction = _solid_fraction(field, offset)
    p = 1.0 - float(np.mean(fraction, dtype=np.float64))
    return Structure(fraction=fraction, solid=fraction >= 0.5, porosity=p, offset=float(offset), count=len(radii))
