"""Where the tiles of a slice lie, and the defaults of tiled inference.

A 2D network runs on tiles of a slice (:func:`foamlib.segment.segment_volume`,
:func:`foamlib.distributed.segment_dask`, the CLI's ``segment``): along each
axis longer than ``tile``, the fewest tiles of length at most ``tile`` that
overlap by at least ``overlap`` pixels, all of one length, spread evenly from
border to border (:func:`tile_layout`; :mod:`foamlib.segment`, Tiling, explains
the choice and the blending). Every caller takes the layout, the tile count of
a slice and the defaults from here, so that they cut the same tiles and batch
them alike. The module needs only the standard library.
"""

from __future__ import annotations

import math

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_OVERLAP",
    "DEFAULT_TILE",
    "batch_unit",
    "tile_layout",
    "tile_origins",
    "tiles_per_slice",
]

#: Default largest tile side of tiled inference, pixels.
DEFAULT_TILE = 256

#: Default smallest overlap of neighbouring tiles, pixels.
DEFAULT_OVERLAP = 32

#: Default number of tiles per forward pass of the network.
DEFAULT_BATCH_SIZE = 8


def tile_layout(size: int, tile: int, overlap: int, min_length: int = 0) -> tuple[list[int], int]:
    """Tile starts along one axis and the tiles' common length: the fewest tiles, spread evenly.

    Parameters
    ----------
    size : int
        Length of the axis, in pixels.
    tile : int
        Largest tile length, in pixels.
    overlap : int
        Smallest overlap of neighbouring tiles, in pixels, ``0 <= overlap < tile``.
    min_length : int, optional
        Shortest tile, in pixels, ``<= tile`` (a U-Net's
        :attr:`foamlib.segment.TilingLimits.min_tile`); a longer tile only
        overlaps more. Default 0.

    Returns
    -------
    starts : list of int
        First pixel of every tile, increasing; the first tile starts at 0 and the
        last ends at ``size``.
    length : int
        Length of every tile: ``size`` where ``size <= tile`` (one tile), else
        the shortest length at which ``n`` tiles overlapping by at least
        ``overlap`` cover the axis, ``n`` being the fewest tiles of length at
        most ``tile`` that can (:mod:`foamlib.segment`, Tiling), or
        ``min_length`` where that is longer. The tile count depends only on
        ``size``, ``tile`` and ``overlap``.
    """
    if size <= tile:
        return [0], size
    n = -(-(size - overlap) // (tile - overlap))
    length = max(-(-(size + (n - 1) * overlap) // n), min(min_length, tile))
    starts = [round(i * (size - length) / (n - 1)) for i in range(n)]
    return starts, length


def tile_origins(size: int, tile: int, overlap: int) -> list[int]:
    """Tile starts along one axis (:func:`tile_layout`).

    Parameters
    ----------
    size, tile, overlap : int
        As for :func:`tile_layout`, pixels.

    Returns
    -------
    list of int
        First pixel of every tile, increasing.
    """
    return tile_layout(size, tile, overlap)[0]


def tiles_per_slice(height: int, width: int, tile: int, overlap: int) -> int:
    """Number of tiles that cover one ``(height, width)`` slice.

    Parameters
    ----------
    height, width : int
        Sides of the slice, pixels.
    tile, overlap : int
        As for :func:`tile_layout`, pixels.

    Returns
    -------
    int
        The product of the tile counts along the two axes.
    """
    return len(tile_origins(height, tile, overlap)) * len(tile_origins(width, tile, overlap))


def batch_unit(per_slice: int, batch_size: int) -> int:
    """Fewest slices whose tiles fill whole batches.

    Parameters
    ----------
    per_slice : int
        Tiles of one slice (:func:`tiles_per_slice`).
    batch_size : int
        Tiles per forward pass.

    Returns
    -------
    int
        ``batch_size / gcd(batch_size, per_slice)`` slices.
    """
    return batch_size // math.gcd(batch_size, per_slice)
