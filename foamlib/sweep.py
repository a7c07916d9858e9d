"""The wall-fraction sweep of step 2: one U-Net per fraction of watershed-walled images.

Step 2 adds thin walls (:mod:`foamlib.walls`) to a fraction of the GAN's
binary images before the CycleGAN translates them; the paper trains one U-Net
per fraction and compares the porosities they find in the scan (its Fig. 11).
:func:`wall_fraction_sweep` does that on a run folder (:class:`foamlib.runfolder.RunFolder`):
for each fraction it trains the step-2 architecture from scratch on that
fraction's data set (``run.step2_data(f)``, with a checkpoint to resume from),
scores it on the set's test split, and segments the scan with it, streamed
into ``run.sweep_seg(f)``. The main fraction's U-Net is the step-2 U-Net,
already trained and already segmenting the scan (``run.step2_seg``); it is
scored, not trained again.

A U-Net that has not learnt to segment its test split
(:func:`foamlib.training.check_learnt`: marking every pixel one phase, which
short training on few images can give) does not segment the scan: its row
has porosity NaN and ``learnt`` False, and a segmentation an earlier run left
for that fraction is removed, so that the table never reports a porosity of
a model that means nothing, and no file of a stale one is left beside it.

The table's columns (:data:`SWEEP_COLUMNS`), indexed by wall fraction:

========================  =====================================================
``porosity``              pore fraction of the scan by that U-Net (NaN if not learnt)
``label porosity``        pore fraction of the training labels (the walled GAN images)
``test Dice``             Dice of the solid on the fraction's test split
``test mean Dice``        mean Dice of solid and pore on the test split
``learnt``                whether the U-Net passed :func:`~foamlib.training.check_learnt`
========================  =====================================================

With a reference porosity, ``error (percentage points)`` follows
(:data:`ERROR_COLUMN`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch.nn as nn

from ._optional import requires_extra
from .datasets import load_split
from .lazy import open_mask
from .runfolder import RunFolder
from .segment import segment_scan
from .structure import porosity
from .training import DegenerateModelError, TrainConfig, check_learnt, evaluate, train_unet
from .unet import build_unet

__all__ = ["ERROR_COLUMN", "SWEEP_COLUMNS", "wall_fraction_sweep"]

log = logging.getLogger(__name__)

#: The columns of :func:`wall_fraction_sweep`'s table, in order.
SWEEP_COLUMNS = ("porosity", "label porosity", "test Dice", "test mean Dice", "learnt")
#: The column added when a reference porosity is given: 100 x (porosity - reference).
ERROR_COLUMN = "error (percentage points)"


def wall_fraction_sweep(
    run: RunFolder,
    scan: Any,
    fractions: Sequence[float],
    *,
    architecture: Mapping[str, Any],
    config: TrainConfig,
    main_fraction: float,
    main_model: nn.Module,
    intensity_range: tuple[float, float],
    reference_porosity: float | None = None,
    axes: str = "z",
    tile: int = 256,
    memory_gb: float = 0.5,
) -> Any:
    """Train one U-Net per wall fraction, segment the scan with each, and tabulate the porosities.

    Parameters
    ----------
    run : RunFolder
        The sample's run folder: the data sets ``run.step2_data(f)`` of every
        fraction (written by notebook 08), and ``run.step2_seg``, the main
        U-Net's segmentation of the scan. Writes ``run.sweep_checkpoint(f)``
        and ``run.sweep_seg(f)`` for the other fractions.
    scan : array-like, shape (Z, Y, X)
        The scan, an array or a lazy volume (:func:`foamlib.samples.load_sample`);
        read slab by slab.
    fractions : sequence of float
        Wall fractions in [0, 1]; duplicates are dropped and the rows sorted.
        Must contain ``main_fraction``.
    architecture : mapping
        The U-Net's configuration (:func:`foamlib.unet.build_unet`), the
        step-2 U-Net's.
    config : TrainConfig
        Training settings, the step-2 U-Net's; ``config.seed`` also seeds each
        U-Net's initial weights, as for the step-2 U-Net.
    main_fraction : float
        The fraction the step-2 U-Net was trained on.
    main_model : torch.nn.Module
        The step-2 U-Net (trained on ``main_fraction``), which segmented the
        scan into ``run.step2_seg``.
    intensity_range : (float, float)
        The scan's grey-value range that maps to [0, 1], the step-1 model's.
    reference_porosity : float, optional
        Measured porosity of the sample (a fraction); adds :data:`ERROR_COLUMN`.
    axes, tile, memory_gb
        As for :func:`foamlib.segment.segment_scan`.

    Returns
    -------
    pandas.DataFrame
        One row per fraction (index ``wall fraction``), columns
        :data:`SWEEP_COLUMNS` and, with a reference, :data:`ERROR_COLUMN`.

    Raises
    ------
    ValueError
        If a fraction is outside [0, 1] or ``main_fraction`` is not among them.
    FileNotFoundError
        If a fraction's data set or the main segmentation is missing (run
        notebooks 08 and 09's segmentation first).
    """
    with requires_extra("study"):
        import pandas as pd

    if not isinstance(run, RunFolder):
        raise TypeError(f"run must be a RunFolder, got {type(run).__name__}")
    chosen = sorted({float(f) for f in fractions})
    bad = [f for f in chosen if not 0.0 <= f <= 1.0]
    if bad:
        raise ValueError(f"wall fractions must lie in [0, 1], got {bad}")
    if float(main_fraction) not in chosen:
        raise ValueError(f"the main wall fraction {main_fraction} must be one of the sweep's, got {chosen}")
    if not run.step2_seg.is_file():
        raise FileNotFoundError(f"{run.step2_seg}: the step-2 U-Net's segmentation of the scan is missing; "
                                "segment the scan with it first (notebook 09)")
    rows = {}
    for fraction in chosen:
        folder = run.step2_data(fraction)
        train, test = load_split(folder, "train"), load_split(folder, "test")
        if fraction == float(main_fraction):
            net, seg_path = main_model, run.step2_seg
        else:
            net = build_unet(architecture, seed=config.seed)
            train_unet(net, train, load_split(folder, "val"), config=config,
                       checkpoint_path=run.sweep_checkpoint(fraction), progress=False, on_mismatch="restart")
            seg_path = run.sweep_seg(fraction)
        metrics = evaluate(net, *test)
        try:
            check_learnt(metrics, what=f"the sweep's U-Net for wall fraction {fraction:.2f}")
            learnt = True
        except DegenerateModelError as exc:
            log.warning("%s; its porosity is left out of the sweep", exc)
            learnt = False
        if seg_path != run.step2_seg and learnt:
            segment_scan(net, scan, seg_path, axes=axes, tile=tile, intensity_range=intensity_range,
                         memory_gb=memory_gb, overwrite=True)
        elif seg_path != run.step2_seg:
            seg_path.unlink(missing_ok=True)  # a segmentation an earlier run left for this fraction
        rows[fraction] = {
            "porosity": open_mask(seg_path).porosity() if learnt else math.nan,
            "label porosity": porosity(np.asarray(train[1])),
            "test Dice": metrics.dice,
            "test mean Dice": metrics.mean_dice,
            "learnt": learnt,
        }
    table = pd.DataFrame.from_dict(rows, orient="index")[list(SWEEP_COLUMNS)].rename_axis("wall fraction")
    table["learnt"] = table["learnt"].astype(bool)
    if reference_porosity is not None:
        table[ERROR_COLUMN] = 100 * (table["porosity"] - float(reference_porosity))
    return table
