"""The book's tables: numbers formatted for reading, and library messages shown as tables.

A page of the study shows its results as pandas tables. :func:`use_book_tables`
sets, once per notebook, how their numbers read (:func:`format_number`), and
:func:`library_notes` puts what a library logs during a block into the page as a
table instead of raw stderr. pandas and IPython (``pip install 'foamlib[study]'``)
are imported when a function needs them; ``import foamlib.tables`` does not.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ._optional import requires_extra

__all__ = ["format_number", "use_book_tables", "library_notes"]


def format_number(value: float) -> str:
    """A number as the book's tables show it.

    Whole numbers without decimals (``60``, not ``60.000000``), others with
    four significant digits (``0.8902``, ``93.24``), and no exponent between
    1e-4 and 1e15.

    Parameters
    ----------
    value : float

    Returns
    -------
    str
    """
    value = float(value)
    if not math.isfinite(value):
        return str(value)
    value += 0.0  # no "-0"
    if value == round(value) and abs(value) < 1e15:
        return f"{value:.0f}"
    if abs(value) >= 1e4:
        return f"{value:.1f}"
    if abs(value) < 1e-4:
        return f"{value:.3g}"
    return f"{value:.4g}"


def _format_cell(value: object) -> str:
    return format_number(value) if isinstance(value, (float, np.floating)) else str(value)


def use_book_tables() -> None:
    """Show floats in pandas tables with :func:`format_number` for the rest of the session.

    Sets pandas' ``display.float_format`` (DataFrames), and
    ``styler.format.formatter`` and ``styler.format.na_rep`` (a ``Styler``'s
    columns that are not formatted explicitly; a missing value shows as "–").
    A notebook calls it once, after its imports. Tables written to files are
    not affected.
    """
    with requires_extra("study"):
        import pandas as pd

    pd.set_option("display.float_format", format_number)
    pd.set_option("styler.format.formatter", _format_cell)
    pd.set_option("styler.format.na_rep", "–")


class _Collect(logging.Handler):
    def __init__(self, level: int) -> None:
        super().__init__(level)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def library_notes(
    *, logger: str = "foamlib", level: int = logging.WARNING, title: str = "What foamlib reported"
) -> Iterator[list[str]]:
    """Collect a block's log messages and show them as a table after it, instead of on stderr.

    Inside a notebook, a warning that :mod:`foamlib` logs (a generated box
    shorter than two cells, weights that could not be downloaded) would
    otherwise reach the page as raw stderr. Here it is shown as a table of the
    distinct messages with how often each came, under ``title``; nothing is
    shown if there were none, and the home directory in a message is written
    ``~``. The block's records go nowhere else (they do not propagate to the
    root logger, whose last-resort handler writes stderr).

    Parameters
    ----------
    logger : str
        The logger whose messages (and its children's) are collected.
    level : int
        The lowest level collected (``logging.WARNING``).
    title : str
        The table's caption.

    Yields
    ------
    list of str
        The messages, filled when the block ends (for a notebook's own use).
    """
    target = logging.getLogger(logger)
    handler = _Collect(level)
    propagate = target.propagate
    target.addHandler(handler)
    target.propagate = False
    messages: list[str] = []
    try:
        yield messages
    finally:
        target.removeHandler(handler)
        target.propagate = propagate
    home = str(Path.home())
    for record in handler.records:  # the reader's own cache is "~/.cache/...", not this machine's home
        message = record.getMessage()
        messages.append(message.replace(home, "~") if len(home) > 1 else message)
    if messages:
        with requires_extra("study"):
            import pandas as pd
            from IPython.display import display

        counts = pd.Series(messages).value_counts(sort=False)
        table = pd.DataFrame({"message": counts.index, "times": counts.to_numpy()})
        display(table.style.format(escape="html").hide(axis="index").set_caption(title))
