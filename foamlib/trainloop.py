"""The checkpointed-training skeleton shared by the U-Net, the GAN and the CycleGAN.

:func:`foamlib.training.train_unet`, :func:`foamlib.gan.train_gan` and
:func:`foamlib.cyclegan.train_cyclegan` differ in their algorithm and agree in
their bookkeeping, which lives here:

* :class:`TrainingRun` holds what a checkpoint stores: the modules,
  optimisers and random generators of the run (a nested mapping whose keys are
  the checkpoint's keys), the history (one row per epoch or step) and the
  entries that identify the run (configuration, model configuration, data
  fingerprint). :meth:`TrainingRun.resume` reads a checkpoint through
  :func:`foamlib.torchfiles.resume_checkpoint` (so ``on_mismatch="error" |
  "restart"`` behaves the same for all three) and restores all of it;
  :meth:`TrainingRun.save` writes it atomically with the ``foamlib`` version
  (house style rule 9) and, where asked, the history as CSV.
* :func:`check_config` refuses a checkpoint written with other settings.
* :func:`due` says whether a periodic file is due at a step.

Each training function keeps its own file format (format tag, version, key
names), so files written before this module existed still load.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from .progress import progress_bar
from .runs import write_csv
from .torchfiles import resume_checkpoint, save_torch_file

__all__ = ["TrainingRun", "check_config", "due"]

logger = logging.getLogger(__name__)


def _state_of(obj: Any) -> Any:
    """What a checkpoint stores of ``obj`` (a nested mapping, a random generator or anything with ``state_dict``)."""
    if isinstance(obj, Mapping):
        return {key: _state_of(value) for key, value in obj.items()}
    if isinstance(obj, np.random.Generator):
        return obj.bit_generator.state
    if isinstance(obj, torch.Generator):
        return obj.get_state()
    return obj.state_dict()


def _restore(obj: Any, state: Any) -> None:
    """Put ``state`` (from :func:`_state_of`) back into ``obj``, in the mapping's order."""
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            _restore(value, state[key])
    elif isinstance(obj, np.random.Generator):
        obj.bit_generator.state = state
    elif isinstance(obj, torch.Generator):
        obj.set_state(state)
    else:
        obj.load_state_dict(state)


class TrainingRun:
    """The state of one training run that a checkpoint stores, its history and its files.

    Parameters
    ----------
    path : path-like or None
        The checkpoint file; None trains without one (:meth:`resume` then
        starts afresh and :meth:`save` writes nothing).
    file_format : str
        The checkpoint's ``format`` tag (e.g. ``"foamlib-gan-checkpoint"``).
    kind : str
        What the checkpoint is, for messages (``"GAN checkpoint"``).
    counter : {"epoch", "step"}
        The key under which :meth:`save` stores how far the run got.
    state : mapping
        What changes during training, under the checkpoint's keys: modules
        and optimisers (``state_dict`` / ``load_state_dict``),
        :class:`numpy.random.Generator` and :class:`torch.Generator` (their
        states), or nested mappings of these (stored as nested dicts).
        :meth:`resume` restores them in this order.
    identity : mapping
        Plain entries that identify the run (``"config"``, the model
        configuration, the data's shapes and fingerprint); stored as they are.
        The ``check`` given to :meth:`resume` compares them.
    version : int, optional
        The checkpoint's ``format_version``. Default 1.
    history_csv : path-like, optional
        Where :meth:`save` also writes the history as a CSV table.
    device : torch.device, optional
        Where :meth:`resume` loads the tensors of a checkpoint.
    write : callable, optional
        ``write(payload, path)`` writes the checkpoint; default
        :func:`foamlib.torchfiles.save_torch_file` (atomic). A training
        module passes its own reference so that a test can intercept writes.

    Attributes
    ----------
    history : list of dict
        One row per epoch or step trained, resumed ones included; append to it.
    """

    def __init__(
        self,
        path: str | os.PathLike | None,
        *,
        file_format: str,
        kind: str,
        counter: str,
        state: Mapping[str, Any],
        identity: Mapping[str, Any],
        version: int = 1,
        history_csv: str | os.PathLike | None = None,
        device: torch.device | None = None,
        write: Callable[[Any, Path], Any] = save_torch_file,
    ) -> None:
        if counter not in ("epoch", "step"):
            raise ValueError(f"counter must be 'epoch' or 'step', got {counter!r}")
        self.path = Path(path) if path is not None else None
        self.file_format, self.kind, self.counter, self.version = file_format, kind, counter, version
        self.state, self.identity = state, identity
        self.history_csv = Path(history_csv) if history_csv is not None else None
        self.device, self.write = device, write
        self.history: list[dict[str, Any]] = []

    @classmethod
    def in_folder(cls, run_dir: str | os.PathLike | None, **options: Any) -> TrainingRun:
        """A run whose files lie in ``run_dir``: ``checkpoint.pt`` and ``history.csv`` (None: no files).

        ``options`` are the other arguments of :class:`TrainingRun`.
        """
        if run_dir is None:
            return cls(None, **options)
        return cls(Path(run_dir) / "checkpoint.pt", history_csv=Path(run_dir) / "history.csv", **options)

    @property
    def seconds(self) -> float:
        """Training time summed over the history's ``"seconds"`` (resumed epochs or steps included)."""
        return float(sum(row["seconds"] for row in self.history))

    def rows(self) -> list[dict[str, Any]]:
        """A copy of the history, for a result."""
        return [dict(row) for row in self.history]

    def resume(self, check: Callable[[dict[str, Any]], None], on_mismatch: str = "error") -> dict[str, Any] | None:
        """Restore the run from its checkpoint, if there is one that belongs to it.

        Parameters
        ----------
        check : callable
            ``check(checkpoint)`` raises :class:`ValueError` if the checkpoint
            belongs to another run (see :func:`check_config`).
        on_mismatch : {"error", "restart"}, optional
            See :func:`foamlib.torchfiles.resume_checkpoint`.

        Returns
        -------
        dict or None
            The checkpoint, whose ``state`` and history are now restored (the
            caller restores anything else it saved), or None when training
            starts afresh.

        Raises
        ------
        ModelFileError
            If the file is not a readable checkpoint of this format.
        ValueError
            If ``check`` refuses it and ``on_mismatch == "error"``.
        """
        checkpoint = resume_checkpoint(
            self.path, self.file_format, kind=self.kind, version=self.version, device=self.device,
            check=check, on_mismatch=on_mismatch,
        )  # fmt: skip
        if checkpoint is not None:
            _restore(self.state, checkpoint)
            self.history = [dict(row) for row in checkpoint["history"]]
            logger.info("resuming from %s after %s %d", self.path, self.counter, checkpoint[self.counter])
        return checkpoint

    def save(self, count: int, **extra: Any) -> None:
        """Write the checkpoint after epoch or step ``count`` (and the history CSV); nothing without a ``path``.

        ``extra`` holds further entries of tensors and plain values (best
        weights, image pools) that the caller restores itself.
        """
        if self.path is None:
            return
        from . import __version__

        payload = {
            "format": self.file_format,
            "format_version": self.version,
            self.counter: count,
            **_state_of(self.state),
            "history": self.history,
            **extra,
            **self.identity,
            "foamlib_version": __version__,
        }
        self.write(payload, self.path)
        if self.history_csv is not None:
            write_csv(self.history_csv, self.history)

    def progress_bar(self, total: int, *, desc: str, unit: str, enabled: bool) -> tqdm:
        """A progress bar over ``total`` epochs or steps that starts at those already in the history."""
        return progress_bar(total=total, initial=min(len(self.history), total), desc=desc, unit=unit, disable=not enabled)


def check_config(
    saved: Mapping[str, Any],
    current: Mapping[str, Any],
    *,
    path: Path | None,
    name: str,
    resumable: Iterable[str],
    advice: str = "",
    keys: Iterable[str] | None = None,
) -> None:
    """Refuse to resume from a checkpoint written with other settings.

    Parameters
    ----------
    saved, current : mapping
        The checkpoint's configuration and this run's, as plain dicts.
    path : pathlib.Path
        The checkpoint, for the message.
    name : str
        The configuration class, for the message (``"GanConfig"``).
    resumable : iterable of str
        Settings that may differ (so that a finished run can be extended).
    advice : str, optional
        Appended to the message.
    keys : iterable of str, optional
        The settings compared; default those of ``current``.

    Raises
    ------
    ValueError
        Naming every other setting that differs, as ``name: old -> new``.
    """
    resumable = frozenset(resumable)
    keys = current.keys() if keys is None else keys
    changed = sorted(k for k in keys if k not in resumable and saved.get(k) != current.get(k))
    if changed:
        details = ", ".join(f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in changed)
        raise ValueError(f"checkpoint {path} was written with a different {name} ({details}); cannot resume{advice}")


def due(count: int, every: int | None, last: int) -> bool:
    """Whether a periodic file is due after epoch or step ``count``: every ``every`` (None: never) and at ``last``."""
    return count == last or (every is not None and count % every == 0)
