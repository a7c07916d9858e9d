"""Tests for foamlib.fid: closed forms, a pytorch-fid reference, singular covariances, KID, bootstrap."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from foamlib import fid as D


def _spd(d: int, rng: np.random.Generator, scale: float = 1.0) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return scale * (a @ a.T / d + 0.1 * np.eye(d))


def _reference_pytorch_fid(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """pytorch-fid's calculate_frechet_distance (mseitzer/pytorch-fid, fid_score.py), re-typed.

    Differences: ``disp=False`` is left out (deprecated in SciPy >= 1.16; the
    matrices used here are non-singular) and there is no print.
    """
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    diff = mu1 - mu2
    covmean = scipy.linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError("Imaginary component")
        covmean = covmean.real
    return diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)


# --------------------------------------------------------------------------- statistics
def test_feature_statistics_float64_unbiased():
    x = np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32)
    mu, sigma = D.feature_statistics(x)
    assert mu.dtype == np.float64 and sigma.dtype == np.float64
    assert mu.shape == (4,) and sigma.shape == (4, 4)
    np.testing.assert_allclose(mu, x.astype(np.float64).mean(0))
    np.testing.assert_allclose(sigma, np.cov(x.astype(np.float64), rowvar=False, ddof=1))
    mu1, sigma1 = D.feature_statistics(x[:, :1])
    assert sigma1.shape == (1, 1)


# --------------------------------------------------------------------------- closed forms
@pytest.mark.parametrize("method", ["eigh", "sqrtm"])
def test_equal_covariances_give_squared_mean_distance(method):
    rng = np.random.default_rng(1)
    d = 8
    sigma = _spd(d, rng)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    expected = float(np.sum((mu1 - mu2) ** 2))
    assert D.frechet_distance(mu1, sigma, mu2, sigma, method=method) == pytest.approx(expected, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("method", ["eigh", "sqrtm"])
def test_diagonal_covariances_closed_form(method):
    rng = np.random.default_rng(2)
    d = 10
    s1, s2 = rng.uniform(0.1, 3.0, d), rng.uniform(0.1, 3.0, d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    expected = float(np.sum((np.sqrt(s1) - np.sqrt(s2)) ** 2) + np.sum((mu1 - mu2) ** 2))
    got = D.frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2), method=method)
    assert got == pytest.approx(expected, rel=1e-10)


def test_one_dimensional():
    # N(0, 4) vs N(1, 1): (2 - 1)^2 + 1^2 = 2
    assert D.frechet_distance(0.0, 4.0, 1.0, 1.0) == pytest.approx(2.0)


def test_identical_sets_give_zero_up_to_rounding():
    x = np.random.default_rng(3).normal(size=(200, 16))
    mu, sigma = D.feature_statistics(x)
    scale = np.trace(sigma)
    assert abs(D.fid(x, x)) < 1e-10 * scale  # may be a tiny negative number
    assert abs(D.frechet_distance(mu, sigma, mu, sigma)) < 1e-10 * scale
    small = np.random.default_rng(4).normal(size=(20, 64))  # N < d path
    assert abs(D.fid(small, small)) < 1e-10 * np.trace(np.cov(small, rowvar=False))


# --------------------------------------------------------------------------- reference implementation
def test_agrees_with_pytorch_fid_reference_and_between_methods():
    rng = np.random.default_rng(5)
    d = 32
    s1, s2 = _spd(d, rng), _spd(d, rng, scale=2.0)  # non-commuting
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    ref = _reference_pytorch_fid(mu1, s1, mu2, s2)
    eigh = D.frechet_distance(mu1, s1, mu2, s2, method="eigh")
    sqrtm = D.frechet_distance(mu1, s1, mu2, s2, method="sqrtm")
    assert eigh == pytest.approx(ref, rel=1e-6)
    assert sqrtm == pytest.approx(ref, rel=1e-6)
    assert eigh == pytest.approx(sqrtm, rel=1e-6)


@pytest.mark.parametrize(("n", "d"), [(300, 12), (40, 96)])
def test_fid_from_features_matches_statistics(n, d):
    """Covers both the covariance path (N > d) and the exact low-rank path (N <= d)."""
    rng = np.random.default_rng(6)
    a = rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) / np.sqrt(d)
    b = rng.normal(size=(n + 7, d)) * 1.3 + 0.2
    expected = D.frechet_distance(*D.feature_statistics(a), *D.feature_statistics(b))
    assert D.fid(a, b) == pytest.approx(expected, rel=1e-7)


def test_fewer_images_than_dimensions_is_finite():
    """N = 50 images of 2048-d features: singular covariances, still a finite, exact FID."""
    rng = np.random.default_rng(7)
    a = rng.normal(size=(50, 2048))
    b = rng.normal(size=(50, 2048)) + 0.05
    value = D.fid(a, b)
    assert np.isfinite(value) and value > 0
    mu_a, s_a = D.feature_statistics(a)
    mu_b, s_b = D.feature_statistics(b)
    assert D.frechet_distance(mu_a, s_a, mu_b, s_b) == pytest.approx(value, rel=1e-9)


def test_constant_features_give_squared_mean_distance():
    a, b = np.ones((5, 3)), np.zeros((4, 3))  # zero covariances (rank 0)
    assert D.fid(a, b) == pytest.approx(3.0)
    assert D.frechet_distance(*D.feature_statistics(a), *D.feature_statistics(b)) == pytest.approx(3.0)


def test_sqrtm_singular_fallback_close_to_exact():
    rng = np.random.default_rng(8)
    a, b = rng.normal(size=(20, 48)), rng.normal(size=(20, 48)) * 1.5
    stats = (*D.feature_statistics(a), *D.feature_statistics(b))
    exact = D.frechet_distance(*stats, method="eigh")
    fallback = D.frechet_distance(*stats, method="sqrtm")
    assert np.isfinite(fallback)
    assert fallback == pytest.approx(exact, rel=1e-4)


def test_frechet_distance_rejects_bad_input():
    mu, sigma = np.zeros(3), np.eye(3)
    with pytest.raises(ValueError, match="mu1 and mu2"):
        D.frechet_distance(mu, sigma, np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match="sigma1 and sigma2"):
        D.frechet_distance(mu, np.eye(2), mu, sigma)
    with pytest.raises(ValueError, match="sigma2 contains NaN"):
        D.frechet_distance(mu, sigma, mu, np.full((3, 3), np.nan))
    with pytest.raises(ValueError, match="method"):
        D.frechet_distance(mu, sigma, mu, sigma, method="svd")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("a", "b", "exc", "match"),
    [
        (np.zeros((5, 3)), np.zeros((5, 4)), ValueError, "dimensions differ"),
        (np.zeros(5), np.zeros((5, 1)), ValueError, r"\(N, d\)"),
        (np.zeros((1, 3)), np.zeros((5, 3)), ValueError, "at least 2 rows"),
        (np.full((3, 2), np.inf), np.zeros((3, 2)), ValueError, "NaN or infinite"),
        (np.array([["a", "b"], ["c", "d"]]), np.zeros((2, 2)), TypeError, "numeric"),
    ],
)
def test_fid_rejects_bad_features(a, b, exc, match):
    with pytest.raises(exc, match=match):
        D.fid(a, b)


# --------------------------------------------------------------------------- KID
def _reference_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² with k(x, y) = (x.y/d + 1)^3, by explicit sums over i != j."""
    m, d = x.shape

    def k(u, v):
        return (u @ v / d + 1.0) ** 3

    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_estimator_matches_explicit_sums():
    rng = np.random.default_rng(9)
    x, y = rng.normal(size=(12, 5)), rng.normal(size=(12, 5)) + 0.3
    result = D.kid(x, y, subset_size=50, n_subsets=3, rng=0)  # capped to 12: every subset is the full set
    assert result.subset_size == 12 and result.n_subsets == 3
    assert result.mean == pytest.approx(_reference_mmd2(x, y), rel=1e-10)
    assert result.std == pytest.approx(0.0, abs=1e-12)


def test_kid_near_zero_for_same_distribution_positive_for_shift():
    rng = np.random.default_rng(10)
    d = 16
    a, a2 = rng.normal(size=(400, d)), rng.normal(size=(400, d))
    b = rng.normal(size=(400, d)) + 0.5
    same = D.kid(a, a2, subset_size=100, n_subsets=50, rng=1)
    shifted = D.kid(a, b, subset_size=100, n_subsets=50, rng=1)
    assert abs(same.mean) < 3 * same.std
    assert shifted.mean > 10 * (abs(same.mean) + same.std)
    again = D.kid(a, b, subset_size=100, n_subsets=50, rng=1)
    assert again == shifted  # reproducible with a seed


def test_kid_rejects_bad_arguments():
    x = np.zeros((4, 2))
    with pytest.raises(ValueError, match="subset_size"):
        D.kid(x, x, subset_size=1)
    with pytest.raises(ValueError, match="n_subsets"):
        D.kid(x, x, n_subsets=0)


# --------------------------------------------------------------------------- bootstrap
def test_bootstrap_contains_estimate_and_narrows_with_n():
    rng = np.random.default_rng(11)
    d = 4
    widths = []
    for n in (100, 1600):
        a = rng.normal(size=(n, d))
        b = rng.normal(size=(n, d)) + np.array([1.0, 0.5, 0.0, 0.0])
        interval = D.bootstrap(a, b, metric="fid", n_boot=200, rng=12)
        assert interval.n_a == n and interval.n_b == n and interval.metric == "fid"
        assert interval.low <= interval.estimate <= interval.high
        assert interval.estimate == pytest.approx(D.fid(a, b))
        widths.append(interval.high - interval.low)
    assert widths[1] < 0.5 * widths[0]  # ~ 1/sqrt(N): expect about a quarter


@pytest.mark.parametrize("shift", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("metric", ["fid", "kid"])
def test_interval_brackets_the_estimate_on_two_gaussian_sets(shift, metric):
    rng = np.random.default_rng(21)
    a, b = rng.normal(size=(120, 8)), rng.normal(shift, 1.0, size=(100, 8))
    interval = D.bootstrap(a, b, metric=metric, n_boot=60, rng=3, subset_size=50, n_subsets=4)
    assert interval.method == "subsample"
    assert interval.low <= interval.estimate <= interval.high
    assert interval.low < interval.high


def test_percentile_bootstrap_can_miss_the_estimate_subsample_does_not():
    """Why the default changed: for two samples of one distribution, resampled FIDs all lie above the estimate."""
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(100, 8)), rng.normal(size=(100, 8))
    old = D.bootstrap(a, b, method="percentile", n_boot=100, rng=0)
    new = D.bootstrap(a, b, n_boot=100, rng=0)
    assert old.method == "percentile" and old.low > old.estimate
    assert new.low <= new.estimate <= new.high


def test_subsample_interval_width_matches_spread_over_independent_draws():
    """Seeded statistical bound: the 68 % half-width is within a factor 2 of the FID's sd over fresh draws."""
    rng = np.random.default_rng(8)
    d, n, shift = 16, 100, 0.3
    draws = [D.fid(rng.normal(size=(n, d)), rng.normal(shift, 1.0, size=(n, d))) for _ in range(60)]
    a, b = rng.normal(size=(n, d)), rng.normal(shift, 1.0, size=(n, d))
    interval = D.bootstrap(a, b, n_boot=100, confidence=0.6827, rng=1)
    ratio = 0.5 * (interval.high - interval.low) / np.std(draws)
    assert 0.5 < ratio < 2.0  # 0.64-1.09 over seeds 0-7


def test_bootstrap_kid_and_reproducibility():
    rng = np.random.default_rng(13)
    a, b = rng.normal(size=(80, 6)), rng.normal(size=(60, 6)) + 0.7
    first = D.bootstrap(a, b, metric="kid", n_boot=30, rng=5, subset_size=40, n_subsets=5)
    second = D.bootstrap(a, b, metric="kid", n_boot=30, rng=5, subset_size=40, n_subsets=5)
    assert first == second
    assert (first.n_a, first.n_b, first.n_boot, first.confidence) == (80, 60, 30, 0.95)
    assert first.low < first.high and first.low > 0


def test_bootstrap_rejects_bad_arguments():
    x = np.random.default_rng(0).normal(size=(10, 2))
    with pytest.raises(ValueError, match="metric"):
        D.bootstrap(x, x, metric="is")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="confidence"):
        D.bootstrap(x, x, confidence=1.5)
    with pytest.raises(ValueError, match="n_boot"):
        D.bootstrap(x, x, n_boot=1)
    with pytest.raises(ValueError, match="method"):
        D.bootstrap(x, x, method="bca")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fraction"):
        D.bootstrap(x, x, fraction=1.0)
    with pytest.raises(ValueError, match="at least 3 rows"):
        D.bootstrap(x[:2], x[:2])


def test_compare_sets_ranks_a_shifted_set_above_a_resample_of_the_reference():
    from foamlib.fid import compare_sets

    rng = np.random.default_rng(0)
    ref = rng.normal(size=(300, 8))
    table = compare_sets(ref, {"same": rng.normal(size=(300, 8)), "shifted": rng.normal(1.0, 1.0, size=(300, 8))},
                         n_boot=20, subset_size=100)
    assert list(table.index) == ["same", "shifted"]
    assert table.loc["shifted", "fid"] > 5 * table.loc["same", "fid"]
    assert table.loc["shifted", "fid"] == pytest.approx(8.0, rel=0.25)  # |mu1 - mu2|^2 = 8
    assert table.loc["shifted", "kid"] > table.loc["same", "kid"]
    assert (table["fid_low"] <= table["fid_high"]).all() and (table["n"] == 300).all()
    for metric in ("fid", "kid"):
        assert (table[f"{metric}_low"] <= table[metric]).all() and (table[metric] <= table[f"{metric}_high"]).all()
    no_intervals = compare_sets(ref, {"same": ref}, n_boot=0)
    assert np.isnan(no_intervals.loc["same", "fid_low"]) and abs(no_intervals.loc["same", "fid"]) < 1e-8
