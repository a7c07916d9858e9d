"""Named random streams derived from one seed.

Every random step of the study draws from a stream named after what it
draws (``rng(seed, "gan", "latent")``, ``rng(seed, "walls", "order")``),
derived from the study's one seed. The derivation hashes the seed and the
names with SHA-256, so a stream

* is the same in every process, on every machine and in every Python
  version (Python's :func:`hash` of a string is salted per process and is
  never used);
* does not depend on which other streams were drawn before it, or in which
  order (unlike ``seed + i`` arithmetic or a shared generator);
* differs from every other named stream: two different name paths give
  different 63-bit seeds (a collision is as likely as one of SHA-256's, and
  ``tests/test_streams.py`` checks the names the package uses for the seeds
  0 to 999).

Names are strings or non-negative integers (an index: the ``i``-th sample,
realisation or subset); ``("walls", 1)`` and ``("walls", "1")`` are
different streams.

Functions that take numpy randomness follow scikit-image's SPEC 7: an
``rng=`` argument that accepts None, an int or a :class:`numpy.random.Generator`,
normalised with :func:`numpy.random.default_rng`. :func:`base_seed` turns
such an argument into a seed from which a function derives named streams
of its own.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Union

import numpy as np

from .checks import check_int, is_int

if TYPE_CHECKING:  # torch is imported where a torch generator is asked for
    import torch

__all__ = ["RngLike", "base_seed", "rng", "seed_for", "torch_generator"]

#: What a SPEC 7 ``rng=`` argument accepts.
RngLike = Union[None, int, np.integer, np.random.Generator]

# Changing the tag changes every stream of the package (and every golden value).
_TAG = "foamlib-stream-v1"
_SEP = "\x1f"  # ASCII unit separator: cannot occur in a checked name


def _name(name: object) -> str:
    """The text a stream name contributes to the hash (ints tagged so that 1 and "1" differ)."""
    if is_int(name):
        return f"#{check_int('stream name', name, low=0)}"
    if not isinstance(name, str) or not name or _SEP in name or name.startswith("#"):
        raise TypeError(f"stream names must be non-empty strings (not starting with '#') or integers >= 0, got {name!r}")
    return name


def seed_for(seed: int, *names: str | int, bits: int = 63) -> int:
    """The seed of the stream ``names`` of a study seeded with ``seed``.

    Parameters
    ----------
    seed : int
        The study's seed, >= 0 (Python or numpy integer).
    *names : str or int
        The stream's path, outermost first (e.g. ``"gan", "latent"``);
        integers are indices.
    bits : int, optional
        Width of the seed, 1 to 64. The default 63 suits
        :func:`numpy.random.default_rng` and :meth:`torch.Generator.manual_seed`;
        32 suits libraries that want a 32-bit seed (optuna's samplers, UMAP).

    Returns
    -------
    int
        In ``[0, 2**bits)``: the first ``bits`` bits of the SHA-256 of the
        seed and the names.

    Raises
    ------
    TypeError, ValueError
        If ``seed`` is not an integer >= 0, a name is neither a non-empty
        string nor an integer >= 0, or ``bits`` is out of range.

    Examples
    --------
    >>> seed_for(0, "walls", "order") == seed_for(0, "walls", "order")
    True
    >>> seed_for(0, "walls") != seed_for(1, "walls")
    True
    """
    seed = check_int("seed", seed, low=0)
    bits = check_int("bits", bits, low=1, high=64)
    key = _SEP.join([_TAG, str(seed), *(_name(n) for n in names)])
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") >> (64 - bits)


def rng(seed: int, *names: str | int) -> np.random.Generator:
    """A numpy generator for the stream ``names`` of a study seeded with ``seed``.

    Parameters
    ----------
    seed : int
        The study's seed, >= 0.
    *names : str or int
        The stream's path (see :func:`seed_for`).

    Returns
    -------
    numpy.random.Generator
        ``numpy.random.default_rng(seed_for(seed, *names))``.
    """
    return np.random.default_rng(seed_for(seed, *names))


def torch_generator(seed: int, *names: str | int, device: str = "cpu") -> "torch.Generator":
    """A torch generator for the stream ``names`` of a study seeded with ``seed``.

    Parameters
    ----------
    seed : int
        The study's seed, >= 0.
    *names : str or int
        The stream's path (see :func:`seed_for`).
    device : str, optional
        The generator's device (default ``"cpu"``).

    Returns
    -------
    torch.Generator
        Seeded with ``seed_for(seed, *names)``.
    """
    import torch

    return torch.Generator(device=device).manual_seed(seed_for(seed, *names))


def base_seed(rng: RngLike) -> int:
    """A seed to derive named streams from, for a SPEC 7 ``rng=`` argument.

    Parameters
    ----------
    rng : None, int or numpy.random.Generator
        An integer >= 0 is returned as it is (so ``f(rng=0)`` derives the
        same streams in every process); a generator gives one 63-bit draw
        (advancing it); None draws from fresh OS entropy.

    Returns
    -------
    int
        A seed >= 0 for :func:`seed_for`, :func:`rng` or :func:`torch_generator`.

    Raises
    ------
    TypeError
        If ``rng`` is none of these (a bool included).
    ValueError
        If ``rng`` is a negative integer.
    """
    if rng is None or isinstance(rng, np.random.Generator):
        return int(np.random.default_rng(rng).integers(2**63))
    if is_int(rng):
        return check_int("rng", rng, low=0)
    raise TypeError(f"rng must be None, an integer >= 0 or a numpy.random.Generator, got {rng!r} ({type(rng).__name__})")
