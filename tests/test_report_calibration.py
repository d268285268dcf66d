"""The report shows the intervals a run issued: calibrated quantiles when the outputs hold them (the raw
ones beside, faintly), the raw ones otherwise; checked on the data handed to the charts and the captions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from chronobt.report import charts as c
from chronobt.report.axes import bar_axis, bar_positions, calendar_ticks
from chronobt.report.backtest import coverage_steps, reliability_curves, render_backtest
from chronobt.report.backtest_data import load_backtest, reliability, window_losses
from chronobt.report.forecast import render_forecast
from tests.test_report import LEVELS, TARGETS, write_backtest_folder, write_forecast_folder
from tests.test_report_charts import exchange_hours

pytest.importorskip("matplotlib")

#: Calibrated bands in these tests: the raw ones widened around the median by this factor.
WIDER = 1.5


def calibrate_backtest(folder: Path) -> Path:
    """Add ``calibrated_<level>`` columns and metrics.json's ``calibrated`` block, as a calibrated run has."""
    frame = pd.read_parquet(folder / "forecasts.parquet")
    for q in LEVELS:
        frame[f"calibrated_{q}"] = frame["0.5"] + WIDER * (frame[str(q)] - frame["0.5"])
    frame.to_parquet(folder / "forecasts.parquet", index=False)
    summary = json.loads((folder / "metrics.json").read_text())
    h = summary["horizon"]
    block = {"coverage_80": 0.81, "width_80": 3.0, "wql": 0.01}
    summary["calibrated"] = {
        "metrics": {t: block for t in TARGETS},
        "per_step": {t: {k: [v + 0.001 * s for s in range(h)] for k, v in block.items()} for t in TARGETS},
        "method": {"method": "aci", "gamma": 0.02, "n_resolved": 3},
    }
    summary["interval_calibration"] = {"requested": "auto", "applied": True, "n_resolved": 3, "reason": None}
    (folder / "metrics.json").write_text(json.dumps(summary))
    return folder


class Calls:
    """Records the keyword arguments of every call of one chart helper (and still draws)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
        self.kwargs: list[dict[str, Any]] = []
        original = getattr(c, name)

        def spy(*args: Any, **kwargs: Any) -> Any:
            self.kwargs.append(kwargs)
            return original(*args, **kwargs)

        monkeypatch.setattr(c, name, spy)


def test_a_calibrated_backtest_is_read_with_its_calibrated_quantiles_as_the_issued_ones(
    tmp_path: Path,
) -> None:
    raw_run = load_backtest(write_backtest_folder(tmp_path / "raw"))
    assert raw_run.calibrated is None and raw_run.issued is raw_run.quantiles and raw_run.issued_kind == "raw"
    run = load_backtest(calibrate_backtest(write_backtest_folder(tmp_path / "cal")))
    assert run.calibrated is not None and run.issued_kind == "calibrated"
    np.testing.assert_allclose(run.quantiles, raw_run.quantiles)  # the raw columns stay the raw ones
    median = run.quantiles[:, :, LEVELS.index(0.5), None, :]
    np.testing.assert_allclose(run.issued, median + WIDER * (run.quantiles - median))
    assert not np.allclose(window_losses(run), window_losses(raw_run))  # windows picked by the issued loss


def test_fan_charts_draw_the_calibrated_bands_with_the_raw_band_dashed_and_say_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = calibrate_backtest(write_backtest_folder(tmp_path))
    run = load_backtest(folder)
    fans = Calls(monkeypatch, "fan")
    text = render_backtest(folder)
    v, lo, hi = run.targets.index("close"), LEVELS.index(0.1), LEVELS.index(0.9)
    for kwargs in fans.kwargs:
        i = int(np.flatnonzero(run.actual[:, v, 0] == kwargs["actual"][0])[0])
        np.testing.assert_array_equal(kwargs["quantiles"][0.9], run.calibrated[i, v, hi])  # type: ignore[index]
        np.testing.assert_array_equal(kwargs["outline"][0], run.quantiles[i, v, lo])
        np.testing.assert_array_equal(kwargs["outline"][1], run.quantiles[i, v, hi])
    assert fans.kwargs and "issued intervals: calibrated" in text
    assert "dashed lines are the raw model" in text and "(raw " in text  # the window titles give raw cov80
    assert "cov80 calibrated" in text and "cov80 raw" in text  # the summary table shows both


def test_an_uncalibrated_backtest_draws_the_raw_quantiles_as_before_and_names_no_calibration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write_backtest_folder(tmp_path)
    run = load_backtest(folder)
    fans = Calls(monkeypatch, "fan")
    steps = Calls(monkeypatch, "steps_against_baselines")
    text = render_backtest(folder)
    v = run.targets.index("close")
    for kwargs in fans.kwargs:
        assert kwargs["outline"] is None
        i = int(np.flatnonzero(run.actual[:, v, 0] == kwargs["actual"][0])[0])
        np.testing.assert_array_equal(kwargs["quantiles"][0.1], run.quantiles[i, v, 0])
    coverage = steps.kwargs[1]
    assert coverage["model_label"] == "model" and coverage["others"] == {}
    for phrase in ("issued intervals", "cov80 raw", "cov80 calibrated", "dashed: the raw", "(raw "):
        assert phrase not in text


def test_per_step_coverage_draws_calibrated_and_raw_beside_the_baselines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = calibrate_backtest(write_backtest_folder(tmp_path, horizon=6))
    run = load_backtest(folder)
    lines = coverage_steps(run, "close")
    assert list(lines) == ["model, calibrated", "model, raw"]
    np.testing.assert_allclose(lines["model, calibrated"], [0.81 + 0.001 * s for s in range(6)])
    np.testing.assert_allclose(lines["model, raw"], [0.8] * 6)  # per_step, the raw model's
    steps = Calls(monkeypatch, "steps_against_baselines")
    text = render_backtest(folder)
    mase, coverage = steps.kwargs
    assert mase.get("model_label", "model") == "model" and not mase.get("others")  # MASE: the raw median
    np.testing.assert_allclose(coverage["model"], lines["model, calibrated"])
    np.testing.assert_allclose(coverage["others"]["model, raw"], lines["model, raw"])
    assert set(coverage["baselines"]) == {"naive", "seasonal_naive", "drift"}
    assert "calibrated intervals the run issued (solid" in text


def test_reliability_shows_the_calibrated_and_the_raw_quantiles(tmp_path: Path) -> None:
    raw_only = reliability_curves(load_backtest(write_backtest_folder(tmp_path / "raw")))
    assert list(raw_only) == ["raw"]
    folder = calibrate_backtest(write_backtest_folder(tmp_path / "cal"))
    run = load_backtest(folder)
    curves = reliability_curves(run)
    assert list(curves) == ["raw", "calibrated"]
    slow = [
        [np.mean(run.actual[:, v, :] <= run.calibrated[:, v, k, :]) for k in range(len(LEVELS))]  # type: ignore[index]
        for v in range(len(TARGETS))
    ]
    np.testing.assert_allclose(curves["calibrated"], slow)
    np.testing.assert_allclose(curves["raw"], reliability(run, run.quantiles))
    assert "dashed: the raw model" in render_backtest(folder)


def test_the_forecast_page_draws_the_issued_band_and_the_raw_band_dashed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write_forecast_folder(tmp_path)
    fans = Calls(monkeypatch, "fan")
    text = render_forecast(folder)
    assert all(kwargs["outline"] is None for kwargs in fans.kwargs) and "dashed" not in text
    frame = pd.read_parquet(folder / "latest.parquet")
    for q in LEVELS:  # a calibrated forecast: the main columns are issued, raw_<level> the model's
        frame[f"raw_{q}"] = frame["median"] + (frame[str(q)] - frame["median"]) / WIDER
    frame.to_parquet(folder / "latest.parquet", index=False)
    fans.kwargs.clear()
    text = render_forecast(folder)
    close = frame[frame["target"] == "close"].sort_values("step")
    (kwargs,) = [k for k in fans.kwargs if np.array_equal(k["quantiles"][0.9], close["0.9"].to_numpy())]
    np.testing.assert_array_equal(kwargs["outline"][0], close["raw_0.1"].to_numpy())
    np.testing.assert_array_equal(kwargs["outline"][1], close["raw_0.9"].to_numpy())
    assert "dashed lines are the raw model" in text and "raw q0.9" in text


def test_an_exchange_hours_equity_curve_is_drawn_on_bar_positions_without_closed_time() -> None:
    times = exchange_hours(6)
    exits = times[::7]
    with c.Chart("e", (8, 4)) as chart:
        ax, ax_dd = c.equity_drawdown(
            chart,
            times=exits,
            equity=np.linspace(1.0, 1.1, len(exits)),
            title="x",
            benchmark=(times, np.linspace(1.0, 0.9, len(times))),
            closed_hours=True,
        )
        strategy, hold = (line.get_xdata() for line in ax.get_lines()[:2])
        ticks = list(ax_dd.get_xticks())
        labels = [t.get_text() for t in ax_dd.get_xticklabels()]
    np.testing.assert_array_equal(hold, np.arange(len(times)))  # one bar apart, nights left out
    np.testing.assert_array_equal(strategy, np.arange(0, len(times), 7))
    assert ticks == [7.0 * d for d in range(6)]  # each day's first bar; the weekend gets none
    assert labels == [f"{d:%m-%d}" for d in pd.bdate_range("2024-03-04", periods=6)]
    with c.Chart("e", (8, 4)) as chart:  # the default keeps a time axis
        ax, _ = c.equity_drawdown(chart, times=exits, equity=np.ones(len(exits)), title="x")
        assert np.issubdtype(np.asarray(ax.get_lines()[0].get_xdata()).dtype, np.datetime64)


def test_a_long_equity_axis_is_labelled_by_calendar_months_without_a_line_per_weekend() -> None:
    days = pd.bdate_range("2004-01-02", "2005-12-30", tz="UTC")
    axis = bar_axis(days, closed_hours=True)
    assert axis is not None and len(axis.breaks) > 40
    long = calendar_ticks(axis, max_ticks=8)
    assert long.breaks == [] and 2 <= len(long.ticks) <= 8
    assert all(days[int(x)].day <= 3 and days[int(x)].month % 3 == 1 for x in long.ticks)  # quarters
    assert long.labels[0] == "2004-04"


def test_bar_positions_put_a_time_between_two_bars_at_the_bar_before() -> None:
    times = exchange_hours(2)
    axis = bar_axis(times, closed_hours=True)
    assert axis is not None
    inside = pd.DatetimeIndex([times[3], times[6] + pd.Timedelta(hours=5)])
    np.testing.assert_array_equal(bar_positions(axis, inside), [3.0, 6.0])


def test_a_backtest_left_raw_says_why_in_the_summary(tmp_path: Path) -> None:
    folder = write_backtest_folder(tmp_path)
    summary = json.loads((folder / "metrics.json").read_text())
    reason = "5 windows resolved by the last origin, auto calibrates from 20"
    summary["interval_calibration"] = {
        "requested": "auto",
        "applied": False,
        "n_resolved": 5,
        "reason": reason,
    }
    (folder / "metrics.json").write_text(json.dumps(summary))
    text = render_backtest(folder)
    assert "The intervals are the raw model" in text and reason in text
    assert "cov80 calibrated" not in text


def test_the_latest_fills_are_drawn_at_their_bars_when_the_fan_uses_a_bar_axis(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write_backtest_folder(tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["data"]["calendar"] = "exchange"  # a bar-index axis for every fan of this series
    (folder / "manifest.json").write_text(json.dumps(manifest))
    frame = pd.read_parquet(folder / "forecasts.parquet")
    origin = frame["origin"].max()
    stamps = frame.loc[frame["origin"] == origin, "timestamp"].drop_duplicates().sort_values().to_list()
    trades = pd.DataFrame(
        {
            "strategy": ["sign"],
            "origin": [origin],
            "side": ["long"],
            "entry_time": [stamps[0]],
            "entry": [100.0],
            "exit_time": [stamps[-1]],
            "exit": [101.0],
            "exit_reason": ["horizon"],
            "gross_return": [0.01],
            "net_return": [0.008],
        }
    )
    trades.to_parquet(folder / "trades.parquet", index=False)
    origins = sorted(frame["origin"].unique())
    equity = pd.DataFrame(
        {"strategy": "sign", "timestamp": origins, "equity": np.linspace(1, 1.01, len(origins))}
    )
    equity.to_parquet(folder / "equity.parquet", index=False)
    summary = json.loads((folder / "metrics.json").read_text())
    summary["trading"] = {"sign": summary["trading"] | {"n_trades": 1, "total_return": 0.008}}
    (folder / "metrics.json").write_text(json.dumps(summary))
    drawn: list[Any] = []
    original = c.fan

    def spy(ax: Any, **kwargs: Any) -> Any:
        window, axis = original(ax, **kwargs)
        drawn.append((ax, axis))
        return window, axis

    monkeypatch.setattr(c, "fan", spy)
    assert "latest-fan" in render_backtest(folder)
    ax, axis = drawn[-1]  # the strategies page's fan comes last
    assert axis is not None
    future = axis.x[-len(stamps) :]
    fills = [float(p[0]) for col in ax.collections for p in np.asarray(col.get_offsets()) if len(p)]
    assert sorted(fills)[-2:] == [future[0], future[-1]]  # entry at the first future bar, exit at the last


def test_a_real_calibrated_backtest_reports_its_calibrated_columns(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    from chronobt.engine.core import Chronos2Engine, EngineConfig
    from chronobt.runs.backtest import BacktestConfig, run_backtest
    from tests.synthetic import write_symbol

    write_symbol(tmp_path / "data", "AAA", 300)
    config = BacktestConfig(
        symbols=("AAA",),
        horizon=8,
        context=128,
        windows=6,
        data_dir=tmp_path / "data",
        output_dir=tmp_path / "out",
        calibrate="conformal",
    )
    engine = Chronos2Engine(EngineConfig(model=str(tiny_model_dir), device="cpu", compile="off"))
    report = run_backtest(config, engine=engine)
    folder = report.results[0].folder
    run = load_backtest(folder)
    assert run.calibrated is not None and run.issued_kind == "calibrated"
    written = pd.read_parquet(folder / "forecasts.parquet")
    close = written[written["target"] == "close"].sort_values(["origin", "step"])
    v = run.targets.index("close")
    np.testing.assert_allclose(run.calibrated[:, v, LEVELS.index(0.9)].ravel(), close["calibrated_0.9"])
    assert list(coverage_steps(run, "close")) == ["model, calibrated", "model, raw"]
    assert "cov80 calibrated" in render_backtest(folder)
