"""Progress bars that the study runner can follow from outside the kernel.

:func:`progress_bar` is :class:`tqdm.auto.tqdm` with foamlib's usual
``disable=not progress`` switch. When the environment variable
:data:`PROGRESS_FILE_VARIABLE` names a file (the study runner sets it in each
stage's kernel, see :func:`foamlib.study.kernel_environment`), every bar also
appends its state to that file as one JSON line, at most one line per bar every
:data:`REPORT_INTERVAL_S` seconds plus one when it starts and one when it
closes, whether or not the bar is shown. A line is::

    {"stage": "04_unet_step1", "bar": "12345-1", "desc": "epoch 3/12", "n": 40, "total": 120,
     "unit": "batch", "elapsed": 12.5, "closed": false, "time": 1767200000.0}

``elapsed`` is in seconds since the bar started, ``time`` in seconds since the
epoch, ``total`` is None for a bar of unknown length, and ``bar`` tells the bars
of one process apart. :func:`read_records` reads such a file back. Without the
variable, :func:`progress_bar` is tqdm and nothing is written.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "PROGRESS_FILE_VARIABLE",
    "PROGRESS_STAGE_VARIABLE",
    "REPORT_INTERVAL_S",
    "ProgressRecord",
    "progress_bar",
    "read_records",
]

log = logging.getLogger(__name__)

#: Environment variable naming the file that bars append their JSON lines to.
PROGRESS_FILE_VARIABLE = "FOAMLIB_PROGRESS_FILE"
#: Environment variable naming the stage the bars belong to (written into each line).
PROGRESS_STAGE_VARIABLE = "FOAMLIB_PROGRESS_STAGE"
#: Least seconds between two lines of one bar (its first and last line are always written).
REPORT_INTERVAL_S = 2.0

_ids = itertools.count(1)


class _NullFile:
    """A text stream that drops what it is given: the display of a bar that is counted but not shown."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


@dataclass(frozen=True)
class ProgressRecord:
    """One JSON line of a progress file.

    Attributes
    ----------
    stage : str
        The stage the bar ran in (``""`` where the variable was not set).
    bar : str
        ``"<process id>-<counter>"``: which bar of which process.
    desc : str
        The bar's description, e.g. ``"epoch 3/12"``.
    n : int or float
        Steps done.
    total : int, float or None
        Steps in all; None for a bar of unknown length.
    unit : str
        What a step is (``"batch"``, ``"trial"``, ``"slab"``).
    elapsed : float
        Seconds since the bar started.
    closed : bool
        True on the bar's last line.
    time : float
        When the line was written, seconds since the epoch.
    """

    stage: str
    bar: str
    desc: str
    n: float
    total: float | None
    unit: str
    elapsed: float
    closed: bool
    time: float


def read_records(path: str | os.PathLike, offset: int = 0) -> tuple[list[ProgressRecord], int]:
    """Read the complete JSON lines of a progress file from a byte offset on.

    Parameters
    ----------
    path : path-like
        The progress file; a missing file holds no records.
    offset : int
        Byte offset to start at (the second value of the previous call), so
        that a file being written can be followed.

    Returns
    -------
    records : list of ProgressRecord
        The lines after ``offset`` that end in a newline; a line that is not a
        record (a torn or foreign line) is skipped.
    offset : int
        The offset after the last complete line: a line still being written is
        read on the next call.
    """
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n") + 1
    records = []
    for line in data[:end].splitlines():
        try:
            item = json.loads(line)
            records.append(ProgressRecord(
                stage=str(item["stage"]), bar=str(item["bar"]), desc=str(item["desc"]), n=item["n"],
                total=item["total"], unit=str(item["unit"]), elapsed=float(item["elapsed"]),
                closed=bool(item["closed"]), time=float(item["time"]),
            ))
        except (ValueError, KeyError, TypeError):
            continue
    return records, offset + end


def _reporting_class(base: type) -> type:
    """A subclass of the tqdm class ``base`` that appends its state to a progress file."""

    class ReportingBar(base):
        def __init__(self, *args, report_path: str, report_stage: str, shown: bool, **kwargs):
            self._report_path = report_path
            self._report_stage = report_stage
            self._report_id = f"{os.getpid()}-{next(_ids)}"
            self._report_last = -float("inf")
            self._report_shown = shown
            self._report_closed = False
            super().__init__(*args, **kwargs)
            if self._report_last == -float("inf"):  # tqdm's first refresh did not write its first line
                self._report(force=True)

        def _report(self, *, force: bool = False, closed: bool = False) -> None:
            if self._report_path is None or not hasattr(self, "start_t"):
                return
            now = time.monotonic()
            if not force and now - self._report_last < REPORT_INTERVAL_S:
                return
            self._report_last = now
            line = {
                "stage": self._report_stage, "bar": self._report_id, "desc": self.desc.rstrip(": "), "n": self.n,
                "total": self.total, "unit": self.unit, "elapsed": round(self._time() - self.start_t, 3),
                "closed": closed, "time": round(time.time(), 3),
            }
            try:
                with open(self._report_path, "a", encoding="utf-8") as handle:
                    handle.write(json.dumps(line) + "\n")
            except OSError as exc:  # progress must never stop the computation it reports on
                log.debug("progress file %s not written (%s); progress lines stop", self._report_path, exc)
                self._report_path = None

        def display(self, *args, **kwargs):
            self._report()
            if self._report_shown:
                return super().display(*args, **kwargs)
            return True

        def close(self):
            if not self._report_closed and hasattr(self, "start_t"):
                self._report_closed = True
                self._report(force=True, closed=True)
            return super().close()

    return ReportingBar


_classes: dict[type, type] = {}


def progress_bar(iterable: Iterable | None = None, *, disable: bool = False, **kwargs: Any):
    """A tqdm bar (:class:`tqdm.auto.tqdm`) that the study runner can follow.

    Parameters
    ----------
    iterable : iterable, optional
        What to iterate over, as for tqdm.
    disable : bool
        Hide the bar (foamlib's functions pass ``disable=not progress``). A
        hidden bar still writes its progress lines when
        :data:`PROGRESS_FILE_VARIABLE` is set.
    **kwargs
        tqdm's other keywords (``total``, ``desc``, ``unit``, ``initial``, ...).

    Returns
    -------
    tqdm.auto.tqdm
        The bar; use it as tqdm (iterate, ``update``, ``set_postfix``,
        ``close``, ``with``).
    """
    path = os.environ.get(PROGRESS_FILE_VARIABLE)
    if disable and not path:
        from tqdm.std import tqdm

        return tqdm(iterable, disable=True, **kwargs)
    from tqdm.auto import tqdm as shown_class

    if not path:
        return shown_class(iterable, **kwargs)
    from tqdm.std import tqdm as hidden_class

    base = hidden_class if disable else shown_class
    if base not in _classes:
        _classes[base] = _reporting_class(base)
    if disable:
        kwargs["file"] = _NullFile()
    stage = os.environ.get(PROGRESS_STAGE_VARIABLE, "")
    return _classes[base](iterable, report_path=path, report_stage=stage, shown=not disable, **kwargs)
