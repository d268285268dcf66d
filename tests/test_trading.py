"""Trading view: a hand-worked example with fees, shorting, drawdown and annualization."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from chronobt.evaluation.trading import TRADE_COLUMNS, simulate

# Four non-overlapping windows (horizon 2 = stride), fee 10 bps per side (round trip 0.002):
#   w0: last 100, forecast 105   (+5.0%  > 0.2%) long,  exit 110: gross +0.10, net +0.098
#   w1: last 110, forecast 100   (-9.1% < -0.2%) short, exit 121: gross -0.10, net -0.102
#   w2: last 121, forecast 121.1 (+0.08%, inside the fee band) flat: 0
#   w3: last 130, forecast 117   (-10%)          short, exit 117: gross +0.10, net +0.098
LAST = [100.0, 110.0, 121.0, 130.0]
FORECAST = [105.0, 100.0, 121.1, 117.0]
REALIZED = [110.0, 121.0, 130.0, 117.0]
TIMES = pd.date_range("2024-01-01", periods=4, freq="2D", tz="UTC")


def test_hand_worked_three_trades_with_fees_shorting_drawdown_and_annualization() -> None:
    result = simulate(
        last_close=LAST,
        forecast_close=FORECAST,
        realized_close=REALIZED,
        horizon=2,
        bars_per_year=16,  # 8 two-bar periods a year; the 4 windows span 8 bars = half a year
        fee_bps=10,
        allow_short=True,
        origins=TIMES,
    )
    # Equity 1 -> 1.098 -> 1.098 * 0.898 = 0.986004 -> 0.986004 -> 0.986004 * 1.098 = 1.082632392
    assert result.total_return == pytest.approx(0.082632392)
    # Half a year: annualized = 1.082632392 ** 2 - 1
    assert result.annualized_return == pytest.approx(1.082632392**2 - 1)
    # Peak 1.098, trough 0.986004: 1 - 0.986004 / 1.098 = 1 - 0.898 = 0.102
    assert result.max_drawdown == pytest.approx(0.102)
    # Per-window nets 0.098, -0.102, 0, 0.098: mean 0.0235; squared deviations 0.0745^2, 0.1255^2,
    # 0.0235^2, 0.0745^2 sum to 0.027403, sample variance 0.027403 / 3; 8 periods a year.
    assert result.sharpe == pytest.approx(0.0235 / math.sqrt(0.027403 / 3) * math.sqrt(8))
    assert result.n_trades == 3
    assert result.win_rate == pytest.approx(2 / 3)
    assert result.exposure == pytest.approx(3 * 2 / 8)  # 6 of 8 bars in a position
    # Buy and hold 100 -> 117 with one round-trip fee: 0.17 - 0.002
    assert result.buy_and_hold == pytest.approx(0.168)
    assert result.windows_used == 4 and result.step == 2

    trades = result.trades
    assert tuple(trades.columns) == TRADE_COLUMNS
    assert trades["side"].tolist() == ["long", "short", "short"]
    assert list(trades["origin"]) == [TIMES[0], TIMES[1], TIMES[3]]
    assert trades["entry"].tolist() == [100.0, 110.0, 130.0]
    assert trades["exit"].tolist() == [110.0, 121.0, 117.0]
    np.testing.assert_allclose(trades["gross_return"], [0.10, -0.10, 0.10])
    np.testing.assert_allclose(trades["net_return"], [0.098, -0.102, 0.098])


def test_long_only_stays_flat_on_predicted_falls() -> None:
    result = simulate(
        last_close=LAST, forecast_close=FORECAST, realized_close=REALIZED, horizon=2, bars_per_year=16
    )
    # Only w0 trades: +0.098.
    assert result.n_trades == 1
    assert result.total_return == pytest.approx(0.098)
    assert result.max_drawdown == 0.0
    assert result.trades["origin"].tolist() == [0]  # window numbers without labels


@pytest.mark.parametrize(
    ("forecast", "side"), [(100.15, None), (100.25, "long"), (99.85, None), (99.75, "short")]
)
def test_a_trade_needs_a_forecast_move_beyond_the_round_trip_fee(forecast: float, side: str | None) -> None:
    # 10 bps a side: the forecast must move more than 0.2% from 100.
    result = simulate(
        last_close=[100.0],
        forecast_close=[forecast],
        realized_close=[101.0],
        horizon=5,
        bars_per_year=252,
        allow_short=True,
    )
    assert result.trades["side"].tolist() == ([] if side is None else [side])


def test_overlapping_windows_trade_every_ceil_horizon_over_stride_th_window_from_the_latest() -> None:
    # horizon 4, stride 3 -> every 2nd window, anchored at the latest: windows 1, 3 of 0..3; step 6 bars.
    result = simulate(
        last_close=[10.0, 20.0, 30.0, 40.0],
        forecast_close=[11.0, 22.0, 33.0, 44.0],
        realized_close=[12.0, 21.0, 33.0, 42.0],
        horizon=4,
        stride=3,
        bars_per_year=100,
        fee_bps=0,
        origins=[100, 103, 106, 109],
    )
    assert result.windows_used == 2 and result.step == 6
    assert result.trades["origin"].tolist() == [103, 109]
    # 1.05 * 1.05 over a span of 6 + 4 = 10 bars = 0.1 year
    assert result.total_return == pytest.approx(1.05**2 - 1)
    assert result.annualized_return == pytest.approx(1.05**20 - 1)
    assert result.exposure == pytest.approx(8 / 10)
    assert result.buy_and_hold == pytest.approx(42 / 20 - 1)


def test_summary_is_strict_json_without_the_trade_table() -> None:
    result = simulate(
        last_close=[100.0], forecast_close=[100.0], realized_close=[90.0], horizon=3, bars_per_year=365
    )
    summary = result.summary()
    assert "trades" not in summary
    assert summary["n_trades"] == 0
    assert summary["win_rate"] is None and summary["sharpe"] is None  # no trades, one window
    assert summary["total_return"] == 0.0 and summary["exposure"] == 0.0
    assert result.trades.empty and tuple(result.trades.columns) == TRADE_COLUMNS


def test_mismatched_inputs_are_rejected() -> None:
    with pytest.raises(ValueError, match="share one non-empty 1-d shape"):
        simulate(
            last_close=[1.0, 2.0], forecast_close=[1.0], realized_close=[1.0, 2.0], horizon=1, bars_per_year=1
        )


def test_sharpe_is_none_with_a_single_trade_among_many_flat_windows() -> None:
    # ten windows, one forecast move beyond the fee: one trade; the flat windows' zeros are no track record
    last = [100.0] * 10
    forecast = [100.0] * 9 + [110.0]
    realized = [101.0, 99.0] * 4 + [100.0, 105.0]
    result = simulate(
        last_close=last, forecast_close=forecast, realized_close=realized, horizon=1, bars_per_year=8760
    )
    assert result.n_trades == 1 and result.windows_used == 10
    assert math.isnan(result.sharpe)
    assert result.summary()["sharpe"] is None and result.summary()["n_trades"] == 1


def test_sharpe_is_defined_from_two_trades() -> None:
    result = simulate(
        last_close=[100.0, 100.0, 100.0],
        forecast_close=[110.0, 100.0, 110.0],
        realized_close=[105.0, 100.0, 102.0],
        horizon=1,
        bars_per_year=100,
        fee_bps=0,
    )
    nets = np.array([0.05, 0.0, 0.02])
    assert result.n_trades == 2
    assert result.sharpe == pytest.approx(nets.mean() / nets.std(ddof=1) * 10)


def test_untradable_windows_stay_flat_and_buy_and_hold_spans_the_tradable_ones() -> None:
    # all four forecasts beat the fee; window 0 (entry) and window 3 (exit) are marked untradable
    result = simulate(
        last_close=[100.0, 110.0, 120.0, 130.0],
        forecast_close=[200.0] * 4,
        realized_close=[110.0, 121.0, 132.0, float("nan")],
        horizon=2,
        bars_per_year=16,
        fee_bps=0,
        tradable=[False, True, True, False],
    )
    assert result.n_trades == 2 and result.untradable == 2 and result.windows_used == 4
    assert result.trades["origin"].tolist() == [1, 2]
    assert result.total_return == pytest.approx(1.1 * 1.1 - 1)
    assert result.buy_and_hold == pytest.approx(132 / 110 - 1)  # entry of window 1 to exit of window 2
    assert math.isfinite(result.max_drawdown) and result.exposure == pytest.approx(4 / 8)


def test_a_window_missing_from_the_arrays_leaves_a_hole_in_the_trading_grid() -> None:
    # horizon 4, stride 2: every 2nd window from the latest. Origins at bars 0, 2, 6, 8, 10: the window
    # at bar 4 is absent; the grid (bars 10, 6, 2) is kept, not shifted by position (bars 10, 6, 0).
    result = simulate(
        last_close=[10.0, 20.0, 30.0, 40.0, 50.0],
        forecast_close=[11.0, 22.0, 33.0, 44.0, 55.0],
        realized_close=[11.0, 22.0, 33.0, 44.0, 55.0],
        horizon=4,
        stride=2,
        bars_per_year=100,
        fee_bps=0,
        bars=[0, 2, 6, 8, 10],
    )
    assert result.windows_used == 3 and result.trades["origin"].tolist() == [1, 2, 4]
    assert result.exposure == pytest.approx(12 / 12)  # bars 2 .. 14: span 8 + 4


def test_bars_must_be_ascending_and_label_every_window() -> None:
    with pytest.raises(ValueError, match="bars ascending"):
        simulate(
            last_close=[1.0, 2.0],
            forecast_close=[1.0, 2.0],
            realized_close=[1.0, 2.0],
            horizon=1,
            bars_per_year=1,
            bars=[3, 1],
        )
