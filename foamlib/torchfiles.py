"""Safe, atomic files of torch tensors: models, checkpoints and their metadata.

Every model and checkpoint file that ``foamlib`` writes (the U-Nets of
:mod:`foamlib.training`, the GAN of :mod:`foamlib.gan`, the CycleGAN of
:mod:`foamlib.cyclegan`) is one :func:`torch.save` file holding a dict with a
``format`` tag, a ``format_version`` and otherwise only tensors and plain
Python values, so it loads with ``weights_only=True`` (no code runs when a file
is read). Files are written atomically: a temporary file in the same folder,
then :func:`os.replace`, so an interrupted write never leaves half a file
under the final name.
"""
from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .runs import atomic_path

logger = logging.getLogger(__name__)

__all__ = [
    "ModelFileError",
    "save_torch_file",
    "load_torch_file",
    "save_module_file",
    "load_module_file",
    "resume_checkpoint",
    "plain",
    "sub_seed",
    "data_fingerprint",
]


class ModelFileError(ValueError):
    """A model or checkpoint file is missing, unreadable or not what foamlib wrote."""


def save_torch_file(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` ``obj`` to a temporary file beside ``path``, then move it into place.

    Parameters
    ----------
    obj : object
        What to store; keep to tensors and plain values so that
        :func:`load_torch_file` can read it with ``weights_only=True``.
    path : path-like
        Destination; missing parent folders are created, an existing file is
        replaced only once the new one is complete.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return path


def _short_reason(exc: Exception) -> str:
    """The informative part of a ``torch.load`` error (its messages run to several paragraphs)."""
    text = str(exc)
    marker = "WeightsUnpickler error:"
    if marker in text:
        text = text.split(marker, 1)[1]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    first = lines[0] if lines else type(exc).__name__
    return first.split(". ")[0].rstrip(".")


def load_torch_file(
    path: str | os.PathLike,
    expected_format: str,
    *,
    kind: str = "model",
    version: int = 1,
    device: str | torch.device | None = None,
) -> dict[str, Any]:
    """Read a foamlib torch file with ``weights_only=True`` and check its format tag.

    Parameters
    ----------
    path : path-like
        The file.
    expected_format : str
        The ``format`` entry the file must have (e.g. ``"foamlib-unet"``).
    kind : str, optional
        What the file is, for error messages (``"model"``, ``"checkpoint"``,
        ``"GAN checkpoint"``, ...).
    version : int, optional
        The ``format_version`` this code reads.
    device : str or torch.device, optional
        ``map_location`` of :func:`torch.load`.

    Returns
    -------
    dict
        The stored dict.

    Raises
    ------
    ModelFileError
        (a :class:`ValueError`) if the file is missing, is not a torch file
        (damaged or foreign), or holds another format or version; the message
        names the file and the problem.
    """
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"{path}: no such file (expected a foamlib {kind} file)")
    if not path.is_file():
        raise ModelFileError(f"{path} is not a file (expected a foamlib {kind} file)")
    try:
        obj = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # torch raises several types for damaged or foreign files
        raise ModelFileError(
            f"{path} is not a readable torch file, or not one that loads safely "
            f"({type(exc).__name__}: {_short_reason(exc)}); expected a foamlib {kind} file"
        ) from exc
    found = obj.get("format") if isinstance(obj, dict) else None
    if found != expected_format:
        what = f"format {found!r}" if found is not None else f"a {type(obj).__name__} without a foamlib format tag"
        raise ModelFileError(f"{path} is not a foamlib {kind} file: it holds {what}, expected format {expected_format!r}")
    found_version = obj.get("format_version")
    if found_version != version:
        raise ModelFileError(f"{path} has {kind} format version {found_version!r}; this foamlib reads version {version}")
    return obj


def save_module_file(
    path: str | os.PathLike,
    module: torch.nn.Module,
    *,
    file_format: str,
    config_key: str,
    config: Mapping[str, Any],
    metadata: Mapping[str, Any] | None = None,
    version: int = 1,
) -> Path:
    """Write a trained network as one self-describing file, atomically.

    The file holds ``{"format": file_format, "format_version": version,
    config_key: config, "state_dict": ..., "metadata": ..., "foamlib_version":
    ...}`` with the weights on the CPU; :func:`load_module_file` rebuilds the
    network from ``config`` alone.

    Raises
    ------
    TypeError
        If ``metadata`` holds something other than plain values (see :func:`plain`).
    """
    from . import __version__

    payload = {
        "format": file_format,
        "format_version": version,
        config_key: dict(config),
        "state_dict": {k: v.detach().cpu() for k, v in module.state_dict().items()},
        "metadata": plain(dict(metadata or {}), "metadata"),
        "foamlib_version": __version__,
    }
    return save_torch_file(payload, path)


def load_module_file(
    path: str | os.PathLike,
    *,
    file_format: str,
    config_key: str,
    build: Callable[..., torch.nn.Module],
    kind: str,
    what: str,
    version: int = 1,
    device: str | torch.device | None = None,
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Read a file written by :func:`save_module_file` and rebuild its network.

    Parameters
    ----------
    path : path-like
        The file.
    file_format, config_key, version
        As given to :func:`save_module_file`.
    build : callable
        ``build(**config)`` constructs the network (its class).
    kind : str
        What the file is, for error messages about the file (see :func:`load_torch_file`).
    what : str
        What the network is, for the message when it cannot be rebuilt.
    device : str or torch.device, optional
        Where to load the weights; the network itself stays where ``build`` put it.

    Returns
    -------
    (torch.nn.Module, dict)
        The network with its weights, and the metadata plus ``"foamlib_version"``
        (the version that wrote the file) where the metadata does not have that key.

    Raises
    ------
    ModelFileError
        If the file is missing, unreadable, of another format, or its network
        cannot be rebuilt; the message names the file and the problem.
    """
    payload = load_torch_file(path, file_format, kind=kind, version=version, device=device)
    try:
        module = build(**payload[config_key])
        module.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ModelFileError(f"{Path(path)}: the stored {what} cannot be rebuilt ({type(exc).__name__}: {exc})") from exc
    metadata = dict(payload.get("metadata") or {})
    metadata.setdefault("foamlib_version", payload.get("foamlib_version"))
    return module, metadata


#: What a training function does with a checkpoint written by another configuration or data.
ON_MISMATCH = ("error", "restart")


def resume_checkpoint(
    path: str | os.PathLike | None,
    expected_format: str,
    *,
    kind: str,
    version: int = 1,
    device: str | torch.device | None = None,
    check: Callable[[dict[str, Any]], None],
    on_mismatch: str = "error",
) -> dict[str, Any] | None:
    """The checkpoint to resume a training run from, or None to start afresh.

    Parameters
    ----------
    path : path-like or None
        The checkpoint file; None or a missing file: start afresh.
    expected_format, kind, version, device
        See :func:`load_torch_file`.
    check : callable
        ``check(checkpoint)`` raises :class:`ValueError` if the checkpoint
        belongs to another run (configuration, model or data).
    on_mismatch : {"error", "restart"}
        What to do with such a checkpoint: raise the ValueError (default), or
        rename it to ``<name>.stale-<time><suffix>`` beside itself (nothing
        is deleted), log a warning and start afresh. The study's notebooks
        use ``"restart"``: the runner re-runs a stage only when its
        parameters or inputs changed, and a checkpoint of the old run is then
        stale, not a run to resume.

    Returns
    -------
    dict or None

    Raises
    ------
    ModelFileError
        If the file is not a readable checkpoint of ``expected_format``.
    ValueError
        If it belongs to another run and ``on_mismatch == "error"``, or
        ``on_mismatch`` is not one of :data:`ON_MISMATCH`.
    """
    if on_mismatch not in ON_MISMATCH:
        raise ValueError(f"on_mismatch must be one of {', '.join(map(repr, ON_MISMATCH))}, got {on_mismatch!r}")
    if path is None or not Path(path).exists():
        return None
    path = Path(path)
    checkpoint = load_torch_file(path, expected_format, kind=kind, version=version, device=device)
    try:
        check(checkpoint)
    except ValueError as exc:
        if on_mismatch == "error":
            raise
        stale = path.with_name(f"{path.stem}.stale-{time.strftime('%Y%m%dT%H%M%S')}-{time.time_ns() % 10**6}{path.suffix}")
        os.replace(path, stale)
        logger.warning("%s; moved it to %s and started afresh", exc, stale.name)
        return None
    return checkpoint


def plain(value: Any, where: str = "metadata") -> Any:
    """Convert metadata to types that ``torch.load(weights_only=True)`` accepts.

    NumPy scalars and arrays become Python numbers and lists, paths become
    strings, tuples become lists; dict keys must be strings.

    Raises
    ------
    TypeError
        If ``value`` holds anything else; the message says where (``where``).
    """
    if isinstance(value, np.generic):  # before the plain types: np.float64 is a float subclass
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"metadata keys must be strings, got {key!r} in {where}")
            out[key] = plain(item, f"{where}[{key!r}]")
        return out
    if isinstance(value, (list, tuple)):
        return [plain(item, f"{where}[{i}]") for i, item in enumerate(value)]
    raise TypeError(f"metadata must hold plain values (str, numbers, bool, None, lists, dicts); {where} is a {type(value).__name__}")


def sub_seed(seed: int, stream: int | str) -> int:
    """The seed of random stream ``stream`` of a run seeded with ``seed``.

    Kept for callers of earlier versions; it is
    ``foamlib.streams.seed_for(seed, stream)`` (63 bits), which new code
    calls directly with a named stream path.
    """
    from .streams import seed_for

    return seed_for(seed, stream)


def data_fingerprint(*arrays: np.ndarray) -> str:
    """A short hash of the contents, dtypes and shapes of arrays.

    Checkpoints store it so that a run resumes only on the data it started
    on: the same shapes with other contents (a data set written anew by an
    earlier stage) give another fingerprint.

    Parameters
    ----------
    *arrays : numpy.ndarray
        Any number of arrays, in a fixed order.

    Returns
    -------
    str
        32 hexadecimal digits (BLAKE2b of 16 bytes).
    """
    digest = hashlib.blake2b(digest_size=16)
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape};".encode())
        digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()
