"""Checks of scalar arguments, with one behaviour for the whole package.

Every public function of :mod:`foamlib` that takes a count, a size or a
real-valued setting checks it with one of these functions, so that all of
them answer alike:

* Python and numpy integers are integers (``np.int64(3)`` is accepted
  wherever ``3`` is); ``bool`` and ``np.bool_`` are not, although Python
  counts ``True`` as an ``int``.
* Python and numpy reals (and integers) are reals; ``bool`` is not.
* A value of the wrong type raises :class:`TypeError`, a value of the right
  type outside its range (or not finite) raises :class:`ValueError`.
* Every message starts with the parameter's name and ends with the value
  given, e.g. ``"tile must be an integer >= 1, got 0"``.

The functions return the value as a plain Python ``int`` or ``float``, so
that callers store no numpy scalars in configs, JSON or checkpoints.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from numbers import Integral, Real
from typing import Any, TypeVar

import numpy as np

__all__ = ["check_choice", "check_int", "check_mask", "check_real", "is_int", "is_real"]

T = TypeVar("T")


def is_int(value: Any) -> bool:
    """Whether ``value`` is an integer: a Python or numpy integer, not a bool.

    Parameters
    ----------
    value : object
        Anything.

    Returns
    -------
    bool
        True for ``int`` and :class:`numpy.integer`, False for ``bool``,
        :class:`numpy.bool_` and everything else (``3.0`` included).
    """
    return isinstance(value, Integral) and not isinstance(value, (bool, np.bool_))


def is_real(value: Any) -> bool:
    """Whether ``value`` is a real number: a Python or numpy int or float, not a bool.

    True for ``int``, ``float``, :class:`numpy.integer` and
    :class:`numpy.floating`; False for bools, complex numbers, strings,
    arrays and everything else (``value`` may be anything).
    """
    return isinstance(value, Real) and not isinstance(value, (bool, np.bool_))


def _range_text(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    """The allowed range in words, e.g. ``">= 1"``, ``"in (0, 1]"``; empty where unbounded."""
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f"{'<' if high_open else '<='} {high:g}"
    return ""


def check_int(name: str, value: Any, *, low: int | None = None, high: int | None = None) -> int:
    """Return ``value`` as an ``int`` if it is an integer in ``[low, high]``.

    Parameters
    ----------
    name : str
        The parameter's name, for the message (e.g. ``"tile"``,
        ``"GanConfig.batch_size"``).
    value : object
        The value to check.
    low, high : int, optional
        Inclusive bounds; None leaves that side open.

    Returns
    -------
    int
        ``int(value)``.

    Raises
    ------
    TypeError
        If ``value`` is not a Python or numpy integer, or is a bool.
    ValueError
        If ``value`` lies outside ``[low, high]``.

    Examples
    --------
    >>> check_int("tile", np.int64(64), low=1)
    64
    >>> try:
    ...     check_int("tile", 0, low=1)
    ... except ValueError as error:
    ...     print(error)
    tile must be an integer >= 1, got 0
    """
    if not is_int(value):
        bound = _range_text(low, high, False, False)
        raise TypeError(f"{name} must be an integer{' ' + bound if bound else ''}, got {value!r} ({type(value).__name__})")
    out = int(value)
    if (low is not None and out < low) or (high is not None and out > high):
        raise ValueError(f"{name} must be an integer {_range_text(low, high, False, False)}, got {value!r}")
    return out


def check_real(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    allow_inf: bool = False,
) -> float:
    """Return ``value`` as a ``float`` if it is a finite real number in the given range.

    Parameters
    ----------
    name : str
        The parameter's name, for the message.
    value : object
        The value to check.
    low, high : float, optional
        Bounds; None leaves that side open.
    low_open, high_open : bool, optional
        Whether ``low`` / ``high`` are excluded (default: both included).
    allow_inf : bool, optional
        Accept ``inf`` and ``-inf`` (still subject to the bounds); NaN is
        never accepted.

    Returns
    -------
    float
        ``float(value)``.

    Raises
    ------
    TypeError
        If ``value`` is not a Python or numpy real number, or is a bool.
    ValueError
        If ``value`` is NaN, infinite (unless ``allow_inf``) or out of range.

    Examples
    --------
    >>> check_real("sigma", 0.5, low=0)
    0.5
    >>> try:
    ...     check_real("lr", 0, low=0, low_open=True)
    ... except ValueError as error:
    ...     print(error)
    lr must be a finite number > 0, got 0
    """
    if not is_real(value):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    out = float(value)
    bad = (
        math.isnan(out)
        or (math.isinf(out) and not allow_inf)
        or (low is not None and (out <= low if low_open else out < low))
        or (high is not None and (out >= high if high_open else out > high))
    )
    if bad:
        bound = _range_text(low, high, low_open, high_open)
        kind = "a number" if allow_inf else "a finite number"
        raise ValueError(f"{name} must be {kind}{' ' + bound if bound else ''}, got {value!r}")
    return out


def check_choice(name: str, value: T, choices: Collection[Any]) -> T:
    """Return ``value`` if it is one of ``choices``.

    Parameters
    ----------
    name : str
        The parameter's name, for the message.
    value : object
        The value to check.
    choices : collection
        The allowed values.

    Returns
    -------
    object
        ``value`` itself.

    Raises
    ------
    ValueError
        If ``value`` is not among ``choices`` (unhashable values included).
    """
    try:
        ok = value in choices
    except TypeError:
        ok = False
    if not ok:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def check_mask(mask: Any, shape: tuple[int, ...], *, like: str = "image") -> np.ndarray:
    """Return ``mask`` as an array if it is a boolean array of the given shape that selects something.

    Parameters
    ----------
    mask : array-like
        The region of interest, True = inside.
    shape : tuple of int
        The shape of the array it selects from.
    like : str, optional
        What that array is called, for the message (``"image"``, ``"solid"``).

    Returns
    -------
    numpy.ndarray
        ``numpy.asarray(mask)``, dtype bool, shape ``shape``.

    Raises
    ------
    TypeError
        If ``mask`` is not of dtype bool.
    ValueError
        If its shape differs from ``shape`` or it selects no voxel.
    """
    mask = np.asarray(mask)
    if mask.dtype != bool:
        raise TypeError(f"mask must be a boolean array, got dtype {mask.dtype}")
    if mask.shape != tuple(shape):
        raise ValueError(f"mask shape {mask.shape} does not match {like} shape {tuple(shape)}")
    if not mask.any():
        raise ValueError("mask selects no voxels")
    return mask
