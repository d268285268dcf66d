"""Adaptive conformal recalibration: coverage, no look-ahead, and the recursion against a slow loop."""

from __future__ import annotations

import json
from statistics import NormalDist

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chronobt.augment.sampling import interpolate_quantiles
from chronobt.errors import ConfigError
from chronobt.evaluation import calibration as cal

LEVELS = [0.1, 0.5, 0.9]
Z = np.array([NormalDist().inv_cdf(p) for p in LEVELS])


def rolling_case(seed: int, w: int, h: int, stride: int, spread: float) -> tuple[np.ndarray, ...]:
    """Windows over one N(0, 1) series with constant N(0, spread^2) quantile forecasts.

    Overlapping windows share bars, as in a backtest: ``actual[i, 0, k] = y[origin_i + 1 + k]``.
    """
    rng = np.random.default_rng(seed)
    origins = 50 + stride * np.arange(w)
    y = rng.standard_normal(origins[-1] + h + 1)
    actual = y[origins[:, None] + 1 + np.arange(h)][:, None, :]
    q = np.broadcast_to((spread * Z)[None, None, :, None], (w, 1, 3, h)).copy()
    return q, actual, origins


def calibrate(q: np.ndarray, actual: np.ndarray, origins: np.ndarray, horizon: int, gamma: float = cal.GAMMA):
    """Each window's quantiles at its ACI-issued levels, as the backtest applies them, and the fit."""
    fit = cal.fit_conformal(
        quantiles=q, levels=LEVELS, actual=actual, origins=origins, horizon=horizon, gamma=gamma
    )
    return cal.apply_levels(q, LEVELS, fit.issued), fit


def coverage_80(q: np.ndarray, actual: np.ndarray) -> float:
    return float(((actual >= q[:, :, 0]) & (actual <= q[:, :, 2])).mean())


@pytest.mark.parametrize(("spread", "raw"), [(0.657, 0.60), (1.52, 0.95)])
def test_aci_brings_the_80_percent_interval_to_80_percent_on_later_windows(spread: float, raw: float) -> None:
    q, actual, origins = rolling_case(0, 4000, 6, 1, spread)
    assert coverage_80(q, actual) == pytest.approx(raw, abs=0.02)  # too narrow / too wide
    calibrated, fit = calibrate(q, actual, origins, 6)
    assert calibrated.shape == q.shape
    assert coverage_80(calibrated[2000:], actual[2000:]) == pytest.approx(0.80, abs=0.03)
    for k in range(6):  # every step on its own, too
        assert coverage_80(calibrated[2000:, :, :, k : k + 1], actual[2000:, :, k : k + 1]) == pytest.approx(
            0.80, abs=0.03
        )
    assert fit.gamma == cal.GAMMA and fit.n_resolved == 4000
    # the median was right all along and stays close to nominal
    assert np.abs(fit.final[0, 1] - 0.5).max() < 0.1


def test_calibration_of_a_window_never_uses_outcomes_resolved_after_its_origin() -> None:
    q, actual, origins = rolling_case(1, 300, 8, 3, 0.7)
    q = q + np.random.default_rng(2).normal(0, 0.2, (*q.shape[:2], 1, q.shape[3]))
    calibrated, _ = calibrate(q, actual, origins, 8, gamma=0.05)
    rng = np.random.default_rng(3)
    for i in (0, 2, 3, 40, 150, 299):
        resolved = int(np.sum(origins + 8 <= origins[i]))
        perturbed = actual.copy()
        perturbed[resolved:] = rng.normal(0, 5.0, perturbed[resolved:].shape)  # includes window i itself
        again, _ = calibrate(q, perturbed, origins, 8, gamma=0.05)
        np.testing.assert_array_equal(again[i], calibrated[i])


def _slow_issued(q: np.ndarray, actual: np.ndarray, origins: np.ndarray, h: int, gamma: float) -> np.ndarray:
    """The delayed ACI recursion element by element, with hits read off the issued quantile values."""
    w, v, n_q, steps = q.shape
    issued = np.zeros(q.shape)
    tau = {(j, n, k): LEVELS[n] for j in range(v) for n in range(n_q) for k in range(steps)}
    applied: set[int] = set()
    for i in range(w):
        for r in range(w):
            if r not in applied and origins[r] + h <= origins[i]:
                applied.add(r)
                for (j, n, k), level in tau.items():
                    issued_level = min(max(issued[r, j, n, k], cal.CLIP), 1 - cal.CLIP)
                    value = interpolate_quantiles(
                        q[r, j, :, k : k + 1], np.array(LEVELS), np.array([issued_level])
                    )
                    hit = float(actual[r, j, k] <= value[0, 0])
                    if LEVELS[n] != 0.5:  # the median keeps its level
                        tau[(j, n, k)] = level + gamma * (LEVELS[n] - hit)
        for (j, n, k), level in tau.items():
            issued[i, j, n, k] = level
    return issued


def test_the_vectorized_recursion_matches_a_slow_loop() -> None:
    rng = np.random.default_rng(4)
    w, v, h = 40, 2, 3
    origins = np.cumsum(rng.integers(1, 4, size=w))
    q = np.sort(rng.normal(0, 0.6, (w, v, 3, h)), axis=2)
    actual = rng.standard_normal((w, v, h))
    fit = cal.fit_conformal(quantiles=q, levels=LEVELS, actual=actual, origins=origins, horizon=h, gamma=0.05)
    np.testing.assert_allclose(fit.issued, _slow_issued(q, actual, origins, h, 0.05), atol=1e-12)


def test_the_median_is_not_recalibrated_so_the_issued_point_forecast_is_the_models() -> None:
    q, actual, origins = rolling_case(6, 120, 4, 2, 0.7)
    q = q + 0.5  # a biased median: ACI would move its level if it were calibrated
    fit = cal.fit_conformal(quantiles=q, levels=LEVELS, actual=actual, origins=origins, horizon=4)
    mid = LEVELS.index(0.5)
    assert np.all(fit.issued[:, :, mid] == 0.5) and np.all(fit.final[:, mid] == 0.5)
    assert not np.all(fit.issued[:, :, 0] == LEVELS[0])  # the tails are calibrated
    calibrated = cal.apply_levels(q, LEVELS, fit.issued)
    np.testing.assert_allclose(calibrated[:, :, mid], q[:, :, mid], rtol=0, atol=1e-12)


def test_final_levels_are_those_a_window_at_the_forecast_origin_would_get() -> None:
    q, actual, origins = rolling_case(5, 200, 4, 2, 0.8)
    full = cal.fit_conformal(quantiles=q, levels=LEVELS, actual=actual, origins=origins, horizon=4)
    at = cal.fit_conformal(
        quantiles=q, levels=LEVELS, actual=actual, origins=origins, horizon=4, as_of=origins[150]
    )
    np.testing.assert_array_equal(at.final, full.issued[150])
    assert at.n_resolved == int(np.sum(origins + 4 <= origins[150]))
    new = q[:1]  # a new forecast of the same shape per window
    np.testing.assert_allclose(
        cal.apply_levels(new, LEVELS, full.final), cal.apply_levels(new, LEVELS, full.final[None])
    )
    record = full.record(["close"])
    json.dumps(record, allow_nan=False)
    assert record["method"] == "aci" and record["gamma"] == cal.GAMMA
    assert np.array(record["final_levels"]["close"]).shape == (3, 4)
    with pytest.raises(ConfigError, match="gamma"):
        cal.fit_conformal(quantiles=q, levels=LEVELS, actual=actual, origins=origins, horizon=4, gamma=0.0)


def test_nominal_levels_give_back_the_raw_quantiles_and_nan_outcomes_do_not_update() -> None:
    rng = np.random.default_rng(6)
    q = np.sort(rng.normal(size=(5, 2, 3, 4)), axis=2)
    levels = np.broadcast_to(np.array(LEVELS)[:, None], q.shape)
    np.testing.assert_allclose(cal.apply_levels(q, LEVELS, levels), q, rtol=1e-12)
    fit = cal.fit_conformal(
        quantiles=q, levels=LEVELS, actual=np.full((5, 2, 4), np.nan), origins=np.arange(5) * 10, horizon=4
    )
    np.testing.assert_array_equal(fit.final, levels[0])


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), u=st.lists(st.floats(1e-4, 1 - 1e-4), min_size=1, max_size=5))
def test_per_element_levels_interpolate_like_the_sampler(seed: int, u: list[float]) -> None:
    rng = np.random.default_rng(seed)
    grid = [0.05, 0.1, 0.3, 0.5, 0.7, 0.9, 0.95]
    q = np.sort(rng.normal(size=(2, 3, len(grid), 4)), axis=2)
    targets = np.array(u)
    expected = interpolate_quantiles(q, np.array(grid), targets)
    got = cal.quantiles_at(q, grid, np.broadcast_to(targets[:, None], (2, 3, targets.size, 4)))
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
