"""What the report's charts show, checked on the chart data: y limits, cut-off markers, bar-index axes,
per-step baselines and the reusable equity chart."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from chronobt.report import charts as c
from chronobt.report.axes import bar_axis, closed_hours, gaps_before, y_window
from chronobt.report.backtest import baseline_steps, render_backtest
from chronobt.report.backtest_data import load_backtest
from tests.test_report import LEVELS, write_backtest_folder

pytest.importorskip("matplotlib")


def exchange_hours(days: int = 6, *, start: str = "2024-03-04") -> pd.DatetimeIndex:
    """Hourly bars 14:30..20:30 UTC on weekdays only (7 a day): nights and weekends are closed."""
    dates = pd.bdate_range(start, periods=days, tz="UTC")
    return pd.DatetimeIndex([d + pd.Timedelta(hours=14.5 + k) for d in dates for k in range(7)])


def fan_quantiles(centre: np.ndarray, spread: np.ndarray) -> dict[float, np.ndarray]:
    from statistics import NormalDist

    return {q: centre + NormalDist().inv_cdf(q) * spread for q in LEVELS}


def draw_fan(times: pd.DatetimeIndex, *, explode: bool = False, **kwargs: object):
    """A fan over ``times`` (the last 8 bars forecast); returns the chart's y window, bar axis and axes."""
    history = 100 + np.sin(np.arange(len(times) - 8) / 3)
    spread = np.full(8, 0.5)
    if explode:
        spread[4:] = [50.0, 500.0, 5e3, 5e4]
    with c.Chart("t", (11, 3.6)) as chart:
        (ax,) = chart.grid()
        window, axis = c.fan(
            ax,
            history_t=c.utc(times[:-8]),
            history_y=history,
            future_t=c.utc(times[-8:]),
            quantiles=fan_quantiles(np.full(8, 100.0), spread),
            actual=np.full(8, 100.5),
            **kwargs,  # type: ignore[arg-type]
        )
        limits = ax.get_ylim()
        markers = [line for line in ax.get_lines() if line.get_marker() in ("^", "v")]
        ticks = list(ax.get_xticks())
        labels = [t.get_text() for t in ax.get_xticklabels()]
    return window, axis, limits, markers, ticks, labels


# ---------------------------------------------------------------- y axis


def test_an_exploding_band_is_cut_to_the_bars_and_marked_at_each_step_it_leaves_the_axis() -> None:
    times = pd.date_range("2024-01-01", periods=40, freq="h", tz="UTC")
    window, _, limits, markers, _, _ = draw_fan(times, explode=True)
    assert limits == pytest.approx((window.lo, window.hi))
    assert window.hi < 100 + 3 * 2.0  # core 99..101 (span 2): at most one span beyond, plus a margin
    assert window.lo > 100 - 3 * 2.0
    assert window.above.tolist() == [False] * 4 + [True] * 4
    assert window.below.tolist() == [False] * 4 + [True] * 4
    assert window.top == pytest.approx(100 + 1.2816 * 5e4, rel=1e-3) and window.bottom < -6e4
    up = next(line for line in markers if line.get_marker() == "^")
    assert len(up.get_xdata()) == 4 and np.allclose(up.get_ydata(), window.hi)
    assert not up.get_clip_on()  # drawn on the edge, not clipped away


def test_a_normal_band_is_shown_whole_and_nothing_is_marked() -> None:
    times = pd.date_range("2024-01-01", periods=40, freq="h", tz="UTC")
    window, _, limits, markers, _, _ = draw_fan(times)
    assert not window.clipped and markers == []
    upper = 100 + 1.2816 * 0.5
    assert limits[0] < 100 - 1.28 * 0.5 and limits[1] > upper
    assert limits[0] <= 100 + np.sin(np.arange(32) / 3).min()


def test_y_window_keeps_every_core_value_and_reports_the_extremes_cut() -> None:
    window = y_window(
        core=[np.array([10.0, 12.0]), np.array([np.nan, 11.0])],
        upper=np.array([12.5, 40.0]),
        lower=np.array([9.5, -30.0]),
    )
    assert window.lo < 10 and window.hi > 12
    assert window.above.tolist() == [False, True] and window.top == 40.0
    assert window.below.tolist() == [False, True] and window.bottom == -30.0
    assert window.hi == pytest.approx(14.0 + 0.06 * 6.0)  # 12 + one core span (2), plus 6% of 8..14
    infinite = y_window(core=[np.array([1.0, 2.0])], upper=np.array([np.inf]), lower=np.array([np.nan]))
    assert infinite.above.tolist() == [True] and infinite.top == np.inf and not infinite.below.any()


# ---------------------------------------------------------------- x axis


def test_exchange_hours_are_drawn_on_a_bar_index_axis_with_a_tick_at_each_day() -> None:
    times = exchange_hours(6)
    window, axis, _, _, ticks, labels = draw_fan(times)
    assert axis is not None and not window.clipped
    assert axis.x.tolist() == list(range(len(times)))
    assert axis.breaks == [7 * d - 0.5 for d in range(1, 6)]  # one gap before each day's first bar
    assert ticks == axis.ticks == [7.0 * d for d in range(6)]
    assert labels == [f"{d:%a %m-%d}" for d in pd.bdate_range("2024-03-04", periods=6)]
    assert "Sat" not in " ".join(labels)


def test_24_7_bars_keep_their_time_axis_and_the_calendar_record_decides_for_the_whole_series() -> None:
    hourly = pd.date_range("2024-01-01", periods=48, freq="h", tz="UTC")
    assert bar_axis(hourly) is None
    assert draw_fan(hourly)[1] is None
    forced = bar_axis(hourly, closed_hours=True)  # an FX window between two weekends
    assert forced is not None and forced.breaks == [] and forced.ticks == [0.0, 24.0]
    assert bar_axis(exchange_hours(), closed_hours=False) is None
    assert closed_hours({"calendar": "exchange"}) is True
    assert closed_hours({"calendar": "continuous"}) is False
    assert closed_hours({}) is None and closed_hours(None) is None


def test_an_fx_sunday_evening_open_gets_no_tick_of_its_own() -> None:
    hours = pd.date_range("2024-05-24 17:00", "2024-05-29 16:00", freq="h", tz="UTC")
    weekend = (hours.day_of_week == 5) | ((hours.day_of_week == 4) & (hours.hour >= 21))
    weekend |= (hours.day_of_week == 6) & (hours.hour < 22)
    axis = bar_axis(hours[~weekend], max_ticks=9)
    assert axis is not None and len(axis.breaks) == 1
    assert [label[:3] for label in axis.labels] == ["Mon", "Tue", "Wed"]  # 4 Friday bars: a sliver too


def test_daily_exchange_bars_are_labelled_at_each_week_and_ticks_never_crowd() -> None:
    days = pd.bdate_range("2013-01-02", periods=40, tz="UTC")
    assert gaps_before(days).sum() == 8  # weekends (a Wednesday start: the first gap comes after 3 bars)
    axis = bar_axis(days, max_ticks=8)
    assert axis is not None
    assert min(np.diff(axis.ticks)) >= 5  # at least 40 / 8 bars apart
    assert axis.ticks[0] == 3.0  # the partial first week gives way to the first Monday
    assert axis.labels[0] == "2013-01-07"


# ---------------------------------------------------------------- per step, equity


def test_baselines_are_drawn_per_step_when_metrics_json_has_them_else_pooled(tmp_path: Path) -> None:
    folder = write_backtest_folder(tmp_path, horizon=6)
    run = load_backtest(folder)
    assert baseline_steps(run, "close", "mase") == {"naive": 1.0, "seasonal_naive": 1.0, "drift": 1.0}
    assert "pooled over the steps" in render_backtest(folder)
    summary = json.loads((folder / "metrics.json").read_text())
    steps = [0.5, 0.8, 1.0, 1.2, 1.4, 1.6]
    summary["baselines_per_step"] = {"naive": {"close": {"mase": steps}}}
    (folder / "metrics.json").write_text(json.dumps(summary))
    run = load_backtest(folder)
    lines = baseline_steps(run, "close", "mase")
    np.testing.assert_array_equal(lines["naive"], steps)
    assert lines["drift"] == 1.0  # a baseline without per-step numbers stays pooled
    with c.Chart("s", (6, 3)) as chart:
        (ax,) = chart.grid()
        c.steps_against_baselines(ax, model=np.ones(6), baselines=lines, title="t")
        drawn = {line.get_label(): line.get_ydata() for line in ax.get_lines()}
    np.testing.assert_array_equal(drawn["naive"], steps)
    assert list(drawn["drift (pooled)"]) == [1.0, 1.0]


def test_an_exploding_window_and_closed_hours_are_explained_on_the_backtest_page(tmp_path: Path) -> None:
    folder = write_backtest_folder(tmp_path)
    frame = pd.read_parquet(folder / "forecasts.parquet")
    latest = frame["origin"] == frame["origin"].max()
    frame.loc[latest & (frame["step"] > 3), "0.9"] *= 1000.0
    frame.to_parquet(folder / "forecasts.parquet", index=False)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["data"]["calendar"] = "exchange"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    text = render_backtest(folder)
    assert "leaves the axis at 3 of 6 steps" in text and "band beyond the axis" in text
    assert "closed hours" in text


def test_equity_drawdown_draws_the_curve_and_its_drawdown_for_any_page() -> None:
    times = pd.date_range("2024-01-01", periods=5, freq="D", tz="UTC")
    equity = np.array([1.0, 1.1, 0.99, 1.2, 1.08])
    with c.Chart("e", (8, 4)) as chart:
        ax, ax_dd = c.equity_drawdown(
            chart, times=times, equity=equity, title="x", benchmark=(times, equity * 0 + 1.0), step=False
        )
        curve = ax.get_lines()[0].get_ydata()
        benchmark_drawdown = ax_dd.get_lines()[0].get_ydata()
    np.testing.assert_allclose(curve, equity)
    np.testing.assert_allclose(benchmark_drawdown, 0.0)  # a flat benchmark never falls
    np.testing.assert_allclose(c.drawdown(equity), [0, 0, -0.1, 0, -0.1])
    assert "<svg" in chart.text
