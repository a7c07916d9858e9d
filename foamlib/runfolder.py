"""The run folder of one sample, as code: one accessor per artefact.

Every stage of the study reads what earlier stages wrote into
``runs/<sample>/`` and writes its own artefacts there. :class:`RunFolder`
is the one statement of that layout: the notebooks, the study runner and a
user's own scripts ask it for a path instead of typing one.

======================  =========================================  ===========================================
stage                   artefact                                   accessor
======================  =========================================  ===========================================
00 samples              ``scan.tif``, ``sample.json``,             :func:`foamlib.samples.load_sample`,
                        ``truth.tif`` (demo samples)               :func:`foamlib.samples.load_truth`
01 Otsu baseline        ``otsu/seg.tif``, ``otsu/structure.json``  ``otsu_seg``, ``otsu_structure``
02 foam generation      ``step1/foams/``                           ``step1_foams``
03 rendering            ``step1/data/``                            ``step1_data``
04 step-1 U-Net         ``models/step1.pt``, ``step1/hpo.csv``,    ``model("step1")``, ``step1_hpo``,
                        ``step1/hpo.db``, ``step1/checkpoint.pt``  ``step1_hpo_storage``, ``step1_checkpoint``
05 step-1 segmentation  ``step1/seg.tif``                          ``step1_seg``
06 GAN                  ``step2/gan/``, ``models/gan.pt``          ``gan_dir``, ``gan_real_patches``,
                                                                   ``gan_generated``, ``model("gan")``
07 watershed walls      ``step2/walls/fraction_F.tif``             ``walls(F)``, ``walls_statistics``
08 CycleGAN             ``step2/cyclegan/``,                       ``cyclegan_dir``, ``step2_data(F)``,
                        ``step2/data/fraction_F/``,                ``model("cyclegan_g")``
                        ``models/cyclegan_g.pt``
09 step-2 U-Net         ``models/step2.pt``, ``step2/seg.tif``,    ``model("step2")``, ``step2_seg``,
                        ``step2/sweep.csv``, checkpoints,          ``step2_sweep``, ``step2_checkpoint``,
                        ``step2/sweep/seg_F.tif``                  ``sweep_checkpoint(F)``, ``sweep_seg(F)``
10, 11 evaluation       ``evaluation/*``                           ``evaluation(name)``
every stage             ``<name>/metrics.json``                    ``metrics(name)``, ``update_metrics``
======================  =========================================  ===========================================

``F`` is a wall fraction, written with two decimals (``fraction_0.50``).
``metrics(name)`` returns the stage's typed metrics (:mod:`foamlib.metrics`).
The segmentations of the scan (``otsu``, ``step1``, ``step2``) are read whole
by ``read_segmentation(method)`` or lazily, slab by slab, by
``open_segmentation(method)`` (what the study's stages use, so that a scan
larger than memory never has a mask in memory whole).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .io import read_mask
from .lazy import LazyMask, open_mask
from .metrics import StageMetrics, metrics_class, parse_metrics
from .runs import read_json, update_metrics

__all__ = ["RunFolder", "read_mask", "study_folder", "STUDY_FOLDER"]

#: Name of the folder, beside the samples' run folders, of the study-wide stages.
STUDY_FOLDER = "_study"


def study_folder(runs_dir: str | os.PathLike) -> Path:
    """The folder of the study-wide stages and tables, ``runs_dir/_study``."""
    return Path(runs_dir) / STUDY_FOLDER


class RunFolder:
    """The artefacts of one sample's run, ``runs/<sample>/``.

    Parameters
    ----------
    path : path-like
        The run folder. It need not exist yet: accessors return paths, and
        writers create the parent folders.

    Examples
    --------
    >>> run = RunFolder("runs/foam89")
    >>> run.otsu_seg.as_posix()
    'runs/foam89/otsu/seg.tif'
    >>> run.step2_data(0.5).name
    'fraction_0.50'
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({self.path.as_posix()!r})"

    def __fspath__(self) -> str:
        return os.fspath(self.path)

    # ------------------------------------------------------------------ step 1

    @property
    def otsu_seg(self) -> Path:
        """Otsu segmentation of the scan, uint8 TIFF (255 = solid)."""
        return self.path / "otsu" / "seg.tif"

    @property
    def otsu_structure(self) -> Path:
        """Structure report of the Otsu segmentation with its distributions (JSON)."""
        return self.path / "otsu" / "structure.json"

    @property
    def step1_foams(self) -> Path:
        """Folder of the generated step-1 foams and their parameters."""
        return self.path / "step1" / "foams"

    @property
    def step1_data(self) -> Path:
        """The step-1 synthetic data set (splits and manifest)."""
        return self.path / "step1" / "data"

    @property
    def step1_hpo(self) -> Path:
        """Trials of the step-1 architecture search (CSV)."""
        return self.path / "step1" / "hpo.csv"

    @property
    def step1_hpo_storage(self) -> Path:
        """SQLite storage of the step-1 architecture search, so an interrupted search resumes."""
        return self.path / "step1" / "hpo.db"

    @property
    def step1_checkpoint(self) -> Path:
        """Training checkpoint of the step-1 U-Net."""
        return self.path / "step1" / "checkpoint.pt"

    @property
    def step1_seg(self) -> Path:
        """Step-1 U-Net segmentation of the scan, uint8 TIFF (255 = solid)."""
        return self.path / "step1" / "seg.tif"

    # ------------------------------------------------------------------ step 2

    @property
    def gan_dir(self) -> Path:
        """The GAN's training folder (checkpoint, history)."""
        return self.path / "step2" / "gan"

    @property
    def gan_real_patches(self) -> Path:
        """Binary patches of the step-1 segmentation that the GAN learns from."""
        return self.gan_dir / "real_patches.tif"

    @property
    def gan_generated(self) -> Path:
        """Binary images made by the trained GAN."""
        return self.gan_dir / "generated.tif"

    @property
    def gan_statistics(self) -> Path:
        """Per-patch statistics, generated against real (CSV)."""
        return self.gan_dir / "statistics.csv"

    def walls(self, fraction: float) -> Path:
        """GAN images with watershed walls added to ``fraction`` of them."""
        return self.path / "step2" / "walls" / f"fraction_{_fraction(fraction)}.tif"

    @property
    def walls_statistics(self) -> Path:
        """What the walls change, per fraction (CSV)."""
        return self.path / "step2" / "walls" / "statistics.csv"

    @property
    def cyclegan_dir(self) -> Path:
        """The CycleGAN's training folder (checkpoint, history, phase statistics)."""
        return self.path / "step2" / "cyclegan"

    def step2_data(self, fraction: float) -> Path:
        """The step-2 synthetic data set made from the images of one wall fraction."""
        return self.path / "step2" / "data" / f"fraction_{_fraction(fraction)}"

    @property
    def step2_checkpoint(self) -> Path:
        """Training checkpoint of the step-2 U-Net."""
        return self.path / "step2" / "checkpoint.pt"

    def sweep_checkpoint(self, fraction: float) -> Path:
        """Training checkpoint of the sweep's U-Net for one wall fraction."""
        return self.path / "step2" / "sweep" / f"checkpoint_{_fraction(fraction)}.pt"

    def sweep_seg(self, fraction: float) -> Path:
        """Segmentation of the scan by the sweep's U-Net for one wall fraction, uint8 TIFF (255 = solid).

        The main fraction's U-Net is the step-2 U-Net, whose segmentation is :attr:`step2_seg`.
        """
        return self.path / "step2" / "sweep" / f"seg_{_fraction(fraction)}.tif"

    @property
    def step2_sweep(self) -> Path:
        """Porosity and test Dice of one U-Net per wall fraction (CSV)."""
        return self.path / "step2" / "sweep.csv"

    @property
    def step2_seg(self) -> Path:
        """Step-2 U-Net segmentation of the scan, uint8 TIFF (255 = solid)."""
        return self.path / "step2" / "seg.tif"

    # ------------------------------------------------------------------ shared

    def model(self, name: str) -> Path:
        """A model file: ``"step1"``, ``"step2"``, ``"gan"`` or ``"cyclegan_g"``."""
        if name not in _MODELS:
            raise ValueError(f"unknown model {name!r}: use one of {', '.join(_MODELS)}")
        return self.path / "models" / f"{name}.pt"

    def evaluation(self, name: str) -> Path:
        """A file of the evaluation stages, e.g. ``evaluation("fid.csv")``."""
        if not name or "/" in name or "\\" in name or name.startswith("."):
            raise ValueError(f"evaluation file name must be a plain file name, got {name!r}")
        return self.path / "evaluation" / name

    def segmentation(self, method: str) -> Path:
        """The segmentation of the scan by ``"otsu"``, ``"step1"`` or ``"step2"``."""
        paths = {"otsu": self.otsu_seg, "step1": self.step1_seg, "step2": self.step2_seg}
        if method not in paths:
            raise ValueError(f"unknown segmentation {method!r}: use one of {', '.join(paths)}")
        return paths[method]

    def read_segmentation(self, method: str) -> np.ndarray:
        """:func:`foamlib.io.read_mask` of :meth:`segmentation`: ``(Z, Y, X)`` bool, True = solid, whatever its label."""
        return read_mask(self.segmentation(method))

    def open_segmentation(self, method: str) -> LazyMask:
        """:func:`foamlib.lazy.open_mask` of :meth:`segmentation`: read slab by slab as bool, True = solid.

        ``mask[z]`` reads one slice, ``mask[box]`` one box, ``mask.porosity()``
        counts slab by slab (equal to :func:`foamlib.structure.porosity` of
        :meth:`read_segmentation`).
        """
        return open_mask(self.segmentation(method))

    def metrics_file(self, name: str) -> Path:
        """The file of a stage's metrics, ``<name>/metrics.json`` (``name`` a key of
        :data:`foamlib.metrics.STAGE_METRICS`)."""
        metrics_class(name)
        return self.path / name / "metrics.json"

    def metrics(self, name: str) -> StageMetrics:
        """A stage's metrics, typed (:mod:`foamlib.metrics`).

        Parameters
        ----------
        name : str
            The stage, e.g. ``"otsu"``, ``"step2"``, ``"similarity"``.

        Returns
        -------
        StageMetrics
            E.g. :class:`~foamlib.metrics.SegmentationMetrics` for ``"step2"``.

        Raises
        ------
        FileNotFoundError
            If the stage has not recorded its metrics (names the file).
        foamlib.metrics.MetricsError
            For an unknown stage or a file whose layout does not match its class.
        """
        path = self.metrics_file(name)
        return parse_metrics(name, read_json(path), source=str(path))

    def update_metrics(self, name: str, values: Mapping[str, Any] | StageMetrics) -> Path:
        """Record a stage's metrics, checked against its class (:func:`foamlib.runs.update_metrics`).

        Parameters
        ----------
        name : str
            The stage (a key of :data:`foamlib.metrics.STAGE_METRICS`).
        values : mapping or StageMetrics
            The metrics: an instance of the stage's class or its JSON layout
            (numpy scalars accepted).

        Returns
        -------
        pathlib.Path
            The file written (atomically).

        Raises
        ------
        foamlib.metrics.MetricsError
            For an unknown stage, an unknown or missing key or a value of the
            wrong type; nothing is written then.
        """
        metrics = parse_metrics(name, values, source=f"{self.metrics_file(name)} (being written)")
        return update_metrics(self.path, name, metrics.to_json())


_MODELS = ("step1", "step2", "gan", "cyclegan_g")


def _fraction(fraction: float) -> str:
    value = float(fraction)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"a wall fraction lies in [0, 1], got {fraction!r}")
    return f"{value:.2f}"
