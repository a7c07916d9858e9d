"""Optional dependencies: the one place that turns a missing package into a message naming foamlib's extra.

``pip install foamlib`` installs the core (numpy, scipy, scikit-image,
tifffile, torch, ...), enough for ``import foamlib``, every module's import and
the commands ``segment``, ``analyze`` and ``phantom``. The packages that only
the study, the book, large-scan processing, model export or validation need
come with the extras of ``pyproject.toml`` (``pip install 'foamlib[study]'``)
and are imported inside the functions that use them::

    def porosity_table(summaries):
        with requires_extra("study"):
            import pandas as pd

``tests/test_packaging.py`` checks that every import of a package outside the
core sits in such a block, naming an extra that lists the package.
"""
from __future__ import annotations

import sys
from types import TracebackType

__all__ = ["EXTRAS", "requires_extra"]

#: The extras of ``pyproject.toml`` that foamlib's functions import from.
EXTRAS = ("study", "book", "scale", "export", "validate")


class requires_extra:  # noqa: N801 - used like a function: ``with requires_extra("study"):``
    """Context manager around the imports of an optional dependency.

    A :class:`ModuleNotFoundError` raised inside the block is raised again,
    chained, with a message that names the function that needs the module, the
    missing module and the command that installs it; other exceptions pass
    unchanged.

    Parameters
    ----------
    extra : str
        The extra of ``pyproject.toml`` that installs the imported packages, one of :data:`EXTRAS`.

    Raises
    ------
    ValueError
        ``extra`` is not one of :data:`EXTRAS`.
    ModuleNotFoundError
        On leaving the block, if an import in it failed: ``"foamlib.report.porosity_table needs the
        module 'pandas', which is not installed: pip install 'foamlib[study]'"``.
    """

    def __init__(self, extra: str) -> None:
        if extra not in EXTRAS:
            raise ValueError(f"unknown foamlib extra {extra!r}; pyproject.toml has {', '.join(EXTRAS)}")
        self.extra = extra

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None,
    ) -> None:  # fmt: skip
        if exc_type is None or not issubclass(exc_type, ModuleNotFoundError):
            return None
        caller = sys._getframe(1)
        code = caller.f_code
        where = f"{caller.f_globals.get('__name__', '?')}.{getattr(code, 'co_qualname', code.co_name)}"
        where = where.removesuffix(".<module>")
        missing = getattr(exc, "name", None) or str(exc)
        raise ModuleNotFoundError(
            f"{where} needs the module {missing!r}, which is not installed: pip install 'foamlib[{self.extra}]'",
            name=missing,
        ) from exc
