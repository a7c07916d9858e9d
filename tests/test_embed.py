"""Tests for foamlib.embed: shapes, t-SNE reproducibility, separation of blobs vs random labels, validation, plots."""
from __future__ import annotations

import logging
import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from foamlib import embed as E  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module", autouse=True)
def _one_thread_pools():
    """One thread in every OpenMP/BLAS pool, from the module fixtures on (they run before ``torch_one_thread``).

    The cores are shared with other jobs; scikit-learn's Barnes-Hut t-SNE with a
    spinning two-thread OpenMP pool then ran up to 50 times slower than with one
    thread (8.9 s against 0.1 s for 50 points, measured).
    """
    import sklearn.manifold  # noqa: F401 -- loads scikit-learn's OpenMP runtime, so that the limit below reaches it
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


def _blobs(n_per: int = 25, d: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two well separated Gaussian blobs of non-negative "features" (like ReLU outputs), apart in direction too."""
    rng = np.random.default_rng(seed)
    a = np.abs(rng.normal(size=(n_per, d)) * 0.3)
    b = np.abs(rng.normal(size=(n_per, d)) * 0.3)
    a[:, : d // 2] += 3.0  # set a points along the first half of the axes, set b along the second
    b[:, d // 2 :] += 3.0
    return np.concatenate([a, b]), np.repeat([0, 1], n_per)


@pytest.fixture(scope="module")
def blobs() -> tuple[np.ndarray, np.ndarray]:
    return _blobs()


@pytest.fixture(scope="module")
def tsne_blobs(blobs) -> np.ndarray:
    return E.embed(blobs[0], method="tsne", seed=0)


@pytest.fixture(scope="module")
def umap_blobs(blobs) -> np.ndarray:
    """One UMAP embedding of the blobs, shared by tests (the first UMAP call compiles numba code)."""
    return E.embed(blobs[0], method="umap", seed=0)


# --------------------------------------------------------------------------- embed
def test_tsne_shape_dtype_and_seed_reproducibility(blobs, tsne_blobs):
    x, _ = blobs
    assert tsne_blobs.shape == (x.shape[0], 2) and tsne_blobs.dtype == np.float64
    assert np.isfinite(tsne_blobs).all()
    np.testing.assert_array_equal(E.embed(x, method="tsne", seed=0), tsne_blobs)


def test_tsne_random_init_depends_on_seed(blobs):
    x = blobs[0][::3]
    a = E.embed(x, method="tsne", seed=0, init="random")
    b = E.embed(x, method="tsne", seed=0, init="random")
    c = E.embed(x, method="tsne", seed=1, init="random")
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_tsne_leaves_global_random_state_alone(blobs):
    state = np.random.get_state()
    E.embed(blobs[0][:12], method="tsne", seed=0, init="random")
    after = np.random.get_state()
    assert state[0] == after[0] and np.array_equal(state[1], after[1]) and state[2:] == after[2:]


def test_umap_shape_and_separates_blobs(blobs, umap_blobs):
    x, labels = blobs
    assert umap_blobs.shape == (x.shape[0], 2) and umap_blobs.dtype == np.float64
    assert np.isfinite(umap_blobs).all()
    assert E.separation(umap_blobs, labels) > 0.6
    assert abs(E.separation(umap_blobs, np.random.default_rng(1).permutation(labels))) < 0.25


def test_tsne_separates_blobs_and_not_random_labels(blobs, tsne_blobs):
    x, labels = blobs
    emb = tsne_blobs
    assert E.separation(emb, labels) > 0.6
    assert abs(E.separation(emb, np.random.default_rng(1).permutation(labels))) < 0.25


def test_one_blob_split_at_random_does_not_separate():
    """Two samples of one distribution overlap in the map: structure, not just labels, decides."""
    x = np.abs(np.random.default_rng(5).normal(size=(50, 32))) + 0.1
    labels = np.repeat(["real", "synthetic"], 25)
    for method in ("tsne", "umap"):
        assert abs(E.separation(E.embed(x, method=method, seed=0), labels)) < 0.25, method


def test_cosine_ignores_row_lengths_but_euclidean_does_not(blobs, tsne_blobs):
    """Scaling each row leaves cosine distances, hence the t-SNE map, unchanged."""
    x, _ = blobs
    scale = np.random.default_rng(2).uniform(0.5, 5.0, size=(x.shape[0], 1))
    np.testing.assert_allclose(E.embed(x * scale, seed=0), tsne_blobs, atol=1e-5)
    x, scale = x[:12], scale[:12]
    assert not np.allclose(E.embed(x * scale, metric="euclidean", seed=0), E.embed(x, metric="euclidean", seed=0))


def test_standardize_makes_feature_scales_and_offsets_irrelevant(blobs):
    x, labels = blobs
    x = np.concatenate([x, np.full((x.shape[0], 1), 7.0)], axis=1)  # a constant column must not break z-scoring
    emb = E.embed(x, seed=0, standardize=True)
    assert emb.shape == (x.shape[0], 2)
    assert E.separation(emb, labels) > 0.6
    rng = np.random.default_rng(4)
    scale, offset = rng.uniform(0.2, 5.0, size=x.shape[1]), rng.uniform(0.0, 3.0, size=x.shape[1])
    np.testing.assert_allclose(E.embed(x * scale + offset, seed=0, standardize=True), emb, atol=1e-4)
    assert not np.allclose(E.embed(x * scale + offset, seed=0), E.embed(x, seed=0), atol=1e-4)


def test_small_n_clips_perplexity_and_neighbours_with_a_note(caplog):
    x = np.random.default_rng(0).uniform(0.1, 1.0, size=(5, 8))
    with caplog.at_level(logging.INFO, logger="foamlib.embed"):
        t = E.embed(x, method="tsne", perplexity=30.0)
        u = E.embed(x, method="umap", n_neighbors=15)
    assert t.shape == (5, 2) and u.shape == (5, 2)
    assert np.isfinite(t).all() and np.isfinite(u).all()
    text = caplog.text
    assert "perplexity 30 clipped" in text and "n_neighbors 15 clipped to N - 1 = 4" in text


def test_three_points_work_for_both_methods():
    x = np.random.default_rng(0).uniform(0.1, 1.0, size=(3, 4))
    for method in ("tsne", "umap"):
        out = E.embed(x, method=method)
        assert out.shape == (3, 2) and np.isfinite(out).all()


def test_umap_does_not_warn(blobs):
    """The n_jobs warning of a seeded UMAP is avoided, not hidden: no warning of any kind escapes."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        E.embed(blobs[0][:12], method="umap", seed=1)


def test_umap_import_keeps_warning_filters():
    before = list(warnings.filters)
    E._import_umap()
    assert warnings.filters == before


def test_accepts_float32_int_and_torch_features(blobs):
    import torch

    x = blobs[0][:12]
    ref = E.embed(x.astype(np.float32), seed=0)
    np.testing.assert_allclose(E.embed(torch.from_numpy(x.astype(np.float32)), seed=0), ref)
    assert E.embed(np.round(x * 10).astype(np.int64), seed=0).shape == ref.shape


@pytest.mark.parametrize(
    "features, kwargs, match",
    [
        (np.ones((10,)), {}, r"shape \(N, D\)"),
        (np.ones((2, 4)), {}, "at least 3 rows"),
        (np.ones((10, 0)), {}, "at least 3 rows and 1 column"),
        (np.full((10, 4), np.nan), {}, "NaN"),
        (np.ones((10, 4)), {"method": "pca"}, "method must be one of"),
        (np.ones((10, 4)), {"metric": "hamming"}, "metric must be one of"),
        (np.ones((10, 4)), {"seed": -1}, "seed must be"),
        (np.ones((10, 4)), {"perplexity": 0.0}, "perplexity must be > 0"),
        (np.ones((10, 4)), {"perplexity": float("inf")}, "perplexity must be a finite number"),
        (np.ones((10, 4)), {"n_neighbors": 1}, "n_neighbors must be an integer >= 2"),
        (np.ones((10, 4)), {"min_dist": 1.5}, r"min_dist must lie in \[0, 1\]"),
        (np.ones((10, 4)), {"standardize": "yes"}, "standardize must be a bool"),
        (np.ones((10, 4)), {"init": "spectral"}, "init must be one of"),
        (np.vstack([np.ones((9, 4)), np.zeros((1, 4))]), {}, r"1 row\(s\) of zero norm \(e.g. row 9\)"),
    ],
)
def test_embed_validation(features, kwargs, match):
    with pytest.raises(ValueError, match=match):
        E.embed(features, **kwargs)


@pytest.mark.parametrize("kwargs, match", [({"seed": True}, "^seed must be an integer"),
                                           ({"n_neighbors": 3.5}, "^n_neighbors must be an integer >= 2"),
                                           ({"perplexity": "5"}, "^perplexity must be a real number")])
def test_embed_type_errors(kwargs, match):
    with pytest.raises(TypeError, match=match):
        E.embed(np.ones((10, 4)), **kwargs)


def test_embed_rejects_non_numeric():
    with pytest.raises(TypeError, match="numeric"):
        E.embed(np.array([["a"] * 4] * 5))


def test_zero_rows_fine_with_euclidean():
    x = np.vstack([np.random.default_rng(0).random((9, 4)), np.zeros((1, 4))])
    assert E.embed(x, metric="euclidean").shape == (10, 2)


# --------------------------------------------------------------------------- separation
def test_separation_known_values():
    emb = np.array([[0.0, 0.0], [0.0, 1.0], [100.0, 0.0], [100.0, 1.0]])
    assert E.separation(emb, ["a", "a", "b", "b"]) == pytest.approx(1 - 1 / 100.005, rel=1e-4)
    assert E.separation(emb, ["a", "b", "a", "b"]) < 0  # each point is nearer the other group


@pytest.mark.parametrize(
    "embedding, labels, match",
    [
        (np.zeros((5,)), [0] * 5, r"shape \(N, k\)"),
        (np.zeros((2, 2)), [0, 1], "N >= 3"),
        (np.full((4, 2), np.inf), [0, 0, 1, 1], "NaN or infinite"),
        (np.zeros((4, 2)), [0, 1, 1], r"labels must have shape \(4,\)"),
        (np.random.default_rng(0).random((4, 2)), [0, 0, 0, 0], "between 2 and N - 1"),
        (np.random.default_rng(0).random((4, 2)), [0, 1, 2, 3], "between 2 and N - 1"),
    ],
)
def test_separation_validation(embedding, labels, match):
    with pytest.raises(ValueError, match=match):
        E.separation(embedding, labels)


# --------------------------------------------------------------------------- frame and plot
@pytest.fixture(scope="module")
def frame(blobs, umap_blobs) -> pd.DataFrame:
    x, labels = blobs
    return E.embedding_frame({"real": x[labels == 0], "synthetic": x[labels == 1]}, seed=0)


def test_embedding_frame_layout(blobs, tsne_blobs, umap_blobs, frame):
    x, labels = blobs
    assert list(frame.columns) == ["set", "method", "x", "y", "index"]
    assert len(frame) == 2 * x.shape[0]
    assert list(pd.unique(frame["method"])) == ["tsne", "umap"]
    assert list(pd.unique(frame["set"])) == ["real", "synthetic"]
    assert frame["x"].dtype == np.float64 and frame["y"].dtype == np.float64
    counts = frame.groupby(["method", "set"]).size()
    assert (counts == 25).all()
    # one embedding of all rows per method: the same as embedding the stacked features
    tsne = frame[frame["method"] == "tsne"]
    np.testing.assert_array_equal(tsne[["x", "y"]].to_numpy(), tsne_blobs)
    np.testing.assert_array_equal(frame[frame["method"] == "umap"][["x", "y"]].to_numpy(), umap_blobs)
    np.testing.assert_array_equal(tsne["index"].to_numpy(), np.tile(np.arange(25), 2))
    for method in ("tsne", "umap"):
        part = frame[frame["method"] == method]
        assert E.separation(part[["x", "y"]].to_numpy(), part["set"].to_numpy()) > 0.6


def test_embedding_frame_forwards_options_and_validates(blobs):
    x, _ = blobs
    small = E.embedding_frame({"a": x[:10], "b": x[25:35]}, methods=("tsne",), seed=2, perplexity=3.0)
    np.testing.assert_array_equal(
        small[["x", "y"]].to_numpy(), E.embed(np.concatenate([x[:10], x[25:35]]), seed=2, perplexity=3.0)
    )
    with pytest.raises(ValueError, match="non-empty mapping"):
        E.embedding_frame({})
    with pytest.raises(ValueError, match="feature dimensions differ"):
        E.embedding_frame({"a": x[:5], "b": x[:5, :3]})
    with pytest.raises(ValueError, match="method must be one of"):
        E.embedding_frame({"a": x[:5]}, methods=("tsne", "mds"))
    with pytest.raises(ValueError, match="must not repeat"):
        E.embedding_frame({"a": x[:5]}, methods=("tsne", "tsne"))
    with pytest.raises(ValueError, match="non-empty sequence"):
        E.embedding_frame({"a": x[:5]}, methods="tsne")
    with pytest.raises(ValueError, match="set names"):
        E.embedding_frame({"": x[:5]})
    with pytest.raises(ValueError, match=r"shape \(N, D\)"):
        E.embedding_frame({"a": x[0]})
    with pytest.raises(ValueError, match="at least 3 rows"):
        E.embedding_frame({"a": x[:1], "b": x[1:2]})
    with pytest.raises(TypeError, match="methods="):
        E.embedding_frame({"a": x[:5]}, method="umap")


def test_plot_embedding_one_panel_per_method(frame):
    fig = E.plot_embedding(frame)
    try:
        assert len(fig.axes) == 2
        assert [ax.get_title() for ax in fig.axes] == ["t-SNE", "UMAP"]
        for ax in fig.axes:
            assert len(ax.collections) == 2  # one scatter per set
            assert list(ax.get_xticks()) == [] and list(ax.get_yticks()) == []
        legend = fig.axes[-1].get_legend()
        assert legend is not None and [t.get_text() for t in legend.get_texts()] == ["real", "synthetic"]
    finally:
        plt.close(fig)


def test_plot_embedding_on_given_axes(frame):
    fig, ax = plt.subplots()
    try:
        out = E.plot_embedding(frame[frame["method"] == "umap"], ax=ax)
        assert out is fig and len(fig.axes) == 1 and ax.get_title() == "UMAP"
        with pytest.raises(ValueError, match="one axes per method"):
            E.plot_embedding(frame, ax=ax)
        with pytest.raises(ValueError, match="lacks columns"):
            E.plot_embedding(frame.drop(columns="set"), ax=ax)
        with pytest.raises(ValueError, match="empty"):
            E.plot_embedding(frame.iloc[:0], ax=ax)
        with pytest.raises(TypeError, match="DataFrame"):
            E.plot_embedding(frame.to_dict(), ax=ax)
    finally:
        plt.close(fig)


def test_trained_encoder_features_map_two_textures_apart():
    """End to end offline: EfficientNet-Lite0 features of coarse and fine blob images form two groups in t-SNE."""
    from scipy import ndimage as ndi

    from foamlib.features import extract_features, load_encoder

    rng = np.random.default_rng(0)

    def blobs(sigma: float) -> np.ndarray:
        z = ndi.gaussian_filter(rng.standard_normal((10, 48, 48)), (0, sigma, sigma), mode="wrap")
        return (z > 0).astype(np.float32)

    encoder = load_encoder("efficientnet-lite0", device="cpu")
    features = extract_features(encoder, np.concatenate([blobs(4.0), blobs(1.0)]), device="cpu")
    assert features.shape == (20, 1280) and features.min() >= 0.0
    labels = np.repeat(["coarse", "fine"], 10)
    xy = E.embed(features, method="tsne", seed=0, perplexity=5.0)
    assert E.separation(xy, labels) > 0.5
