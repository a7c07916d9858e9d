"""Figures that several notebooks share: orthogonal slices, grey-value histograms, overlays.

Each plotting function draws on matplotlib axes it is given (or makes a figure)
and returns the figure, so notebooks stay short and figures look the same on
every page; the pages' tables are formatted by :mod:`foamlib.tables`.
matplotlib (``pip install 'foamlib[study]'``) is imported when a function needs
it; ``import foamlib.plot`` does not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from ._optional import requires_extra

if TYPE_CHECKING:
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

__all__ = [
    "orthogonal_slices",
    "grey_histogram",
    "compare_slices",
    "image_rows",
    "distribution",
]


#: Most voxels read from a volume opened lazily to set the grey scale of :func:`orthogonal_slices`.
LAZY_SCALE_SAMPLES = 2**22


def _centre(volume: np.ndarray) -> tuple[int, int, int]:
    return tuple(int(n) // 2 for n in volume.shape)


def orthogonal_slices(
    volume: np.ndarray,
    *,
    index: tuple[int, int, int] | None = None,
    cmap: str = "gray",
    vmin: float | None = None,
    vmax: float | None = None,
    title: str | None = None,
) -> Figure:
    """Show the three orthogonal central slices of a volume.

    Parameters
    ----------
    volume : (Z, Y, X) ndarray, foamlib.lazy.LazyScan or foamlib.lazy.LazyMask
        A volume opened lazily is read only where it is shown (three slices)
        and, for the grey scale, on a grid of at most :data:`LAZY_SCALE_SAMPLES` voxels.
    index : (z, y, x) tuple of int, optional
        Where to cut; default the centre.
    cmap, vmin, vmax
        Passed to :func:`matplotlib.pyplot.imshow`; the same grey scale for all three.
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    with requires_extra("study"):
        import matplotlib.pyplot as plt

    from .lazy import LazyMask, LazyScan, grid_step

    lazy = isinstance(volume, (LazyScan, LazyMask))
    volume = volume if lazy else np.asarray(volume)
    if volume.ndim != 3:
        raise ValueError(f"expected a (Z, Y, X) volume, got shape {volume.shape}")
    z, y, x = _centre(volume) if index is None else index
    if vmin is None or vmax is None:
        step = grid_step(volume.shape, LAZY_SCALE_SAMPLES) if lazy else 0
        sample = volume[::step, ::step, ::step] if lazy else volume[:: max(1, volume.shape[0] // 16)]
        lo, hi = np.percentile(sample, [0.5, 99.5])
        vmin = lo if vmin is None else vmin
        vmax = hi if vmax is None else vmax
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.6), layout="constrained")
    views = [(volume[z], f"xy (z = {z})"), (volume[:, y], f"xz (y = {y})"), (volume[:, :, x], f"yz (x = {x})")]
    for ax, (image, label) in zip(axes, views):
        ax.imshow(image, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
        ax.set_title(label)
        ax.set_axis_off()
    if title:
        fig.suptitle(title)
    return fig


def grey_histogram(
    volume: np.ndarray,
    *,
    classes: Mapping[str, np.ndarray] | None = None,
    thresholds: Mapping[str, float] | None = None,
    bins: int = 128,
    ax: plt.Axes | None = None,
) -> Figure:
    """Histogram of grey values, optionally split into classes and with threshold lines.

    Parameters
    ----------
    volume : ndarray
        Grey values (any shape).
    classes : mapping of str to bool ndarray, optional
        Masks of the same shape as ``volume`` (e.g. ``{"pore": ~truth, "solid": truth}``);
        each is drawn as its own histogram on a log scale.
    thresholds : mapping of str to float, optional
        Vertical lines, e.g. ``{"Otsu": 93.1}``.
    bins : int
        Number of bins over the full grey range.
    ax : matplotlib axes, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    with requires_extra("study"):
        import matplotlib.pyplot as plt

    volume = np.asarray(volume)
    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 3.6), layout="constrained")
    else:
        fig = ax.figure
    edges = np.linspace(float(volume.min()), float(volume.max()), bins + 1)
    if classes:
        for label, mask in classes.items():
            ax.hist(volume[mask], bins=edges, histtype="stepfilled", alpha=0.5, label=label)
        ax.set_yscale("log")
    else:
        ax.hist(volume.ravel(), bins=edges, histtype="stepfilled", alpha=0.7, label="all voxels")
    for i, (label, value) in enumerate((thresholds or {}).items()):
        ax.axvline(value, linestyle="--", color="k", linewidth=1)
        # stagger the labels downwards so that close thresholds stay readable
        ax.annotate(label, (value, 1), xycoords=("data", "axes fraction"), xytext=(3, -12 * (i + 1)),
                    textcoords="offset points")
    ax.set_xlabel("grey value")
    ax.set_ylabel("voxels")
    ax.legend(loc="upper right")
    return fig


def compare_slices(
    panels: Mapping[str, np.ndarray],
    *,
    crop: tuple[slice, slice] | None = None,
    cmap: str = "gray",
) -> Figure:
    """Show 2D images side by side (a scan slice and its segmentations), optionally cropped.

    Parameters
    ----------
    panels : mapping of str to (Y, X) ndarray
        Title and image of each panel, left to right.
    crop : (slice, slice), optional
        The same crop for every panel, to zoom into thin walls.
    cmap : str

    Returns
    -------
    matplotlib.figure.Figure
    """
    with requires_extra("study"):
        import matplotlib.pyplot as plt

    n = len(panels)
    fig, axes = plt.subplots(1, n, figsize=(3.4 * n, 3.6), layout="constrained", squeeze=False)
    for ax, (label, image) in zip(axes[0], panels.items()):
        image = np.asarray(image)
        if crop is not None:
            image = image[crop]
        ax.imshow(image, cmap=cmap, interpolation="nearest")
        ax.set_title(label)
        ax.set_axis_off()
    return fig


def image_rows(rows: Mapping[str, np.ndarray], *, columns: int = 8, size: float = 1.1) -> Figure:
    """Show a few images of several sets, one row per set (real patches above generated ones).

    Parameters
    ----------
    rows : mapping of str to (N, H, W) ndarray
        Label and images of each row; the first ``columns`` images of each are
        shown. bool images show solid white; grey images keep their own range
        unless they are floats in [0, 1] or uint8, which are shown on a fixed
        0-1 (0-255) scale so that rows can be compared.
    columns : int
        Images per row.
    size : float
        Edge of one image in inches.

    Returns
    -------
    matplotlib.figure.Figure
    """
    with requires_extra("study"):
        import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), columns, figsize=(size * columns, size * len(rows) + 0.3),
                             layout="constrained", squeeze=False)  # fmt: skip
    for row, (label, images) in zip(axes, rows.items()):
        images = np.asarray(images)
        vmax = 255 if images.dtype == np.uint8 else 1
        for ax, image in zip(row, images[:columns]):
            ax.imshow(image, cmap="gray", vmin=0, vmax=vmax, interpolation="nearest")
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
        row[0].set_ylabel(label, rotation=0, ha="right", va="center")
    return fig


def distribution(
    samples: Mapping[str, Sequence[float] | np.ndarray],
    *,
    xlabel: str,
    bins: int = 30,
    ax: plt.Axes | None = None,
) -> Figure:
    """Overlaid normalised histograms of several samples of one quantity (e.g. pore diameters).

    Parameters
    ----------
    samples : mapping of str to 1D array
        Label and values of each distribution.
    xlabel : str
        Name and unit of the quantity.
    bins : int
        Number of bins over the common range.
    ax : matplotlib axes, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    with requires_extra("study"):
        import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 3.4), layout="constrained")
    else:
        fig = ax.figure
    values = [np.asarray(v, dtype=float) for v in samples.values() if len(v)]
    if values:
        edges = np.histogram_bin_edges(np.concatenate(values), bins=bins)
        for label, v in samples.items():
            if len(v):
                ax.hist(np.asarray(v, dtype=float), bins=edges, density=True, histtype="step", linewidth=1.5, label=label)
        ax.legend()
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    return fig
