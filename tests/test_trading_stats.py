"""Strategy statistics against independent implementations (empyrical, backtesting.py) and the papers."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from chronobt.evaluation import trading_stats as ts

BARS_PER_PERIOD = 24.0
BARS_PER_YEAR = 8760.0
PER_YEAR = BARS_PER_YEAR / BARS_PER_PERIOD


def _book(seed: int, n: int = 180) -> tuple[np.ndarray, np.ndarray, pd.DataFrame, np.ndarray]:
    """Net returns (flat periods at 0), equity, one trade per traded period, and a correlated hold."""
    rng = np.random.default_rng(seed)
    hold = rng.normal(0.0005, 0.02, n)
    traded = rng.random(n) < 0.6
    r = np.where(traded, 0.5 * hold + rng.normal(0.001, 0.01, n), 0.0)
    periods = np.flatnonzero(traded)
    trades = pd.DataFrame(
        {
            "strategy": "sign",
            "origin": periods,
            "side": "long",
            "size": rng.uniform(0.2, 1.0, periods.size),
            "net_return": r[periods],
        }
    )
    return r, np.cumprod(1.0 + r), trades, hold


def _stats(seed: int = 0, **kwargs: object) -> dict[str, object]:
    r, equity, trades, hold = _book(seed)
    return ts.strategy_statistics(r, equity, trades, hold, BARS_PER_PERIOD, BARS_PER_YEAR, 7, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_return_and_risk_statistics_match_empyrical(seed: int) -> None:
    ep = pytest.importorskip("empyrical")
    r, _, _, hold = _book(seed)
    got = _stats(seed)
    # Same conventions: zero risk-free rate, sample sd (ddof=1), years = periods / periods per year,
    # Sortino's downside deviation the root-mean-square of min(r, 0) over all periods, alpha compounded.
    assert got["total_return"] == pytest.approx(ep.cum_returns_final(r), rel=1e-10)
    assert got["annualized_return"] == pytest.approx(ep.annual_return(r, annualization=PER_YEAR), rel=1e-10)
    assert got["volatility"] == pytest.approx(ep.annual_volatility(r, annualization=PER_YEAR), rel=1e-10)
    assert got["sharpe"] == pytest.approx(ep.sharpe_ratio(r, annualization=PER_YEAR), rel=1e-10)
    assert got["sortino"] == pytest.approx(ep.sortino_ratio(r, annualization=PER_YEAR), rel=1e-10)
    # empyrical reports the drawdown negative; we report the fall as a positive fraction
    assert got["max_drawdown"] == pytest.approx(-ep.max_drawdown(r), rel=1e-10)
    assert got["calmar"] == pytest.approx(ep.calmar_ratio(r, annualization=PER_YEAR), rel=1e-10)
    alpha, beta = ep.alpha_beta(r, hold, annualization=PER_YEAR)
    assert got["alpha"] == pytest.approx(alpha, rel=1e-10)
    assert got["beta"] == pytest.approx(beta, rel=1e-10)
    assert got["buy_and_hold"] == pytest.approx(ep.cum_returns_final(hold), rel=1e-10)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_trade_and_drawdown_statistics_match_backtesting_py(seed: int) -> None:
    pytest.importorskip("backtesting")
    from backtesting._stats import compute_stats

    r, equity, trades, hold = _book(seed)
    n = r.size
    bar = trades["origin"].to_numpy() + 1  # the bar of backtesting.py's curve whose return the trade earns
    frame = pd.DataFrame(
        {
            "PnL": trades["net_return"],
            "ReturnPct": trades["net_return"],
            "EntryBar": bar,
            "ExitBar": bar,
            "EntryTime": bar,
            "ExitTime": bar,
            "Duration": 0,
        }
    )
    close = np.concatenate([[1.0], np.cumprod(1.0 + hold)])
    ohlc = pd.DataFrame({c: close for c in ("Open", "High", "Low", "Close")})
    ref = compute_stats(frame, np.concatenate([[1.0], equity]), ohlc, None)
    got = _stats(seed)
    assert got["n_trades"] == ref["# Trades"]
    assert got["win_rate"] == pytest.approx(ref["Win Rate [%]"] / 100, rel=1e-12)
    assert got["best_trade"] == pytest.approx(ref["Best Trade [%]"] / 100, rel=1e-12)
    assert got["worst_trade"] == pytest.approx(ref["Worst Trade [%]"] / 100, rel=1e-12)
    assert got["avg_trade"] == pytest.approx(ref["Avg. Trade [%]"] / 100, rel=1e-9)  # geometric mean
    assert got["expectancy"] == pytest.approx(ref["Expectancy [%]"] / 100, rel=1e-9)  # arithmetic mean
    assert got["profit_factor"] == pytest.approx(ref["Profit Factor"], rel=1e-12)
    assert got["total_return"] == pytest.approx(ref["Return [%]"] / 100, rel=1e-9)
    assert got["buy_and_hold"] == pytest.approx(ref["Buy & Hold Return [%]"] / 100, rel=1e-9)
    assert got["max_drawdown"] == pytest.approx(-ref["Max. Drawdown [%]"] / 100, rel=1e-9)
    # backtesting.py's duration is in its index's units (here periods); ours in bars
    assert got["max_drawdown_bars"] == ref["Max. Drawdown Duration"] * BARS_PER_PERIOD
    # backtesting.py divides the bars in a position by all n + 1 points of its curve (the start
    # included); ours by the n periods
    assert got["exposure"] == pytest.approx(ref["Exposure Time [%]"] / 100 * (n + 1) / n, rel=1e-12)


def test_exposure_and_turnover_match_a_slow_loop() -> None:
    r, equity, trades, hold = _book(3)
    got = ts.strategy_statistics(r, equity, trades, hold, BARS_PER_PERIOD, BARS_PER_YEAR, 0)
    held = sum(1 for i in range(r.size) if i in set(trades["origin"]))
    assert got["exposure"] == pytest.approx(held / r.size)
    traded = sum(2 * abs(s) for s in trades["size"])
    assert got["turnover"] == pytest.approx(traded / r.size * PER_YEAR)
    gross = np.where(r != 0, 0.5, 0.0)
    gross[:10] = 0.3
    with_gross = ts.strategy_statistics(
        r, equity, trades, hold, BARS_PER_PERIOD, BARS_PER_YEAR, 0, gross_exposure=gross
    )
    assert with_gross["exposure"] == pytest.approx(np.mean(gross > 0))


def test_drawdown_duration_runs_from_the_peak_to_the_recovery_or_the_end() -> None:
    # curve 1.0 | 1.1 0.9 1.0 1.1 1.2 | 1.0 0.9: a 3-period drawdown recovered, then one to the end of 2
    fall, longest = ts.drawdown([1.1, 0.9, 1.0, 1.1, 1.2, 1.0, 0.9])
    assert longest == 3 and fall == pytest.approx(1 - 0.9 / 1.2)
    assert ts.drawdown([0.9, 0.8, 0.85]) == (pytest.approx(0.2), 3)  # falls from the start, never back
    assert ts.drawdown([1.0, 1.1, 1.2]) == (0.0, 0)


def test_psr_matches_the_formula_of_bailey_and_lopez_de_prado_2012() -> None:
    rng = np.random.default_rng(5)
    r = rng.standard_t(5, 500) * 0.01 + 0.002
    sr = r.mean() / r.std(ddof=1)
    g3, g4 = stats.skew(r), stats.kurtosis(r, fisher=False)
    hand = stats.norm.cdf((sr - 0.05) * math.sqrt(499) / math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr**2))
    assert ts.probabilistic_sharpe_ratio(sr, 0.05, 500, g3, g4) == pytest.approx(hand, rel=1e-12)
    trades = pd.DataFrame({"origin": range(500), "size": 1.0, "net_return": r})
    hold = rng.normal(0.0005, 0.01, 500)
    got = ts.strategy_statistics(r, np.cumprod(1 + r), trades, hold, 1, 365, 0)
    assert got["psr"] == pytest.approx(ts.probabilistic_sharpe_ratio(sr, 0.0, 500, g3, g4), rel=1e-12)
    sr_hold = hold.mean() / hold.std(ddof=1)
    assert got["psr_vs_hold"] == pytest.approx(ts.probabilistic_sharpe_ratio(sr, sr_hold, 500, g3, g4))
    assert got["sharpe_period"] == pytest.approx(sr) and got["kurtosis"] == pytest.approx(g4)


def test_dsr_reproduces_the_numerical_example_of_bailey_and_lopez_de_prado_2014() -> None:
    # The paper's example: 100 trials with annualised Sharpe variance 1/2, the best an annualised 2.5
    # over 1250 daily observations (250 a year), skew -3, kurtosis 10: SR0 = 0.1132, DSR = 0.9004.
    sr0 = ts.expected_max_sharpe(100, 0.5 / 250)
    assert sr0 == pytest.approx(0.1132, abs=5e-5)
    dsr = ts.deflated_sharpe_ratio(2.5 / math.sqrt(250), 100, 0.5 / 250, 1250, -3.0, 10.0)
    assert dsr == pytest.approx(0.9004, abs=5e-4)
    gamma = 0.5772156649015329
    hand_sr0 = math.sqrt(0.002) * (
        (1 - gamma) * stats.norm.ppf(1 - 1 / 100) + gamma * stats.norm.ppf(1 - 1 / (100 * math.e))
    )
    assert sr0 == pytest.approx(hand_sr0, rel=1e-12)


def test_dsr_of_one_trial_is_the_psr_against_zero() -> None:
    assert ts.deflated_sharpe_ratio(0.1, 1, 0.01, 200, 0.0, 3.0) == ts.probabilistic_sharpe_ratio(
        0.1, 0.0, 200, 0.0, 3.0
    )
    with pytest.raises(ValueError, match="n_trials"):
        ts.expected_max_sharpe(0, 0.1)


def test_more_trials_or_more_sharpe_variance_deflate_more() -> None:
    base = ts.deflated_sharpe_ratio(0.1, 10, 0.002, 500, 0.0, 3.0)
    assert base is not None
    assert ts.deflated_sharpe_ratio(0.1, 100, 0.002, 500, 0.0, 3.0) < base  # type: ignore[operator]
    assert ts.deflated_sharpe_ratio(0.1, 10, 0.004, 500, 0.0, 3.0) < base  # type: ignore[operator]


def test_sharpe_interval_is_a_seeded_moving_block_bootstrap_around_the_sharpe() -> None:
    arch = pytest.importorskip("arch.bootstrap")
    r, *_ = _book(4, n=400)
    got = ts.sharpe_interval(r, PER_YEAR, seed=11)
    assert got == ts.sharpe_interval(r, PER_YEAR, seed=11)
    assert got != ts.sharpe_interval(r, PER_YEAR, seed=12)
    assert got is not None
    sharpe = r.mean() / r.std(ddof=1) * math.sqrt(PER_YEAR)
    assert got[0] < sharpe < got[1]
    # the same interval through arch's own percentile interval, blocks of round(400 ** (1/3)) = 7
    scheme = arch.MovingBlockBootstrap(7, r, seed=np.random.default_rng(11))
    ref = scheme.conf_int(
        lambda x: np.array([x.mean() / x.std(ddof=1) * math.sqrt(PER_YEAR)]), reps=2000, method="percentile"
    )
    assert got == pytest.approx([ref[0, 0], ref[1, 0]], rel=1e-10)


def test_undefined_statistics_are_none_for_fewer_than_two_trades() -> None:
    r = np.zeros(20)
    r[3] = 0.05
    trades = pd.DataFrame({"origin": [3], "size": [1.0], "net_return": [0.05]})
    got = ts.strategy_statistics(r, np.cumprod(1 + r), trades, np.full(20, 0.001), 1, 252, 0)
    for key in ("sharpe", "sortino", "sharpe_ci95", "psr", "psr_vs_hold", "profit_factor", "calmar"):
        assert got[key] is None, key
    assert got["alpha"] is None and got["beta"] is None  # buy-and-hold does not vary
    assert got["win_rate"] == 1.0 and got["n_trades"] == 1 and got["max_drawdown"] == 0.0
    assert list(got) == list(ts.STAT_KEYS)
    json.dumps(got, allow_nan=False)


def test_no_trades_gives_flat_statistics() -> None:
    empty = pd.DataFrame({"origin": [], "size": [], "net_return": []})
    got = ts.strategy_statistics(np.zeros(5), np.ones(5), empty, np.full(5, 0.01), 1, 252, 0)
    assert got["total_return"] == 0.0 and got["n_trades"] == 0 and got["exposure"] == 0.0
    assert got["win_rate"] is None and got["sharpe"] is None and got["turnover"] == 0.0
    json.dumps(got, allow_nan=False)


def test_mismatched_shapes_are_rejected() -> None:
    r, equity, trades, hold = _book(0)
    with pytest.raises(ValueError, match="one non-empty 1-d shape"):
        ts.strategy_statistics(r, equity[:-1], trades, hold, 1, 252, 0)
    with pytest.raises(ValueError, match="must be > 0"):
        ts.strategy_statistics(r, equity, trades, hold, 0, 252, 0)


@settings(max_examples=30, deadline=None)
@given(st.integers(min_value=0, max_value=10_000), st.floats(min_value=0.0, max_value=0.01))
def test_a_uniform_cost_per_period_never_raises_sharpe_sortino_or_return(seed: int, cost: float) -> None:
    r, _, trades, hold = _book(seed, n=60)
    paid = np.where(r != 0, r - cost, 0.0)
    cheap = ts.strategy_statistics(r, np.cumprod(1 + r), trades, hold, 1, 252, 0)
    dear = ts.strategy_statistics(
        paid, np.cumprod(1 + paid), trades.assign(net_return=trades["net_return"] - cost), hold, 1, 252, 0
    )
    assert dear["total_return"] <= cheap["total_return"]  # type: ignore[operator]
    assert dear["expectancy"] <= cheap["expectancy"]  # type: ignore[operator]
    assert dear["max_drawdown"] >= cheap["max_drawdown"] - 1e-15  # type: ignore[operator]
