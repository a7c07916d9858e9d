"""Fit the step-1 generator to a measured structure, and vary the fit for a training data base.

Step 1 of Griem et al. measures porosity, pore size distribution and wall
thickness on the Otsu segmentation of a real foam scan
(:func:`foamlib.structure.analyze`) and generates 3D foams with those
statistics; to make an information-rich data base the parameters are then
varied around the measured values. This module does both:

* :class:`FoamParameters` holds everything
  :func:`foamlib.foam.closed_cell_foam` needs (porosity, cell diameter,
  cell-size spread, wall/strut ratio, supersampling);
* :func:`fit_foam_parameters` calibrates them so that a generated foam,
  binarised and measured with the *same* tool and options as the scan,
  reproduces the scan's statistics;
* :func:`vary_parameters` draws parameter sets around the fit and
  :func:`generate_foams` renders them with independent random streams.

The generator is a choice (:data:`GENERATORS`, the study's setting
``generator``): the closed-cell foam above is the default, and the paper's
"only the generation algorithm of the first step needs to be replaced" is
taken literally by the structures of :mod:`foamlib.generators` (open-cell
foams, sphere packings, fibre mats). :func:`fit_parameters` fits any of them
(the closed-cell foam with :func:`fit_foam_parameters`, the others by the
simpler fit described there), and :func:`vary_parameters`,
:func:`generate_foams` and :func:`save_foam_set` take the parameters of any.

Lengths are in voxels of the scan throughout (a report stores its lengths in
voxels, ``*_voxels``); porosity is a fraction.

The cell size is fitted to the median interior pore diameter when the report
counts at least :data:`MIN_INTERIOR_PORES` pores, and otherwise to the mean
pore chord (:func:`foamlib.structure.pore_chords`), which needs no pore to
lie inside the volume: scans whose cells are as large as the field of view
are fitted too.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, fields, replace
from numbers import Integral
from pathlib import Path
from typing import Any, ClassVar, Union

import numpy as np

from . import streams
from .checks import check_choice, check_int, check_real
from .foam import Foam, closed_cell_foam
from .generators import FibreParameters, OpenCellParameters, SphereParameters, Structure
from .structure import StructureReport, analyze

__all__ = [
    "DEFAULT_GENERATOR",
    "FitResult",
    "FoamParameters",
    "GENERATORS",
    "GeneratorParameters",
    "MIN_CELL_DIAMETER",
    "MAX_SIZE_PER_FIELD",
    "MIN_INTERIOR_PORES",
    "SIZE_TARGETS",
    "STATISTICS",
    "fit_foam_parameters",
    "fit_parameters",
    "generate_foams",
    "load_foam_set",
    "parameters_class",
    "save_foam_set",
    "training_parameters",
    "vary_parameters",
]

logger = logging.getLogger(__name__)

#: Start value of the cell diameter over the measured median pore diameter.
_CELL_PER_PORE = 1.15
#: Start value of the cell diameter over the measured mean pore chord (generated foams,
#: porosity 0.8-0.95, cells 20-40 voxels: chord 0.6-0.7 cell diameters).
_CELL_PER_CHORD = 1.55
#: With ``size_target="auto"``, fewer interior pores than this fit the cell size to the mean pore chord.
MIN_INTERIOR_PORES = 10
#: Smallest cell diameter (voxels) of a closed-cell fit. Smaller cells cannot hold a wall and a pore that
#: the scan resolves, and cost memory for nothing (a 96^3 foam of 2.5-voxel cells, supersampled, once
#: took over 20 GB); a fit that still wants smaller cells at this bound is refused.
MIN_CELL_DIAMETER = 6.0
#: A size statistic (pore diameter, chord, thickness) of a report more than this many times the
#: longest axis of the analysed volume is refused: its field of view holds less than one cell, the
#: chord's stereological estimate extrapolates far beyond it (a segmentation with nearly no solid
#: once gave a mean chord of 3400 voxels in a 48^3 volume) and the fit box would not fit in memory.
MAX_SIZE_PER_FIELD = 2.0
#: Values of ``size_target``.
SIZE_TARGETS = ("auto", "pore_diameter", "chord")
#: Generated foams are periodic: a box axis shorter than this many cell diameters is
#: generated this long and cropped, so that no cell meets its own periodic image.
_PERIOD_CELLS = 2.0
#: Chord fits pool generated foams until the relative standard error of their mean chord is this small.
_CHORD_RSE = 0.02
#: Start value of the wall/strut ratio.
_START_RATIO = 0.2
#: Cell-size coefficient of variation used when neither pore diameters nor a value are given.
_DEFAULT_CV = 0.25
#: Range the cell-size coefficient of variation is clamped to.
_CV_RANGE = (0.0, 0.4)
#: Range the wall/strut ratio is kept in during the fit.
_RATIO_RANGE = (0.005, 5.0)
#: Bounds of the secant slope d(binary porosity) / d(target porosity).
_POROSITY_SLOPE_RANGE = (0.5, 5.0)
#: Range the porosity target is kept in during the fit.
_POROSITY_RANGE = (0.01, 0.999)
#: Start value of d ln(mean wall thickness) / d ln(wall/strut ratio), measured on
#: 64^3 foams at porosity 0.87 (ratio 0.05 -> 0.2: -0.14); refined by secant steps.
_START_ELASTICITY = -0.15
#: Start value of d ln(chord cv) / d ln(wall/strut ratio), measured on 64^3 foams at
#: porosity 0.89 (ratio 0.04 -> 0.11: cv 0.67 -> 0.47).
_START_CV_ELASTICITY = -0.35
#: Bounds of the (negative) elasticity used for the ratio update.
_ELASTICITY_RANGE = (-1.0, -0.05)
#: Secant slopes are only taken over steps of at least this much in ln(ratio).
_MIN_SECANT_STEP = 0.1
#: d ln(mean wall thickness) / d ln(cell diameter) at fixed porosity and ratio: 1 by
#: geometric similarity, about 0.4 measured (local-thickness bias, discretisation).
_THICKNESS_PER_CELL = 0.4
#: Largest change of the ratio in one iteration (factor).
_MAX_RATIO_STEP = 4.0
#: Largest change of the cell diameter in one iteration (factor).
_MAX_CELL_STEP = 2.0
#: Fewer measured pores than this give a warning (the median is unreliable).
_FEW_PORES = 5
#: Porosity limits of :func:`vary_parameters` (the fit itself is never clipped).
_VARY_POROSITY_RANGE = (0.5, 0.99)
#: Porosity limits of :func:`vary_parameters` for the generators other than the closed-cell foam.
_VARY_POROSITY_RANGE_OTHERS = (0.02, 0.99)


# --------------------------------------------------------------------------- validation


# --------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class FoamParameters:
    """Parameters of :func:`foamlib.foam.closed_cell_foam` for one kind of foam.

    Attributes
    ----------
    porosity : float
        Target porosity of the generator, a fraction in (0, 1). It is met
        exactly by the solid *fraction* (``Foam.porosity``); with
        ``supersample > 1`` the binarised ``Foam.solid`` is somewhat more
        porous (walls thinner than half a voxel vanish), which
        :func:`fit_foam_parameters` compensates for.
    cell_diameter : float
        Mean nominal (equivalent-sphere) cell diameter in voxels, > 0.
    cell_size_cv : float
        Coefficient of variation of the cell diameters, in [0, 1].
    wall_strut_ratio : float
        Wall thickness over Plateau-border (strut) diameter, > 0; both are
        scaled together to meet the porosity.
    supersample : int
        Sub-points per voxel and axis (partial volume), 1 to 16.
    """

    kind: ClassVar[str] = "closed-cell"
    size_name: ClassVar[str] = "cell_diameter"

    porosity: float
    cell_diameter: float
    cell_size_cv: float = _DEFAULT_CV
    wall_strut_ratio: float = _START_RATIO
    supersample: int = 1

    def __post_init__(self):
        p = check_real("porosity", self.porosity, low=0.0, high=1.0, low_open=True, high_open=True)
        d = check_real("cell_diameter", self.cell_diameter, low=0.0, low_open=True)
        cv = check_real("cell_size_cv", self.cell_size_cv, low=0.0, high=1.0)
        r = check_real("wall_strut_ratio", self.wall_strut_ratio, low=0.0, low_open=True)
        s = check_int("supersample", self.supersample, low=1, high=16)
        # normalise numpy scalars to Python numbers (JSON-ready, exact equality)
        object.__setattr__(self, "porosity", p)
        object.__setattr__(self, "cell_diameter", d)
        object.__setattr__(self, "cell_size_cv", cv)
        object.__setattr__(self, "wall_strut_ratio", r)
        object.__setattr__(self, "supersample", s)

    def to_dict(self) -> dict[str, Any]:
        """All fields as a JSON-ready dict of Python ``float`` and ``int``."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FoamParameters:
        """Inverse of :meth:`to_dict`.

        Raises
        ------
        ValueError
            If `data` has unknown keys or lacks ``porosity`` or
            ``cell_diameter`` (the others have defaults), or holds bad values.
        """
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown FoamParameters keys {unknown}; known: {sorted(names)}")
        missing = [k for k in ("porosity", "cell_diameter") if k not in data]
        if missing:
            raise ValueError(f"FoamParameters needs the keys {missing}")
        return cls(**dict(data))

    def generate(self, shape=(64, 64, 64), *, rng=None) -> Foam:
        """Generate one periodic foam with these parameters.

        Parameters
        ----------
        shape : tuple of 3 int, default (64, 64, 64)
            Box ``(Z, Y, X)`` in voxels.
        rng : int, numpy.random.Generator or None
            Random source, normalised with :func:`numpy.random.default_rng`.

        Returns
        -------
        Foam
            See :func:`foamlib.foam.closed_cell_foam`; ``Foam.porosity``
            equals `porosity` (to about 1e-4).
        """
        return closed_cell_foam(
            shape,
            cell_diameter=self.cell_diameter,
            wall_thickness=self.wall_strut_ratio,
            strut_diameter=1.0,
            porosity=self.porosity,
            cell_size_cv=self.cell_size_cv,
            supersample=self.supersample,
            rng=rng,
        )


# --------------------------------------------------------------------------- generators


#: Parameters of any step-1 generator.
GeneratorParameters = Union[FoamParameters, OpenCellParameters, SphereParameters, FibreParameters]
_PARAMETERS = {cls.kind: cls for cls in (FoamParameters, OpenCellParameters, SphereParameters, FibreParameters)}
#: The step-1 generators, the values of the study's setting ``generator``: ``"closed-cell"``
#: (:func:`foamlib.foam.closed_cell_foam`, the paper's), ``"open-cell"``
#: (:func:`foamlib.generators.open_cell_foam`), ``"spheres"``
#: (:func:`foamlib.generators.overlapping_spheres`) and ``"fibres"``
#: (:func:`foamlib.generators.overlapping_fibres`).
GENERATORS = tuple(_PARAMETERS)
#: The generator of the paper, and of the study unless a profile chooses another.
DEFAULT_GENERATOR = "closed-cell"


def parameters_class(generator: str) -> type:
    """The parameter class of a step-1 generator.

    Parameters
    ----------
    generator : str
        One of :data:`GENERATORS`.

    Returns
    -------
    type
        :class:`FoamParameters`, :class:`~foamlib.generators.OpenCellParameters`,
        :class:`~foamlib.generators.SphereParameters` or
        :class:`~foamlib.generators.FibreParameters`; each has ``generate(shape, rng=)``,
        ``to_dict()``, ``from_dict()``, the class attributes ``kind`` (the
        generator's name) and ``size_name`` (the field the fit scales), and
        the fields ``porosity`` and that size.

    Raises
    ------
    ValueError
        If `generator` is not one of :data:`GENERATORS` (the message names them).
    """
    return _PARAMETERS[check_choice("generator", generator, GENERATORS)]


def training_parameters(parameters: GeneratorParameters, *, supersample: int = 1,
                        min_wall_strut_ratio: float = 0.0) -> GeneratorParameters:
    """A fit's parameters made ready for the training set: supersampled, closed-cell walls kept.

    Parameters
    ----------
    parameters : GeneratorParameters
        E.g. ``fit_parameters(...).parameters``.
    supersample : int, default 1
        Sub-points per voxel and axis, 1 to 16, for the generators that
        supersample (closed- and open-cell foams); the spheres and fibres
        always carry partial volume (see :mod:`foamlib.generators`) and ignore it.
    min_wall_strut_ratio : float, default 0.0
        Floor of a closed-cell foam's wall/strut ratio, >= 0 (a fit to a
        blurred scan can drive it to its lower bound: foams without walls);
        the other generators have no walls and ignore it.

    Returns
    -------
    GeneratorParameters
        Of the same class as `parameters`.
    """
    supersample = check_int("supersample", supersample, low=1, high=16)
    min_ratio = check_real("min_wall_strut_ratio", min_wall_strut_ratio, low=0.0)
    if isinstance(parameters, FoamParameters):
        return replace(parameters, supersample=supersample,
                       wall_strut_ratio=max(parameters.wall_strut_ratio, min_ratio))
    if isinstance(parameters, OpenCellParameters):
        return replace(parameters, supersample=supersample)
    if isinstance(parameters, (SphereParameters, FibreParameters)):
        return parameters
    raise TypeError(f"parameters must be one of {_class_names()}, got {type(parameters).__name__}")


def _class_names() -> str:
    return ", ".join(cls.__name__ for cls in _PARAMETERS.values())


def _size(parameters) -> float:
    """The fitted size of a generator's parameters (cell, grain or fibre diameter), voxels."""
    return getattr(parameters, parameters.size_name)


# --------------------------------------------------------------------------- fit


#: Keys of the statistics dicts of :class:`FitResult` (lengths in voxels).
STATISTICS = (
    "porosity",
    "n_pores",
    "median_pore_diameter",
    "mean_pore_diameter",
    "mean_pore_chord",
    "mean_wall_thickness",
    "median_wall_thickness",
)


@dataclass(frozen=True)
class FitResult:
    """Outcome of :func:`fit_foam_parameters`.

    Attributes
    ----------
    parameters : GeneratorParameters
        The fitted generator parameters (:class:`FoamParameters` for the
        closed-cell foam; see :func:`parameters_class`).
    measured : dict
        Statistics of the scan (the report), keys :data:`STATISTICS` and
        ``pore_chord_se``: ``porosity`` (fraction), ``n_pores`` and pore
        diameters (NaN without pores), the mean pore chord (and its standard
        error) and wall thicknesses in voxels.
    generated : dict
        The same statistics measured the same way on foams generated with
        `parameters` (the last evaluation of the fit), pooled over
        ``generated["realisations"]`` foams.
    iterations : int
        Number of parameter updates done.
    history : tuple of dict
        One entry per evaluation (``iterations + 1``): the parameters tried
        (``parameters``) and what was measured on their foam (``generated``).
    size_target : str
        The statistic the cell diameter (or the grain or fibre diameter) was
        fitted to: ``"pore_diameter"`` (median interior pore diameter),
        ``"chord"`` (mean pore chord) or ``"thickness"`` (mean local
        thickness of the solid; spheres and fibres).
    """

    parameters: FoamParameters
    measured: dict
    generated: dict
    iterations: int
    history: tuple = ()
    size_target: str = "pore_diameter"

    @property
    def generator(self) -> str:
        """The generator fitted, one of :data:`GENERATORS`."""
        return self.parameters.kind

    @property
    def cell_diameter_se(self) -> float:
        """Standard error of the fitted size in voxels, from the chord statistics; NaN for the other targets.

        The size is the cell diameter of a foam (the grain or fibre diameter
        of the other generators).

        With the chord target the cell diameter scales with the mean pore
        chord, so its relative standard error is that of the scan's mean
        chord and of the generated one combined:
        ``cell_diameter * hypot(se_m / chord_m, se_g / chord_g)``. It covers
        the sampling noise of the scan and of the generated foams, not the
        model error (see the Notes of :func:`fit_foam_parameters`).
        """
        if self.size_target != "chord":
            return math.nan
        rel_m = self.measured["pore_chord_se"] / self.measured["mean_pore_chord"]
        rel_g = self.generated["pore_chord_se"] / self.generated["mean_pore_chord"]
        return float(_size(self.parameters) * math.hypot(rel_m, rel_g))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (parameters as :meth:`FoamParameters.to_dict`, plus ``cell_diameter_se`` and ``generator``)."""
        return {
            "generator": self.generator,
            "parameters": self.parameters.to_dict(),
            "cell_diameter_se": self.cell_diameter_se,
            "measured": dict(self.measured),
            "generated": dict(self.generated),
            "iterations": self.iterations,
            "history": [dict(h) for h in self.history],
            "size_target": self.size_target,
        }

    def table(self) -> dict[str, dict[str, float]]:
        """``{statistic: {"measured": m, "generated": g}}``, e.g. for ``pandas.DataFrame(...).T``."""
        return {k: {"measured": self.measured[k], "generated": self.generated[k]} for k in STATISTICS}


def _float(value) -> float:
    return math.nan if value is None else float(value)


def _statistics(report: StructureReport) -> dict[str, float]:
    """The fitted statistics of a report, in voxels (NaN for undefined pore diameters)."""
    return {
        "porosity": float(report.porosity),
        "n_pores": int(report.n_pores),
        "median_pore_diameter": _float(report.median_pore_diameter_voxels),
        "mean_pore_diameter": _float(report.mean_pore_diameter_voxels),
        "mean_pore_chord": _float(report.mean_pore_chord_voxels),
        "pore_chord_se": _float(report.pore_chord_se_voxels),
        "pore_chord_cv": _float(report.pore_chord_cv),
        "mean_wall_thickness": float(report.mean_wall_thickness_voxels),
        "median_wall_thickness": float(report.median_wall_thickness_voxels),
    }


def _start_cv(pore_diameters, cell_size_cv) -> float:
    if cell_size_cv is not None:
        return check_real("cell_size_cv", cell_size_cv, low=0.0, high=1.0)
    if pore_diameters is not None:
        d = np.asarray(pore_diameters, dtype=np.float64).ravel()
        d = d[np.isfinite(d) & (d > 0)]
        if d.size >= 3:
            cv = float(np.std(d) / np.mean(d))
            return float(np.clip(cv, *_CV_RANGE))
        logger.warning("only %d valid pore diameters: cell_size_cv falls back to %.2f", d.size, _DEFAULT_CV)
        return _DEFAULT_CV
    logger.info("no pore diameters given: cell_size_cv = %.2f (default)", _DEFAULT_CV)
    return _DEFAULT_CV


def _porosity_step(
    target: float, previous: tuple[float, float] | None, slope: float, measured: float, generated: float
) -> tuple[float, tuple[float, float], float]:
    """One fit step of the generator's porosity target: ``(target, previous, slope)`` for the next step.

    The target moves by the binarisation offset (measured minus generated porosity) divided by the
    secant slope d(binary porosity) / d(target) of the last two steps (1 without supersampling; up to
    ~3 with walls about a voxel thick, which enter or leave the binary structure wholesale).
    """
    if previous is not None and abs(target - previous[0]) > 1e-4:
        slope = float(np.clip((generated - previous[1]) / (target - previous[0]), *_POROSITY_SLOPE_RANGE))
    return float(np.clip(target + (measured - generated) / slope, *_POROSITY_RANGE)), (target, generated), slope


def _check_fit_arguments(report, shape, iterations, supersample, min_pores, max_realisations) -> tuple:
    """The fits' common arguments checked and normalised: ``(shape, iterations, supersample, min_pores, max_realisations)``."""
    if not isinstance(report, StructureReport):
        raise TypeError(f"report must be a StructureReport, got {type(report).__name__}")
    if report.ndim != 3:
        raise ValueError(f"report must describe a 3D volume (ndim=3), got ndim={report.ndim}")
    if not _is_shape(shape):
        raise ValueError(f"shape must be a tuple of 3 positive ints (Z, Y, X), got {shape!r}")
    return (tuple(int(n) for n in shape), check_int("iterations", iterations, low=0),
            check_int("supersample", supersample, low=1, high=16), check_int("min_pores", min_pores, low=1),
            check_int("max_realisations", max_realisations, low=1))


def _check_measured(measured: dict[str, float], keys: tuple[str, ...]) -> None:
    """Refuse a report whose statistics ``keys`` are not finite and positive, or whose porosity is not below 1."""
    for key in keys:
        value = measured[key]
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"report {key} must be finite and positive, got {value!r}")
    if not measured["porosity"] < 1:
        raise ValueError(f"report porosity must be < 1, got {measured['porosity']!r}")


def _size_bound(report: StructureReport, measured: dict[str, float], size_key: str, start: float) -> float:
    """The largest generator size a fit may try; a report whose size exceeds the field of view is refused.

    A statistic above :data:`MAX_SIZE_PER_FIELD` times the longest axis of the analysed volume
    (``report.shape``; no bound for a report without it) is refused with a ValueError naming what
    the scan shows. Otherwise the bound is ``start`` (generator size per unit of the statistic)
    times that many axes: a fitted cell may be as large as the field of view, twice over.
    """
    if not report.shape:
        return math.inf
    field = max(int(n) for n in report.shape)
    limit = MAX_SIZE_PER_FIELD * field
    if measured[size_key] > limit:
        raise ValueError(
            f"the report's {size_key.replace('_', ' ')} is {measured[size_key]:.4g} voxels, more than "
            f"{MAX_SIZE_PER_FIELD:g} times the longest axis of the analysed volume {tuple(report.shape)} "
            f"(porosity {measured['porosity']:.4f}, {measured['n_pores']} pores inside): the field of view holds "
            "less than one cell, so the scan does not measure the cell size. A porosity this close to 1 or 0 "
            "usually means the segmentation found almost no solid or no pore (check the threshold and the "
            "scan's grey range); otherwise analyse a larger field of view"
        )
    return start * limit


def _fit_inputs(report: StructureReport, rng, max_realisations: int, size_target: str) -> tuple[list, dict]:
    """The child seeds of every evaluation (one per realisation) and the measuring options of the report."""
    base = streams.base_seed(rng)
    seeds = [streams.rng(base, "fitting", "realisation", i) for i in range(max_realisations)]
    options = {"exclude_border_pores": bool(report.border_pores_excluded),
               "min_pore_voxels": int(report.min_pore_voxels), "size_target": size_target}
    return seeds, options


def _evaluate(params: GeneratorParameters, shape, seeds, options: dict, min_pores: int, history: list[dict],
              step: int) -> dict[str, float]:
    """Generate and measure ``params`` with the same seeds as every step; the step is appended to ``history``."""
    # the same child seeds at every step (fresh Generators from copies of their states)
    generated = _measure(params, shape, [_copy(g) for g in seeds], options, min_pores)
    history.append({"parameters": params.to_dict(), "generated": dict(generated)})
    logger.debug("fit step %d: %s -> %s", step, params, generated)
    return generated


def fit_foam_parameters(
    report: StructureReport,
    *,
    shape=(64, 64, 64),
    iterations: int = 4,
    supersample: int = 1,
    pore_diameters=None,
    cell_size_cv: float | None = None,
    min_pores: int = 20,
    max_realisations: int = 4,
    size_target: str = "auto",
    rng=None,
) -> FitResult:
    """Calibrate the foam generator to the statistics of a segmented scan.

    Fixed-point iteration: a foam is generated with the current parameters,
    binarised (``Foam.solid``), measured with :func:`foamlib.structure.analyze`
    using the report's own options (``exclude_border_pores``,
    ``min_pore_voxels``), and the parameters are corrected from the
    differences to the report:

    * **porosity** is targeted directly (``porosity=`` of the generator); with
      ``supersample > 1`` the binarised foam is more porous than the target
      (sub-half-voxel walls vanish) or less, so the target is shifted by the
      measured difference, divided by the secant slope of binary over
      target porosity (start 1);
    * **cell diameter** is multiplied by the ratio of measured to generated
      *median* pore diameter (more robust than the mean against the few
      small fragments the watershed leaves; at most a factor 2 per step),
      or, where the scan has fewer than :data:`MIN_INTERIOR_PORES` pores
      (cells large against the volume, ``size_target="auto"``), by the
      ratio of measured to generated *mean pore chord*
      (:func:`foamlib.structure.pore_chords`), which counts the pores cut
      by the border too;
    * **wall/strut ratio** is corrected from the *mean* wall thickness (the
      median is quantised to a few values of the local-thickness transform,
      useless for a continuous fit). At fixed porosity more wall material
      means thinner struts, so the mean thickness *falls* with the ratio, and
      only weakly (log-log slope about -0.15, and saturating): the ratio is
      updated by secant steps in log space (slope refined from the
      iterations, at most a factor 4 per step, kept in [0.005, 5]), allowing
      for the thickness change the new cell diameter brings (about
      ``cell_diameter ** 0.4``). With the chord target the ratio follows the
      coefficient of variation of the pore chords instead
      (:attr:`foamlib.structure.PoreChords.cv`, start slope -0.35, no cell
      term: it does not depend on scale), because where walls are thinner
      than a voxel the mean wall thickness cannot tell a small cell whose
      walls vanished from a large cell with walls, which have the same mean
      chord; their chord spreads differ (cv 0.67 against 0.47).

    Because both sides are measured with the same tool on binary volumes of
    the same kind, the tools' biases cancel: the local thickness reads thin
    walls about 0.7 voxel too thick, the watershed splits and cuts pores,
    and sub-voxel walls vanish from a segmentation, on the scan and on the
    generated foam alike. The fitted parameters are therefore *generator*
    parameters (e.g. the cell diameter is not the measured pore diameter),
    not corrected measurements.

    Parameters
    ----------
    report : StructureReport
        Measurements of the scan's segmentation, from
        :func:`foamlib.structure.analyze` of a 3D volume of any shape
        (lengths in voxels).
    shape : tuple of 3 int, default (64, 64, 64)
        Box ``(Z, Y, X)`` of the generated foams in voxels, any shape. For
        the pore-diameter target with ``report.border_pores_excluded`` it
        must hold a few cells (interior pores); without, pore fragments at
        the faces enter both sides, so use the shape of the analysed scan
        volume (e.g. ``otsu.shape``). The chord target does not depend on
        the border. An axis shorter than two cell diameters is generated
        two cell diameters long (the generator is periodic, and a shorter
        period would flatten the cells) and cropped to `shape`, so the
        generated foams are cut like the scan.
    iterations : int, default 4
        Number of parameter updates (the foam is generated and measured
        ``iterations + 1`` times); 0 evaluates the start values only.
    supersample : int, default 1
        Supersampling of the generated foams (and of the fitted
        parameters), 1 to 16.
    pore_diameters : array_like, optional
        The scan's individual pore diameters in voxels (e.g.
        ``pore_sizes(...).diameters_um / voxel_size_um``); their
        coefficient of variation, clamped to [0, 0.4], sets `cell_size_cv`.
    cell_size_cv : float, optional
        Cell-size coefficient of variation to use (overrides
        `pore_diameters`). Default: from `pore_diameters`, else 0.25. It is
        not fitted.
    min_pores : int, default 20
        Each evaluation generates foams (up to `max_realisations`, each of
        `shape`) until at least this many pores are counted; pore diameters
        and local thicknesses are pooled over them.
    max_realisations : int, default 4
        Most foams generated per evaluation, >= 1. With the chord target,
        foams are pooled until the standard error of the generated mean
        chord is below 2 % of it, or this many.
    size_target : {"auto", "pore_diameter", "chord"}, default "auto"
        What the cell diameter is fitted to: the median pore diameter of the
        report's pores, the mean pore chord, or (``"auto"``) the pore
        diameter where the report counts at least
        :data:`MIN_INTERIOR_PORES` (10) pores and the chord otherwise. See
        Notes for the accuracy of each.
    rng : int, numpy.random.Generator or None
        Random source, normalised with :func:`numpy.random.default_rng`.
        Every iteration uses the same seeds (common random numbers), so the
        corrections respond to the parameters rather than to new
        realisations.

    Returns
    -------
    FitResult
        Fitted parameters, measured and generated statistics side by side,
        and the size target used.

    Raises
    ------
    ValueError
        If the report is not 3D, has no finite positive porosity, mean wall
        thickness or size statistic (median pore diameter for the pore
        target, mean chord for the chord target), a size statistic above
        :data:`MAX_SIZE_PER_FIELD` times the longest axis of the analysed
        volume (a field of view holding less than one cell, or a
        segmentation with almost no solid), or for bad options.

    Notes
    -----
    The generated statistics pool up to `max_realisations` foams (see
    `min_pores`), so they are steadier than those of one scan of the same
    size.

    Start values: cell diameter ``1.15 x`` the median pore diameter (or
    ``1.55 x`` the mean pore chord), wall/strut ratio 0.2, porosity the
    measured one. With ``size_target="pore_diameter"`` a report with fewer
    than 5 pores is fitted anyway, with a warning (its median is
    unreliable). If a
    generated foam has no measurable pore (cells too large for `shape` with
    border pores excluded), the cell diameter is left unchanged in that
    step, with a warning.

    Accuracy of the fitted cell diameter against the generator's truth
    (default options, reports with ``exclude_border_pores=True``, measured
    on foams generated at ``supersample=1``):

    * many interior pores (64^3 voxels, 18-voxel cells, 18-19 interior
      pores, 3 seeds): pore-diameter target +3 % to +10 %, chord target
      -7 % to -12 %; so ``"auto"`` keeps the pore diameter there;
    * cells as large as the field of view, no interior pore: a 60 x 130 x
      96 crop of a foam with 70-voxel cells (chord standard error about
      10 %, fitted in a 60 x 64 x 64 box), 2 seeds: +10 % and -5 %; a
      20 x 56 x 48 crop with 20-voxel cells, 4 seeds: -15 % to +1 %;
    * the demo sample ``foam89`` at 64^3 (28-voxel cells, wall/strut ratio
      0.04, supersampled, so many walls vanish; 2-3 interior pores), fitted
      with ``supersample=3``: chord target -11 % on the truth and -8.5 % on
      its Otsu segmentation (the ratio ends at its lower bound); the
      pore-diameter target gives +12 % to +42 % (truth) and +26 % to +53 %
      (Otsu), and the chord target with the ratio fitted to the wall
      thickness gave +60 % and +35 %. Each evaluation takes about 0.7 s at 64^3 voxels.
    """
    shape, iterations, supersample, min_pores, max_realisations = _check_fit_arguments(
        report, shape, iterations, supersample, min_pores, max_realisations)
    if size_target not in SIZE_TARGETS:
        raise ValueError(f"size_target must be one of {SIZE_TARGETS}, got {size_target!r}")
    measured = _statistics(report)
    if size_target == "auto":
        size_target = "pore_diameter" if measured["n_pores"] >= MIN_INTERIOR_PORES else "chord"
        logger.info("report counts %d pores: cell size fitted to the %s", measured["n_pores"],
                    "median pore diameter" if size_target == "pore_diameter" else "mean pore chord")
    size_key = "median_pore_diameter" if size_target == "pore_diameter" else "mean_pore_chord"
    _check_measured(measured, ("porosity", size_key, "mean_wall_thickness"))
    if size_target == "pore_diameter" and measured["n_pores"] < _FEW_PORES:
        logger.warning(
            "report counts only %d pores: the median pore diameter (%.3g voxels) is unreliable",
            measured["n_pores"], measured["median_pore_diameter"],
        )
    cv = _start_cv(pore_diameters, cell_size_cv)
    seeds, options = _fit_inputs(report, rng, max_realisations, size_target)

    target_p = float(np.clip(measured["porosity"], *_POROSITY_RANGE))
    per_size = _CELL_PER_PORE if size_target == "pore_diameter" else _CELL_PER_CHORD
    max_cell = max(MIN_CELL_DIAMETER, _size_bound(report, measured, size_key, per_size))
    cell = min(max_cell, max(MIN_CELL_DIAMETER, per_size * measured[size_key]))
    log_ratio = math.log(_START_RATIO)
    # the wall/strut ratio follows the chord cv in chord fits (the mean wall thickness hardly
    # tells thin walls from missing ones, which the chord length confounds with the cell size)
    if size_target == "chord" and measured["pore_chord_cv"] > 0:
        ratio_key, per_cell, elasticity = "pore_chord_cv", 0.0, _START_CV_ELASTICITY
    else:
        ratio_key, per_cell, elasticity = "mean_wall_thickness", _THICKNESS_PER_CELL, _START_ELASTICITY
    previous: tuple[float, float] | None = None  # (log ratio, reduced log thickness)
    p_previous: tuple[float, float] | None = None  # (target porosity, binary porosity)
    p_slope = 1.0
    history: list[dict] = []
    if size_target == "pore_diameter" and cell > min(shape) / 2.5:
        logger.warning("cell diameter %.3g voxels is large for a %s box: few pores to measure", cell, tuple(shape))

    params = None
    generated: dict[str, float] = {}
    for step in range(iterations + 1):
        params = FoamParameters(
            porosity=target_p, cell_diameter=cell, cell_size_cv=cv,
            wall_strut_ratio=math.exp(log_ratio), supersample=supersample,
        )
        generated = _evaluate(params, shape, seeds, options, min_pores, history, step)
        if step == iterations:
            break
        target_p, p_previous, p_slope = _porosity_step(target_p, p_previous, p_slope, measured["porosity"],
                                                       generated["porosity"])
        # cell diameter: proportional to the pore diameter (or to the mean pore chord)
        if generated[size_key] > 0:  # False for NaN (no pore counted)
            factor = measured[size_key] / generated[size_key]
            cell = min(max_cell, max(MIN_CELL_DIAMETER,
                                     cell * float(np.clip(factor, 1 / _MAX_CELL_STEP, _MAX_CELL_STEP))))
        else:
            logger.warning("generated foam (cell diameter %.3g) has no measurable pore; cell diameter kept", cell)
        # wall/strut ratio: secant step in log space on the mean wall thickness (or the chord
        # coefficient of variation), corrected for the cell-diameter change of this step
        # (thickness ~ cell_diameter ** 0.4; the chord cv does not depend on scale)
        if generated[ratio_key] > 0:
            error = math.log(generated[ratio_key] / measured[ratio_key])
            error += per_cell * math.log(cell / params.cell_diameter)
            # statistic reduced to the final cell diameter's scale, for the slope estimate
            reduced = math.log(generated[ratio_key]) - per_cell * math.log(params.cell_diameter)
            if previous is not None and abs(log_ratio - previous[0]) > _MIN_SECANT_STEP:
                slope = (reduced - previous[1]) / (log_ratio - previous[0])
                if slope < 0:  # expected sign; otherwise noise dominates, keep the old slope
                    elasticity = float(np.clip(slope, *_ELASTICITY_RANGE))
            previous = (log_ratio, reduced)
            delta = float(np.clip(-error / elasticity, -math.log(_MAX_RATIO_STEP), math.log(_MAX_RATIO_STEP)))
            log_ratio = float(np.clip(log_ratio + delta, *np.log(_RATIO_RANGE)))
    assert params is not None
    if params.cell_diameter <= MIN_CELL_DIAMETER and generated[size_key] > measured[size_key]:
        raise ValueError(
            f"the closed-cell fit needs cells smaller than {MIN_CELL_DIAMETER:g} voxels: at that bound its foam's "
            f"{size_key.replace('_', ' ')} is {generated[size_key]:.3g} voxels against the scan's "
            f"{measured[size_key]:.3g} ({measured['n_pores']} pores inside the scan, porosity {measured['porosity']:.3f}, "
            f"mean wall thickness {measured['mean_wall_thickness']:.3g} voxels). Cells that small cannot hold a wall "
            "and a pore the scan resolves; the structure is likely not a closed-cell foam at this resolution. "
            "Choose another step-1 generator (the profile key generator: open-cell, spheres or fibres)"
        )
    if abs(math.log(params.wall_strut_ratio) - math.log(_RATIO_RANGE[0])) < 1e-9 or abs(
        math.log(params.wall_strut_ratio) - math.log(_RATIO_RANGE[1])
    ) < 1e-9:
        logger.warning(
            "wall/strut ratio hit its bound %.3g: the measured %s %.3g is out of the generator's range "
            "(last generated %.3g)",
            params.wall_strut_ratio, ratio_key.replace("_", " "), measured[ratio_key], generated[ratio_key],
        )
    return FitResult(parameters=params, measured=measured, generated=generated,
                     iterations=iterations, history=tuple(history), size_target=size_target)


#: Values of ``size_target`` for the generators other than the closed-cell foam, and the statistic each fits.
_SIZE_KEYS = {"pore_diameter": "median_pore_diameter", "chord": "mean_pore_chord",
              "thickness": "mean_wall_thickness"}
#: Start value of the fitted size over the statistic it is fitted to, per generator and size target.
_START_SIZE = {
    "open-cell": {"pore_diameter": _CELL_PER_PORE, "chord": _CELL_PER_CHORD, "thickness": 8.0},
    # a sphere's or a cylinder's local thickness is its diameter (overlaps make it somewhat thicker)
    "spheres": {"pore_diameter": 1.5, "chord": 1.5, "thickness": 0.9},
    "fibres": {"pore_diameter": 0.3, "chord": 0.3, "thickness": 1.0},
}


def fit_parameters(
    report: StructureReport,
    *,
    generator: str = DEFAULT_GENERATOR,
    shape=(64, 64, 64),
    iterations: int = 4,
    supersample: int = 1,
    min_pores: int = 20,
    max_realisations: int = 4,
    size_target: str = "auto",
    rng=None,
) -> FitResult:
    """Calibrate a step-1 generator to the statistics of a segmented scan.

    ``generator="closed-cell"`` is :func:`fit_foam_parameters` with the same
    arguments (and the same result). The other generators of
    :data:`GENERATORS` have two fitted parameters, the porosity and one size
    (:attr:`size_name`: cell, grain or fibre diameter; their other
    parameters keep their defaults), fitted by the same fixed-point
    iteration with common random numbers: structures are generated,
    binarised and measured with :func:`foamlib.structure.analyze`'s tools
    and the report's options, and

    * the **porosity** target is shifted by the difference of measured and
      generated binary porosity, over the secant slope of binary over target
      porosity (the generators meet the target with their solid *fraction*;
      the binary structure differs by partial-volume voxels);
    * the **size** is multiplied by the ratio of the measured to the
      generated size statistic (at most a factor 2 per step): the median
      pore diameter or the mean pore chord for the open-cell foam (chosen as
      for the closed-cell foam, ``size_target="auto"``), the mean local
      thickness of the solid for spheres and fibres (``"thickness"``, the
      grain or fibre diameter itself), unless `size_target` names another.

    At fixed porosity each of these structures is similar to itself at every
    scale, so every size statistic is proportional to the size and the
    iteration converges in a few steps; both sides are measured with the
    same tools, so their biases cancel as in :func:`fit_foam_parameters`.

    Parameters
    ----------
    report : StructureReport
        Measurements of the scan's segmentation (3D, lengths in voxels).
    generator : str, default "closed-cell"
        One of :data:`GENERATORS`.
    shape : tuple of 3 int, default (64, 64, 64)
        Box ``(Z, Y, X)`` of the generated structures in voxels; an axis
        shorter than two sizes is generated that long and cropped.
    iterations : int, default 4
        Number of parameter updates (``iterations + 1`` evaluations).
    supersample : int, default 1
        Supersampling of the generated foams, 1 to 16; the spheres and
        fibres ignore it (they carry partial volume of their own).
    min_pores : int, default 20
        With the pore-diameter target each evaluation pools structures until
        this many pores are counted.
    max_realisations : int, default 4
        Most structures per evaluation, >= 1; the thickness target pools
        this many, the chord target until the mean chord's standard error
        is below 2 % of it.
    size_target : {"auto", "pore_diameter", "chord", "thickness"}, default "auto"
        What the size is fitted to (see above); the closed-cell foam takes
        the values of :data:`SIZE_TARGETS`.
    rng : int, numpy.random.Generator or None
        Random source; every evaluation uses the same seeds.

    Returns
    -------
    FitResult
        Fitted parameters (of :func:`parameters_class` of `generator`),
        measured and generated statistics, and the size target used.

    Raises
    ------
    ValueError
        For an unknown generator (naming the known ones), a report that is
        not 3D or has no finite positive porosity below 1 or size statistic,
        a size statistic above :data:`MAX_SIZE_PER_FIELD` times the longest
        axis of the analysed volume, or bad options.

    Notes
    -----
    Fits in a 40^3 box (3 iterations, 2 realisations, well under a second
    for spheres and fibres, about 2 s for open cells) to 48^3 structures
    made by other processes: PoreSpy's overlapping balls of radius 4
    (porosity 0.508 / generated 0.508, thickness 8.18 / 8.21 voxels,
    grain diameter 7.64 against 7.89 by volume); the validation suite's
    packing without overlaps (0.693 / 0.693, 6.71 / 6.78, grains of 6.76
    against a mean of 8: the fit matches the thickness, which that packing
    reads low); its infinite fibres of diameter 4 (0.836 / 0.836, 4.20 /
    4.02, fibres of 4.21); PoreSpy's Voronoi edges (open cells, few
    interior pores, so the chord: 0.888 / 0.891, 21.1 / 21.5). A generator
    fitted to a scan of a material it does not describe (spheres to a
    closed-cell foam, say) still meets the porosity and the size
    statistic, but not the other statistics of the table.
    """
    cls = parameters_class(generator)
    if cls is FoamParameters:
        return fit_foam_parameters(report, shape=shape, iterations=iterations, supersample=supersample,
                                   min_pores=min_pores, max_realisations=max_realisations, size_target=size_target,
                                   rng=rng)
    shape, iterations, supersample, min_pores, max_realisations = _check_fit_arguments(
        report, shape, iterations, supersample, min_pores, max_realisations)
    check_choice("size_target", size_target, ("auto", *_SIZE_KEYS))
    measured = _statistics(report)
    if size_target == "auto":
        if cls is OpenCellParameters:
            size_target = "pore_diameter" if measured["n_pores"] >= MIN_INTERIOR_PORES else "chord"
        else:
            size_target = "thickness"
    size_key = _SIZE_KEYS[size_target]
    _check_measured(measured, ("porosity", size_key))
    seeds, options = _fit_inputs(report, rng, max_realisations, size_target)
    extra = {"supersample": supersample} if cls is OpenCellParameters else {}

    target_p = float(np.clip(measured["porosity"], *_POROSITY_RANGE))
    max_size = _size_bound(report, measured, size_key, _START_SIZE[cls.kind][size_target])
    size = min(max_size, _START_SIZE[cls.kind][size_target] * measured[size_key])
    p_previous: tuple[float, float] | None = None
    p_slope = 1.0
    history: list[dict] = []
    params = None
    generated: dict[str, float] = {}
    for step in range(iterations + 1):
        params = cls(porosity=target_p, **{cls.size_name: size}, **extra)
        generated = _evaluate(params, shape, seeds, options, min_pores, history, step)
        if step == iterations:
            break
        target_p, p_previous, p_slope = _porosity_step(target_p, p_previous, p_slope, measured["porosity"],
                                                       generated["porosity"])
        if generated[size_key] > 0:  # False for NaN (no pore counted)
            size = min(max_size, size * float(np.clip(measured[size_key] / generated[size_key],
                                                      1 / _MAX_CELL_STEP, _MAX_CELL_STEP)))
        else:
            logger.warning("generated %s structure (%s %.3g) has no measurable %s; size kept",
                           cls.kind, cls.size_name.replace("_", " "), size, size_key.replace("_", " "))
    assert params is not None
    return FitResult(parameters=params, measured=measured, generated=generated,
                     iterations=iterations, history=tuple(history), size_target=size_target)


def _copy(gen: np.random.Generator) -> np.random.Generator:
    """An independent Generator in the same state as `gen`."""
    bit = type(gen.bit_generator)()
    bit.state = gen.bit_generator.state
    return np.random.Generator(bit)


def _is_shape(shape) -> bool:
    try:
        return len(shape) == 3 and all(
            isinstance(n, Integral) and not isinstance(n, bool) and n > 0 for n in shape
        )
    except TypeError:
        return False


def _measure(params: GeneratorParameters, shape, seeds, options: dict, min_pores: int) -> dict[str, float]:
    """Statistics of structures generated with `params`, pooled until `min_pores` pores are counted.

    The measurement is that of :func:`foamlib.structure.analyze` (same
    :func:`~foamlib.structure.pore_sizes` and
    :func:`~foamlib.structure.wall_thickness` calls and options), pooled over
    realisations: porosity averaged, pore diameters and local thicknesses of
    all realisations together, chords weighted by their transition counts.
    No pore at all gives NaN pore diameters. Realisations are added until
    `min_pores` pores are counted (pore-diameter target) or the mean chord's
    standard error is below :data:`_CHORD_RSE` of it (chord target); the
    thickness target pools all `seeds`.
    """
    from .structure import pore_chords, porosity, pore_sizes, wall_thickness

    porosities, diameters, thickness, chords = [], [], [], []
    # a periodic box shorter than about two cells flattens the cells against their own images
    # (walls every period): generate a longer box and crop the field of view of the scan from it
    box = tuple(max(n, math.ceil(_PERIOD_CELLS * _size(params))) for n in shape)
    crop = tuple(slice(0, n) for n in shape)
    for seed in seeds:
        solid = params.generate(box, rng=seed).solid[crop]
        if solid.all() or not solid.any():
            what = "cells" if params.size_name == "cell_diameter" else params.size_name.split("_")[0] + "s"
            raise ValueError(
                f"a generated {params.kind} structure is all {'solid' if solid.any() else 'pore'} in a box of "
                f"{' x '.join(map(str, shape))} voxels ({what} of {_size(params):.0f} voxels, porosity "
                f"{params.porosity:.3f}): the generator cannot reproduce this structure in so small a box; "
                "fit in a larger box (fit_size) or use a generator made for this material"
            )
        porosities.append(porosity(solid))
        pores = pore_sizes(solid, exclude_border=options["exclude_border_pores"],
                           min_voxels=options["min_pore_voxels"])
        diameters.append(pores.diameters_um)
        thickness.append(wall_thickness(solid).values_um)
        chords.append(pore_chords(solid))
        if options["size_target"] == "chord":
            chord, se = _pooled_chord(chords)
            if se <= _CHORD_RSE * chord:
                break
        elif options["size_target"] == "pore_diameter" and sum(d.size for d in diameters) >= min_pores:
            break
    d = np.concatenate(diameters)
    t = np.concatenate(thickness)
    chord, se = _pooled_chord(chords)
    n_int = np.array([c.n_interior for c in chords], dtype=np.float64)
    cvs = np.array([c.cv for c in chords])
    ok = np.isfinite(cvs)
    cv = float(np.sum(n_int[ok] * cvs[ok]) / np.sum(n_int[ok])) if ok.any() else math.nan
    return {
        "porosity": float(np.mean(porosities)),
        "n_pores": int(d.size),
        "median_pore_diameter": float(np.median(d)) if d.size else math.nan,
        "mean_pore_diameter": float(np.mean(d)) if d.size else math.nan,
        "mean_pore_chord": chord,
        "pore_chord_se": se,
        "pore_chord_cv": cv,
        "mean_wall_thickness": float(np.mean(t, dtype=np.float64)),
        "median_wall_thickness": float(np.median(t)),
        "realisations": len(porosities),
    }


def _pooled_chord(chords) -> tuple[float, float]:
    """Mean pore chord of several realisations (weighted by transitions) and its standard error."""
    weights = np.array([c.n_transitions for c in chords], dtype=np.float64)
    means = np.array([c.mean_voxels for c in chords])
    ses = np.array([c.se_voxels for c in chords])
    mean = float(np.sum(weights * means) / np.sum(weights))
    w = weights / weights.sum()
    se = float(np.sqrt(np.sum((w * ses) ** 2))) if np.isfinite(ses).all() else math.nan
    return mean, se


# --------------------------------------------------------------------------- variation


def vary_parameters(parameters: GeneratorParameters, n: int, *, spread: float = 0.1,
                    rng=None) -> list[GeneratorParameters]:
    """Parameter sets scattered around a fit, for an information-rich training data base.

    Each set draws, independently and *uniformly*:

    * porosity ``p + u * spread * (1 - p)`` with ``u ~ U(-1, 1)`` (an
      absolute change, proportional to the solid fraction), clipped to
      [0.5, 0.99] for the closed-cell foam and [0.02, 0.99] for the other
      generators (widened to include `p` itself where it lies outside);
    * cell diameter ``d * (1 + u * spread)`` (the grain or fibre diameter
      of the other generators, :attr:`size_name`);
    * for the closed-cell foam, wall/strut ratio ``r * (1 + u * 2 * spread)``.

    The other fields (`cell_size_cv`, `supersample`, ...) are kept.

    Parameters
    ----------
    parameters : GeneratorParameters
        The centre, e.g. ``fit_parameters(...).parameters``.
    n : int
        Number of parameter sets, >= 1.
    spread : float, default 0.1
        Relative half-width of the variation, in [0, 0.5) (the ratio varies
        by twice this and must stay positive). 0 returns `n` copies of
        `parameters`.
    rng : int, numpy.random.Generator or None
        Random source, normalised with :func:`numpy.random.default_rng`.

    Returns
    -------
    list of GeneratorParameters
        `n` parameter sets of the class of `parameters`.
    """
    if not isinstance(parameters, tuple(_PARAMETERS.values())):
        raise TypeError(f"parameters must be one of {_class_names()}, got {type(parameters).__name__}")
    n = check_int("n", n, low=1)
    spread = check_real("spread", spread, low=0.0, high=0.5, high_open=True)
    gen = np.random.default_rng(rng)
    foam = isinstance(parameters, FoamParameters)
    u = gen.uniform(-1.0, 1.0, size=(n, 3 if foam else 2)) * spread
    p0 = parameters.porosity
    limits = _VARY_POROSITY_RANGE if foam else _VARY_POROSITY_RANGE_OTHERS
    lo, hi = min(limits[0], p0), max(limits[1], p0)
    if not foam:
        size = _size(parameters)
        return [replace(parameters, porosity=float(np.clip(p0 + up * (1.0 - p0), lo, hi)),
                        **{parameters.size_name: size * (1.0 + ud)}) for up, ud in u]
    out = []
    for up, ud, ur in u:
        out.append(replace(
            parameters,
            porosity=float(np.clip(p0 + up * (1.0 - p0), lo, hi)),
            cell_diameter=parameters.cell_diameter * (1.0 + ud),
            wall_strut_ratio=parameters.wall_strut_ratio * (1.0 + 2.0 * ur),
        ))
    return out


def generate_foams(
    parameter_sets: Iterable[GeneratorParameters],
    shape=(64, 64, 64),
    *,
    rng=None,
    progress: bool = False,
) -> Iterator[Foam | Structure]:
    """Generate one structure per parameter set, lazily, with independent random streams.

    Parameters
    ----------
    parameter_sets : iterable of GeneratorParameters
        E.g. from :func:`vary_parameters`; read (and checked) at once. Any
        generator's parameters (:func:`parameters_class`), the same for all.
    shape : tuple of 3 int, default (64, 64, 64)
        Box of every foam ``(Z, Y, X)`` in voxels.
    rng : int, numpy.random.Generator or None
        Random source (SPEC 7); item ``i`` draws from the stream
        ``foamlib.streams.rng(base_seed(rng), "foams", i)``, so it depends
        only on `rng` and ``i``.
    progress : bool, default False
        Show a tqdm progress bar.

    Yields
    ------
    Foam or Structure
        One per parameter set, in order: a :class:`~foamlib.foam.Foam` for
        the foams, a :class:`~foamlib.generators.Structure` for spheres and
        fibres; each has ``fraction``, ``solid`` and ``porosity``.

    Raises
    ------
    TypeError
        If an item is not the parameters of a generator, or the items mix generators.
    """
    sets = list(parameter_sets)
    for i, p in enumerate(sets):
        if not isinstance(p, tuple(_PARAMETERS.values())):
            raise TypeError(f"parameter_sets[{i}] must be one of {_class_names()}, got {type(p).__name__}")
        if type(p) is not type(sets[0]):
            raise TypeError(f"parameter_sets mixes generators: [0] is {sets[0].kind}, [{i}] is {p.kind}")
    if not _is_shape(shape):
        raise ValueError(f"shape must be a tuple of 3 positive ints (Z, Y, X), got {shape!r}")
    base = streams.base_seed(rng)
    children = [streams.rng(base, "foams", i) for i in range(len(sets))]
    return _generate(sets, tuple(int(s) for s in shape), children, bool(progress))


def _generate(sets, shape, children, progress) -> Iterator[Foam | Structure]:
    from .progress import progress_bar

    for params, child in progress_bar(zip(sets, children), total=len(sets), desc="foams", unit="foam", disable=not progress):
        yield params.generate(shape, rng=child)


def save_foam_set(folder, foams, parameter_sets) -> Path:
    """Store generated structures for the rendering stage: one compressed ``.npz`` per structure.

    Parameters
    ----------
    folder : path-like
        Destination folder (created). Existing ``foam_*.npz`` files in it are
        replaced, so a re-run never mixes two sets.
    foams : iterable of Foam or Structure
        The structures, e.g. from :func:`generate_foams`.
    parameter_sets : sequence of GeneratorParameters
        The parameters each structure was generated with, in the same order.

    Returns
    -------
    pathlib.Path
        ``folder``; it holds ``foam_000.npz``, ... (``fraction`` as float16,
        the per-voxel solid fraction) and ``foams.json`` (written last: a folder
        with it is complete), whose records name the ``generator`` too.
    """
    from .runs import atomic_path, write_json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "foams.json").unlink(missing_ok=True)
    for old in folder.glob("foam_*.npz"):
        old.unlink()
    records = []
    for i, (foam, params) in enumerate(zip(foams, parameter_sets, strict=True)):
        with atomic_path(folder / f"foam_{i:03d}.npz") as tmp:
            with open(tmp, "wb") as handle:
                np.savez_compressed(handle, fraction=foam.fraction.astype(np.float16))
        records.append({"file": f"foam_{i:03d}.npz", "porosity": foam.porosity, "generator": params.kind,
                        "parameters": params.to_dict()})
    write_json(folder / "foams.json", {"count": len(records), "foams": records})
    return folder


def load_foam_set(folder) -> list[tuple[np.ndarray, dict]]:
    """Read what :func:`save_foam_set` wrote.

    Returns
    -------
    list of (fraction, record)
        ``fraction``: (Z, Y, X) float32 solid fraction per voxel; ``record``: the
        structure's entry of ``foams.json`` (file, porosity, generator, parameters).

    Raises
    ------
    FileNotFoundError
        If ``folder/foams.json`` is missing (the generation stage has not run
        or did not finish).
    """
    from .runs import read_json

    index = read_json(Path(folder) / "foams.json")
    out = []
    for record in index["foams"]:
        with np.load(Path(folder) / record["file"], allow_pickle=False) as data:
            out.append((data["fraction"].astype(np.float32), record))
    return out
