"""Hyperparameter search for the U-Net: Hyperband first, then Bayesian optimisation.

Griem et al. chose their network in two stages: a Hyperband search over the
architecture and learning rate, then Bayesian optimisation that starts from
what Hyperband found. :func:`search` does the same with Optuna:

1. **Hyperband** — a study with a :class:`optuna.samplers.RandomSampler` and a
   :class:`optuna.pruners.HyperbandPruner` (``min_resource=1``,
   ``max_resource=max_epochs``; one resource unit is one epoch). Each trial
   builds a :class:`~foamlib.unet.UNet`, trains it with
   :func:`foamlib.training.train_unet` and reports the validation Dice after
   every epoch; the pruner stops trials that fall behind.
2. **Bayesian** — a second study with a :class:`optuna.samplers.TPESampler`
   and a :class:`optuna.pruners.MedianPruner`, warm-started with the completed
   trials of stage 1 (:meth:`optuna.study.Study.add_trials`).

The objective, maximised, is the best validation Dice a trial reached (all
validation pixels pooled, see :func:`foamlib.training.train_unet`).

Reproducibility
---------------
Every trial builds its network with ``build_unet(config, seed)`` and trains with
``TrainConfig(seed=seed)``, the same ``seed`` for all trials, so trials differ
only in their hyperparameters. The samplers are seeded from ``seed`` too, so on
the CPU (with a fixed thread count) two searches with the same data and
arguments try the same hyperparameters and get the same values. No global RNG is
read or changed.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import torch
from tqdm import tqdm

from .runs import atomic_path
from .training import TrainConfig, train_unet
from .unet import build_unet

__all__ = ["SearchSpace", "SearchResult", "search", "SMOKE_SPACE", "ARCHITECTURE_PARAMS"]

logger = logging.getLogger(__name__)

#: Names of the searched :class:`~foamlib.unet.UNet` arguments (the other searched value is ``learning_rate``).
ARCHITECTURE_PARAMS = ("levels", "convs_per_level", "kernel_size", "pooling", "base_channels")

_STAGES = ("hyperband", "bayes")
_TABLE_COLUMNS = ["stage", "number", "params", "value", "state", "epochs", "seconds", *ARCHITECTURE_PARAMS, "learning_rate"]


@dataclass(frozen=True)
class SearchSpace:
    """The hyperparameters :func:`search` chooses from.

    The defaults are the ranges of Griem et al.'s search. For quick runs (tests,
    the smoke profile) use :data:`SMOKE_SPACE` or a smaller space of your own.

    Parameters
    ----------
    levels : tuple of int
        Choices for the number of U-Net levels (each >= 1). Default (3, 4, 5).
    convs_per_level : tuple of int
        Choices for the convolutions per block (each >= 1). Default (1, 2, 3).
    kernel_size : tuple of int
        Choices for the kernel size (each >= 1). Default (3, 4, 5).
    pooling : tuple of str
        Choices among ``"avg"`` and ``"max"``. Default both.
    base_channels : tuple of int
        Choices for the channels of the first level (each >= 1). Default (8, 16, 32).
    learning_rate : tuple of (float, float)
        ``(low, high)`` of the Adam learning rate, sampled log-uniformly;
        ``0 < low <= high``. Default (1e-4, 3e-3).

    Raises
    ------
    ValueError
        If a choice list is empty, holds a duplicate or a bad value, or the
        learning-rate range is not ``0 < low <= high``.
    """

    levels: tuple[int, ...] = (3, 4, 5)
    convs_per_level: tuple[int, ...] = (1, 2, 3)
    kernel_size: tuple[int, ...] = (3, 4, 5)
    pooling: tuple[str, ...] = ("avg", "max")
    base_channels: tuple[int, ...] = (8, 16, 32)
    learning_rate: tuple[float, float] = (1e-4, 3e-3)

    def __post_init__(self) -> None:
        for name in ("levels", "convs_per_level", "kernel_size", "base_channels"):
            choices = getattr(self, name)
            if isinstance(choices, (str, bytes)) or not isinstance(choices, (tuple, list)) or not choices:
                raise ValueError(f"SearchSpace.{name} must be a non-empty tuple of integers, got {choices!r}")
            for value in choices:
                if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
                    raise ValueError(f"SearchSpace.{name} must hold integers >= 1, got {value!r}")
            if len(set(choices)) != len(choices):
                raise ValueError(f"SearchSpace.{name} holds a duplicate choice: {choices!r}")
            object.__setattr__(self, name, tuple(int(v) for v in choices))
        pooling = self.pooling
        if isinstance(pooling, str) or not isinstance(pooling, (tuple, list)) or not pooling:
            raise ValueError(f"SearchSpace.pooling must be a non-empty tuple of 'avg'/'max', got {pooling!r}")
        if any(p not in ("avg", "max") for p in pooling) or len(set(pooling)) != len(pooling):
            raise ValueError(f"SearchSpace.pooling must hold distinct values among 'avg' and 'max', got {pooling!r}")
        object.__setattr__(self, "pooling", tuple(pooling))
        lr = self.learning_rate
        ok = isinstance(lr, (tuple, list)) and len(lr) == 2
        ok = ok and all(not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v) for v in lr)
        if not ok or not 0 < lr[0] <= lr[1]:
            raise ValueError(f"SearchSpace.learning_rate must be (low, high) with 0 < low <= high, got {lr!r}")
        object.__setattr__(self, "learning_rate", (float(lr[0]), float(lr[1])))

    def suggest(self, trial: optuna.trial.BaseTrial) -> tuple[dict[str, Any], float]:
        """Draw one point: ``(UNet keyword arguments, learning rate)``."""
        config = {
            "levels": trial.suggest_categorical("levels", self.levels),
            "convs_per_level": trial.suggest_categorical("convs_per_level", self.convs_per_level),
            "kernel_size": trial.suggest_categorical("kernel_size", self.kernel_size),
            "pooling": trial.suggest_categorical("pooling", self.pooling),
            "base_channels": trial.suggest_categorical("base_channels", self.base_channels),
        }
        learning_rate = trial.suggest_float("learning_rate", *self.learning_rate, log=True)
        return config, learning_rate


#: A small space for smoke runs and tests: shallow, narrow networks.
SMOKE_SPACE = SearchSpace(levels=(2, 3), convs_per_level=(1, 2), kernel_size=(3, 4), base_channels=(4, 8))


@dataclass(frozen=True)
class SearchResult:
    """What :func:`search` found.

    Attributes
    ----------
    best_config : dict
        Keyword arguments of :class:`~foamlib.unet.UNet` of the best trial
        (``levels``, ``convs_per_level``, ``kernel_size``, ``pooling``,
        ``base_channels``); ``build_unet(best_config, seed)`` builds it.
    best_learning_rate : float
        Learning rate of the best trial.
    best_value : float
        Its validation Dice (best epoch).
    best_stage : str
        ``"hyperband"`` or ``"bayes"``: the stage of the best trial.
    trials : pandas.DataFrame
        One row per trial of both stages (stage 2's copies of stage-1 trials
        are not repeated), in the order they ran: ``stage``, ``number`` (the
        trial number in its stage's study), ``params`` (JSON with sorted keys),
        ``value`` (best validation Dice, or the last reported one for a pruned
        trial; NaN for failed trials), ``state`` (``COMPLETE``, ``PRUNED``,
        ``FAIL``), ``epochs`` (epochs trained), ``seconds`` (wall time), then one
        column per hyperparameter.
    """

    best_config: dict[str, Any]
    best_learning_rate: float
    best_value: float
    best_stage: str
    trials: pd.DataFrame

    def to_csv(self, path: str | os.PathLike) -> Path:
        """Write :attr:`trials` as CSV, atomically; returns ``path``."""
        path = Path(path)
        with atomic_path(path) as tmp:
            self.trials.to_csv(tmp, index=False)
        return path


@contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Silence Optuna's per-trial INFO messages, restoring its verbosity afterwards."""
    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(before)


def _check_count(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _sampler_seed(seed: int, stage: int, n_existing: int) -> int:
    """Seed of a stage's sampler; depends on the trials already stored so a resumed search draws new points."""
    return int(np.random.SeedSequence([seed, stage, n_existing]).generate_state(1)[0])


def _open_study(
    storage: str | None, name: str, sampler: optuna.samplers.BaseSampler, pruner: optuna.pruners.BasePruner
) -> optuna.Study:
    study = optuna.create_study(
        storage=storage, study_name=name, sampler=sampler, pruner=pruner, direction="maximize", load_if_exists=True
    )
    if study.direction != optuna.study.StudyDirection.MAXIMIZE:
        raise ValueError(f"study {name!r} in {storage} does not maximise; use another storage or study_name")
    # Trials left RUNNING by an interrupted search can never finish; mark them failed.
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
    return study


def _own_trials(study: optuna.Study, stage: str) -> list[optuna.trial.FrozenTrial]:
    """Finished trials that this stage ran itself (not warm-start copies)."""
    return [
        t
        for t in study.get_trials(deepcopy=False)
        if t.user_attrs.get("stage") == stage and t.state.is_finished()
    ]


def search(
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    *,
    space: SearchSpace = SearchSpace(),
    hyperband_trials: int = 30,
    bayes_trials: int = 20,
    max_epochs: int = 30,
    train_config: TrainConfig | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = False,
    storage: str | None = None,
    study_name: str = "foamlib-search",
) -> SearchResult:
    """Search architecture and learning rate: Hyperband, then Bayesian (TPE).

    Parameters
    ----------
    train, val : tuple of numpy.ndarray
        ``(images, labels)`` as for :func:`foamlib.training.train_unet`.
    space : SearchSpace, optional
        What to choose from. Default: the paper's ranges.
    hyperband_trials : int, optional
        Trials of stage 1 (random sampling, Hyperband pruning), >= 1;
        pruned trials count. Default 30.
    bayes_trials : int, optional
        Trials of stage 2 (TPE, median pruning), >= 0. Default 20.
    max_epochs : int, optional
        Epochs of a trial that is never pruned, >= 1; Hyperband's maximum
        resource. Default 30.
    train_config : TrainConfig, optional
        Batch size, noise, loss and so on for every trial. Its ``epochs``,
        ``learning_rate``, ``seed`` and ``patience`` are replaced by
        ``max_epochs``, the trial's learning rate, ``seed`` and None (the
        pruners do the early stopping). Default ``TrainConfig()``.
    seed : int, optional
        Seed of the samplers, of every trial's initial weights and of its
        training, >= 0. Default 0.
    device : str, torch.device or None, optional
        See :func:`foamlib.device.pick_device`.
    progress : bool, optional
        Show a progress bar over the trials. Default False.
    storage : str, optional
        An Optuna storage URL, e.g. ``"sqlite:///runs/x/hpo.db"``. Trials are
        stored there as they finish, and a search started again with the same
        storage and ``study_name`` continues: finished trials are kept and only
        the missing ones run (trials an interruption left running are marked
        failed and count). A resumed search draws new points from samplers
        seeded with ``seed`` and the number of stored trials, so it is
        reproducible but not identical to an uninterrupted one. Not for
        several processes sharing one study. Default None: in memory.
    study_name : str, optional
        Prefix of the two studies' names (``<name>-hyperband`` and
        ``<name>-bayes``) in ``storage``. Default ``"foamlib-search"``.

    Returns
    -------
    SearchResult
        The best trial of both stages and the table of all trials.

    Raises
    ------
    ValueError
        If a budget, the seed, ``train_config`` or the data are invalid.
    RuntimeError
        If no trial completed.

    Notes
    -----
    Optuna's per-trial log messages are silenced through
    :func:`optuna.logging.set_verbosity` for the duration of the call and its
    previous verbosity restored; foamlib logs one INFO line per trial instead.
    An exception raised by a trial (other than pruning) ends the search.
    """
    hyperband_trials = _check_count("hyperband_trials", hyperband_trials, 1)
    bayes_trials = _check_count("bayes_trials", bayes_trials, 0)
    max_epochs = _check_count("max_epochs", max_epochs, 1)
    seed = _check_count("seed", seed, 0)
    if not isinstance(space, SearchSpace):
        raise ValueError(f"space must be a SearchSpace, got {type(space).__name__}")
    base = TrainConfig() if train_config is None else train_config
    if not isinstance(base, TrainConfig):
        raise ValueError(f"train_config must be a TrainConfig, got {type(base).__name__}")
    if storage is not None and not isinstance(storage, str):
        raise ValueError(f"storage must be an Optuna storage URL (str), got {type(storage).__name__}")

    def objective(stage: str, bar) -> Any:
        def run(trial: optuna.Trial) -> float:
            trial.set_user_attr("stage", stage)
            config, learning_rate = space.suggest(trial)
            model = build_unet(config, seed)
            trial_config = dataclasses.replace(
                base, epochs=max_epochs, learning_rate=learning_rate, seed=seed, patience=None
            )

            def report(epoch: int, row: dict[str, Any]) -> None:
                trial.report(float(row["val_dice"]), epoch)
                trial.set_user_attr("epochs", epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned after epoch {epoch} (val Dice {row['val_dice']:.4f})")

            try:
                result = train_unet(
                    model, train, val, config=trial_config, device=device, progress=False, on_epoch_end=report
                )
            finally:
                bar.update(1)
            logger.info(
                "%s trial %d: val Dice %.4f after %d epochs (%s, learning rate %.3g)",
                stage, trial.number, result.best_val_dice, result.epochs_run, config, learning_rate,
            )  # fmt: skip
            return result.best_val_dice

        return run

    with _quiet_optuna():
        # Stage 1: random sampling, Hyperband pruning.
        pruner = optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max_epochs)
        first = _open_study(storage, f"{study_name}-hyperband", optuna.samplers.RandomSampler(seed=0), pruner)
        done1 = len(_own_trials(first, "hyperband"))
        first.sampler = optuna.samplers.RandomSampler(seed=_sampler_seed(seed, 1, done1))
        todo1 = max(0, hyperband_trials - done1)

        # Stage 2 study is opened now so that the progress bar knows the whole budget.
        second = _open_study(
            storage,
            f"{study_name}-bayes",
            optuna.samplers.RandomSampler(seed=0),
            optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0),
        )
        done2 = len(_own_trials(second, "bayes"))
        todo2 = max(0, bayes_trials - done2)
        with tqdm(total=todo1 + todo2, desc="search", unit="trial", disable=not progress) as bar:
            if todo1:
                first.optimize(objective("hyperband", bar), n_trials=todo1, catch=())
            stage1 = _own_trials(first, "hyperband")
            if bayes_trials > 0:
                if not second.get_trials(deepcopy=False):
                    complete = [t for t in stage1 if t.state == optuna.trial.TrialState.COMPLETE]
                    second.add_trials(complete)
                n_existing = len(second.get_trials(deepcopy=False))
                # The warm-start trials are TPE's startup: it models from the first stage-2 trial on.
                second.sampler = optuna.samplers.TPESampler(
                    seed=_sampler_seed(seed, 2, n_existing), n_startup_trials=1
                )
                if todo2:
                    second.optimize(objective("bayes", bar), n_trials=todo2, catch=())
            stage2 = _own_trials(second, "bayes") if bayes_trials > 0 else []

    rows = [_row(stage, t) for stage, trials in (("hyperband", stage1), ("bayes", stage2)) for t in trials]
    table = pd.DataFrame(rows, columns=_TABLE_COLUMNS)
    complete = [(stage, t) for stage, trials in (("hyperband", stage1), ("bayes", stage2)) for t in trials
                if t.state == optuna.trial.TrialState.COMPLETE]  # fmt: skip
    if not complete:
        raise RuntimeError("no trial of the search completed (all were pruned or failed)")
    best_stage, best = max(complete, key=lambda item: item[1].value)  # max keeps the first of equal values
    logger.info(
        "search: best val Dice %.4f (%s trial %d): %s, learning rate %.3g",
        best.value, best_stage, best.number, {k: best.params[k] for k in ARCHITECTURE_PARAMS},
        best.params["learning_rate"],
    )  # fmt: skip
    return SearchResult(
        best_config={k: best.params[k] for k in ARCHITECTURE_PARAMS},
        best_learning_rate=float(best.params["learning_rate"]),
        best_value=float(best.value),
        best_stage=best_stage,
        trials=table,
    )


def _row(stage: str, trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    if trial.value is not None:
        value = float(trial.value)
    elif trial.intermediate_values:
        value = float(trial.intermediate_values[max(trial.intermediate_values)])
    else:
        value = math.nan
    seconds = trial.duration.total_seconds() if trial.duration is not None else math.nan
    row = {
        "stage": stage,
        "number": trial.number,
        "params": json.dumps(trial.params, sort_keys=True),
        "value": value,
        "state": trial.state.name,
        "epochs": int(trial.user_attrs.get("epochs", len(trial.intermediate_values))),
        "seconds": seconds,
    }
    for name in (*ARCHITECTURE_PARAMS, "learning_rate"):
        row[name] = trial.params.get(name)
    return row
