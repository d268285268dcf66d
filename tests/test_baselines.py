"""Baselines: exact on the series they model, FPP3 interval widths by hand, padding and fallback."""

from __future__ import annotations

import math

import numpy as np
import pytest

from chronobt.evaluation import baselines

LEVELS = [0.1, 0.5, 0.9]
Z90 = 1.2815515655446004  # standard normal 0.9 quantile (tables: 1.28155)


def test_naive_on_a_constant_series_is_exact_with_a_zero_width_interval() -> None:
    contexts = np.full((3, 2, 50), 7.5)
    point, quantiles = baselines.naive(contexts, horizon=6, levels=LEVELS)
    assert point.shape == (3, 2, 6) and quantiles.shape == (3, 2, 3, 6)
    assert np.all(point == 7.5) and np.all(quantiles == 7.5)


def test_drift_on_a_linear_trend_is_exact_even_with_left_padding() -> None:
    t = np.arange(40, dtype=float)
    contexts = np.stack([3.0 + 2.0 * t, 100.0 - 0.5 * t])[None].repeat(2, axis=0)  # [2, 2, 40]
    contexts[1, :, :25] = np.nan  # the second window sees only the last 15 bars of the line
    point, quantiles = baselines.drift(contexts, horizon=5, levels=LEVELS)
    future = np.arange(40, 45, dtype=float)
    for i in range(2):
        np.testing.assert_allclose(point[i, 0], 3.0 + 2.0 * future)
        np.testing.assert_allclose(point[i, 1], 100.0 - 0.5 * future)
    np.testing.assert_allclose(quantiles, np.repeat(point[:, :, None], 3, axis=2), atol=1e-9)


def test_seasonal_naive_on_a_periodic_series_is_exact_beyond_one_season() -> None:
    pattern = np.array([1.0, 4.0, 2.0, 8.0, 5.0])
    series = np.tile(pattern, 10)  # 50 bars, period 5
    contexts = series[None, None, :23]  # context length not a multiple of the season
    point, quantiles = baselines.seasonal_naive(contexts, horizon=12, levels=LEVELS, season=5)
    np.testing.assert_array_equal(point[0, 0], series[23:35])
    np.testing.assert_array_equal(quantiles[0, 0, 1], series[23:35])  # zero residuals: no spread


def test_naive_interval_width_by_hand() -> None:
    # Context 1, 2, 4, 7: one-step residuals 1, 2, 3 -> sigma^2 = (1 + 4 + 9) / (T - 1 = 3) = 14/3.
    # 80% interval half-width at step h: z_0.9 * sigma * sqrt(h).
    point, quantiles = baselines.naive([[[1.0, 2.0, 4.0, 7.0]]], horizon=3, levels=LEVELS)
    assert point[0, 0].tolist() == [7.0, 7.0, 7.0]
    sigma = math.sqrt(14 / 3)
    for h in (1, 2, 3):
        assert quantiles[0, 0, 2, h - 1] - quantiles[0, 0, 0, h - 1] == pytest.approx(
            2 * Z90 * sigma * math.sqrt(h)
        )
    np.testing.assert_allclose(quantiles[0, 0, 1], point[0, 0])


def test_seasonal_naive_point_and_interval_width_by_hand() -> None:
    # y1..y9 = 1 2 3 | 2 4 3 | 3 5 6, m = 3. Forecasts repeat the last season: 3, 5, 6, then 3.
    # Seasonal residuals y_t - y_{t-3}: 1, 2, 0, 1, 1, 3 -> sigma^2 = 16 / (T - m = 6).
    # sd_h = sigma * sqrt(floor((h - 1) / 3) + 1): sigma for h = 1..3, sigma * sqrt(2) for h = 4.
    context = [[[1.0, 2.0, 3.0, 2.0, 4.0, 3.0, 3.0, 5.0, 6.0]]]
    point, quantiles = baselines.seasonal_naive(context, horizon=4, levels=LEVELS, season=3)
    assert point[0, 0].tolist() == [3.0, 5.0, 6.0, 3.0]
    sigma = math.sqrt(16 / 6)
    width = quantiles[0, 0, 2] - quantiles[0, 0, 0]
    np.testing.assert_allclose(width, 2 * Z90 * sigma * np.array([1, 1, 1, math.sqrt(2)]))


def test_drift_point_and_interval_width_by_hand() -> None:
    # Context 1, 2, 4, 7 (T = 4): drift b = (7 - 1) / 3 = 2, forecasts 9, 11, 13.
    # Residuals (diff - b): -1, 0, 1 -> sigma^2 = 2 / (T - 2 = 2) = 1.
    # sd_h = sqrt(h (1 + h / (T - 1))): h=1 -> sqrt(4/3), h=2 -> sqrt(10/3), h=3 -> sqrt(6).
    point, quantiles = baselines.drift([[[1.0, 2.0, 4.0, 7.0]]], horizon=3, levels=LEVELS)
    assert point[0, 0].tolist() == [9.0, 11.0, 13.0]
    width = quantiles[0, 0, 2] - quantiles[0, 0, 0]
    np.testing.assert_allclose(width, 2 * Z90 * np.sqrt([4 / 3, 10 / 3, 6.0]))


def test_seasonal_naive_falls_back_to_naive_for_contexts_shorter_than_a_season_plus_one() -> None:
    rng = np.random.default_rng(0)
    contexts = rng.normal(size=(2, 1, 30)).cumsum(axis=-1)
    contexts[1, :, :26] = np.nan  # 4 valid bars < season 5 + 1
    seasonal = baselines.seasonal_naive(contexts, horizon=7, levels=LEVELS, season=5)
    naive = baselines.naive(contexts, horizon=7, levels=LEVELS)
    np.testing.assert_array_equal(seasonal.point[1], naive.point[1])
    np.testing.assert_array_equal(seasonal.quantiles[1], naive.quantiles[1])
    assert not np.allclose(seasonal.point[0], naive.point[0])  # the long window really is seasonal
    short_only = baselines.seasonal_naive(contexts[:, :, -4:], horizon=7, levels=LEVELS, season=5)
    np.testing.assert_array_equal(
        short_only.point, baselines.naive(contexts[:, :, -4:], horizon=7, levels=LEVELS).point
    )


@pytest.mark.parametrize("name", ["naive", "seasonal_naive", "drift"])
def test_batched_baselines_equal_one_window_at_a_time_without_padding(name: str) -> None:
    rng = np.random.default_rng(1)
    contexts = 50 + rng.normal(size=(6, 2, 80)).cumsum(axis=-1)
    for i, n_pad in enumerate([0, 10, 30, 60, 72, 5]):
        contexts[i, :, :n_pad] = np.nan
    batched = baselines.run_baselines(contexts, horizon=9, levels=LEVELS, season=7)[name]
    for i in range(6):
        valid = contexts[i : i + 1][:, :, ~np.isnan(contexts[i, 0])]
        kwargs = {"season": 7} if name == "seasonal_naive" else {}
        alone = baselines.BASELINES[name](valid, horizon=9, levels=LEVELS, **kwargs)
        np.testing.assert_allclose(batched.point[i], alone.point[0])
        np.testing.assert_allclose(batched.quantiles[i], alone.quantiles[0])


def test_median_is_the_point_and_quantiles_ascend() -> None:
    rng = np.random.default_rng(2)
    contexts = rng.normal(size=(4, 3, 64)).cumsum(axis=-1)
    for name, forecast in baselines.run_baselines(contexts, horizon=5, levels=LEVELS, season=24).items():
        np.testing.assert_allclose(forecast.quantiles[:, :, 1], forecast.point, err_msg=name)
        assert np.all(np.diff(forecast.quantiles, axis=2) > 0), name


@pytest.mark.parametrize("levels", [[0.0, 0.5], [0.5, 1.0], [0.6, 0.4], []])
def test_quantile_levels_must_be_ascending_inside_zero_and_one(levels: list[float]) -> None:
    with pytest.raises(ValueError, match="quantile levels must be ascending values strictly between 0 and 1"):
        baselines.naive(np.ones((1, 1, 10)), horizon=2, levels=levels)


def test_naive_starts_from_the_last_real_value_and_widens_over_the_missing_bars() -> None:
    # Real bars 1, 2, 4, 7 then two missing (forward-filled) bars: y_T = 7, g = 2, residuals 1, 2, 3.
    point, quantiles = baselines.naive([[[1.0, 2.0, 4.0, 7.0, np.nan, np.nan]]], horizon=2, levels=LEVELS)
    assert point[0, 0].tolist() == [7.0, 7.0]
    sigma = math.sqrt(14 / 3)
    for h in (1, 2):
        assert quantiles[0, 0, 2, h - 1] - quantiles[0, 0, 0, h - 1] == pytest.approx(
            2 * Z90 * sigma * math.sqrt(h + 2)
        )


def test_drift_on_a_line_with_missing_bars_inside_and_before_the_origin_is_exact() -> None:
    t = np.arange(30, dtype=float)
    contexts = (5.0 + 1.5 * t)[None, None].copy()
    contexts[0, 0, [10, 11, 12, 27, 28, 29]] = np.nan  # a gap inside, and one right before the origin
    point, quantiles = baselines.drift(contexts, horizon=4, levels=LEVELS)
    np.testing.assert_allclose(point[0, 0], 5.0 + 1.5 * np.arange(30, 34))
    np.testing.assert_allclose(quantiles[0, 0, 0], point[0, 0], atol=1e-9)  # residuals all zero


def test_seasonal_naive_skips_a_missing_seasonal_bar_to_the_same_phase_a_season_earlier() -> None:
    # m = 3, y = 1 2 3 | 2 4 3 | 3 5 NaN: step 3's bar one season back is missing -> y_6 = 3, k + 1 = 2.
    contexts = [[[1.0, 2.0, 3.0, 2.0, 4.0, 3.0, 3.0, 5.0, np.nan]]]
    point, quantiles = baselines.seasonal_naive(contexts, horizon=3, levels=LEVELS, season=3)
    assert point[0, 0].tolist() == [3.0, 5.0, 3.0]
    # seasonal residuals on real pairs: 1, 2, 0, 1, 1 -> sigma^2 = 7 / 5
    sigma = math.sqrt(7 / 5)
    widths = quantiles[0, 0, 2] - quantiles[0, 0, 0]
    np.testing.assert_allclose(widths, 2 * Z90 * sigma * np.sqrt([1.0, 1.0, 2.0]))
