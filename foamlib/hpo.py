"""Hyperparameter search for the U-Net: Hyperband first, then Bayesian optimisation.

Griem et al. chose their network in two stages: a Hyperband search over the
architecture and learning rate, then Bayesian optimisation that starts from
what Hyperband found. :func:`search` does the same with Optuna:

1. **Hyperband** — a study with a :class:`optuna.samplers.RandomSampler` and a
   :class:`optuna.pruners.HyperbandPruner` (``min_resource=1``,
   ``max_resource=max_epochs``; one resource unit is one epoch). Each trial
   builds a :class:`~foamlib.unet.UNet`, trains it with
   :func:`foamlib.training.train_unet` and reports the validation mean Dice
   of the two phases after every epoch; the pruner stops trials that fall behind.
2. **Bayesian** — a second study with a :class:`optuna.samplers.TPESampler`
   and a :class:`optuna.pruners.MedianPruner`, warm-started with the completed
   trials of stage 1 (:meth:`optuna.study.Study.add_trials`).

The objective, maximised, is the best validation mean Dice of solid and pore a
trial reached (all validation pixels pooled, see
:func:`foamlib.training.train_unet`). The solid Dice alone would let a trial
that marks every pixel solid win on mostly solid labels (0.82 at a solid
fraction of 0.7), which short searches on dense scans did.

Reproducibility
---------------
Every trial builds its network with ``build_unet(config, seed)`` and trains with
``TrainConfig(seed=seed)``, the same ``seed`` for all trials, so trials differ
only in their hyperparameters. The samplers are seeded from ``seed`` too, so on
the CPU (with a fixed thread count) two searches with the same data and
arguments try the same hyperparameters and get the same values. No global RNG is
read or changed.

Resuming
--------
With ``storage`` (the path of an SQLite file) both studies live in that file
and every trial is committed to it as it finishes, so a search that was
interrupted (killed, Ctrl-C, a crash) continues where it stopped when it is
called again with the same arguments. Each trial's hyperparameters are drawn
by a sampler seeded from ``seed``, the stage and the trial's *slot* (how many
trials of its stage had finished before it), not from one sampler whose state
would be lost with the process, and a trial that the interruption cut short
runs again under its own number; so a resumed search gives the same trials and
best configuration as one that was never interrupted (details and limits in
:func:`search`).

SQLite (:class:`optuna.storages.RDBStorage`) rather than Optuna's journal file:
every write is an SQLite transaction, so a process killed in the middle of one
leaves the file as it was before it, and its locks die with it. A journal file
killed in the middle of an append keeps a torn last line that breaks the next
read after another append, and its lock file outlives the process. SQLite's
locking is unreliable on network file systems (NFS): keep the run folder on a
local disk while a search writes to it.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ._optional import requires_extra
from . import streams
from .checks import check_int
from .progress import progress_bar
from .runs import atomic_path
from .torchfiles import ON_MISMATCH, data_fingerprint
from .training import TrainConfig, train_unet
from .unet import build_unet

if TYPE_CHECKING:
    import optuna
    import pandas as pd

__all__ = ["SearchSpace", "SearchResult", "search", "SMOKE_SPACE", "ARCHITECTURE_PARAMS"]

logger = logging.getLogger(__name__)

#: Names of the searched :class:`~foamlib.unet.UNet` arguments (the other searched value is ``learning_rate``).
ARCHITECTURE_PARAMS = ("levels", "convs_per_level", "kernel_size", "pooling", "base_channels")

_STAGES = ("hyperband", "bayes")
#: Prefix of the studies :func:`search` writes; the rest of a name is the key of the search's settings.
_STUDY_PREFIX = "foamlib-search"
#: Bumped when a stored search can no longer be resumed by this code (part of the settings key).
_SEARCH_FORMAT = 3  # 3: the objective is the mean Dice of solid and pore (was the solid Dice)
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
                check_int(f"SearchSpace.{name}[]", value, low=1)
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
        Its validation mean Dice of solid and pore (best epoch).
    best_stage : str
        ``"hyperband"`` or ``"bayes"``: the stage of the best trial.
    trials : pandas.DataFrame
        One row per trial of both stages (stage 2's copies of stage-1 trials
        are not repeated), in the order they ran: ``stage``, ``number`` (the
        trial number in its stage's study), ``params`` (JSON with sorted keys),
        ``value`` (best validation mean Dice, or the last reported one for a pruned
        trial; NaN for failed trials), ``state`` (``COMPLETE``, ``PRUNED``,
        ``FAIL``), ``epochs`` (epochs trained), ``seconds`` (wall time), then one
        column per hyperparameter.
    resumed_trials : int
        How many of :attr:`trials` were found finished in the storage and not
        run by this call (0 without a storage or for a new one).
    """

    best_config: dict[str, Any]
    best_learning_rate: float
    best_value: float
    best_stage: str
    trials: pd.DataFrame
    resumed_trials: int = 0

    def to_csv(self, path: str | os.PathLike) -> Path:
        """Write :attr:`trials` as CSV, atomically; returns ``path``."""
        path = Path(path)
        with atomic_path(path) as tmp:
            self.trials.to_csv(tmp, index=False)
        return path


@contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Silence Optuna's per-trial INFO messages, restoring its verbosity afterwards."""
    with requires_extra("study"):
        import optuna

    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(before)


class _SlotSeeded:
    """A sampler made afresh for every trial, seeded from the trial's slot in its stage.

    The slot is the number of trials of the stage that finished (complete,
    pruned or failed) before this one. A search that is resumed in a new process thus
    draws the same points as one that never stopped, as far as the sampler
    depends only on its seed and the finished trials (true of
    :class:`~optuna.samplers.RandomSampler` and of the independent
    :class:`~optuna.samplers.TPESampler`). A trial that an interruption left
    running has not finished: run again, it draws the same point.
    """

    def __init__(self, make: Callable[[int], optuna.samplers.BaseSampler], *, seed: int, stage: int, name: str) -> None:
        self._make, self._seed, self._stage, self._name = make, seed, stage, name
        self._inner = make(streams.seed_for(seed, "hpo", "sampler", stage, 0, bits=32))

    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        slot = len(_own_trials(study, self._name))
        self._inner = self._make(streams.seed_for(self._seed, "hpo", "sampler", self._stage, slot, bits=32))
        self._inner.before_trial(study, trial)

    def infer_relative_search_space(self, study, trial):  # noqa: D102 (delegates)
        return self._inner.infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):  # noqa: D102
        return self._inner.sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):  # noqa: D102
        return self._inner.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study, trial, state, values):  # noqa: D102
        self._inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:  # noqa: D102
        self._inner.reseed_rng()


@functools.cache
def _slot_seeded_sampler_class() -> type:
    """:class:`_SlotSeeded` as an Optuna sampler (its base class comes with optuna, imported on first use)."""
    with requires_extra("study"):
        import optuna

    return type("_SlotSeededSampler", (_SlotSeeded, optuna.samplers.BaseSampler), {"__doc__": _SlotSeeded.__doc__})


def _own_trials(study: optuna.Study, stage: str) -> list[optuna.trial.FrozenTrial]:
    """Finished trials (complete, pruned or failed) that this stage ran itself (not warm-start copies)."""
    return [
        t
        for t in study.get_trials(deepcopy=False)
        if t.user_attrs.get("stage") == stage and "copied_from" not in t.user_attrs and t.state.is_finished()
    ]


class _Interrupted(BaseException):
    """Carries a KeyboardInterrupt out of a trial past Optuna, which would store the trial as failed."""


def _check_pair(pair: Any, name: str) -> list[np.ndarray]:
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise ValueError(f"{name} must be a pair (images, labels) of arrays, got {type(pair).__name__}")
    return [np.asarray(a) for a in pair]


def _settings(
    space: SearchSpace, hyperband_trials: int, bayes_trials: int, max_epochs: int, base: TrainConfig, seed: int,
    fingerprint: str,
) -> dict[str, Any]:  # fmt: skip
    """Everything that decides a search's trials, as plain JSON values (stored with its studies)."""
    config = {**dataclasses.asdict(base), "epochs": max_epochs, "seed": seed, "patience": None}
    for name in ("learning_rate", "num_workers", "eval_batch_size"):  # set per trial, or values do not depend on it
        config.pop(name, None)
    return json.loads(json.dumps({
        "format": _SEARCH_FORMAT, "space": dataclasses.asdict(space), "hyperband_trials": hyperband_trials,
        "bayes_trials": bayes_trials, "max_epochs": max_epochs, "seed": seed, "train_config": config,
        "data_fingerprint": fingerprint,
    }, sort_keys=True))  # fmt: skip


def _settings_key(settings: dict[str, Any]) -> str:
    return data_fingerprint(np.frombuffer(json.dumps(settings, sort_keys=True).encode(), dtype=np.uint8))[:16]


def _storage_path(storage: Any) -> Path | None:
    if storage is None:
        return None
    if not isinstance(storage, (str, os.PathLike)):
        raise ValueError(f"storage must be the path of an SQLite file, got {type(storage).__name__}")
    text = os.fspath(storage)
    if "://" in text:
        raise ValueError(f"storage must be the path of an SQLite file (e.g. run_dir/step1/hpo.db), not a URL: {text!r}")
    path = Path(text)
    if path.is_dir():
        raise ValueError(f"storage {path} is a folder; pass the path of an SQLite file such as {path / 'hpo.db'}")
    return path


def _rdb(path: Path) -> optuna.storages.RDBStorage:
    # A writer waits up to a minute for a lock (a reader, a slow disk) rather than fail at once.
    with requires_extra("study"):
        import optuna

    try:
        url = f"sqlite:///{path.resolve()}"
        return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})
    except Exception as exc:  # SQLAlchemy's and Optuna's errors for a file that is no Optuna database
        raise ValueError(f"storage {path} is not an Optuna SQLite database ({exc})") from exc


def _close(storage: optuna.storages.BaseStorage | None) -> None:
    with requires_extra("study"):
        import optuna

    if isinstance(storage, optuna.storages.RDBStorage):
        storage.remove_session()
        storage.engine.dispose()


def _flat(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in settings.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _diff(stored: dict[str, Any], current: dict[str, Any]) -> str:
    """What differs between two searches' settings, as ``name: stored -> current``."""
    stored, current = _flat(stored), _flat(current)
    keys = sorted(set(stored) | set(current))
    changed = [f"{k}: {stored.get(k)!r} -> {current.get(k)!r}" for k in keys if stored.get(k) != current.get(k)]
    return ", ".join(changed) or "settings unknown"


def _open_storage(path: Path, names: tuple[str, str], settings: dict[str, Any], on_mismatch: str):
    """The RDB storage in ``path``, after checking that it holds no other search (moved aside or refused)."""
    with requires_extra("study"):
        import optuna

    path.parent.mkdir(parents=True, exist_ok=True)
    storage = _rdb(path)
    try:
        studies = optuna.study.get_all_study_names(storage)
        foreign = [n for n in studies if n.startswith(_STUDY_PREFIX) and n not in names]
        if not foreign:
            return storage
        stored = storage.get_study_user_attrs(storage.get_study_id_from_name(foreign[0])).get("settings", {})
    except BaseException:
        _close(storage)
        raise
    _close(storage)
    message = (
        f"storage {path} holds another search (study {foreign[0]!r}; {_diff(stored, settings)}); "
        "cannot resume it with these settings or data"
    )
    if on_mismatch == "error":
        raise ValueError(message + "; delete it, pass another storage or on_mismatch='restart'")
    stale = path.with_name(f"{path.stem}.stale-{time.strftime('%Y%m%dT%H%M%S')}-{time.time_ns() % 10**6}{path.suffix}")
    for suffix in ("-journal", "-wal", "-shm"):  # SQLite's side files travel with the database
        side = path.with_name(path.name + suffix)
        if side.exists():
            os.replace(side, stale.with_name(stale.name + suffix))
    os.replace(path, stale)
    logger.warning("%s; moved it to %s and started afresh", message, stale.name)
    return _rdb(path)


def _open_study(
    storage: optuna.storages.BaseStorage | None, name: str, settings: dict[str, Any],
    pruner: optuna.pruners.BasePruner,
) -> tuple[optuna.Study, int]:  # fmt: skip
    """Create or load a stage's study; returns it and the number of interrupted trials queued to run again."""
    with requires_extra("study"):
        import optuna

    study = optuna.create_study(
        storage=storage, study_name=name, sampler=optuna.samplers.RandomSampler(seed=0), pruner=pruner,
        direction="maximize", load_if_exists=True,
    )  # fmt: skip
    if "settings" not in study.user_attrs:
        study.set_user_attr("settings", settings)
    stale = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    if stale:
        study_id = storage.get_study_id_from_name(name)
    for trial in stale:
        # One process runs a search at a time, so a RUNNING trial was left by one that was killed. Put it back
        # in the queue: the next trial then takes its number, its point and its reported epochs, and the search
        # goes on as if never interrupted. Should the storage refuse, fail it (it then counts as tried).
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        if not storage.set_trial_state_values(trial_id, optuna.trial.TrialState.WAITING):
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
    return study, len(stale)


def _warm_start(second: optuna.Study, stage1: list[optuna.trial.FrozenTrial]) -> None:
    """Copy the completed stage-1 trials into stage 2 (those not copied yet: a copy may have been interrupted)."""
    with requires_extra("study"):
        import optuna

    copied = {t.user_attrs.get("copied_from") for t in second.get_trials(deepcopy=False)}
    for t in stage1:
        if t.state == optuna.trial.TrialState.COMPLETE and t.number not in copied:
            second.add_trial(
                optuna.trial.create_trial(
                    params=t.params, distributions=t.distributions, value=t.value,
                    intermediate_values=t.intermediate_values, user_attrs={**t.user_attrs, "copied_from": t.number},
                )
            )  # fmt: skip


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
    storage: str | os.PathLike | None = None,
    on_mismatch: str = "error",
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
        pruned and failed trials count. Default 30.
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
    storage : path-like, optional
        An SQLite file (e.g. ``run_dir/step1/hpo.db``; its folder is created)
        that keeps both stages' studies. Every trial is committed to it as it
        finishes, and a search called again with the same storage and the
        same arguments and data continues: finished trials are kept and never
        run again, a trial that an interruption (a killed process, Ctrl-C)
        left running runs again under its own number, and only the missing
        trials run. The result is chosen over all stored trials. One process
        at a time may use a storage (the study runner's run-folder lock sees
        to that). Default None: in memory, nothing is written.
    on_mismatch : {"error", "restart"}, optional
        What to do when ``storage`` holds a search with other settings
        (space, trial counts, ``max_epochs``, ``seed``, ``train_config``) or
        other data (:func:`foamlib.torchfiles.data_fingerprint` of ``train``
        and ``val``): raise a ValueError that says what differs (default), or
        move the file aside as ``<name>.stale-<time>.db`` (nothing is deleted),
        log a warning and search afresh, as
        :func:`foamlib.training.train_unet` does with a checkpoint. A larger
        budget is another search too: it restarts rather than extends.

    Returns
    -------
    SearchResult
        The best trial of both stages and the table of all trials.

    Raises
    ------
    ValueError
        If a budget, the seed, ``train_config``, ``storage`` or ``on_mismatch``
        are invalid, or ``storage`` holds another search and ``on_mismatch`` is
        ``"error"``.
    RuntimeError
        If no trial completed.

    Notes
    -----
    Optuna's per-trial log messages are silenced through
    :func:`optuna.logging.set_verbosity` for the duration of the call and its
    previous verbosity restored; foamlib logs one INFO line per trial instead.
    An exception raised by a trial (other than pruning) ends the search; that
    trial is stored as ``FAIL`` and counts as tried, so a resumed search goes
    on with the next point rather than failing on the same one again. Ctrl-C
    (KeyboardInterrupt) is not such an exception: it leaves the trial
    running, for the next call to run again.

    The two studies are named ``foamlib-search-<key>-hyperband`` and
    ``foamlib-search-<key>-bayes``, where ``<key>`` hashes the settings and the
    data fingerprint (stored in full as the studies' user attribute
    ``settings``); the names are the same in memory, so Hyperband assigns the
    same brackets (it hashes the study name and trial number) with or without
    a storage.

    What a resumed search reproduces, given deterministic training (on the
    CPU with a fixed thread count; on a GPU only as far as its kernels are
    deterministic): every trial's hyperparameters depend only on ``seed``,
    its stage and its slot, and the samplers see the same finished trials,
    so the trials, their values and the best configuration are those of an
    uninterrupted search. A trial cut short is trained again from its first
    epoch (epochs inside a trial are not resumed: that time is lost); the
    epochs it had reported are not reported again, so the pruners decide as
    they would have. What differs: the ``seconds`` column (and Optuna's start
    and end times) of the re-run trial, and, should the storage ever refuse
    to put an interrupted trial back in the queue, that trial is failed and
    counts as tried, like one that raised: the search then goes on with the
    next point, and the trials after it differ from an uninterrupted search.
    TPE keeps no state between trials here (a fresh sampler per trial), so
    there is no sampler state to lose. Completed trials are never run again
    in any case.
    """
    with requires_extra("study"):
        import optuna
        import pandas as pd

    hyperband_trials = check_int("hyperband_trials", hyperband_trials, low=1)
    bayes_trials = check_int("bayes_trials", bayes_trials, low=0)
    max_epochs = check_int("max_epochs", max_epochs, low=1)
    seed = check_int("seed", seed, low=0)
    if not isinstance(space, SearchSpace):
        raise ValueError(f"space must be a SearchSpace, got {type(space).__name__}")
    base = TrainConfig() if train_config is None else train_config
    if not isinstance(base, TrainConfig):
        raise ValueError(f"train_config must be a TrainConfig, got {type(base).__name__}")
    if on_mismatch not in ON_MISMATCH:
        raise ValueError(f"on_mismatch must be one of {', '.join(map(repr, ON_MISMATCH))}, got {on_mismatch!r}")
    path = _storage_path(storage)
    fingerprint = data_fingerprint(*_check_pair(train, "train"), *_check_pair(val, "val"))
    settings = _settings(space, hyperband_trials, bayes_trials, max_epochs, base, seed, fingerprint)
    key = _settings_key(settings)
    names = (f"{_STUDY_PREFIX}-{key}-hyperband", f"{_STUDY_PREFIX}-{key}-bayes")

    def objective(stage: str, bar) -> Any:
        def run(trial: optuna.Trial) -> float:
            trial.set_user_attr("stage", stage)
            # A trial interrupted by a killed process runs again from the first epoch (same point, same
            # seed, so the same values): the epochs it reported before are not reported again, and the
            # pruner is asked again only from the last of them on.
            reported = {
                step
                for t in trial.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
                if t.number == trial.number
                for step in t.intermediate_values
            }  # fmt: skip
            last_reported = max(reported, default=0)
            config, learning_rate = space.suggest(trial)
            model = build_unet(config, seed)
            trial_config = dataclasses.replace(
                base, epochs=max_epochs, learning_rate=learning_rate, seed=seed, patience=None
            )

            def report(epoch: int, row: dict[str, Any]) -> None:
                if epoch not in reported:
                    trial.report(float(row["val_mean_dice"]), epoch)
                trial.set_user_attr("epochs", epoch)
                if epoch >= last_reported and trial.should_prune():
                    raise optuna.TrialPruned(f"pruned after epoch {epoch} (val mean Dice {row['val_mean_dice']:.4f})")

            try:
                result = train_unet(
                    model, train, val, config=trial_config, device=device, progress=False, on_epoch_end=report
                )
            finally:
                bar.update(1)
            logger.info(
                "%s trial %d: val mean Dice %.4f after %d epochs (%s, learning rate %.3g)",
                stage, trial.number, result.best_val_mean_dice, result.epochs_run, config, learning_rate,
            )  # fmt: skip
            return result.best_val_mean_dice

        def run_or_leave_running(trial: optuna.Trial) -> float:
            try:
                return run(trial)
            except KeyboardInterrupt as exc:
                # Leave the trial RUNNING, as a killed process would: a resumed search runs it again.
                raise _Interrupted from exc

        return run_or_leave_running

    rdb = _open_storage(path, names, settings, on_mismatch) if path is not None else None
    try:
        with _quiet_optuna():
            stage1, stage2, resumed = _run_stages(
                rdb, names, settings, objective, hyperband_trials, bayes_trials, max_epochs, seed, progress, path
            )
    except _Interrupted as exc:
        raise exc.__cause__ from None  # the KeyboardInterrupt itself, with its traceback
    finally:
        _close(rdb)

    rows = [_row(stage, t) for stage, trials in (("hyperband", stage1), ("bayes", stage2)) for t in trials]
    table = pd.DataFrame(rows, columns=_TABLE_COLUMNS)
    complete = [(stage, t) for stage, trials in (("hyperband", stage1), ("bayes", stage2)) for t in trials
                if t.state == optuna.trial.TrialState.COMPLETE]  # fmt: skip
    if not complete:
        raise RuntimeError("no trial of the search completed (all were pruned or failed)")
    best_stage, best = max(complete, key=lambda item: item[1].value)  # max keeps the first of equal values
    logger.info(
        "search: best val mean Dice %.4f (%s trial %d): %s, learning rate %.3g",
        best.value, best_stage, best.number, {k: best.params[k] for k in ARCHITECTURE_PARAMS},
        best.params["learning_rate"],
    )  # fmt: skip
    return SearchResult(
        best_config={k: best.params[k] for k in ARCHITECTURE_PARAMS},
        best_learning_rate=float(best.params["learning_rate"]),
        best_value=float(best.value),
        best_stage=best_stage,
        trials=table,
        resumed_trials=resumed,
    )


def _run_stages(
    rdb: optuna.storages.BaseStorage | None, names: tuple[str, str], settings: dict[str, Any], objective: Callable,
    hyperband_trials: int, bayes_trials: int, max_epochs: int, seed: int, progress: bool, path: Path | None,
) -> tuple[list[optuna.trial.FrozenTrial], list[optuna.trial.FrozenTrial], int]:  # fmt: skip
    """Run the missing trials of both stages; returns each stage's own finished trials and how many were stored."""
    with requires_extra("study"):
        import optuna

    pruner = optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max_epochs)
    first, requeued1 = _open_study(rdb, names[0], settings, pruner)
    first.sampler = _slot_seeded_sampler_class()(
        lambda s: optuna.samplers.RandomSampler(seed=s), seed=seed, stage=1, name="hyperband"
    )
    done1 = len(_own_trials(first, "hyperband"))
    todo1 = max(0, hyperband_trials - done1)
    second = requeued2 = done2 = None
    if bayes_trials > 0:
        # Opened now so that the progress bar knows the whole budget.
        pruner = optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0)
        second, requeued2 = _open_study(rdb, names[1], settings, pruner)
        # The warm-start trials are TPE's startup: it models from the first stage-2 trial on.
        second.sampler = _slot_seeded_sampler_class()(
            lambda s: optuna.samplers.TPESampler(seed=s, n_startup_trials=1), seed=seed, stage=2, name="bayes"
        )
        done2 = len(_own_trials(second, "bayes"))
    todo2 = max(0, bayes_trials - (done2 or 0))
    if path is not None and (done1 or done2 or requeued1 or requeued2):
        logger.info(
            "resuming the search in %s: %d of %d Hyperband and %d of %d Bayesian trials done; "
            "%d trial(s) cut short by the interruption run again",
            path, done1, hyperband_trials, done2 or 0, bayes_trials, requeued1 + (requeued2 or 0),
        )  # fmt: skip
    with progress_bar(total=todo1 + todo2, desc="search", unit="trial", disable=not progress) as bar:
        if todo1:
            first.optimize(objective("hyperband", bar), n_trials=todo1, catch=())
        stage1 = _own_trials(first, "hyperband")
        if second is None:
            return stage1, [], done1
        _warm_start(second, stage1)
        if todo2:
            second.optimize(objective("bayes", bar), n_trials=todo2, catch=())
        return stage1, _own_trials(second, "bayes"), done1 + done2


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
