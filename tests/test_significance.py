"""Diebold-Mariano tests and bootstrap skill intervals against independent implementations."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from chronobt.errors import ConfigError
from chronobt.evaluation import significance as sig


def _overlapping_series(seed: int, n: int, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Actuals and two forecasts whose errors are MA(k-1) (as overlapping windows make them)."""
    rng = np.random.default_rng(seed)
    shocks = rng.normal(size=(3, n + k))
    kernel = np.ones(k)
    v, e1, e2 = (np.convolve(s, kernel, mode="valid")[:n] for s in shocks)
    return 100.0 + v, 100.0 + v + e1, 100.0 + v + 1.2 * e2


def test_window_losses_match_a_slow_loop() -> None:
    rng = np.random.default_rng(0)
    actual = rng.normal(size=(4, 2, 5))
    actual[1, 0, 2] = np.nan
    levels = [0.1, 0.5, 0.9]
    q = np.sort(rng.normal(size=(4, 2, 3, 5)), axis=2)
    mae = sig.window_mae(actual=actual, median=q[:, :, 1])
    ql = sig.window_quantile_loss(actual=actual, quantiles=q, levels=levels)
    for i in range(4):
        for j in range(2):
            steps = [k for k in range(5) if not np.isnan(actual[i, j, k])]
            assert mae[i, j] == pytest.approx(np.mean([abs(q[i, j, 1, k] - actual[i, j, k]) for k in steps]))
            losses = [
                max(lv * (actual[i, j, k] - q[i, j, n, k]), (lv - 1) * (actual[i, j, k] - q[i, j, n, k]))
                for k in steps
                for n, lv in enumerate(levels)
            ]
            assert ql[i, j] == pytest.approx(np.mean(losses))


@pytest.mark.parametrize(("horizon", "stride"), [(1, 1), (8, 8), (8, 2), (24, 4), (5, 3)])
def test_diebold_mariano_matches_the_dieboldmariano_package(horizon: int, stride: int) -> None:
    dm = pytest.importorskip("dieboldmariano")
    k = -(-horizon // stride)
    v, p1, p2 = _overlapping_series(horizon * 10 + stride, 150, k)
    # dieboldmariano computes the loss itself from actuals and predictions; its h is our overlap k
    stat, p = dm.dm_test(
        v, p1, p2, loss=lambda u, w: abs(u - w), h=k, one_sided=False, harvey_correction=True
    )
    got = sig.diebold_mariano(
        loss_model=np.abs(p1 - v), loss_baseline=np.abs(p2 - v), horizon=horizon, stride=stride
    )
    assert got.lag == k - 1 and got.n == 150 and got.reason is None
    assert got.statistic == pytest.approx(stat, rel=1e-9)
    assert got.p_value == pytest.approx(p, rel=1e-6, abs=1e-12)


def test_without_overlap_diebold_mariano_is_the_paired_t_test() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.gamma(2.0, size=60), rng.gamma(2.2, size=60)
    got = sig.diebold_mariano(loss_model=a, loss_baseline=b, horizon=12, stride=12)
    ref = stats.ttest_rel(a, b)
    assert got.lag == 0
    assert got.statistic == pytest.approx(ref.statistic, rel=1e-10)
    assert got.p_value == pytest.approx(ref.pvalue, rel=1e-10)


def test_nan_windows_are_dropped_and_degenerate_cases_give_a_reason() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.gamma(2.0, size=30), rng.gamma(2.0, size=30)
    a_nan = a.copy()
    a_nan[[3, 17]] = np.nan
    dropped = sig.diebold_mariano(loss_model=a_nan, loss_baseline=b, horizon=4, stride=2)
    keep = np.ones(30, bool)
    keep[[3, 17]] = False
    assert dropped == sig.diebold_mariano(loss_model=a[keep], loss_baseline=b[keep], horizon=4, stride=2)
    assert dropped.n == 28
    same = sig.diebold_mariano(loss_model=a, loss_baseline=a, horizon=4, stride=2)
    assert same.statistic is None and same.p_value is None and "zero variance" in str(same.reason)
    one = sig.diebold_mariano(loss_model=a[:1], loss_baseline=b[:1], horizon=1, stride=1)
    assert one.statistic is None and one.n == 1 and "at least 2" in str(one.reason)
    few = sig.diebold_mariano(loss_model=a[:3], loss_baseline=b[:3], horizon=8, stride=1)
    assert few.statistic is None and few.lag == 7
    with pytest.raises(ConfigError):
        sig.diebold_mariano(loss_model=a, loss_baseline=b, horizon=4, stride=0)


def _slow_replicates(a: np.ndarray, b: np.ndarray, size: int, n_boot: int, seed: int) -> np.ndarray:
    """The moving-block bootstrap written out: concatenate the drawn blocks, truncate, take the skill."""
    n = a.size
    n_blocks = -(-n // size)
    starts = np.random.default_rng(seed).integers(0, n - size + 1, size=(n_boot, n_blocks))
    out = []
    for row in starts:
        idx = np.concatenate([np.arange(s, s + size) for s in row])[:n]
        out.append(1.0 - a[idx].mean() / b[idx].mean())
    return np.array(out)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 60), horizon=st.integers(1, 12), stride=st.integers(1, 6), seed=st.integers(0, 99))
def test_block_bootstrap_interval_equals_explicit_resampling(
    n: int, horizon: int, stride: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    a, b = rng.gamma(2.0, size=n), rng.gamma(2.0, size=n)
    value, (lo, hi) = sig.skill_interval(
        loss_model=a, loss_baseline=b, horizon=horizon, stride=stride, n_boot=200, seed=seed
    )
    size = sig.block_length(n, sig.overlap(horizon, stride))
    assert size == max(1, min(n, max(-(-horizon // stride), round(n ** (1 / 3)))))
    ref = np.quantile(_slow_replicates(a, b, size, 200, seed), [0.025, 0.975])
    assert value == pytest.approx(1.0 - a.mean() / b.mean())
    assert lo == pytest.approx(ref[0], rel=1e-9, abs=1e-12)
    assert hi == pytest.approx(ref[1], rel=1e-9, abs=1e-12)


def test_bootstrap_interval_is_seeded_and_covers_the_true_skill() -> None:
    rng = np.random.default_rng(3)
    # model loss 0.9 of the baseline's in expectation: true skill 0.1
    base = rng.gamma(4.0, size=(200, 400))
    model = 0.9 * base * rng.gamma(50.0, 1 / 50.0, size=base.shape)
    hits = 0
    for r in range(200):
        value, (lo, hi) = sig.skill_interval(
            loss_model=model[r], loss_baseline=base[r], horizon=1, stride=1, n_boot=400, seed=r
        )
        assert lo is not None and hi is not None and lo <= value <= hi
        hits += lo <= 0.1 <= hi
    assert 0.88 <= hits / 200 <= 0.99
    first = sig.skill_interval(loss_model=model[0], loss_baseline=base[0], horizon=4, stride=1, seed=7)
    assert (
        sig.skill_interval(loss_model=model[0], loss_baseline=base[0], horizon=4, stride=1, seed=7) == first
    )
    assert (
        sig.skill_interval(loss_model=model[0], loss_baseline=base[0], horizon=4, stride=1, seed=8) != first
    )


def test_significance_block_is_strict_json_per_target_baseline_and_loss() -> None:
    rng = np.random.default_rng(4)
    w, v, h, levels = 40, 2, 6, [0.1, 0.5, 0.9]
    actual = 100 + rng.normal(size=(w, v, h)).cumsum(-1)
    q = np.sort(actual[:, :, None] + rng.normal(size=(w, v, 3, h)), axis=2)
    naive_q = np.sort(actual[:, :, None] + 2 * rng.normal(size=(w, v, 3, h)), axis=2)
    identical = (q[:, :, 1], q)  # the model itself: undefined test, zero skill
    block = sig.significance_block(
        actual=actual,
        median=q[:, :, 1],
        quantiles=q,
        levels=levels,
        baselines={"naive": (naive_q[:, :, 1], naive_q), "self": identical},
        targets=["close", "open"],
        stride=2,
        scale=np.full((w, v), 2.0),
    )
    json.dumps(block, allow_nan=False)
    entry = block["close"]["naive"]["mae"]
    assert set(entry) == {"statistic", "p_value", "n", "lag", "mean_diff", "skill", "skill_ci95", "reason"}
    assert entry["n"] == w and entry["lag"] == 2 and entry["statistic"] < 0 and entry["skill"] > 0
    lo, hi = entry["skill_ci95"]
    assert lo <= entry["skill"] <= hi
    direct = sig.comparison(
        loss_model=sig.window_quantile_loss(actual=actual, quantiles=q, levels=levels)[:, 1] / 2.0,
        loss_baseline=sig.window_quantile_loss(actual=actual, quantiles=naive_q, levels=levels)[:, 1] / 2.0,
        horizon=h,
        stride=2,
    )
    assert block["open"]["naive"]["quantile"] == direct
    self_entry = block["open"]["self"]["quantile"]
    assert self_entry["statistic"] is None and self_entry["skill"] == 0.0 and self_entry["reason"]


@pytest.mark.parametrize("season", [1, 3, 7])
def test_mase_with_the_seasonal_scale_matches_utilsforecast_with_seasonality(season: int) -> None:
    losses = pytest.importorskip("utilsforecast.losses")
    import pandas as pd

    from chronobt.evaluation import metrics

    rng = np.random.default_rng(season)
    w, v, t, h = 3, 2, 30, 4
    contexts = 50 + rng.normal(size=(w, v, t)).cumsum(-1)
    contexts[0, 1, :5] = np.nan  # left padding drops out
    actual = contexts[..., -1:] + rng.normal(size=(w, v, h))
    forecast = actual + rng.normal(size=(w, v, h))
    train = pd.DataFrame(
        [
            {"unique_id": f"w{i}v{j}", "ds": s, "y": contexts[i, j, s]}
            for i in range(w)
            for j in range(v)
            for s in range(t)
            if not np.isnan(contexts[i, j, s])
        ]
    )
    test = pd.DataFrame(
        [
            {"unique_id": f"w{i}v{j}", "ds": t + k, "y": actual[i, j, k], "m": forecast[i, j, k]}
            for i in range(w)
            for j in range(v)
            for k in range(h)
        ]
    )
    theirs = losses.mase(test, models=["m"], seasonality=season, train_df=train).set_index("unique_id")["m"]
    seasonal = metrics.naive_scale(contexts, lag=season)  # the backtest's mase_seasonal scale
    ours = metrics.mase(actual=actual, forecast=forecast, scale=seasonal, axis=2)
    ids = [f"w{i}v{j}" for i in range(w) for j in range(v)]
    np.testing.assert_allclose(ours.ravel(), theirs.loc[ids].to_numpy(), rtol=1e-12)
    with pytest.raises(ConfigError, match="season"):
        metrics.naive_scale(contexts, lag=0)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(10, 80), horizon=st.integers(1, 8), stride=st.integers(1, 4), seed=st.integers(0, 999))
def test_swapping_model_and_baseline_negates_the_statistic_and_keeps_the_p_value(
    n: int, horizon: int, stride: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    a, b = rng.gamma(2.0, size=n), rng.gamma(2.0, size=n)
    ab = sig.diebold_mariano(loss_model=a, loss_baseline=b, horizon=horizon, stride=stride)
    ba = sig.diebold_mariano(loss_model=b, loss_baseline=a, horizon=horizon, stride=stride)
    assert (ab.statistic is None) == (ba.statistic is None)
    if ab.statistic is not None and ba.statistic is not None:
        assert ba.statistic == pytest.approx(-ab.statistic)
        assert ba.p_value == pytest.approx(ab.p_value)
        assert ab.p_value is not None and 0.0 <= ab.p_value <= 1.0
