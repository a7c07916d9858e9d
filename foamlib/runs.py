"""Run folders: where each stage of the study writes its artefacts.

Every sample gets one folder, ``runs/<sample>/``. A stage reads only what earlier
stages wrote there and writes its own files plus a small ``metrics.json``. Files
are written atomically (a temporary file in the same folder, then
:func:`os.replace`), so an interrupted stage never leaves a half-written file
that a later stage would take for a finished one.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import hashlib
import io
import json
import math
import os
import re
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "to_jsonable",
    "atomic_path",
    "write_json",
    "read_json",
    "write_csv",
    "write_table",
    "stage_dir",
    "update_metrics",
    "RunFolderBusy",
    "run_lock",
    "is_temporary",
    "remove_temporaries",
    "file_sha256",
]

#: Name of the lock file in a run folder (see :func:`run_lock`).
LOCK_FILE = ".lock"

# what atomic_path names its temporary files: .<name>.<32 hex>.tmp<suffix>
_TEMPORARY = re.compile(r"^\..+\.[0-9a-f]{32}\.tmp(\.[^/]*)?$")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place on success.

    Parameters
    ----------
    path : path-like
        Final destination. Missing parent folders are created.
    overwrite : bool, optional
        If False and ``path`` exists, raise :class:`FileExistsError` before
        anything is written.

    Yields
    ------
    pathlib.Path
        A path in the same folder as ``path`` (so the final move is atomic) that
        the caller writes to. It keeps the suffix of ``path`` so that writers
        which pick a format from the suffix still work.

    Raises
    ------
    FileExistsError
        If ``overwrite`` is False and ``path`` already exists.
    IsADirectoryError
        If ``path`` is a folder.

    Notes
    -----
    If the body raises, the temporary file is removed and ``path`` is left as
    it was.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; give a file name")
    if not overwrite and path.exists():
        raise FileExistsError(f"{path} already exists; refusing to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    # The writer creates the file, so it gets the usual permissions (mkstemp would make it 0600).
    tmp_path = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp{path.suffix}")
    try:
        yield tmp_path
        if not tmp_path.is_file():
            raise FileNotFoundError(f"nothing was written to the temporary file for {path}")
        with open(tmp_path, "rb") as handle:
            os.fsync(handle.fileno())  # the data is on disk before the name points to it
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def to_jsonable(value: Any) -> Any:
    """Convert numpy scalars/arrays and paths to plain JSON types; NaN/inf to None."""
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: str | os.PathLike, data: Mapping[str, Any]) -> Path:
    """Write ``data`` as indented JSON, atomically.

    Parameters
    ----------
    path : path-like
        Destination file; parent folders are created.
    data : mapping
        JSON-ready data. numpy scalars and arrays and paths are converted;
        non-finite floats are written as ``null``.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    path = Path(path)
    text = json.dumps(to_jsonable(data), indent=2, sort_keys=False) + "\n"
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def read_json(path: str | os.PathLike) -> dict[str, Any]:
    """Read a JSON object written by :func:`write_json`.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist; the message names the stage that should have
        written it when the file lies in a run folder.
    ValueError
        If the file is not valid JSON or not a JSON object.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; run the stage that writes it first")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path} holds a JSON {type(data).__name__}, expected an object")
    return data


def write_csv(path: str | os.PathLike, rows: Sequence[Mapping[str, Any]]) -> Path:
    """Write rows of plain values (a training log, a table) as CSV, atomically.

    Parameters
    ----------
    path : path-like
        Destination file; parent folders are created, an existing file is replaced.
    rows : sequence of mappings
        One mapping per row. The columns are the keys in order of first
        appearance; a row without a key gets an empty cell.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    path = Path(path)
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    with atomic_path(path) as tmp:
        tmp.write_text(buffer.getvalue(), encoding="utf-8")
    return path


def write_table(path: str | os.PathLike, frame: Any) -> Path:
    """Write a :class:`pandas.DataFrame` (index included) as CSV, atomically.

    Parameters
    ----------
    path : path-like
        Destination file; parent folders are created, an existing file is replaced.
    frame : pandas.DataFrame
        The table; its index (and index name) become the first column(s).

    Returns
    -------
    pathlib.Path
        The path written.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        frame.to_csv(tmp)
    return path


def stage_dir(run_dir: str | os.PathLike, stage: str) -> Path:
    """Return ``run_dir/stage``, created if missing."""
    path = Path(run_dir) / stage
    path.mkdir(parents=True, exist_ok=True)
    return path


def update_metrics(run_dir: str | os.PathLike, stage: str, metrics: Mapping[str, Any]) -> Path:
    """Record a stage's metrics in ``run_dir/<stage>/metrics.json`` (atomic).

    The study runner merges every stage's ``metrics.json`` into the sample's
    ``summary.json``.
    """
    return write_json(stage_dir(run_dir, stage) / "metrics.json", dict(metrics))


def is_temporary(name: str) -> bool:
    """Whether a file name is one of :func:`atomic_path`'s temporaries (``.<name>.<32 hex>.tmp<suffix>``)."""
    return _TEMPORARY.match(name) is not None


def remove_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files that interrupted writers left anywhere under ``folder``.

    A writer killed by SIGKILL (or a power cut) cannot clean up after
    :func:`atomic_path`; its temporary file stays. Call this only while holding
    the folder's :func:`run_lock`, so that no live writer's file is removed.

    Returns
    -------
    list of pathlib.Path
        The files removed.
    """
    removed = []
    for root, _, files in os.walk(folder):
        for name in files:
            if is_temporary(name):
                path = Path(root, name)
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


class RunFolderBusy(RuntimeError):
    """Another process holds a run folder's lock (see :func:`run_lock`)."""


@contextlib.contextmanager
def run_lock(
    folder: str | os.PathLike, *, what: str = "foamlib", wait: bool = False, on_wait: Callable[[str], None] | None = None
) -> Iterator[Path]:
    """Hold an exclusive lock on a run folder for the duration of the ``with`` block.

    The lock is an advisory ``flock`` on ``folder/.lock``, so the operating
    system releases it when its holder dies, even by SIGKILL: a stale lock file
    never blocks a later run. The file records the holder (process id, host,
    start time and ``what``) for the message of the process that is refused.

    Parameters
    ----------
    folder : path-like
        The run folder; created if missing.
    what : str, optional
        What holds the lock (shown to a refused process), e.g. the command line.
    wait : bool, optional
        Wait for a busy lock instead of raising :class:`RunFolderBusy`.
    on_wait : callable, optional
        With ``wait``, called with a line naming the holder before waiting.

    Yields
    ------
    pathlib.Path
        The folder.

    Raises
    ------
    RunFolderBusy
        If another process holds the lock (and ``wait`` is False); the message
        names it.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip() or "another process"
            if not wait:
                raise RunFolderBusy(
                    f"run folder {folder} is in use by {holder}; wait for that run to finish or stop it"
                ) from None
            if on_wait is not None:
                on_wait(f"run folder {folder} is in use by {holder}; waiting for it")
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        started = time.strftime("%Y-%m-%dT%H:%M:%S")
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {started} ({what})\n".encode(), 0)
        try:
            yield folder
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the flock


def file_sha256(path: str | os.PathLike, *, chunk_size: int = 1 << 20) -> str:
    """SHA-256 of a file's content, read in chunks (large files are never held in memory).

    Returns
    -------
    str
        The hex digest.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()
