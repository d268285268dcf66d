"""Strategies, fills and costs: hand-worked fills, honesty properties and the regression of ``sign``."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from chronobt.cli import app
from chronobt.config import EvaluationOptions
from chronobt.data import load_ohlc
from chronobt.data.symbol_windows import SymbolWindows
from chronobt.errors import ConfigError
from chronobt.evaluation.evaluate import trading_view
from chronobt.evaluation.fills import STOP, TARGET, Bars, Costs, fill, trade_returns
from chronobt.evaluation.strategies import (
    ForecastView,
    Orders,
    Strategy,
    check_strategies,
    decide,
    next_orders,
    parse_strategies,
)
from chronobt.evaluation.trading import EQUITY_COLUMNS, TRADE_COLUMNS, Execution, simulate, trade
from chronobt.pipeline.jobs import prepare_windows
from tests.synthetic import write_symbol
from tests.trading_reference import simulate as reference_simulate

LEVELS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
TARGETS = ("open", "high", "low", "close")


def _bars(rows: list[list[tuple[float, float, float, float]]], real: np.ndarray | None = None) -> Bars:
    """Bars from ``[window][bar] = (open, high, low, close)``, bar 0 the origin's."""
    a = np.asarray(rows, dtype=np.float64)
    mask = np.ones(a.shape[:2], dtype=bool) if real is None else real
    return Bars(open=a[..., 0], high=a[..., 1], low=a[..., 2], close=a[..., 3], real=mask)


def _limit_orders(limit: float, target: float, stop: float, h: int, side: int = 1) -> Orders:
    full = np.full((1, h), 1.0)
    return Orders(
        side=np.array([side], dtype=np.int8),
        size=np.array([1.0]),
        limit=limit * full,
        target=target * full,
        stop=stop * full,
    )


def _view(rng: np.random.Generator, n: int, h: int) -> ForecastView:
    """Random monotone quantiles [n, 4, Q, h] around 100 and a close reference per window."""
    base = 100 * np.exp(rng.normal(0, 0.02, (n, 4, 1, h)))
    spread = np.sort(rng.normal(0, 0.03, (n, 4, len(LEVELS), h)), axis=2)
    return ForecastView(
        price_q=base * np.exp(spread), targets=TARGETS, levels=LEVELS, reference=100 * np.ones(n)
    )


def _random_bars(rng: np.random.Generator, n: int, h: int, filled: float = 0.1) -> Bars:
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (n, h + 1)), axis=1))
    open_ = close * np.exp(rng.normal(0, 0.005, close.shape))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.01, close.shape)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.01, close.shape)))
    return Bars(open=open_, high=high, low=low, close=close, real=rng.random(close.shape) > filled)


# --- parsing -----------------------------------------------------------------------------------


def test_strategy_list_parses_parameters_and_continues_a_strategy_after_a_comma() -> None:
    parsed = parse_strategies("sign,kelly:fraction=0.25,cap=2,band,range:stop=0.1")
    assert [s.label for s in parsed] == ["sign", "kelly:fraction=0.25,cap=2", "band", "range:stop=0.1"]
    assert parsed[1].params == {"fraction": 0.25, "cap": 2.0}
    assert parse_strategies("band,band:level=0.2")[0].label == "band"  # the same strategy once
    assert len(parse_strategies("band,band:level=0.2")) == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("magic", "unknown strategy"),
        ("band:width=2", "band takes level"),
        ("band:level=x", "not a number"),
        ("band:level=0.7", "0 < level < 0.5"),
        ("range:entry=0.1,stop=0.2", "stop < entry"),
        ("", "got nothing"),
    ],
)
def test_bad_strategies_are_one_line_config_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_strategies(text)


def test_a_level_outside_the_forecast_levels_names_the_quantiles_to_add() -> None:
    with pytest.raises(ConfigError, match=r"needs the 0.05 quantile.*--quantiles 0.05,0.1"):
        check_strategies(parse_strategies("range"), targets=TARGETS, quantiles=(0.1, 0.5, 0.9))
    with pytest.raises(ConfigError, match="low and high; add them to --targets"):
        check_strategies(parse_strategies("range"), targets=("close",), quantiles=LEVELS)
    check_strategies(parse_strategies("band:level=0.25"), targets=TARGETS, quantiles=(0.1, 0.5, 0.9))


def test_a_level_between_forecast_levels_is_interpolated_linearly() -> None:
    q = np.array([90.0, 100.0, 110.0])[None, None, :, None] * np.ones((1, 1, 1, 2))
    view = ForecastView(price_q=q, targets=("close",), levels=(0.1, 0.5, 0.9), reference=np.array([100.0]))
    np.testing.assert_allclose(view.quantile("close", 0.3), [[95.0, 95.0]])
    np.testing.assert_allclose(view.quantile("close", 0.9), [[110.0, 110.0]])


# --- decisions ---------------------------------------------------------------------------------


def test_band_needs_its_level_to_clear_the_costs_and_kelly_sizes_by_mean_over_variance() -> None:
    # the close's quantiles at the horizon: 0.1 -> 101, 0.5 -> 104, 0.9 -> 107 (entry 100)
    q = np.array([101.0, 104.0, 107.0])[None, None, :, None] * np.ones((1, 1, 1, 3))
    view = ForecastView(price_q=q, targets=("close",), levels=(0.1, 0.5, 0.9), reference=np.array([100.0]))
    band = decide(Strategy("band", {"level": 0.1}), view, cost=0.001, allow_short=False)
    assert band.side[0] == 1 and band.size[0] == 1.0  # q0.1 = +1% > 0.2% round trip
    assert decide(Strategy("band", {"level": 0.1}), view, cost=0.006, allow_short=False).side[0] == 0
    kelly = decide(Strategy("kelly", {"fraction": 0.5, "cap": 100.0}), view, cost=0.001, allow_short=True)
    z = 2 * 1.2815515655446004  # z(0.9) - z(0.1)
    sigma = 0.06 / z
    assert kelly.side[0] == 1 and kelly.size[0] == pytest.approx(0.5 * (0.04 - 0.002) / sigma**2)
    capped = decide(Strategy("kelly", {"fraction": 0.5, "cap": 1.0}), view, cost=0.001, allow_short=False)
    assert capped.size[0] == 1.0


def test_kelly_stays_long_only_without_shorting() -> None:
    q = np.array([93.0, 96.0, 99.0])[None, None, :, None] * np.ones((1, 1, 1, 2))
    view = ForecastView(price_q=q, targets=("close",), levels=(0.1, 0.5, 0.9), reference=np.array([100.0]))
    assert (
        decide(Strategy("kelly", {"fraction": 0.5, "cap": 1.0}), view, cost=0, allow_short=False).side[0] == 0
    )
    short = decide(Strategy("kelly", {"fraction": 0.5, "cap": 1.0}), view, cost=0, allow_short=True)
    assert short.side[0] == -1 and short.size[0] == 1.0


# --- hand-worked fills -------------------------------------------------------------------------


def test_a_limit_touched_but_not_crossed_does_not_fill_and_one_crossed_fills_at_the_limit() -> None:
    orders = _limit_orders(limit=99.0, target=110.0, stop=90.0, h=2)
    touched = _bars([[(100, 100, 100, 100), (100, 101, 99.0, 100), (100, 101, 99.5, 100)]])
    assert not fill(orders, touched).traded[0]
    crossed = _bars([[(100, 100, 100, 100), (100, 101, 98.5, 100), (100, 101, 99.5, 100.5)]])
    f = fill(orders, crossed)
    assert f.traded[0] and f.entry_price[0] == 99.0 and f.entry_bar[0] == 1
    assert f.exit_price[0] == 100.5 and f.exit_bar[0] == 2 and f.bars_held[0] == 2  # the horizon's close


def test_a_bar_opening_below_the_limit_fills_at_its_open() -> None:
    f = fill(
        _limit_orders(limit=99.0, target=110.0, stop=90.0, h=1),
        _bars([[(100, 100, 100, 100), (97.0, 98, 96, 97.5)]]),
    )
    assert f.entry_price[0] == 97.0


def test_a_gap_through_the_stop_fills_at_the_open() -> None:
    orders = _limit_orders(limit=99.0, target=110.0, stop=95.0, h=2)
    bars = _bars([[(100, 100, 100, 100), (100, 101, 98, 99.5), (93.0, 94, 92, 93.5)]])
    f = fill(orders, bars)
    assert f.entry_price[0] == 99.0 and f.reason[0] == STOP and f.exit_price[0] == 93.0


def test_a_stop_inside_a_bar_fills_at_the_stop() -> None:
    orders = _limit_orders(limit=99.0, target=110.0, stop=95.0, h=2)
    bars = _bars([[(100, 100, 100, 100), (100, 101, 98, 99.5), (99.0, 99.5, 94, 96)]])
    f = fill(orders, bars)
    assert f.reason[0] == STOP and f.exit_price[0] == 95.0


def test_when_one_bar_holds_both_stop_and_target_the_stop_is_taken() -> None:
    orders = _limit_orders(limit=99.0, target=103.0, stop=96.0, h=2)
    bars = _bars([[(100, 100, 100, 100), (100, 101, 98, 99.5), (100, 104, 95, 100)]])
    f = fill(orders, bars)
    assert f.reason[0] == STOP and f.exit_price[0] == 96.0
    no_stop = _bars([[(100, 100, 100, 100), (100, 101, 98, 99.5), (100, 104, 97, 100)]])
    g = fill(orders, no_stop)
    assert g.reason[0] == TARGET and g.exit_price[0] == 103.0


def test_a_target_gapped_over_fills_at_the_open() -> None:
    orders = _limit_orders(limit=99.0, target=103.0, stop=96.0, h=2)
    f = fill(orders, _bars([[(100, 100, 100, 100), (100, 101, 98, 99.5), (105, 106, 104, 105)]]))
    assert f.reason[0] == TARGET and f.exit_price[0] == 105.0


def test_a_forward_filled_bar_fills_nothing() -> None:
    orders = _limit_orders(limit=99.0, target=110.0, stop=90.0, h=3)
    real = np.array([[True, False, True, True]])
    bars = _bars(
        [[(100, 100, 100, 100), (100, 100, 95, 100), (100, 101, 99.5, 100), (100, 101, 99.5, 100)]], real
    )
    assert not fill(orders, bars).traded[0]  # only the filled bar 1 traded through 99
    market = Orders(
        side=np.array([1], dtype=np.int8),
        size=np.array([1.0]),
        limit=np.full((1, 3), np.nan),
        target=np.full((1, 3), np.nan),
        stop=np.full((1, 3), np.nan),
    )
    f = fill(market, bars, entry="next-open")
    assert not f.traded[0] and not f.tradable[0]  # its entry bar is filled
    assert fill(market, bars, entry="close").traded[0]


def test_a_short_with_borrowing_pays_the_rate_per_bar_held() -> None:
    market = Orders(
        side=np.array([-1], dtype=np.int8),
        size=np.array([1.0]),
        limit=np.full((1, 4), np.nan),
        target=np.full((1, 4), np.nan),
        stop=np.full((1, 4), np.nan),
    )
    bars = _bars(
        [[(100, 100, 100, 100), (100, 100, 100, 100), (98, 98, 98, 98), (97, 97, 97, 97), (96, 96, 96, 96)]]
    )
    f = fill(market, bars, entry="next-open")
    assert f.entry_price[0] == 100.0 and f.exit_price[0] == 96.0 and f.bars_held[0] == 4
    r = trade_returns(market, f, Costs(fee_bps=10, slippage_bps=5, borrow_rate=0.365), bars_per_year=365)
    assert r.gross[0] == pytest.approx(0.04)
    assert r.fees[0] == pytest.approx(0.002) and r.slippage[0] == pytest.approx(0.001)
    assert r.borrow[0] == pytest.approx(0.365 * 4 / 365)
    assert r.net[0] == pytest.approx(0.04 - 0.003 - 0.004)


def test_leverage_above_one_pays_borrowing_on_the_part_above_one() -> None:
    market = Orders(
        side=np.array([1], dtype=np.int8),
        size=np.array([1.5]),
        limit=np.full((1, 2), np.nan),
        target=np.full((1, 2), np.nan),
        stop=np.full((1, 2), np.nan),
    )
    f = fill(market, _bars([[(100, 100, 100, 100), (100, 101, 99, 100), (101, 102, 100, 102)]]))
    r = trade_returns(market, f, Costs(fee_bps=0, borrow_rate=0.1), bars_per_year=100)
    assert r.gross[0] == pytest.approx(1.5 * 0.02) and r.borrow[0] == pytest.approx(0.5 * 0.1 * 2 / 100)


# --- honesty properties ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["sign", "band", "kelly", "range"])
def test_perturbing_every_bar_after_the_origins_leaves_decisions_and_order_prices_unchanged(
    name: str,
) -> None:
    rng = np.random.default_rng(1)
    n, h = 50, 6
    view, bars = _view(rng, n, h), _random_bars(rng, n, h)
    strategy = parse_strategies(name)[0]
    after = np.r_[1.0, np.full(h, 1.0)]  # the origin's bar stays; every later bar moves
    moved = Bars(
        open=bars.open * np.r_[1.0, rng.uniform(0.7, 1.3, h)],
        high=bars.high * (after + np.r_[0.0, np.full(h, 0.4)]),
        low=bars.low * (after - np.r_[0.0, np.full(h, 0.4)]),
        close=bars.close * np.r_[1.0, rng.uniform(0.7, 1.3, h)],
        real=bars.real,
    )
    moved = Bars(
        open=moved.open,
        high=np.maximum.reduce([moved.high, moved.open, moved.close]),
        low=np.minimum.reduce([moved.low, moved.open, moved.close]),
        close=moved.close,
        real=moved.real,
    )
    runs = [
        trade(view, b, [strategy], Execution(allow_short=True), horizon=h, bars_per_year=365)
        for b in (bars, moved)
    ]
    orders = decide(strategy, view, cost=Costs().per_side, allow_short=True)  # reads no bar after an origin
    if name == "range":  # limit orders: the same prices; which of them fill depends on the bars
        assert np.isfinite(orders.limit[orders.side != 0]).all()
        return
    # market orders: the same windows, sides and sizes traded; only the fill prices move
    for column in ("origin", "side", "size"):
        assert runs[0].trades[column].tolist() == runs[1].trades[column].tolist()
    assert runs[0].trades["entry"].tolist() != runs[1].trades["entry"].tolist()
    assert len(runs[0].trades) == int(
        (orders.side != 0).sum() - (~fill(orders, bars).tradable & (orders.side != 0)).sum()
    )


@pytest.mark.parametrize("entry", ["next-open", "close"])
@pytest.mark.parametrize("seed", range(5))
def test_no_fill_lies_outside_its_bar_or_on_a_forward_filled_bar(entry: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, h = 400, 8
    view, bars = _view(rng, n, h), _random_bars(rng, n, h, filled=0.2)
    for strategy in parse_strategies("sign,band,kelly,range:entry=0.3,target=0.7,stop=0.1"):
        orders = decide(strategy, view, cost=0.0005, allow_short=True)
        f = fill(orders, bars, entry=entry)  # type: ignore[arg-type]
        w = np.flatnonzero(f.traded)
        for bar, price in ((f.entry_bar, f.entry_price), (f.exit_bar, f.exit_price)):
            b = bar[w]
            assert bars.real[w, b].all()
            lo, hi = bars.low[w, b], bars.high[w, b]
            inside = (price[w] >= lo - 1e-12) & (price[w] <= hi + 1e-12)
            at_close = np.isclose(price[w], bars.close[w, b])  # --entry close: the origin's close
            assert (inside | at_close).all()
        assert (f.exit_bar[w] >= np.maximum(f.entry_bar[w], 0)).all()


def _costs_never_raise_net(
    seed: int, base: tuple[float, float, float], extra: tuple[float, float, float]
) -> None:
    rng = np.random.default_rng(seed)
    view, bars = _view(rng, 60, 5), _random_bars(rng, 60, 5)
    for strategy in parse_strategies("sign,band,kelly:cap=2,range:stop=0.1"):
        orders = decide(strategy, view, cost=0.001, allow_short=True)  # the same orders under both costs
        f = fill(orders, bars)
        cheap = trade_returns(orders, f, Costs(*base), bars_per_year=365)
        dear = trade_returns(
            orders, f, Costs(*(b + e for b, e in zip(base, extra, strict=True))), bars_per_year=365
        )
        assert (dear.net <= cheap.net + 1e-15).all()
        assert np.prod(1 + dear.net) <= np.prod(1 + cheap.net) + 1e-12


try:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=40, deadline=None)
    @given(
        seed=st.integers(0, 10_000),
        base=st.tuples(*(st.floats(0, 50) for _ in range(2)), st.floats(0, 0.5)),
        extra=st.tuples(*(st.floats(0, 50) for _ in range(2)), st.floats(0, 0.5)),
    )
    def test_more_fees_slippage_or_borrowing_never_raise_the_net_return(
        seed: int, base: tuple[float, float, float], extra: tuple[float, float, float]
    ) -> None:
        _costs_never_raise_net(seed, base, extra)

except ImportError:  # pragma: no cover - hypothesis is a dev dependency

    @pytest.mark.parametrize("seed", range(20))
    def test_more_fees_slippage_or_borrowing_never_raise_the_net_return(seed: int) -> None:
        rng = np.random.default_rng(seed)
        base = (rng.uniform(0, 50), rng.uniform(0, 50), rng.uniform(0, 0.5))
        extra = (rng.uniform(0, 50), rng.uniform(0, 50), rng.uniform(0, 0.5))
        _costs_never_raise_net(seed, base, extra)


# --- the trading view --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_sign_with_entry_at_the_close_and_no_slippage_reproduces_the_previous_rule_exactly(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, h, stride = 40, 4, [4, 2, 3][seed % 3]
    last = 100 * np.exp(rng.normal(0, 0.05, n))
    forecast = last * np.exp(rng.normal(0, 0.01, n))
    realized = last * np.exp(rng.normal(0, 0.02, n))
    tradable = rng.random(n) > 0.1
    bars = np.cumsum(rng.integers(1, 3, n)) * stride
    kwargs = dict(
        last_close=last,
        forecast_close=forecast,
        realized_close=realized,
        horizon=h,
        bars_per_year=365.0,
        stride=stride,
        fee_bps=7.0,
        allow_short=bool(seed % 2),
        tradable=tradable,
        bars=bars,
        origins=pd.date_range("2024-01-01", periods=n, freq="D", tz="UTC"),
    )
    old, new = reference_simulate(**kwargs), simulate(**kwargs)  # type: ignore[arg-type]
    assert old.summary() == new.summary()  # exactly equal, not approximately
    for column in ("origin", "side", "entry", "exit", "gross_return", "net_return"):
        assert old.trades[column].tolist() == new.trades[column].tolist()


def test_trade_writes_one_equity_row_per_decision_point_and_one_trade_row_per_trade() -> None:
    rng = np.random.default_rng(3)
    n, h = 30, 5
    view, bars = _view(rng, n, h), _random_bars(rng, n, h, filled=0.05)
    strategies = parse_strategies("sign,band,kelly,range:stop=0.1")
    times = pd.date_range("2024-01-01", periods=n * h + h + 1, freq="h", tz="UTC")
    at = np.arange(n) * h
    stamps = np.asarray(times.tz_localize(None))[at[:, None] + np.arange(h + 1)]
    result = trade(
        view,
        bars,
        strategies,
        Execution(costs=Costs(fee_bps=5, slippage_bps=2, borrow_rate=0.05), allow_short=True),
        horizon=h,
        bars_per_year=8760,
        origins=times[at],
        at=at,
        times=stamps,
    )
    assert list(result.summaries) == ["sign", "band", "kelly", "range:stop=0.1"]
    eq = result.equity
    assert len(eq) == 4 * n and list(eq.columns) == [
        "strategy",
        "timestamp",
        "return",
        "equity",
        "gross_exposure",
    ]
    for name, block in result.summaries.items():
        rows = eq[eq["strategy"] == name]
        trades = result.trades[result.trades["strategy"] == name]
        assert block["n_trades"] == len(trades) == int((rows["gross_exposure"] > 0).sum())
        assert rows["equity"].iloc[-1] - 1 == pytest.approx(block["total_return"])
        assert math.isclose(block["costs"]["total"], trades["costs"].sum(), abs_tol=1e-12)
        assert (trades["net_return"] <= trades["gross_return"]).all()
        assert set(trades["exit_reason"]) <= {"target", "stop", "horizon"}
        assert (trades["entry_time"] >= trades["origin"]).all() and (
            trades["exit_time"] >= trades["entry_time"]
        ).all()
    assert str(result.trades["entry_time"].dt.tz) == "UTC"


def test_next_orders_give_the_next_bars_prices_for_each_strategy() -> None:
    rng = np.random.default_rng(5)
    view = _view(rng, 1, 4)
    orders = next_orders(parse_strategies("sign,range:stop=0.1"), view, cost=0.0, allow_short=False)
    assert [o["strategy"] for o in orders] == ["sign", "range:stop=0.1"]
    assert orders[0]["entry"] == "market" and orders[0]["limit"] is None
    r = orders[1]
    if r["side"] == "long":
        assert r["limit"] == pytest.approx(view.quantile("low", 0.2)[0, 0])
        assert r["target"] == pytest.approx(view.quantile("high", 0.8)[0, 0])
        assert len(r["steps"]["limit"]) == 4  # type: ignore[index]


# --- commands ----------------------------------------------------------------------------------

TINY = ["--horizon", "8", "--context", "128", "--device", "cpu", "--compile", "off"]


def test_backtest_runs_every_strategy_and_prints_one_line_each_with_its_trade_count(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    write_symbol(tmp_path / "data", "AAA", 400)
    args = ["backtest", "AAA", "--windows", "6", *TINY, "--model", str(tiny_model_dir)]
    args += ["--data-dir", str(tmp_path / "data"), "--output-dir", str(tmp_path / "out")]
    args += [
        "--strategy",
        "sign,band,kelly:cap=2,range:stop=0.1",
        "--slippage-bps",
        "3",
        "--borrow-rate",
        "0.1",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    names = ["sign", "band", "kelly:cap=2", "range:stop=0.1"]
    for name in names:
        assert f"trading {name}: " in result.stdout
    assert "fewer than 10 trades" in result.stdout  # 6 windows: every strategy is marked
    folder = tmp_path / "out" / "backtest" / "AAA" / "none"
    metrics = json.loads((folder / "metrics.json").read_text())
    assert list(metrics["trading"]) == names
    costs = metrics["trading"]["sign"]["costs"]
    assert (costs["entry"], costs["slippage_bps"], costs["borrow_rate"]) == ("next-open", 3.0, 0.1)
    trades, equity = pd.read_parquet(folder / "trades.parquet"), pd.read_parquet(folder / "equity.parquet")
    assert list(trades.columns) == list(TRADE_COLUMNS) and list(equity.columns) == list(EQUITY_COLUMNS)
    assert len(equity) == 4 * 6 and set(equity["strategy"]) == set(names)


def test_a_strategy_level_missing_from_the_quantiles_is_a_usage_error_before_the_model_loads(
    tmp_path: Path,
) -> None:
    write_symbol(tmp_path / "data", "AAA", 400)
    args = ["backtest", "AAA", "--strategy", "range", "--data-dir", str(tmp_path / "data")]
    args += ["--output-dir", str(tmp_path / "out"), "--model", str(tmp_path / "no-model")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "needs the 0.05 quantile" in result.output and not (tmp_path / "out" / "backtest").exists()


def test_forecast_with_strategies_writes_and_prints_each_next_bar_order(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    write_symbol(tmp_path / "data", "AAA", 300)
    args = ["forecast", "AAA", *TINY, "--model", str(tiny_model_dir), "--data-dir", str(tmp_path / "data")]
    args += ["--output-dir", str(tmp_path / "out"), "--strategy", "sign,range:stop=0.1", "--fee-bps", "0"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "order sign: " in result.stdout and "order range:stop=0.1: " in result.stdout
    payload = json.loads((tmp_path / "out" / "forecast" / "AAA" / "latest.json").read_text())
    orders = payload["orders"]
    assert [o["strategy"] for o in orders] == ["sign", "range:stop=0.1"]
    assert set(orders[0]) >= {"side", "size", "entry", "limit", "target", "stop"}
    plain = CliRunner().invoke(app, [a for a in args if a not in ("--strategy", "sign,range:stop=0.1")])
    assert plain.exit_code == 0 and "orders" not in json.loads(
        (tmp_path / "out" / "forecast" / "AAA" / "latest.json").read_text()
    )


# --- through the backtest's scoring --------------------------------------------------------------

EVAL = EvaluationOptions(
    horizon=6, context=64, quantiles=LEVELS, strategies=("sign", "band", "kelly", "range")
)


def _symbol_windows(tmp_path: Path) -> tuple[SymbolWindows, np.ndarray]:
    write_symbol(tmp_path, "AAA", 300, seed=4)
    sw = prepare_windows(load_ohlc("AAA", tmp_path), EVAL, windows=12, context=64)
    rng = np.random.default_rng(9)
    spread = np.sort(rng.normal(0, 0.01, (len(sw.origins), 4, len(LEVELS), 1)), axis=2)
    return sw, sw.last[:, :, None, None] * np.exp(spread + rng.normal(0, 0.01, (len(sw.origins), 4, 1, 6)))


def test_sign_in_a_backtest_with_entry_at_the_close_matches_the_previous_rule(tmp_path: Path) -> None:
    sw, price_q = _symbol_windows(tmp_path)
    options = replace(EVAL, entry="close", strategies=("sign",), allow_short=True)
    view = trading_view(sw, price_q, options)
    assert view is not None
    c = sw.targets.index("close")
    old = reference_simulate(
        last_close=sw.last[:, c],
        forecast_close=price_q[:, c, LEVELS.index(0.5), -1],
        realized_close=sw.futures[:, c, -1],
        origins=sw.origin_times,
        fee_bps=options.fee_bps,
        allow_short=True,
        horizon=6,
        stride=6,
        bars_per_year=sw.ohlc.bars_per_year,
        tradable=~sw.context_filled[:, -1] & ~sw.future_filled[:, -1],
        bars=sw.origins,
    )
    new = view.summaries["sign"]
    assert {k: new[k] for k in old.summary()} == old.summary()
    assert view.trades["net_return"].tolist() == old.trades["net_return"].tolist()


def test_perturbing_the_bars_after_the_last_origin_changes_only_that_windows_fills(tmp_path: Path) -> None:
    sw, price_q = _symbol_windows(tmp_path)
    frame = sw.ohlc.frame.copy()
    later = frame.index > sw.origin_times[-1]
    frame.loc[later, ["open", "high", "low", "close"]] *= 1.07
    moved = replace(sw, ohlc=replace(sw.ohlc, frame=frame))
    before, after = trading_view(sw, price_q, EVAL), trading_view(moved, price_q, EVAL)
    assert before is not None and after is not None
    last = sw.origin_times[-1]
    for name in ("sign", "band", "kelly"):  # market orders: the same decisions; the last fills move
        b, a = (v.trades[v.trades["strategy"] == name] for v in (before, after))
        assert b[["origin", "side", "size"]].equals(a[["origin", "side", "size"]])
        earlier = b["origin"] < last
        assert b[earlier].equals(a[earlier])
        if (~earlier).any():
            assert a.loc[~earlier, "exit"].to_numpy() == pytest.approx(
                1.07 * b.loc[~earlier, "exit"].to_numpy()
            )
    b, a = (v.trades[v.trades["strategy"] == "range"] for v in (before, after))
    assert b[b["origin"] < last].equals(a[a["origin"] < last])
