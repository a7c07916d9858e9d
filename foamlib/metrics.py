"""The metrics each stage records, one dataclass per stage.

Every stage notebook records its headline numbers in its run folder's
``<stage>/metrics.json`` through :meth:`foamlib.runfolder.RunFolder.update_metrics`;
the study runner gathers them into ``summary.json`` (``summary["stages"]``)
and the results pages read them back. The classes here are that layout as
code: ``StageMetrics.from_json`` refuses an unknown key (naming the file
and the known keys), a missing required key or a value of the wrong type,
and ``StageMetrics.to_json`` writes the same layout the run folders
already hold, so existing run folders read as they are.

=======================  ======================  ==================================
``metrics.json`` of      written by              class
=======================  ======================  ==================================
``otsu``                 01 Otsu baseline        :class:`OtsuMetrics`
``step1_foams``          02 foam generation      :class:`FoamSetMetrics`
``step1_data``           03 rendering            :class:`RenderMetrics`
``step1_unet``           04 step-1 U-Net         :class:`UNetMetrics`
``step1``                05 step-1 segmentation  :class:`SegmentationMetrics`
``step2_gan``            06 GAN                  :class:`GanMetrics`
``step2_walls``          07 watershed walls      :class:`WallsMetrics`
``step2_cyclegan``       08 CycleGAN             :class:`CycleGanMetrics`
``step2_unet``           09 step-2 U-Net         :class:`UNetMetrics`
``step2``                09 step-2 segmentation  :class:`SegmentationMetrics`
``similarity``           10 similarity           :class:`SimilarityMetrics`
``porosity_validation``  11 porosity validation  :class:`PorosityValidationMetrics`
=======================  ======================  ==================================

Porosities are fractions; a non-finite number is stored as ``null``
(:func:`foamlib.runs.write_json`) and read back as NaN where the field is a
required number.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import typing
from collections.abc import Mapping
from typing import Any, ClassVar

from .runs import to_jsonable

__all__ = [
    "STAGE_METRICS",
    "CycleGanMetrics",
    "FidValues",
    "FoamSetMetrics",
    "GanMetrics",
    "KidValues",
    "MetricsError",
    "OtsuMetrics",
    "PorosityValidationMetrics",
    "RenderMetrics",
    "SegmentationMetrics",
    "SimilarityMetrics",
    "StageMetrics",
    "UNetMetrics",
    "WallsMetrics",
    "metrics_class",
    "parse_metrics",
]


class MetricsError(ValueError):
    """A stage's metrics do not have the layout of its class (names the file or stage and the key)."""


def _number(value: Any, where: str, *, optional: bool) -> float | None:
    if value is None:
        return None if optional else math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MetricsError(f"{where} must be a number, got {value!r}")
    return float(value)


def _convert(value: Any, hint: Any, where: str) -> Any:
    """``value`` (JSON-ready) checked against the type hint ``hint``."""
    args = typing.get_args(hint)
    optional = type(None) in args
    if optional:
        inner = [a for a in args if a is not type(None)]
        hint = inner[0] if len(inner) == 1 else hint
        if value is None:
            return None
    if hint is float:
        return _number(value, where, optional=optional)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise MetricsError(f"{where} must be an integer, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise MetricsError(f"{where} must be a string, got {value!r}")
        return value
    if isinstance(hint, type) and issubclass(hint, _Record):
        return hint.from_json(value, source=where)
    origin = typing.get_origin(hint)
    if origin is dict:
        if not isinstance(value, Mapping):
            raise MetricsError(f"{where} must be a mapping, got {type(value).__name__}")
        _, item = typing.get_args(hint)
        return {str(k): _convert(v, item, f"{where}[{k!r}]") for k, v in value.items()}
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise MetricsError(f"{where} must be a list, got {type(value).__name__}")
        (item,) = typing.get_args(hint)
        return [_convert(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    return value  # Any


class _Record:
    """from_json / to_json of a flat dataclass whose fields are JSON types or other records."""

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, source: str = "") -> Any:
        """Read the JSON layout (a mapping as :func:`foamlib.runs.read_json` returns it).

        Parameters
        ----------
        data : mapping
            The stored metrics.
        source : str, optional
            The file or stage, for messages.

        Returns
        -------
        StageMetrics
            An instance of ``cls``.

        Raises
        ------
        MetricsError
            For an unknown key (with the nearest known key), a missing
            required key or a value of the wrong type.
        """
        where = source or cls.__name__
        if not isinstance(data, Mapping):
            raise MetricsError(f"{where}: {cls.__name__} must be a mapping, got {type(data).__name__}")
        data = to_jsonable(dict(data))
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            near = difflib.get_close_matches(unknown[0], list(fields), n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise MetricsError(
                f"{where}: unknown key {unknown[0]!r}{hint} in {cls.__name__}; known keys: {', '.join(fields)}"
            )
        missing = [
            name for name, f in fields.items()
            if name not in data and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
        if missing:
            raise MetricsError(f"{where}: {cls.__name__} misses the key {missing[0]!r}")
        return cls(**{k: _convert(v, hints[k], f"{where}: {k}") for k, v in data.items()})

    def to_json(self) -> dict[str, Any]:
        """The JSON layout: plain types, non-finite numbers as None, nested records as mappings; optional fields that are None left out."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None and f.default is None:
                continue  # an optional value the stage did not record: absent, as before
            out[f.name] = value.to_json() if isinstance(value, _Record) else to_jsonable(value)
        return out


class StageMetrics(_Record):
    """Base class of the metrics of one stage (:data:`STAGE_METRICS` maps stage names to subclasses)."""

    #: The stages (``metrics.json`` folder names) whose metrics have this layout.
    stages: ClassVar[tuple[str, ...]] = ()


@dataclasses.dataclass(frozen=True)
class OtsuMetrics(StageMetrics):
    """Stage 01: the Otsu segmentation of the scan.

    Attributes
    ----------
    porosity : float
        Pore fraction of the Otsu segmentation.
    threshold : float or None
        The Otsu threshold, grey value of the scan.
    reference_porosity : float or None
        The sample's reference porosity (fraction), if known.
    porosity_by_method : dict of str to float or None
        Porosity of every global threshold the notebook compares.
    """

    stages: ClassVar[tuple[str, ...]] = ("otsu",)
    porosity: float
    threshold: float | None = None
    reference_porosity: float | None = None
    porosity_by_method: dict[str, float] | None = None


@dataclasses.dataclass(frozen=True)
class FoamSetMetrics(StageMetrics):
    """Stage 02: the fitted generator parameters and the generated structures.

    Attributes
    ----------
    n_foams : int
        Structures generated.
    fitted : dict
        ``to_dict()`` of the fitted parameters (``foamlib.fitting.FoamParameters``
        for the closed-cell foam).
    size_target : str
        What the fit matched the size to (``"pore_diameter"``, ``"chord"`` or ``"thickness"``).
    cell_diameter_se : float or None
        Standard error of the fitted cell diameter (grain or fibre diameter), voxels.
    foam_porosities : list of float
        Porosity of each generated structure.
    generator : str or None
        The step-1 generator, one of ``foamlib.fitting.GENERATORS`` (None: written
        before the generator was a choice, the closed-cell foam).
    """

    stages: ClassVar[tuple[str, ...]] = ("step1_foams",)
    n_foams: int
    fitted: dict[str, Any]
    size_target: str | None = None
    cell_diameter_se: float | None = None
    foam_porosities: list[float] | None = None
    generator: str | None = None


@dataclasses.dataclass(frozen=True)
class RenderMetrics(StageMetrics):
    """Stage 03: the rendered step-1 data set.

    Attributes
    ----------
    n_images : int
        Rendered images.
    grey_model : dict
        :meth:`foamlib.render.GreyModel.to_dict` of the fitted grey model.
    """

    stages: ClassVar[tuple[str, ...]] = ("step1_data",)
    n_images: int
    grey_model: dict[str, Any] | None = None


@dataclasses.dataclass(frozen=True)
class UNetMetrics(StageMetrics):
    """Stages 04 and 09: a trained U-Net on its synthetic test split.

    Attributes
    ----------
    test : dict of str to float
        :class:`foamlib.training.SegmentationMetrics` as a dict (``dice``, ...).
    epochs_run : int or None
        Epochs trained.
    best_config : dict or None
        The architecture the search chose (step 1).
    wall_fraction : float or None
        Fraction of training images with watershed walls (step 2).
    """

    stages: ClassVar[tuple[str, ...]] = ("step1_unet", "step2_unet")
    #: The step whose U-Net each stage trained: ``steps["step1_unet"] == "step1"``.
    steps: ClassVar[dict[str, str]] = {"step1_unet": "step1", "step2_unet": "step2"}
    test: dict[str, float]
    epochs_run: int | None = None
    best_config: dict[str, Any] | None = None
    wall_fraction: float | None = None


@dataclasses.dataclass(frozen=True)
class SegmentationMetrics(StageMetrics):
    """Stages 05 and 09: the scan segmented by a U-Net.

    Attributes
    ----------
    porosity : float
        Pore fraction of the segmentation.
    reference_porosity : float or None
        The sample's reference porosity, if known.
    wall_fraction : float or None
        Step 2: the wall fraction of the U-Net that made the segmentation.
    porosity_by_fraction : dict of str to float or None
        Step 2: porosity of the sweep's U-Net of each wall fraction
        (keys ``"0.50"``: two decimals); a fraction whose U-Net did not learn to
        segment (:func:`foamlib.sweep.wall_fraction_sweep`) is left out.
    """

    stages: ClassVar[tuple[str, ...]] = ("step1", "step2")
    porosity: float
    reference_porosity: float | None = None
    wall_fraction: float | None = None
    porosity_by_fraction: dict[str, float] | None = None


@dataclasses.dataclass(frozen=True)
class GanMetrics(StageMetrics):
    """Stage 06: the GAN and the porosity of its images.

    Attributes
    ----------
    real_patch_porosity, generated_porosity, porosity_difference : float
        Mean porosity of the real patches and of the generated images, and
        generated minus real.
    steps : int
        Generator updates run.
    seconds : float
        Training time.
    """

    stages: ClassVar[tuple[str, ...]] = ("step2_gan",)
    real_patch_porosity: float
    generated_porosity: float
    porosity_difference: float
    steps: int | None = None
    seconds: float | None = None


@dataclasses.dataclass(frozen=True)
class WallsMetrics(StageMetrics):
    """Stage 07: watershed walls added to the GAN images.

    Attributes
    ----------
    fraction : float
        The wall fraction used downstream.
    by_fraction : dict of str to dict
        :func:`foamlib.walls.wall_statistics` per fraction (keys ``"0.50"``).
    """

    stages: ClassVar[tuple[str, ...]] = ("step2_walls",)
    fraction: float
    by_fraction: dict[str, Any] | None = None


@dataclasses.dataclass(frozen=True)
class CycleGanMetrics(StageMetrics):
    """Stage 08: the CycleGAN.

    Attributes
    ----------
    steps : int
        Optimisation steps run.
    seconds : float or None
        Training time.
    phase_statistics : dict or None
        Grey-value statistics of pores and solid, real against translated.
    """

    stages: ClassVar[tuple[str, ...]] = ("step2_cyclegan",)
    steps: int
    seconds: float | None = None
    phase_statistics: dict[str, Any] | None = None


@dataclasses.dataclass(frozen=True)
class FidValues(_Record):
    """FID of the step-1 and step-2 sets to the real crops, and the real-to-real floor.

    Attributes
    ----------
    step1, step2 : float
        FID of each synthetic set to the real crops.
    encoder : str
        The feature encoder's name (FIDs of different encoders do not compare).
    real_floor : float or None
        FID of a second draw of real crops to the first.
    """

    step1: float
    step2: float
    encoder: str
    real_floor: float | None = None


@dataclasses.dataclass(frozen=True)
class KidValues(_Record):
    """KID of the step-1 and step-2 sets to the real crops.

    Attributes
    ----------
    step1, step2 : float
        KID of each synthetic set to the real crops.
    """

    step1: float
    step2: float


@dataclasses.dataclass(frozen=True)
class SimilarityMetrics(StageMetrics):
    """Stage 10: how close the synthetic images are to the real scan.

    Attributes
    ----------
    fid : FidValues
    kid : KidValues
    n_images : int or None
        Crops per set.
    crop_size : int or None
        Side of the crops, pixels.
    fid_by_fraction : dict of str to float or None
        FID of the step-2 set of each wall fraction (keys ``"0.50"``).
    """

    stages: ClassVar[tuple[str, ...]] = ("similarity",)
    fid: FidValues
    kid: KidValues
    n_images: int | None = None
    crop_size: int | None = None
    fid_by_fraction: dict[str, float] | None = None


@dataclasses.dataclass(frozen=True)
class PorosityValidationMetrics(StageMetrics):
    """Stage 11: segmentations against the porosity from density.

    Attributes
    ----------
    density_porosity, u_density_porosity : float or None
        Porosity from the pycnometry densities and its standard uncertainty.
    solid_density_g_cm3 : float or None
        The solid density used, g/cm^3.
    porosity_by_method : dict of str to float or None
        Porosity of every segmentation compared.
    """

    stages: ClassVar[tuple[str, ...]] = ("porosity_validation",)
    density_porosity: float | None = None
    u_density_porosity: float | None = None
    solid_density_g_cm3: float | None = None
    porosity_by_method: dict[str, float] | None = None


#: Stage name (the folder of its ``metrics.json``) -> its metrics class.
STAGE_METRICS: dict[str, type[StageMetrics]] = {
    stage: cls
    for cls in (OtsuMetrics, FoamSetMetrics, RenderMetrics, UNetMetrics, SegmentationMetrics, GanMetrics,
                WallsMetrics, CycleGanMetrics, SimilarityMetrics, PorosityValidationMetrics)
    for stage in cls.stages
}


def metrics_class(stage: str) -> type[StageMetrics]:
    """The metrics class of ``stage``.

    Raises
    ------
    MetricsError
        For a stage the study does not have (names the nearest known one).
    """
    if stage not in STAGE_METRICS:
        near = difflib.get_close_matches(str(stage), list(STAGE_METRICS), n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise MetricsError(f"unknown stage {stage!r}{hint}; stages with metrics: {', '.join(STAGE_METRICS)}")
    return STAGE_METRICS[stage]


def parse_metrics(stage: str, data: Mapping[str, Any] | StageMetrics, *, source: str = "") -> StageMetrics:
    """Typed metrics of ``stage`` from its JSON layout (or check an instance's class).

    Parameters
    ----------
    stage : str
        A key of :data:`STAGE_METRICS`.
    data : mapping or StageMetrics
        The stored layout, or an instance of the stage's class.
    source : str, optional
        The file, for messages (default: the stage).

    Returns
    -------
    StageMetrics
        An instance of ``metrics_class(stage)``.

    Raises
    ------
    MetricsError
        For an unknown stage, an instance of another class or a layout that
        does not match (see ``StageMetrics.from_json``).
    """
    cls = metrics_class(stage)
    if isinstance(data, StageMetrics):
        if not isinstance(data, cls):
            raise MetricsError(f"metrics of stage {stage!r} must be {cls.__name__}, got {type(data).__name__}")
        return data
    return cls.from_json(data, source=source or f"metrics of stage {stage!r}")
