"""Step dependence: PIT, the Gaussian-copula fits, no look-ahead, and copula sample paths."""

from __future__ import annotations

import json
from statistics import NormalDist
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chronobt.augment import dependence as dep
from chronobt.augment import get_augmentation, inverse_quantiles
from chronobt.augment.pit import sorted_quantiles
from chronobt.augment.sampling import copula_draws, interpolate_quantiles
from chronobt.engine.checkpoints import STANDARD_QUANTILES
from chronobt.errors import ConfigError

LEVELS = np.array(STANDARD_QUANTILES)
Z = np.array([NormalDist().inv_cdf(p) for p in LEVELS])


def normal_quantiles(loc: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Exact normal quantiles [w, v, 21, h] of N(loc, scale) with loc/scale [w, v, h]."""
    return loc[:, :, None] + scale[:, :, None] * Z[:, None]


def copula_rows(rng: np.random.Generator, corr: np.ndarray, n: int, v: int) -> np.ndarray:
    """Normal scores [n, v, h] drawn from N(0, corr)."""
    chol = np.linalg.cholesky(corr)
    return np.asarray(rng.standard_normal((n, v, corr.shape[0])) @ chol.T)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), u=st.floats(1e-5, 1 - 1e-5))
def test_pit_inverts_the_inverse_cdf_interpolation(seed: int, u: float) -> None:
    rng = np.random.default_rng(seed)
    q = np.sort(rng.normal(0, 1, (3, 2, LEVELS.size, 4)), axis=2)
    value = interpolate_quantiles(q, LEVELS, np.array([u]))[:, :, 0]  # [w, v, h]
    np.testing.assert_allclose(dep.pit(quantiles=q, levels=LEVELS, actual=value), u, rtol=1e-7, atol=1e-9)


def test_pit_of_draws_from_the_predictive_distribution_is_uniform() -> None:
    rng = np.random.default_rng(0)
    w, v, h = 4000, 2, 3
    loc, scale = rng.normal(size=(w, v, h)), rng.uniform(0.5, 2.0, (w, v, h))
    actual = loc + scale * rng.standard_normal((w, v, h))
    u = dep.pit(quantiles=normal_quantiles(loc, scale), levels=LEVELS, actual=actual).ravel()
    assert np.all((u > 0) & (u < 1))
    hist = np.histogram(u, bins=20, range=(0, 1))[0] / u.size
    assert np.abs(hist - 0.05).max() < 0.006  # 24000 draws: sd of a bin share ~0.0014
    # in the Gaussian tails the interpolation is exact: PIT equals the normal CDF there
    far = np.array([[[-3.0, 2.9, 0.0]]])
    got = dep.pit(
        quantiles=normal_quantiles(np.zeros((1, 1, 3)), np.ones((1, 1, 3))), levels=LEVELS, actual=far
    )
    np.testing.assert_allclose(got[0, 0, :2], [NormalDist().cdf(-3.0), NormalDist().cdf(2.9)], rtol=1e-9)
    assert got[0, 0, 2] == pytest.approx(0.5)


def test_pit_is_nan_where_undefined_and_the_middle_of_tied_levels() -> None:
    q = np.array([0.0, 1.0, 1.0, 2.0])[None, None, :, None]
    levels = [0.2, 0.4, 0.6, 0.8]
    got = dep.pit(quantiles=q, levels=levels, actual=np.array([[[1.0]]]))
    assert got[0, 0, 0] == pytest.approx(0.5)
    assert dep.pit(quantiles=q, levels=levels, actual=np.array([[[1.5]]]))[0, 0, 0] == pytest.approx(0.7)
    assert np.isnan(dep.pit(quantiles=q, levels=levels, actual=np.array([[[np.nan]]]))).all()
    z = dep.normal_scores(np.array([0.0, 0.5, 1.0, np.nan]))
    assert z[1] == 0.0 and z[0] == pytest.approx(NormalDist().inv_cdf(1e-6)) and z[2] == pytest.approx(-z[0])
    assert np.isnan(z[3])


@pytest.mark.parametrize("rho", [0.0, 0.5, 0.86])
def test_ar1_fit_recovers_rho_from_correlated_scores(rho: float) -> None:
    rng = np.random.default_rng(int(rho * 100))
    z = copula_rows(rng, dep.ar1_correlation(rho, 12), 400, 2)
    assert dep.ar1_rho(z.reshape(-1, 12)) == pytest.approx(rho, abs=0.03)
    fit = dep.fit_step_dependence(z)
    assert fit.rho == pytest.approx(rho, abs=0.03) and fit.n_windows == 400
    if rho > 0.3:
        assert fit.method in ("ar1", "shrunk")
        np.testing.assert_allclose(fit.correlation, dep.ar1_correlation(rho, 12), atol=0.1)
    record = fit.record()
    json.dumps(record, allow_nan=False)
    assert set(record) >= {"method", "rho", "mean_offdiag", "n_windows", "fallback_reason"}


def test_a_non_ar1_dependence_chooses_the_shrunk_matrix() -> None:
    rng = np.random.default_rng(1)
    h = 10
    equi = np.full((h, h), 0.6) + 0.4 * np.eye(h)  # equicorrelated: far from rho^|i-j|
    fit = dep.fit_step_dependence(copula_rows(rng, equi, 300, 2))
    assert fit.method == "shrunk"
    assert fit.criterion == "loglik" and fit.holdout_scores is not None
    assert fit.holdout_scores["shrunk"] > fit.holdout_scores["ar1"]
    np.testing.assert_allclose(fit.correlation, equi, atol=0.08)
    np.linalg.cholesky(fit.correlation)


def test_a_chooser_gets_the_later_halfs_windows_and_its_choice_is_refitted_on_all() -> None:
    rng = np.random.default_rng(2)
    h = 6
    z = copula_rows(rng, dep.ar1_correlation(0.7, h), 40, 2)
    seen: dict[str, object] = {}

    def choose(candidates, held):  # type: ignore[no-untyped-def]
        seen["names"], seen["held"] = list(candidates), held
        return "ar1", {"independent": 0.3, "ar1": 0.1, "shrunk": 0.2}

    fit = dep.fit_step_dependence(z, choose=choose)
    assert seen["names"] == ["independent", "ar1", "shrunk"]  # the simplest first: ties keep it
    np.testing.assert_array_equal(seen["held"], np.arange(20, 40))  # window indices of the later half
    assert fit.method == "ar1" and fit.criterion == "calibration"
    assert fit.holdout_scores == {"independent": 0.3, "ar1": 0.1, "shrunk": 0.2}
    np.testing.assert_allclose(fit.correlation, dep.ar1_correlation(fit.rho or 0.0, h))  # refitted on all 40
    assert fit.record()["criterion"] == "calibration"


def test_shrinkage_keeps_the_matrix_positive_definite_with_fewer_rows_than_steps() -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((6, 24))
    shrunk, lam = dep.shrunk_correlation(x, dep.ar1_correlation(0.3, 24))
    assert 0.0 < lam <= 1.0
    np.linalg.cholesky(shrunk)


def test_too_few_windows_or_one_step_fall_back_to_independent_with_the_reason() -> None:
    rng = np.random.default_rng(3)
    z = copula_rows(rng, dep.ar1_correlation(0.8, 5), 19, 1)
    z[4, 0, 1:] = np.nan  # a row with a single finite step drops its window
    few = dep.fit_step_dependence(z)
    assert few.method == "independent" and few.n_windows == 18 and "fewer than the 20" in str(few.reason)
    np.testing.assert_array_equal(few.correlation, np.eye(5))
    one = dep.fit_step_dependence(z[..., :1], min_windows=4)
    assert one.method == "independent" and "one-step" in str(one.reason)
    assert few.record()["fallback_reason"] == few.reason


# -- missing steps (NaN normal scores) -----------------------------------------------------------


def _old_complete_row_fit(z: np.ndarray) -> dict[str, Any]:
    """The complete-row estimator before missing steps were supported, written out as a reference:
    rows with any NaN dropped, np.corrcoef, the Schaefer-Strimmer intensity, the held-out log-density."""
    n_w, v, h = z.shape
    rows = z.reshape(n_w * v, h)
    keep = np.isfinite(rows).all(axis=1)
    x, window = rows[keep], np.repeat(np.arange(n_w), v)[keep]
    windows = np.unique(window)

    def candidates(y: np.ndarray) -> tuple[dict[str, np.ndarray], float]:
        rho = float(np.clip(np.mean(np.diag(np.corrcoef(y, rowvar=False), 1)), -0.995, 0.995))
        t = dep.ar1_correlation(rho, h)
        s = (y - y.mean(axis=0)) / y.std(axis=0, ddof=1)
        n = y.shape[0]
        r = np.corrcoef(y, rowvar=False)
        w = s[:, :, None] * s[:, None, :]  # [n, h, h]
        var_r = n / (n - 1) ** 3 * ((w - w.mean(axis=0)) ** 2).sum(axis=0)
        off = ~np.eye(h, dtype=bool)
        lam = float(np.clip(var_r[off].sum() / ((r - t)[off] ** 2).sum(), 1e-3, 1.0))
        return {"ar1": t, "shrunk": lam * t + (1 - lam) * r}, rho

    def loglik(y: np.ndarray, corr: np.ndarray) -> float:
        _, logdet = np.linalg.slogdet(corr)
        quad = np.einsum("ki,ij,kj->k", y, np.linalg.inv(corr) - np.eye(h), y)
        return float(-0.5 * logdet - 0.5 * quad.mean())

    later = window >= windows[windows.size // 2]
    fitted = {"independent": np.eye(h)} | candidates(x[~later])[0]
    scores = {name: loglik(x[later], r) for name, r in fitted.items()}
    best = max(scores, key=lambda name: scores[name])
    final, rho = candidates(x)
    return {
        "method": best,
        "rho": rho,
        "correlation": np.eye(h) if best == "independent" else final[best],
        "n_windows": windows.size,
        "scores": scores,
    }


@pytest.mark.parametrize(("rho", "v"), [(0.0, 1), (0.6, 2), (0.9, 1)])
def test_without_missing_steps_the_fit_is_the_old_complete_row_estimate(rho: float, v: int) -> None:
    rng = np.random.default_rng(int(rho * 10) + v)
    z = copula_rows(rng, dep.ar1_correlation(rho, 16), 150, v)
    fit = dep.fit_step_dependence(z)
    old = _old_complete_row_fit(z)
    assert fit.method == old["method"] and fit.n_windows == old["n_windows"] == z.shape[0]
    assert fit.rho == pytest.approx(old["rho"], rel=1e-12, abs=1e-14)
    np.testing.assert_allclose(fit.correlation, old["correlation"], rtol=1e-12, atol=1e-14)
    assert fit.holdout_scores is not None
    for name, score in old["scores"].items():
        assert fit.holdout_scores[name] == pytest.approx(score, rel=1e-10, abs=1e-12)
    x = z.reshape(-1, 16)
    np.testing.assert_allclose(dep._sample_correlation(x)[0], np.corrcoef(x, rowvar=False), atol=1e-13)


def test_missing_step_in_every_row_still_fits_the_ar1_dependence() -> None:
    rng = np.random.default_rng(7)
    h = 24
    z = copula_rows(rng, dep.ar1_correlation(0.6, h), 300, 1)
    z[:, :, 2] = np.nan  # as on BTCUSDT hourly: the forward-filled bar of each day is never realised
    fit = dep.fit_step_dependence(z)
    assert fit.method in ("ar1", "shrunk") and fit.reason is None and fit.n_windows == 300
    assert fit.rho == pytest.approx(0.6, abs=0.1)
    np.linalg.cholesky(fit.correlation)
    assert fit.holdout_scores is not None and fit.holdout_scores[fit.method] > 0.1
    # pairs with step 2 had no joint rows: they are the AR(1) target's values
    np.testing.assert_allclose(fit.correlation[2], dep.ar1_correlation(float(fit.rho), h)[2], atol=0.05)


def test_random_missing_entries_keep_the_fit_positive_definite_and_count_windows() -> None:
    rng = np.random.default_rng(8)
    w, v, h = 200, 2, 24
    z = copula_rows(rng, dep.ar1_correlation(0.7, h), w, v)
    z[rng.random(z.shape) < 0.1] = np.nan
    z[11, :, 1:] = np.nan  # window 11: no row with 2 finite steps, not counted
    z[12, 0, :] = np.nan  # window 12: one usable row, counted
    assert np.isfinite(z).all(axis=2).mean() < 0.2  # most rows have a missing step
    fit = dep.fit_step_dependence(z)
    assert fit.n_windows == w - 1
    assert fit.method in ("ar1", "shrunk") and fit.rho == pytest.approx(0.7, abs=0.05)
    np.linalg.cholesky(fit.correlation)
    x = z.reshape(-1, h)
    shrunk, lam = dep.shrunk_correlation(x, dep.ar1_correlation(dep.ar1_rho(x), h))
    assert 0.0 < lam <= 1.0
    np.linalg.cholesky(shrunk)
    np.testing.assert_allclose(np.diag(shrunk), 1.0)


def test_shrinkage_raises_lambda_until_a_pairwise_matrix_is_positive_definite() -> None:
    rng = np.random.default_rng(9)
    a, b, c = rng.standard_normal((3, 200))
    nan = np.full(200, np.nan)
    # pairs seen on disjoint rows: r_01 = r_12 = 1 and r_02 = -1, eigenvalues -1, 2, 2
    x = np.concatenate([np.stack([a, a, nan], 1), np.stack([nan, b, b], 1), np.stack([c, nan, -c], 1)])
    shrunk, lam = dep.shrunk_correlation(x, np.eye(3))
    np.linalg.cholesky(shrunk)
    assert 0.5 < lam < 1.0  # the Schaefer-Strimmer intensity alone is near 0; (1 - lam) r + lam I needs > 0.5


def test_copula_loglik_scores_each_rows_observed_sub_vector() -> None:
    from scipy.stats import multivariate_normal, norm

    corr = np.array([[1.0, 0.5, 0.2], [0.5, 1.0, -0.3], [0.2, -0.3, 1.0]])
    x = np.array(
        [
            [0.3, -1.2, 0.8],
            [np.nan, 0.4, -0.5],
            [1.1, np.nan, 0.2],
            [-0.7, np.nan, np.nan],  # one observed step: scores 0
            [np.nan, 0.9, 1.4],
        ]
    )

    def by_hand(row: np.ndarray) -> float:
        o = np.isfinite(row)
        if o.sum() < 2:
            return 0.0
        sub = corr[np.ix_(o, o)]
        return float(multivariate_normal(np.zeros(o.sum()), sub).logpdf(row[o]) - norm.logpdf(row[o]).sum())

    expected = np.mean([by_hand(row) for row in x])
    assert dep.copula_loglik(x, corr) == pytest.approx(expected, rel=1e-12)
    complete = x[:1]
    assert dep.copula_loglik(complete, corr) == pytest.approx(by_hand(x[0]), rel=1e-12)
    assert dep.copula_loglik(x, np.eye(3)) == pytest.approx(0.0, abs=1e-12)


def test_resolved_before_counts_the_windows_whose_horizon_ended_by_each_origin() -> None:
    origins = np.array([10, 12, 14, 17, 30, 31])
    got = dep.resolved_before(origins, 4)
    slow = [sum(origins[j] + 4 <= origins[i] for j in range(6)) for i in range(6)]
    np.testing.assert_array_equal(got, slow)
    with pytest.raises(ConfigError):
        dep.resolved_before(origins[::-1], 4)


def test_rolling_estimates_never_use_outcomes_resolved_after_the_origin() -> None:
    rng = np.random.default_rng(4)
    w, h, stride = 200, 8, 2
    origins = 100 + stride * np.arange(w)
    z = copula_rows(rng, dep.ar1_correlation(0.7, h), w, 2)
    roll = dep.rolling_step_dependence(z, origins, h, refit_every=10)
    counts = dep.resolved_before(origins, h)
    assert np.all(roll.counts <= counts)
    assert len(roll.fits) <= w // 10 + 21
    corr = roll.correlations()
    assert corr.shape == (w, h, h)
    for i in (0, 25, 90, 199):
        perturbed = z.copy()
        perturbed[counts[i] :] = rng.standard_normal(perturbed[counts[i] :].shape) * 3.0
        again = dep.rolling_step_dependence(perturbed, origins, h, refit_every=10)
        np.testing.assert_array_equal(again.correlations()[i], corr[i])
    assert roll.fits[int(roll.fit_of[0])].method == "independent"
    assert roll.fits[int(roll.fit_of[-1])].method in ("ar1", "shrunk")
    json.dumps(roll.record(), allow_nan=False)


# -- copula sample paths -------------------------------------------------------------------------


def _differencing(horizon: int, n_w: int = 2) -> tuple[object, object, np.ndarray]:
    aug = get_augmentation("differencing")
    state = aug.fit(np.full((n_w, 1, 5), 100.0))
    q = np.broadcast_to(Z[None, None, :, None], (n_w, 1, Z.size, horizon)).copy()  # N(0, 1) steps
    return aug, state, q


OUT = np.array([0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95])
OUT_Z = np.array([NormalDist().inv_cdf(p) for p in OUT])


def _plain_monte_carlo_sum_quantiles(corr: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Quantiles [len(OUT), h] of the running sum of steps with the interpolated N(0, 1) marginals.

    An independent reference: exact Gaussian-copula draws u = Phi(L g) (no Latin hypercube, no ranks),
    each mapped through the marginal's inverse CDF, summed over the steps, empirical quantiles.
    """
    h = corr.shape[0]
    g = np.random.default_rng(seed).standard_normal((n, h)) @ np.linalg.cholesky(corr).T
    u = np.array([NormalDist().cdf(x) for x in np.linspace(-6, 6, 2001)])
    values = interpolate_quantiles(Z[:, None], LEVELS, u)[:, 0]  # the marginal's inverse CDF on a grid
    steps = np.interp(g, np.linspace(-6, 6, 2001), values)  # inverse CDF at Phi(g), via the z grid
    return np.quantile(np.cumsum(steps, axis=1), OUT, axis=0)


@pytest.mark.parametrize("rho", [0.0, 0.5, 0.9, -0.4])
def test_ar1_copula_paths_match_plain_monte_carlo_of_the_gaussian_copula(rho: float) -> None:
    h = 12
    aug, state, q = _differencing(h)
    corr = dep.ar1_correlation(rho, h)
    got = inverse_quantiles(
        aug, q, levels=LEVELS, state=state, out_levels=OUT, dependence="copula", correlation=corr
    )[0, 0]
    expected = 100.0 + _plain_monte_carlo_sum_quantiles(corr, 400_000, 1)
    sd = np.sqrt(np.array([corr[: k + 1, : k + 1].sum() for k in range(h)]))  # of the normal sum
    # 4 standard errors of plain Monte Carlo with 4096 paths (the reference's own error is 10x smaller)
    plain_se = np.sqrt(OUT * (1 - OUT) / 4096) / np.exp(-(OUT_Z**2) / 2) * np.sqrt(2 * np.pi)
    assert np.all(np.abs(got - expected) <= 4 * plain_se[:, None] * sd)


def test_copula_limits_are_the_comonotonic_and_the_independent_inversions() -> None:
    h = 10
    aug, state, q = _differencing(h)
    kwargs = {"levels": LEVELS, "state": state, "out_levels": OUT}
    width = 2 * 1.2816 * np.arange(1, h + 1)
    comonotone = inverse_quantiles(aug, q, dependence="comonotonic", **kwargs)
    near_one = inverse_quantiles(
        aug, q, dependence="copula", correlation=dep.ar1_correlation(0.9999, h), **kwargs
    )
    assert np.abs(near_one - comonotone).max() < 0.02 * width[-1]
    independent = inverse_quantiles(aug, q, **kwargs)
    identity = inverse_quantiles(aug, q, dependence="copula", correlation=np.eye(h), **kwargs)
    assert np.all(np.abs(identity - independent) <= 0.03 * np.sqrt(np.arange(1, h + 1)) * 2 * 1.2816)


def test_copula_paths_are_seeded_byte_identical_and_per_window_matrices_match_shared_ones() -> None:
    h, n_w = 6, 5
    aug, state, q = _differencing(h, n_w)
    q = q + np.random.default_rng(5).normal(0, 0.3, (n_w, 1, 1, h))
    a, b = dep.ar1_correlation(0.6, h), dep.ar1_correlation(-0.3, h)
    kwargs = {"levels": LEVELS, "state": state, "out_levels": OUT, "dependence": "copula", "n_paths": 512}
    first = inverse_quantiles(aug, q, correlation=a, seed=3, **kwargs)
    np.testing.assert_array_equal(inverse_quantiles(aug, q, correlation=a, seed=3, **kwargs), first)
    assert not np.array_equal(inverse_quantiles(aug, q, correlation=a, seed=4, **kwargs), first)
    mixed = np.stack([a, b, a, b, b])
    per_window = inverse_quantiles(aug, q, correlation=mixed, seed=3, **kwargs)
    np.testing.assert_array_equal(per_window[[0, 2]], first[[0, 2]])
    with_b = inverse_quantiles(aug, q, correlation=b, seed=3, **kwargs)
    np.testing.assert_array_equal(per_window[[1, 3, 4]], with_b[[1, 3, 4]])


def test_grouped_matrices_give_the_per_window_matrices_numbers() -> None:
    h, n_w = 6, 6
    aug, state, q = _differencing(h, n_w)
    q = q + np.random.default_rng(7).normal(0, 0.3, (n_w, 1, 1, h))
    a, b = dep.ar1_correlation(0.6, h), dep.ar1_correlation(-0.3, h)
    kwargs = {"levels": LEVELS, "state": state, "out_levels": OUT, "dependence": "copula", "n_paths": 256}
    per_window = inverse_quantiles(aug, q, correlation=np.stack([a, b, a, b, b, a]), **kwargs)
    # matrices given once each (one repeated, one unused) and each window's index among them
    matrices = np.stack([np.eye(h), b, a, a.copy()])
    grouped = inverse_quantiles(aug, q, correlation=matrices, groups=np.array([2, 1, 3, 1, 1, 2]), **kwargs)
    assert grouped.tobytes() == per_window.tobytes()


def test_grouped_matrices_are_validated() -> None:
    h = 4
    aug, state, q = _differencing(h)
    kwargs = {"levels": LEVELS, "state": state, "out_levels": OUT, "dependence": "copula"}
    with pytest.raises(ConfigError, match="groups"):
        inverse_quantiles(aug, q, correlation=np.eye(h)[None], groups=np.array([0, 1]), **kwargs)
    with pytest.raises(ConfigError, match="groups"):
        inverse_quantiles(aug, q, correlation=np.eye(h)[None], groups=np.array([0]), **kwargs)
    with pytest.raises(ConfigError, match="groups"):
        inverse_quantiles(aug, q, correlation=np.eye(h)[None], groups=np.array([0.0, 0.0]), **kwargs)
    with pytest.raises(ConfigError, match="groups"):
        inverse_quantiles(aug, q, levels=LEVELS, state=state, out_levels=OUT, groups=np.array([0, 0]))
    unused_but_bad = np.stack([np.eye(h), np.ones((h, h))])
    with pytest.raises(ConfigError, match="positive definite"):
        inverse_quantiles(aug, q, correlation=unused_but_bad, groups=np.array([0, 0]), **kwargs)


def test_stacked_copula_draws_are_each_matrixs_own() -> None:
    h = 5
    matrices = np.stack([dep.ar1_correlation(rho, h) for rho in (0.0, 0.7, -0.4)])
    seg, frac = copula_draws(LEVELS, 300, matrices, 11)
    assert seg.shape == frac.shape == (3, h, 300)
    for i, matrix in enumerate(matrices):
        one_seg, one_frac = copula_draws(LEVELS, 300, matrix, 11)
        np.testing.assert_array_equal(seg[i], one_seg)
        np.testing.assert_array_equal(frac[i], one_frac)


@pytest.mark.parametrize(
    "column",
    [
        [0.0, 1.0, 2.0],
        [1.0, 0.0, 2.0],
        [0.0, np.nan, 2.0],
        [0.0, np.inf, np.inf],
        [-np.inf, -np.inf, 0.0],
        [-np.inf, 0.0, np.inf],
        [np.inf, np.inf, np.inf],
    ],
)
def test_quantiles_are_sorted_exactly_when_a_neighbours_difference_is_not_non_negative(column: list) -> None:
    q = np.zeros((2, 1, 3, 4))
    q[1, 0, :, 2] = column
    with np.errstate(invalid="ignore"):  # inf - inf
        got = sorted_quantiles(q)
        crossing = not (np.diff(q, axis=2) >= 0).all()
    assert (got is not q) == crossing
    np.testing.assert_array_equal(got, np.sort(q, axis=2))


def test_copula_options_are_validated() -> None:
    h = 4
    aug, state, q = _differencing(h)
    kwargs = {"levels": LEVELS, "state": state, "out_levels": OUT}
    with pytest.raises(ConfigError, match="copula"):
        inverse_quantiles(aug, q, dependence="copula", **kwargs)
    with pytest.raises(ConfigError, match="copula"):
        inverse_quantiles(aug, q, correlation=np.eye(h), **kwargs)
    with pytest.raises(ConfigError, match="positive definite"):
        inverse_quantiles(aug, q, dependence="copula", correlation=np.ones((h, h)), **kwargs)
    with pytest.raises(ConfigError, match=r"\[4, 4\]"):
        inverse_quantiles(aug, q, dependence="copula", correlation=np.eye(3), **kwargs)
    pointwise = get_augmentation("none")
    st_none = pointwise.fit(np.ones((2, 1, 5)))
    exact = inverse_quantiles(pointwise, q, levels=LEVELS, state=st_none, out_levels=OUT)
    coupled = inverse_quantiles(
        pointwise, q, levels=LEVELS, state=st_none, out_levels=OUT, dependence="copula", correlation=np.eye(h)
    )
    np.testing.assert_array_equal(coupled, exact)


def test_rolling_dependence_from_forecasts_composes_pit_scores_and_the_rolling_fit() -> None:
    rng = np.random.default_rng(6)
    w, h = 80, 5
    loc, scale = rng.normal(size=(w, 1, h)), np.full((w, 1, h), 1.5)
    q = normal_quantiles(loc, scale)
    scores = copula_rows(rng, dep.ar1_correlation(0.8, h), w, 1)
    actual = loc + scale * scores
    origins = np.arange(w) * 5
    roll = dep.rolling_dependence(quantiles=q, levels=LEVELS, actual=actual, origins=origins, horizon=h)
    z = dep.normal_scores(dep.pit(quantiles=q, levels=LEVELS, actual=actual))
    np.testing.assert_array_equal(
        roll.correlations(), dep.rolling_step_dependence(z, origins, h).correlations()
    )
    assert roll.fits[int(roll.fit_of[-1])].rho == pytest.approx(0.8, abs=0.15)
