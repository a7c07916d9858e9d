"""Two-dimensional maps of image features: do real and synthetic slices mix?

Griem et al. (Fig. 10) show t-SNE and UMAP maps of the ResNet50 features (see
:mod:`foamlib.features`; offline, the ImageNet-trained EfficientNet-Lite0
features stand in, and the encoder's ``name`` belongs in every map's
caption) of real CT slices and of synthetic slices: where the
sets overlap, the synthetic images look real to the encoder; where they form
islands, they do not. FID (:mod:`foamlib.fid`) gives one number per pair of
sets; these maps show *which* images stand apart.

This module provides

* :func:`embed` -- one ``(N, 2)`` embedding with scikit-learn's
  :class:`~sklearn.manifold.TSNE` (van der Maaten and Hinton, *JMLR* 9, 2008)
  or umap-learn's ``UMAP`` (McInnes et al., arXiv:1802.03426, 2018);
* :func:`separation` -- the silhouette score of groups in an embedding, a
  single number for "the sets separate" (near 1) or "they overlap" (near 0);
* :func:`embedding_frame` -- all sets embedded together, one embedding per
  method, as a tidy :class:`pandas.DataFrame`;
* :func:`plot_embedding` -- one scatter panel per method, coloured by set.

Design choices
--------------
Metric
    The paper uses the cosine distance. ResNet50 and EfficientNet-Lite0
    features are non-negative (ReLU or ReLU6, then average pooling), so all
    cosine distances lie in [0, 1]; the
    directions of the feature vectors, not their lengths, are compared. Rows of
    zero norm have no direction and are rejected. ``standardize=True`` z-scores
    every feature first (constant features become 0), which lets the cosine
    see features that vary little in absolute terms.
t-SNE initialisation
    ``init="pca"`` (default) starts from the first two principal components,
    which keeps the global layout stable and makes the map depend on ``seed``
    only through scikit-learn's randomised PCA (large inputs). For the cosine
    metric the rows are scaled to unit length first: the cosine distance is a
    function of the Euclidean distance between unit vectors, so the PCA then
    describes the geometry that t-SNE sees. ``init="random"`` draws the start
    from ``seed``.
Small inputs
    t-SNE needs about ``3 * perplexity`` neighbours per point, so the
    perplexity is clipped to ``(N - 1) / 3`` (with a logged note); UMAP's
    ``n_neighbors`` is clipped to ``N - 1``, and for ``N <= 3`` UMAP starts
    from a random layout instead of its spectral one (the spectral solver needs
    ``N > 3`` for two components).
Reproducibility and warnings
    Both methods get ``random_state=seed`` (their own generators; global
    random state is neither read nor changed). A seeded UMAP runs
    single-threaded anyway and warns when asked for more threads, so it is
    asked for ``n_jobs=1``. umap-learn is imported on first use (its import
    and the first fit, which compiles numba code, take seconds), with its
    ImportWarning about the missing TensorFlow (``ParametricUMAP``) silenced;
    no other warning is filtered. t-SNE maps repeat exactly for the same input
    and seed; UMAP maps repeat on one machine but differ between machines,
    so compare structure (:func:`separation`), never coordinates.
Reading the maps
    Distances between far-apart clusters in t-SNE and UMAP maps are not
    meaningful, and cluster sizes reflect local density only loosely. Use the
    maps to see whether sets overlap and :func:`separation` to say it with a
    number; report FID for the distance.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ._optional import requires_extra
from .checks import check_int, check_real
from .fid import as_features as _fid_features

if TYPE_CHECKING:  # pandas, matplotlib, scikit-learn and umap-learn are imported by the functions that use them
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "METHODS",
    "METRICS",
    "METHOD_LABELS",
    "embed",
    "separation",
    "embedding_frame",
    "plot_embedding",
]

logger = logging.getLogger(__name__)

#: Embedding methods understood by :func:`embed`.
METHODS = ("tsne", "umap")
#: Distances understood by :func:`embed` (both methods support both).
METRICS = ("cosine", "euclidean")
#: Panel titles used by :func:`plot_embedding`.
METHOD_LABELS = {"tsne": "t-SNE", "umap": "UMAP"}
_INITS = ("pca", "random")


# --------------------------------------------------------------------------- #
# validation
# --------------------------------------------------------------------------- #
def _as_features(features: object, name: str = "features") -> np.ndarray:
    """Validate a numeric ``(N, D)`` array with ``N >= 3`` finite rows; return it as float64."""
    return _fid_features(features, name, min_rows=3, shape="(N, D)")


def _check_method(method: object) -> str:
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    return str(method)


def _standardize(x: np.ndarray) -> np.ndarray:
    """Z-score each column (``ddof=0``); constant columns become 0."""
    std = x.std(axis=0)
    return (x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)


# --------------------------------------------------------------------------- #
# the two methods
# --------------------------------------------------------------------------- #
def _tsne(x: np.ndarray, *, metric: str, seed: int, perplexity: float, init: str) -> np.ndarray:
    with requires_extra("study"):
        from sklearn.manifold import TSNE

    n = x.shape[0]
    limit = (n - 1) / 3.0
    if perplexity > limit:
        logger.info("t-SNE: perplexity %g clipped to (N - 1) / 3 = %.4g for N = %d points", perplexity, limit, n)
        perplexity = limit
    if metric == "cosine":  # same cosine distances; makes the PCA start describe them (module notes)
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
    model = TSNE(n_components=2, perplexity=perplexity, metric=metric, init=init, random_state=seed)
    return np.asarray(model.fit_transform(x), dtype=np.float64)


def _import_umap() -> Any:
    """``umap.UMAP``, imported on first use, without its ImportWarning about TensorFlow."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Tensorflow not installed", category=ImportWarning)
        with requires_extra("study"):
            from umap import UMAP
    return UMAP


def _umap(x: np.ndarray, *, metric: str, seed: int, n_neighbors: int, min_dist: float) -> np.ndarray:
    n = x.shape[0]
    if n_neighbors > n - 1:
        logger.info("UMAP: n_neighbors %d clipped to N - 1 = %d", n_neighbors, n - 1)
        n_neighbors = n - 1
    init = "spectral"
    if n <= 3:
        logger.info("UMAP: random initial layout for N = %d points (spectral layout needs N > 3)", n)
        init = "random"
    umap_cls = _import_umap()
    model = umap_cls(
        n_components=2,
        n_neighbors=n_neighbors,
        min_dist=min_dist,
        metric=metric,
        init=init,
        random_state=seed,
        n_jobs=1,  # seeded UMAP is single-threaded; any other value triggers a warning
    )
    return np.asarray(model.fit_transform(x), dtype=np.float64)


def embed(
    features: object,
    *,
    method: Literal["tsne", "umap"] = "tsne",
    metric: Literal["cosine", "euclidean"] = "cosine",
    seed: int = 0,
    perplexity: float = 30.0,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    standardize: bool = False,
    init: Literal["pca", "random"] = "pca",
) -> np.ndarray:
    """Embed feature vectors in two dimensions with t-SNE or UMAP.

    Parameters
    ----------
    features : array_like
        ``(N, D)`` numeric, finite, ``N >= 3`` (e.g. the ``(N, 2048)`` or
        ``(N, 1280)`` output of :func:`foamlib.features.extract_features`). For ``metric="cosine"`` no
        row may be all zeros (after standardising, if asked).
    method : {"tsne", "umap"}, optional
        scikit-learn's Barnes-Hut t-SNE or umap-learn's UMAP.
    metric : {"cosine", "euclidean"}, optional
        Distance between feature vectors; cosine as in the paper.
    seed : int, optional
        ``random_state`` of either method, in ``[0, 2**32)``.
    perplexity : float, optional
        t-SNE only; clipped to ``(N - 1) / 3`` for small ``N`` (logged).
    n_neighbors : int, optional
        UMAP only, ``>= 2``; clipped to ``N - 1`` (logged).
    min_dist : float, optional
        UMAP only, in ``[0, 1]`` (UMAP's ``spread`` is 1).
    standardize : bool, optional
        Z-score each feature column over all ``N`` rows first.
    init : {"pca", "random"}, optional
        t-SNE only: start from the principal components (of the unit-length
        rows for the cosine metric) or from a random layout drawn from
        ``seed``.

    Returns
    -------
    numpy.ndarray
        ``(N, 2)`` float64 coordinates, in the arbitrary units of the method.

    Raises
    ------
    TypeError
        ``features`` is not numeric.
    ValueError
        Wrong shape, fewer than 3 rows, NaN/inf, zero rows with the cosine
        metric, or an argument out of range (the message names it).
    """
    x = _as_features(features)
    method = _check_method(method)
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    seed = check_int("seed", seed, low=0, high=2**32 - 1)
    perplexity = check_real("perplexity", perplexity)
    if perplexity <= 0:
        raise ValueError(f"perplexity must be > 0, got {perplexity!r}")
    n_neighbors = check_int("n_neighbors", n_neighbors, low=2)
    min_dist = check_real("min_dist", min_dist)
    if not 0.0 <= min_dist <= 1.0:
        raise ValueError(f"min_dist must lie in [0, 1], got {min_dist!r}")
    if not isinstance(standardize, (bool, np.bool_)):
        raise ValueError(f"standardize must be a bool, got {standardize!r}")
    if init not in _INITS:
        raise ValueError(f"init must be one of {_INITS}, got {init!r}")
    if standardize:
        x = _standardize(x)
    if metric == "cosine":
        zero = np.flatnonzero(~(np.abs(x).max(axis=1) > 0))
        if zero.size:
            raise ValueError(
                f"features has {zero.size} row(s) of zero norm (e.g. row {zero[0]}); "
                "the cosine distance is undefined for them (use metric='euclidean')"
            )
    if method == "tsne":
        return _tsne(x, metric=metric, seed=int(seed), perplexity=perplexity, init=init)
    return _umap(x, metric=metric, seed=int(seed), n_neighbors=n_neighbors, min_dist=min_dist)


# --------------------------------------------------------------------------- #
# separation
# --------------------------------------------------------------------------- #
def separation(embedding: object, labels: object) -> float:
    """How clearly labelled groups stand apart in an embedding: the mean silhouette.

    For each point, ``s = (b - a) / max(a, b)`` with ``a`` its mean Euclidean
    distance to the other points of its group and ``b`` the mean distance to the
    nearest other group (Rousseeuw, *J. Comput. Appl. Math.* 20, 1987;
    :func:`sklearn.metrics.silhouette_score`); the mean over all points is
    returned.

    Parameters
    ----------
    embedding : array_like
        ``(N, k)`` finite coordinates, e.g. from :func:`embed`.
    labels : array_like
        ``(N,)`` group of each row (strings or numbers), with at least 2 and
        at most ``N - 1`` distinct values.

    Returns
    -------
    float
        In ``[-1, 1]``: near 1 when the groups are compact and far apart (the
        sets separate), near 0 when they overlap (as for random labels),
        negative when points sit closer to another group than to their own.
        The score is invariant to rotating and scaling the map, so it can be
        compared across machines where UMAP coordinates differ.
    """
    with requires_extra("study"):
        from sklearn.metrics import silhouette_score

    emb = np.asarray(embedding)
    if emb.dtype == object or not (np.issubdtype(emb.dtype, np.floating) or np.issubdtype(emb.dtype, np.integer)):
        raise TypeError(f"embedding must be a numeric array, got dtype {emb.dtype}")
    if emb.ndim != 2 or emb.shape[0] < 3 or emb.shape[1] < 1:
        raise ValueError(f"embedding must have shape (N, k) with N >= 3, got {emb.shape}")
    emb = emb.astype(np.float64, copy=False)
    if not np.isfinite(emb).all():
        raise ValueError("embedding contains NaN or infinite values")
    lab = np.asarray(labels)
    if lab.ndim != 1 or lab.shape[0] != emb.shape[0]:
        raise ValueError(f"labels must have shape ({emb.shape[0]},) to match embedding, got {lab.shape}")
    n_groups = np.unique(lab).size
    if not 2 <= n_groups <= emb.shape[0] - 1:
        raise ValueError(f"labels must have between 2 and N - 1 = {emb.shape[0] - 1} distinct values, got {n_groups}")
    return float(silhouette_score(emb, lab, metric="euclidean"))


# --------------------------------------------------------------------------- #
# several sets
# --------------------------------------------------------------------------- #
def embedding_frame(
    features_by_set: Mapping[str, object],
    *,
    methods: Sequence[str] = METHODS,
    seed: int = 0,
    **kw: Any,
) -> pd.DataFrame:
    """Embed several feature sets together, once per method.

    Parameters
    ----------
    features_by_set : mapping of str to array_like
        Set name (e.g. ``"real"``, ``"GAN + CycleGAN"``) to its ``(N_i, D)``
        features; all with the same ``D``, ``sum(N_i) >= 3``. The order of the
        mapping is the order of the rows (and of the legend in
        :func:`plot_embedding`).
    methods : sequence of {"tsne", "umap"}, optional
        One embedding of all rows per method, in this order; no repeats.
    seed : int, optional
        Passed to :func:`embed`.
    **kw
        Further arguments of :func:`embed` (``metric``, ``perplexity``,
        ``n_neighbors``, ``min_dist``, ``standardize``, ``init``). With
        ``standardize=True`` the z-scores are taken over all sets together.

    Returns
    -------
    pandas.DataFrame
        ``len(methods) * sum(N_i)`` rows with columns ``set`` (str),
        ``method`` (str), ``x``, ``y`` (float64 coordinates) and ``index``
        (int, the row within its set), grouped by method, then by set.
    """
    with requires_extra("study"):
        import pandas as pd

    if not isinstance(features_by_set, Mapping) or len(features_by_set) == 0:
        raise ValueError("features_by_set must be a non-empty mapping of set name to (N_i, D) features")
    if isinstance(methods, str) or not isinstance(methods, Sequence) or len(methods) == 0:
        raise ValueError(f"methods must be a non-empty sequence of {METHODS}, got {methods!r}")
    methods = [_check_method(m) for m in methods]
    if len(set(methods)) != len(methods):
        raise ValueError(f"methods must not repeat, got {methods!r}")
    if "method" in kw:
        raise TypeError("pass methods=(...) to embedding_frame, not method=")
    blocks, names = [], []
    for name, feats in features_by_set.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"set names must be non-empty strings, got {name!r}")
        arr = np.asarray(feats.detach().cpu().numpy() if hasattr(feats, "detach") else feats)
        if arr.ndim != 2 or arr.shape[0] < 1:
            raise ValueError(f"features of set {name!r} must have shape (N, D) with N >= 1, got {arr.shape}")
        if blocks and arr.shape[1] != blocks[0].shape[1]:
            raise ValueError(
                f"feature dimensions differ: set {names[0]!r} has {blocks[0].shape[1]}, set {name!r} has {arr.shape[1]}"
            )
        blocks.append(arr)
        names.append(name)
    x = _as_features(np.concatenate(blocks, axis=0), "features (all sets together)")
    set_col = np.repeat(np.array(names, dtype=object), [b.shape[0] for b in blocks])
    index_col = np.concatenate([np.arange(b.shape[0]) for b in blocks])
    frames = []
    for method in methods:
        coords = embed(x, method=method, seed=seed, **kw)
        frames.append(
            pd.DataFrame(
                {"set": set_col, "method": method, "x": coords[:, 0], "y": coords[:, 1], "index": index_col}
            )
        )
    frame = pd.concat(frames, ignore_index=True)
    frame["set"] = frame["set"].astype(str)
    return frame


def plot_embedding(
    frame: pd.DataFrame,
    *,
    ax: Axes | Sequence[Axes] | None = None,
    point_size: float = 8.0,
    alpha: float = 0.7,
) -> Figure:
    """Scatter plots of :func:`embedding_frame` output, one panel per method, coloured by set.

    Parameters
    ----------
    frame : pandas.DataFrame
        With columns ``set``, ``method``, ``x``, ``y``.
    ax : matplotlib axes or sequence of axes, optional
        One axes per method in ``frame`` (a single axes for one method);
        default: a new figure with the panels side by side.
    point_size, alpha : float, optional
        Marker area (points²) and opacity.

    Returns
    -------
    matplotlib.figure.Figure
        Panels titled "t-SNE" / "UMAP", without ticks or axis labels (the
        coordinates carry no units), and with a legend of the sets.
    """
    with requires_extra("study"):
        import matplotlib.pyplot as plt
        import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"frame must be a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in ("set", "method", "x", "y") if c not in frame.columns]
    if missing:
        raise ValueError(f"frame lacks columns {missing} (expected the output of embedding_frame)")
    if frame.empty:
        raise ValueError("frame is empty")
    methods = list(pd.unique(frame["method"]))
    sets = list(pd.unique(frame["set"]))
    if ax is None:
        fig, axes = plt.subplots(1, len(methods), figsize=(4.5 * len(methods), 4.2), layout="constrained", squeeze=False)
        axes = list(axes[0])
    else:
        axes = [ax] if not isinstance(ax, (Sequence, np.ndarray)) else list(np.ravel(ax))
        if len(axes) != len(methods):
            raise ValueError(f"ax must hold one axes per method ({len(methods)}: {methods}), got {len(axes)}")
        fig = axes[0].figure
    colours = plt.rcParams["axes.prop_cycle"].by_key().get("color", ["C0"])
    for panel, method in zip(axes, methods):
        part = frame[frame["method"] == method]
        for i, name in enumerate(sets):
            pts = part[part["set"] == name]
            panel.scatter(pts["x"], pts["y"], s=point_size, alpha=alpha, color=colours[i % len(colours)],
                          label=name, linewidths=0)
        panel.set_title(METHOD_LABELS.get(method, str(method)))
        panel.set_xticks([])
        panel.set_yticks([])
        panel.set_xlabel("")
        panel.set_ylabel("")
        panel.set_aspect("equal", adjustable="datalim")
    axes[-1].legend(loc="best", markerscale=2.0, frameon=False)
    return fig
