"""Metrics: hand-worked values, axis reductions against slow loops, and an independent implementation."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

from chronobt.errors import ConfigError
from chronobt.evaluation import metrics

# One window, one variate, three steps, worked by hand below.
ACTUAL = np.array([[[10.0, 20.0, 40.0]]])
FORECAST = np.array([[[12.0, 18.0, 40.0]]])  # errors +2, -2, 0
CONTEXT = np.array([[[8.0, 9.0, 11.0, 10.0]]])  # one-step |diffs| 1, 2, 1 -> scale 4/3; last value 10
LEVELS = [0.1, 0.5, 0.9]
QUANTILES = np.array([[[[8.0, 15.0, 40.0], [12.0, 18.0, 40.0], [14.0, 19.0, 45.0]]]])  # [1, 1, Q=3, 3]


def _hand_summary(**overrides) -> dict:
    """:func:`metrics.summarize` of the hand-worked case (or of ``overrides``): ``{name: float}`` of "x"."""
    inputs = dict(
        actual=ACTUAL,
        median=FORECAST,
        quantiles=QUANTILES,
        levels=LEVELS,
        last=CONTEXT[..., -1],
        scale=metrics.naive_scale(CONTEXT),
        targets=["x"],
        per_step=False,
    )
    return metrics.summarize(**{**inputs, **overrides})["metrics"]["x"]


def _one_step(actual: list[float], forecast: list[float]) -> dict:
    """The summary of a one-window, one-variate case with actuals and forecasts over len(actual) steps."""
    a, f = np.array([[actual]]), np.array([[forecast]])
    return _hand_summary(
        actual=a, median=f, quantiles=np.stack([f, f], axis=2), levels=[0.1, 0.9], last=a[..., 0]
    )


def test_mae_by_hand() -> None:
    # (|2| + |-2| + 0) / 3
    assert metrics.mae(actual=ACTUAL, forecast=FORECAST) == pytest.approx(4 / 3)


def test_rmse_by_hand() -> None:
    # sqrt((4 + 4 + 0) / 3)
    assert _hand_summary()["rmse"] == pytest.approx(math.sqrt(8 / 3))


def test_mape_by_hand_in_percent() -> None:
    # 100 * (2/10 + 2/20 + 0/40) / 3 = 100 * 0.3 / 3 = 10
    assert _hand_summary()["mape"] == pytest.approx(10.0)


def test_smape_by_hand_in_percent() -> None:
    # 200 * mean(|f-a| / (|a|+|f|)) = 200/3 * (2/22 + 2/38 + 0/80) = 9.5694 %
    assert _hand_summary()["smape"] == pytest.approx(200 / 3 * (2 / 22 + 2 / 38))


def test_naive_scale_and_mase_by_hand() -> None:
    # scale = (|9-8| + |11-9| + |10-11|) / 3 = 4/3; MASE = MAE / scale = (4/3) / (4/3) = 1
    scale = metrics.naive_scale(CONTEXT)
    assert scale.shape == (1, 1)
    assert scale[0, 0] == pytest.approx(4 / 3)
    assert metrics.mase(actual=ACTUAL, forecast=FORECAST, scale=scale) == pytest.approx(1.0)


def test_wql_by_hand() -> None:
    # Pinball max(q (a - f), (q - 1)(a - f)) per step, levels 0.1 / 0.5 / 0.9:
    #   a=10, f=(8, 12, 14):  0.1*2 = 0.2, 0.5*2 = 1.0, 0.1*4 = 0.4  -> 1.6
    #   a=20, f=(15, 18, 19): 0.1*5 = 0.5, 0.5*2 = 1.0, 0.9*1 = 0.9  -> 2.4
    #   a=40, f=(40, 40, 45): 0,          0,          0.1*5 = 0.5  -> 0.5
    # WQL = 2 * 4.5 / (3 levels * (10 + 20 + 40)) = 9 / 210
    assert metrics.wql(actual=ACTUAL, quantiles=QUANTILES, levels=LEVELS) == pytest.approx(9 / 210)


def test_coverage_and_width_by_hand() -> None:
    # Interval (0.1, 0.9) = (8, 14), (15, 19), (40, 45): 10 inside, 20 above, 40 on the edge (inside).
    lower, upper = QUANTILES[:, :, 0], QUANTILES[:, :, 2]
    assert metrics.coverage(actual=ACTUAL, lower=lower, upper=upper) == pytest.approx(2 / 3)
    # widths 6, 4, 5
    assert _hand_summary()["width_80"] == pytest.approx(5.0)
    assert _hand_summary()["coverage_80"] == pytest.approx(2 / 3)


def test_directional_accuracy_by_hand_with_a_tie() -> None:
    # last = 10. Step 1: actual 10 (no move, sign 0) vs forecast 12 (up): miss (documented tie rule).
    # Step 2: 20 up vs 18 up: hit. Step 3: 40 up vs 40 up: hit. -> 2/3
    assert _hand_summary()["directional_accuracy"] == pytest.approx(2 / 3)
    # A "no change" forecast against "no change" is a hit.
    last = CONTEXT[..., -1]
    same = _hand_summary(
        actual=np.array([[[10.0]]]), median=np.array([[[10.0]]]), quantiles=QUANTILES[..., :1]
    )
    assert same["directional_accuracy"] == 1.0 and np.all(last == 10.0)


def test_skill_is_one_minus_the_mase_ratio() -> None:
    assert metrics.skill(0.75, 1.5) == pytest.approx(0.5)  # 1 - 0.75 / 1.5
    assert metrics.skill(None, 1.0) is None
    assert metrics.skill(1.0, 0.0) is None  # not finite


def test_mape_leaves_out_zero_actuals_and_smape_counts_double_zero_as_no_error() -> None:
    # MAPE: only the point with actual 4 counts: 100 * |5 - 4| / 4 = 25.
    assert _one_step([0.0, 4.0], [1.0, 5.0])["mape"] == pytest.approx(25.0)
    # sMAPE: (0 for 0/0) and 200 * 1 / 9 for the other, mean over 2 -> 100 / 9.
    assert _one_step([0.0, 4.0], [0.0, 5.0])["smape"] == pytest.approx(100 / 9)


def test_naive_scale_ignores_nan_left_padding() -> None:
    # Valid bars 1, 3, 2: |diffs| 2, 1 -> 1.5
    assert metrics.naive_scale([[[np.nan, np.nan, 1.0, 3.0, 2.0]]])[0, 0] == pytest.approx(1.5)


def test_mase_leaves_out_windows_with_a_constant_context() -> None:
    contexts = np.array([[[5.0, 5.0, 5.0]], [[1.0, 2.0, 4.0]]])  # scales 0 and 1.5
    actual = np.array([[[5.0]], [[4.0]]])
    forecast = np.array([[[6.0]], [[7.0]]])  # window 2: |3| / 1.5 = 2
    scale = metrics.naive_scale(contexts)
    assert scale[0, 0] == 0.0
    assert metrics.mase(actual=actual, forecast=forecast, scale=scale) == pytest.approx(2.0)


def test_nan_actuals_are_left_out_and_empty_reductions_are_nan_without_warnings() -> None:
    actual = np.array([[[10.0, np.nan]], [[np.nan, np.nan]]])
    forecast = np.full((2, 1, 2), 11.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        per_window = metrics.mae(actual=actual, forecast=forecast, axis=(1, 2))
        cover = metrics.coverage(actual=actual, lower=forecast - 1, upper=forecast + 1, axis=(1, 2))
        loss = metrics.wql(actual=actual, quantiles=forecast[:, :, None, :], levels=[0.5], axis=(1, 2))
    assert per_window[0] == 1.0 and np.isnan(per_window[1])
    assert cover[0] == 1.0 and np.isnan(cover[1])
    assert loss[0] == pytest.approx(2 * 0.5 * 1 / 10) and np.isnan(loss[1])


def _random_case(seed: int = 0):
    rng = np.random.default_rng(seed)
    w, v, h, t = 5, 3, 4, 20
    contexts = 100 + rng.normal(size=(w, v, t)).cumsum(axis=-1)
    contexts[1, :, :7] = np.nan  # a shorter window
    actual = contexts[:, :, -1:] + rng.normal(size=(w, v, h)).cumsum(axis=-1)
    quantiles = np.sort(actual[:, :, None, :] + rng.normal(scale=2.0, size=(w, v, 5, h)), axis=2)
    levels = [0.1, 0.3, 0.5, 0.7, 0.9]
    return contexts, actual, quantiles, levels


@pytest.mark.parametrize("axis", [None, 0, 2, (0, 2)])
def test_point_metrics_reduce_over_axes_like_a_slow_loop(axis) -> None:
    contexts, actual, quantiles, levels = _random_case()
    median, last = quantiles[:, :, 2], contexts[:, :, -1]
    scale = metrics.naive_scale(contexts)
    w, v, h = actual.shape

    def loop(point_value):
        """Mean of point_value(i, j, k) over the reduced axes, computed cell by cell."""
        keep = [d for d in range(3) if d not in ((0, 1, 2) if axis is None else np.atleast_1d(axis))]
        out = {}
        for i in range(w):
            for j in range(v):
                for k in range(h):
                    key = tuple((i, j, k)[d] for d in keep)
                    out.setdefault(key, []).append(point_value(i, j, k))
        shape = [actual.shape[d] for d in keep]
        return np.array([np.mean(out[key]) for key in sorted(out)]).reshape(shape)

    a, f = actual, median
    np.testing.assert_allclose(
        metrics.mae(actual=a, forecast=f, axis=axis), loop(lambda i, j, k: abs(f[i, j, k] - a[i, j, k]))
    )
    np.testing.assert_allclose(
        metrics.mase(actual=a, forecast=f, scale=scale, axis=axis),
        loop(lambda i, j, k: abs(f[i, j, k] - a[i, j, k]) / scale[i, j]),
    )
    if axis not in (0, (0, 2)):
        return  # summarize reports the per-step (axis 0) and the pooled (axis (0, 2)) reductions
    targets = [f"v{j}" for j in range(v)]
    summary = metrics.summarize(
        actual=a, median=f, quantiles=quantiles, levels=levels, last=last, scale=scale, targets=targets
    )
    reported = summary["per_step" if axis == 0 else "metrics"]

    def got(name: str) -> np.ndarray:
        return np.array([reported[t][name] for t in targets])

    np.testing.assert_allclose(got("rmse"), np.sqrt(loop(lambda i, j, k: (f[i, j, k] - a[i, j, k]) ** 2)))
    np.testing.assert_allclose(
        got("directional_accuracy"),
        loop(lambda i, j, k: float(np.sign(f[i, j, k] - last[i, j]) == np.sign(a[i, j, k] - last[i, j]))),
    )


def _reference_scale(window: np.ndarray) -> float:
    """Mean absolute one-step difference of the valid (non-NaN) bars, from the published MASE formula."""
    bars = [x for x in window if not math.isnan(x)]
    return sum(abs(bars[t] - bars[t - 1]) for t in range(1, len(bars))) / (len(bars) - 1)


def test_mase_wql_and_coverage_match_a_straightforward_implementation_of_the_published_formulas() -> None:
    contexts, actual, quantiles, levels = _random_case(seed=3)
    median, lower, upper = quantiles[:, :, 2], quantiles[:, :, 0], quantiles[:, :, 4]
    w, v, h = actual.shape
    scale = metrics.naive_scale(contexts)
    got_mase = metrics.mase(actual=actual, forecast=median, scale=scale, axis=(0, 2))
    got_wql = metrics.wql(actual=actual, quantiles=quantiles, levels=levels, axis=(0, 2))
    got_cov = metrics.coverage(actual=actual, lower=lower, upper=upper, axis=(0, 2))
    for j in range(v):
        # Hyndman & Koehler (2006): per-series MASE = MAE / in-sample naive MAE; averaged over windows.
        per_window = [
            sum(abs(median[i, j, k] - actual[i, j, k]) for k in range(h))
            / h
            / _reference_scale(contexts[i, j])
            for i in range(w)
        ]
        assert got_mase[j] == pytest.approx(sum(per_window) / w)
        # wQL = 2 * sum_{points, q} QL_q / (Q * sum |y|) with QL_q(y, f) = q (y-f)+ + (1-q) (f-y)+
        numerator = 0.0
        for i in range(w):
            for k in range(h):
                y = actual[i, j, k]
                for qi, q in enumerate(levels):
                    f = quantiles[i, j, qi, k]
                    numerator += q * (y - f) if y >= f else (1 - q) * (f - y)
        assert got_wql[j] == pytest.approx(2 * numerator / (len(levels) * np.abs(actual[:, j]).sum()))
        hits = sum(lower[i, j, k] <= actual[i, j, k] <= upper[i, j, k] for i in range(w) for k in range(h))
        assert got_cov[j] == pytest.approx(hits / (w * h))


def test_mase_wql_and_coverage_match_utilsforecast() -> None:
    losses = pytest.importorskip("utilsforecast.losses")
    contexts, actual, quantiles, levels = _random_case(seed=5)
    median = quantiles[:, :, 2]
    w, v, h = actual.shape
    # One utilsforecast series per (window, variate) for MASE (its train_df is that window's context) ...
    ids = [f"w{i}v{j}" for i in range(w) for j in range(v)]
    train = pd.DataFrame(
        [
            {"unique_id": f"w{i}v{j}", "ds": t, "y": contexts[i, j, t]}
            for i in range(w)
            for j in range(v)
            for t in range(contexts.shape[-1])
            if not np.isnan(contexts[i, j, t])
        ]
    )
    test = pd.DataFrame(
        [
            {
                "unique_id": f"w{i}v{j}",
                "ds": contexts.shape[-1] + k,
                "y": actual[i, j, k],
                "m": median[i, j, k],
            }
            for i in range(w)
            for j in range(v)
            for k in range(h)
        ]
    )
    theirs = losses.mase(test, models=["m"], seasonality=1, train_df=train).set_index("unique_id")["m"]
    ours = metrics.mase(actual=actual, forecast=median, scale=metrics.naive_scale(contexts), axis=2)
    np.testing.assert_allclose(ours.ravel(), theirs.loc[ids].to_numpy())

    # ... and one series per variate (windows and steps pooled) for the scaled CRPS (= our WQL) and coverage.
    pooled = pd.DataFrame(
        [
            {
                "unique_id": f"v{j}",
                "ds": i * h + k,
                "y": actual[i, j, k],
                **{f"q{q}": quantiles[i, j, qi, k] for qi, q in enumerate(levels)},
                "m-lo-80": quantiles[i, j, 0, k],
                "m-hi-80": quantiles[i, j, 4, k],
            }
            for i in range(w)
            for j in range(v)
            for k in range(h)
        ]
    )
    crps = losses.scaled_crps(pooled, models={"m": [f"q{q}" for q in levels]}, quantiles=np.array(levels))
    np.testing.assert_allclose(
        metrics.wql(actual=actual, quantiles=quantiles, levels=levels, axis=(0, 2)),
        crps.set_index("unique_id").loc[[f"v{j}" for j in range(v)], "m"].to_numpy(),
    )
    cover = losses.coverage(pooled, models=["m"], level=80).set_index("unique_id")["m"]
    np.testing.assert_allclose(
        metrics.coverage(actual=actual, lower=quantiles[:, :, 0], upper=quantiles[:, :, 4], axis=(0, 2)),
        cover.loc[[f"v{j}" for j in range(v)]].to_numpy().astype(float),
    )


def test_quantile_at_picks_an_existing_level_and_interpolates_a_missing_one() -> None:
    q = np.array([[[[1.0], [3.0], [7.0]]]])  # levels 0.2, 0.5, 0.8
    assert metrics.quantile_at(quantiles=q, levels=[0.2, 0.5, 0.8], level=0.5)[0, 0, 0] == 3.0
    # 0.6 is a third of the way from 0.5 (3) to 0.8 (7): 3 + 4/3
    assert metrics.quantile_at(quantiles=q, levels=[0.2, 0.5, 0.8], level=0.6)[0, 0, 0] == pytest.approx(
        13 / 3
    )
    with pytest.raises(ConfigError, match=r"quantile level 0\.1 is outside the forecast levels 0\.2\.\.0\.8"):
        metrics.quantile_at(quantiles=q, levels=[0.2, 0.5, 0.8], level=0.1)


def test_summarize_reports_every_metric_per_target_and_per_step() -> None:
    contexts, actual, quantiles, levels = _random_case(seed=7)
    median, last = quantiles[:, :, 2], contexts[:, :, -1]
    scale = metrics.naive_scale(contexts)
    out = metrics.summarize(
        actual=actual,
        median=median,
        quantiles=quantiles,
        levels=levels,
        last=last,
        scale=scale,
        targets=["open", "high", "close"],
    )
    assert set(out) == {"metrics", "per_step"}
    assert set(out["metrics"]) == {"open", "high", "close"}
    assert tuple(out["metrics"]["high"]) == metrics.METRIC_NAMES
    high = out["metrics"]["high"]
    assert high["mae"] == pytest.approx(np.abs(median[:, 1] - actual[:, 1]).mean())
    assert high["coverage_80"] == pytest.approx(
        ((quantiles[:, 1, 0] <= actual[:, 1]) & (actual[:, 1] <= quantiles[:, 1, 4])).mean()
    )
    assert high["width_80"] == pytest.approx((quantiles[:, 1, 4] - quantiles[:, 1, 0]).mean())
    step = out["per_step"]["close"]["mae"]
    assert len(step) == actual.shape[-1]
    assert step[3] == pytest.approx(np.abs(median[:, 2, 3] - actual[:, 2, 3]).mean())
    assert all(isinstance(x, float) for x in step)


def test_summarize_writes_undefined_values_as_none() -> None:
    constant = np.full((2, 1, 5), 3.0)  # zero MASE scale in every window
    out = metrics.summarize(
        actual=np.full((2, 1, 2), 3.0),
        median=np.full((2, 1, 2), 4.0),
        quantiles=np.full((2, 1, 2, 2), 4.0),
        levels=[0.1, 0.9],
        last=constant[:, :, -1],
        scale=metrics.naive_scale(constant),
        targets=["close"],
    )
    assert out["metrics"]["close"]["mase"] is None
    assert out["per_step"]["close"]["mase"] == [None, None]


def _nanmean(x: np.ndarray, axis) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(x, axis=axis)


def _sape(actual: np.ndarray, forecast: np.ndarray) -> np.ndarray:
    """|f - a| / (|a| + |f|) per point, 0 where both are 0 (the M4 sMAPE term)."""
    total = np.abs(actual) + np.abs(forecast)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total == 0, 0.0, np.abs(forecast - actual) / total)


def _direction_hit(last: np.ndarray, actual: np.ndarray, forecast: np.ndarray) -> np.ndarray:
    """1 where forecast and actual move the same way from last (sign 0 its own way), NaN where actual is."""
    hit = np.sign(forecast - last[..., None]) == np.sign(actual - last[..., None])
    return np.where(np.isnan(actual), np.nan, hit.astype(float))


def test_summarize_equals_the_single_metric_functions_with_missing_points() -> None:
    contexts, actual, quantiles, levels = _random_case(seed=3)
    actual[0, 1, 2] = np.nan  # a missing realised bar
    actual[2, 0, :] = 0.0  # no percentage error defined here
    quantiles[3, 2, :, 1] = np.nan  # a missing forecast
    median, last = quantiles[:, :, 2], contexts[:, :, -1]
    scale = metrics.naive_scale(contexts)
    scale[4, 1] = 0.0  # a constant context: no MASE for that window
    targets = ["open", "high", "close"]
    inputs = dict(
        actual=actual,
        median=median,
        quantiles=quantiles,
        levels=levels,
        last=last,
        scale=scale,
        targets=targets,
    )
    out = metrics.summarize(**inputs)
    lower, upper = quantiles[:, :, 0], quantiles[:, :, -1]
    single = {
        "mae": lambda ax: metrics.mae(actual=actual, forecast=median, axis=ax),
        "rmse": lambda ax: np.sqrt(_nanmean((median - actual) ** 2, ax)),
        "mape": lambda ax: (
            100.0 * _nanmean(np.abs(median - actual) / np.where(actual == 0, np.nan, np.abs(actual)), ax)
        ),
        "smape": lambda ax: 200.0 * _nanmean(_sape(actual, median), ax),
        "mase": lambda ax: metrics.mase(actual=actual, forecast=median, scale=scale, axis=ax),
        "wql": lambda ax: metrics.wql(actual=actual, quantiles=quantiles, levels=levels, axis=ax),
        "coverage_80": lambda ax: metrics.coverage(actual=actual, lower=lower, upper=upper, axis=ax),
        "width_80": lambda ax: _nanmean(upper - lower, ax),
        "directional_accuracy": lambda ax: _nanmean(_direction_hit(last, actual, median), ax),
    }
    assert tuple(single) == metrics.METRIC_NAMES
    for name, fn in single.items():
        pooled, steps = fn((0, 2)), fn(0)
        for i, target in enumerate(targets):
            assert out["metrics"][target][name] == pytest.approx(pooled[i], rel=1e-12), (name, target)
            assert out["per_step"][target][name] == pytest.approx(list(steps[i]), rel=1e-12), (name, target)
    assert metrics.summarize(**inputs, per_step=False) == {"metrics": out["metrics"]}


def test_calibration_error_by_hand() -> None:
    # two windows, one variate, two steps, levels 0.25 / 0.75
    q = np.array([[[[0.0, 0.0], [1.0, 1.0]]], [[[0.0, 0.0], [1.0, 1.0]]]])  # [w, v, Q, h]
    actual = np.array([[[-1.0, 0.5]], [[0.5, np.nan]]])  # the NaN is left out
    # step 1: below q25 1/2, below q75 2/2; step 2: 0/1, 1/1
    expected = np.mean([abs(0.5 - 0.25), abs(1.0 - 0.75), abs(0.0 - 0.25), abs(1.0 - 0.75)])
    got = metrics.calibration_error(actual=actual, quantiles=q, levels=[0.25, 0.75])
    assert got == pytest.approx(expected)
    assert np.isnan(metrics.calibration_error(actual=actual * np.nan, quantiles=q, levels=[0.25, 0.75]))
