"""HTML reports of backtest, sweep and forecast outputs: every chart there, nothing external, clean errors."""

from __future__ import annotations

import json
import re
import sys
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from chronobt.cli import app
from chronobt.errors import ConfigError, DataError
from chronobt.report import (
    find_outputs,
    render_backtest,
    write_report,
    write_reports,
)
from chronobt.report.backtest_data import (
    equity_curves,
    load_backtest,
    pick_windows,
    pit_histogram,
    reliability,
    window_losses,
)
from tests.synthetic import ohlc_frame

pytest.importorskip("matplotlib")

LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
TARGETS = ("open", "high", "low", "close")

#: The chart names each report draws (the equity chart only when close was forecast and traded).
BACKTEST_CHARTS = ("fan", "per-step", "calibration", "equity")
SWEEP_CHARTS = ("heatmap", "validation-test")
FORECAST_CHARTS = ("forecast",)


class _Page(HTMLParser):
    """What a test needs to know about a report: its charts, links and anything that loads a resource."""

    def __init__(self) -> None:
        super().__init__()
        self.charts: list[str] = []
        self.svg_in_chart: list[bool] = []
        self.references: list[str] = []  # every src / href / xlink:href / action value
        self.tags: set[str] = set()
        self._open_chart = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        values = dict(attrs)
        if tag == "figure" and "chart" in (values.get("class") or ""):
            self.charts.append(values.get("data-chart") or "")
            self.svg_in_chart.append(False)
            self._open_chart = True
        if tag == "svg" and self._open_chart:
            self.svg_in_chart[-1] = True
        for name, value in attrs:
            if name in ("src", "href", "xlink:href", "action", "poster", "data") and value is not None:
                self.references.append(value)

    def handle_endtag(self, tag: str) -> None:
        if tag == "figure":
            self._open_chart = False


def parse(text: str) -> _Page:
    page = _Page()
    page.feed(text)
    return page


def assert_self_contained(text: str) -> _Page:
    page = parse(text)
    external = [r for r in page.references if r.lower().startswith(("http:", "https:", "//", "ftp:"))]
    assert external == []
    assert not page.tags & {"script", "link", "iframe", "img", "object", "embed"}
    assert "@import" not in text and "url(http" not in text
    assert all(page.svg_in_chart)
    return page


# ---------------------------------------------------------------- synthetic output folders


def write_backtest_folder(root: Path, *, windows: int = 8, horizon: int = 6, seed: int = 0) -> Path:
    """A backtest folder in the documented format, over a synthetic hourly series saved under root/data."""
    n = 64 + windows * horizon
    bars = ohlc_frame(n, seed=seed)
    data = root / "data" / "AAA.parquet"
    data.parent.mkdir(parents=True, exist_ok=True)
    bars.to_parquet(data, index=False)
    stamps = pd.DatetimeIndex(bars["timestamp"])
    origins = np.arange(n - 1 - (windows - 1) * horizon - horizon, n - horizon, horizon)
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    for o in origins:
        for step in range(1, horizon + 1):
            for t in TARGETS:
                last = float(bars[t].iloc[o])
                sd = 0.01 * last * np.sqrt(step)
                centre = last * (1 + rng.normal(0, 0.002))
                quantiles = {str(q): centre + sd * z for q, z in zip(LEVELS, _z(LEVELS), strict=True)}
                rows.append(
                    {
                        "symbol": "AAA",
                        "origin": stamps[o],
                        "step": step,
                        "timestamp": stamps[o + step],
                        "target": t,
                        "actual": float(bars[t].iloc[o + step]),
                        "median": quantiles["0.5"],
                        **quantiles,
                        "preaug": "differencing",
                    }
                )
    folder = root / "out" / "backtest" / "AAA" / "differencing"
    folder.mkdir(parents=True)
    pd.DataFrame(rows).to_parquet(folder / "forecasts.parquet", index=False)
    closes = bars["close"].to_numpy()
    trades = pd.DataFrame(
        {
            "origin": stamps[origins[::2]],
            "side": "long",
            "entry": closes[origins[::2]],
            "exit": closes[origins[::2] + horizon],
        }
    )
    trades["gross_return"] = trades["exit"] / trades["entry"] - 1
    trades["net_return"] = trades["gross_return"] - 0.002
    trades.to_parquet(folder / "trades.parquet", index=False)
    metric = {"mae": 1.0, "rmse": 1.2, "mape": 1.0, "smape": 1.0, "mase": 0.9, "wql": 0.01}
    metric |= {"coverage_80": 0.8, "width_80": 2.0, "directional_accuracy": 0.55}
    per_step = {k: [v] * horizon for k, v in metric.items()}
    naive = {**metric, "mase": 1.0}
    total = float(np.prod(1 + trades["net_return"]) - 1)
    summary = {
        "symbol": "AAA",
        "preaug": "differencing",
        "preaug_params": {},
        "model": "tiny",
        "model_checksum": "ab" * 32,
        "horizon": horizon,
        "context_length": 64,
        "windows": windows,
        "first_origin": stamps[origins[0]].isoformat(),
        "last_origin": stamps[origins[-1]].isoformat(),
        "targets": list(TARGETS),
        "quantiles": list(LEVELS),
        "metrics": {t: metric for t in TARGETS},
        "per_step": {t: per_step for t in TARGETS},
        "baselines": {b: {t: naive for t in TARGETS} for b in ("naive", "seasonal_naive", "drift")},
        "skill": {t: 0.1 for t in TARGETS},
        "trading": {"total_return": total, "buy_and_hold": 0.05, "sharpe": 1.0, "max_drawdown": 0.1}
        | {"win_rate": 0.5, "n_trades": len(trades), "windows_used": windows, "step": horizon},
        "compile": {"requested": "off", "used": False, "backend": "inductor", "fallback_reason": None},
        "timings": {"inference": 0.1},
    }
    (folder / "metrics.json").write_text(json.dumps(summary))
    manifest = {
        "config": {"horizon": horizon, "stride": None, "windows": windows},
        "data": {"path": str(data), "sha256": "0" * 64, "rows": n, "freq": "h", "calendar": "continuous"},
        "model": {"id": "tiny", "checksum": "ab" * 32, "source": "local"},
        "device": "cpu",
        "dtype": "float32",
        "seed": 0,
        "command": ["chronobt", "backtest", "AAA"],
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def _z(levels: tuple[float, ...]) -> list[float]:
    from statistics import NormalDist

    return [NormalDist().inv_cdf(q) for q in levels]


def write_sweep_folder(root: Path, *, p_values: bool = False) -> Path:
    folder = root / "out" / "sweep"
    (folder / "best").mkdir(parents=True)
    rows = []
    specs = ("none", "differencing", "log_returns")
    for symbol, best in (("AAA", "differencing"), ("BBB", "none")):
        for split in ("validation", "test"):
            for k, spec in enumerate(specs):
                row = {"symbol": symbol, "preaug": spec, "split": split, "target": "close", "windows": 10}
                row |= {
                    "mase": 1.0 - 0.05 * k,
                    "skill": 0.05 * k - 0.02,
                    "rank": k + 1,
                    "selected": spec == best,
                }
                if p_values:
                    row["p_value"] = 0.01 * (k + 1)
                rows.append(row)
        payload = {
            "symbol": symbol,
            "best_preaug": best,
            "selection_metric": "mase",
            "validation": {s: 1.0 for s in specs},
            "test": {"best": {"mase": 0.9, "skill": 0.1}, "none": {"mase": 1.0, "skill": 0.0}}
            | {"naive": {"mase": 1.0, "skill": 0.0}},
        }
        (folder / "best" / f"{symbol}.json").write_text(json.dumps(payload))
    pd.DataFrame(rows).to_parquet(folder / "leaderboard.parquet", index=False)
    manifest = {"config": {"metric": "mase"}, "symbols": ["AAA", "BBB"], "candidates": list(specs)}
    (folder / "manifest.json").write_text(json.dumps(manifest | {"model": {"id": "tiny"}}))
    return folder


def write_forecast_folder(root: Path, *, horizon: int = 6) -> Path:
    bars = ohlc_frame(100)
    data = root / "data" / "AAA.parquet"
    data.parent.mkdir(parents=True, exist_ok=True)
    bars.to_parquet(data, index=False)
    last = bars.iloc[-1]
    future = pd.date_range(last["timestamp"], periods=horizon + 1, freq="h")[1:]
    rows = []
    for step, stamp in enumerate(future, start=1):
        for t in TARGETS:
            q = {
                str(lv): float(last[t]) * (1 + 0.002 * z * np.sqrt(step))
                for lv, z in zip(LEVELS, _z(LEVELS), strict=True)
            }
            rows.append({"symbol": "AAA", "origin": last["timestamp"], "step": step, "timestamp": stamp})
            rows[-1] |= {"target": t, "median": q["0.5"], **q, "preaug": "none", "model": "tiny"}
    folder = root / "out" / "forecast" / "AAA"
    folder.mkdir(parents=True)
    frame = pd.DataFrame(rows)
    frame.to_parquet(folder / "latest.parquet", index=False)
    payload = {
        "symbol": "AAA",
        "preaug": "none",
        "horizon": horizon,
        "targets": list(TARGETS),
        "quantiles": list(LEVELS),
        "last_bar": {"timestamp": last["timestamp"].isoformat(), **{t: float(last[t]) for t in TARGETS}},
        "forecast": json.loads(frame.to_json(orient="records", date_format="iso")),
        "model": {"id": "tiny", "checksum": "ab" * 32},
        "data": {"path": str(data), "sha256": "0" * 64},
    }
    (folder / "latest.json").write_text(json.dumps(payload))
    return folder


# ---------------------------------------------------------------- backtest


def test_backtest_report_holds_every_chart_as_inline_svg_and_nothing_external(tmp_path: Path) -> None:
    folder = write_backtest_folder(tmp_path)
    path = write_report(folder)
    assert path == folder / "report.html"
    text = path.read_text()
    page = assert_self_contained(text)
    assert set(page.charts) == set(BACKTEST_CHARTS)
    assert page.charts.count("fan") == len(pick_windows(window_losses(load_backtest(folder))))
    tab_labels = " ".join(re.findall(r"<label[^>]*>([^<]*)</label>", text))
    assert {"latest", "best", "worst", "median"} <= set(re.findall(r"[a-z]+", tab_labels))
    assert "tiny" in text and "ab" * 32 in text  # model and checksum in the run record
    assert "compile.used" in text and "data.path" in text
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_pick_windows_names_latest_best_worst_and_median_once_each() -> None:
    losses = np.array([0.3, 0.1, np.nan, 0.9, 0.2, 0.25])
    picks = {i: label for label, i in pick_windows(losses)}
    assert picks == {5: "latest · median", 1: "best", 3: "worst"}


def test_fans_draw_the_bars_before_the_origin_from_the_data_file(tmp_path: Path) -> None:
    folder = write_backtest_folder(tmp_path)
    run = load_backtest(folder)
    assert run.history is not None and run.history.changed  # the manifest's sha256 is a placeholder
    assert "changed since the run" in render_backtest(folder)
    (tmp_path / "data" / "AAA.parquet").unlink()
    run = load_backtest(folder)
    assert run.history is None and "not found" in run.history_note
    assert_self_contained(render_backtest(folder))  # still renders, from the earlier windows' actuals


def test_reliability_is_the_share_of_actuals_below_each_quantile(tmp_path: Path) -> None:
    run = load_backtest(write_backtest_folder(tmp_path))
    observed = reliability(run)
    slow = [
        [np.mean(run.actual[:, v, :] <= run.quantiles[:, v, k, :]) for k in range(len(LEVELS))]
        for v in range(len(TARGETS))
    ]
    np.testing.assert_allclose(observed, slow)
    edges, density = pit_histogram(run, "close")
    assert edges[0] == 0 and edges[-1] == 1 and len(density) == len(LEVELS) + 1
    assert np.sum(density * np.diff(edges)) == pytest.approx(1.0)


def test_equity_curve_compounds_the_trades_to_the_reported_total_return(tmp_path: Path) -> None:
    folder = write_backtest_folder(tmp_path)
    run = load_backtest(folder)
    eq = equity_curves(run)
    assert eq is not None
    assert eq.equity[0] == 1.0 and len(eq.equity) == len(run.origins) + 1
    assert eq.equity[-1] - 1 == pytest.approx(run.metrics["trading"]["total_return"])
    assert eq.times[0] == run.origins[0] and eq.times[-1] == run.timestamps[-1]
    assert eq.hold[0] == 1.0 and eq.hold_times[0] == run.origins[0]
    assert (eq.drawdown(eq.equity) <= 0).all()


def test_without_close_there_is_no_equity_chart_and_the_fans_show_the_first_target(tmp_path: Path) -> None:
    folder = write_backtest_folder(tmp_path)
    frame = pd.read_parquet(folder / "forecasts.parquet")
    frame[frame["target"] != "close"].to_parquet(folder / "forecasts.parquet", index=False)
    summary = json.loads((folder / "metrics.json").read_text())
    summary |= {"targets": ["open", "high", "low"], "trading": None}
    (folder / "metrics.json").write_text(json.dumps(summary))
    (folder / "trades.parquet").unlink()
    text = render_backtest(folder)
    assert set(assert_self_contained(text).charts) == set(BACKTEST_CHARTS) - {"equity"}
    assert "AAA open · origin" in text


def test_a_100_window_report_is_under_5_mb(tmp_path: Path) -> None:
    folder = write_backtest_folder(tmp_path, windows=100, horizon=24)
    t0 = time.perf_counter()
    path = write_report(folder)
    seconds = time.perf_counter() - t0
    assert path.stat().st_size < 5_000_000
    assert seconds < 30  # measured ~1 s on an idle core; this only catches a pathological slowdown


def test_incomplete_forecasts_are_a_data_error_naming_the_file(tmp_path: Path) -> None:
    folder = write_backtest_folder(tmp_path)
    frame = pd.read_parquet(folder / "forecasts.parquet")
    frame.iloc[:-3].to_parquet(folder / "forecasts.parquet", index=False)
    with pytest.raises(DataError, match=r"forecasts\.parquet: .* rows, expected"):
        render_backtest(folder)


# ---------------------------------------------------------------- sweep and forecast


@pytest.mark.parametrize("p_values", [False, True])
def test_sweep_report_has_the_heatmap_and_scatter_and_p_values_only_when_present(
    tmp_path: Path, p_values: bool
) -> None:
    folder = write_sweep_folder(tmp_path, p_values=p_values)
    text = write_report(folder).read_text()
    page = assert_self_contained(text)
    assert page.charts == list(SWEEP_CHARTS)
    assert ("p-value" in text) is p_values
    assert "differencing" in text and "log_returns" in text


def test_forecast_report_draws_recent_history_and_the_future_steps(tmp_path: Path) -> None:
    folder = write_forecast_folder(tmp_path)
    text = write_report(folder).read_text()
    page = assert_self_contained(text)
    assert page.charts == list(FORECAST_CHARTS)
    assert "history from" in text  # the data file named in latest.json was found
    last = pd.read_parquet(folder / "latest.parquet")["timestamp"].max()
    assert f"{last:%Y-%m-%d %H:%M}" in text  # the future timestamps are in the table


def test_forecast_report_reads_the_rows_in_latest_json_without_the_parquet(tmp_path: Path) -> None:
    folder = write_forecast_folder(tmp_path)
    (folder / "latest.parquet").unlink()
    assert parse(write_report(folder).read_text()).charts == list(FORECAST_CHARTS)


def test_an_output_dir_gets_one_report_per_folder_and_an_index_with_relative_links(tmp_path: Path) -> None:
    write_backtest_folder(tmp_path)
    write_sweep_folder(tmp_path)
    write_forecast_folder(tmp_path / "f")  # a second data file: forecast under its own root
    out = tmp_path / "out"
    (tmp_path / "f" / "out" / "forecast").rename(out / "forecast")
    (out / ".tmp-half-written").mkdir()
    (out / ".tmp-half-written" / "latest.json").write_text("{")
    written = write_reports(out)
    assert sorted(r.kind for r in written.reports) == ["backtest", "forecast", "sweep"]
    assert written.main == out / "report.html"
    links = [r for r in parse(written.main.read_text()).references if not r.startswith("#")]
    expected = ["backtest/AAA/differencing/report.html", "forecast/AAA/report.html", "sweep/report.html"]
    assert sorted(links) == expected
    assert all((out / link).is_file() for link in links)


def test_a_folder_without_outputs_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no backtest, sweep or forecast outputs"):
        find_outputs(tmp_path)
    with pytest.raises(ConfigError, match="no such folder"):
        find_outputs(tmp_path / "missing")


def test_without_matplotlib_the_error_names_the_report_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write_backtest_folder(tmp_path)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ConfigError, match=r"chronobt\[report\]"):
        write_report(folder)
    assert not (folder / "report.html").exists()


# ---------------------------------------------------------------- command line


def test_report_command_writes_the_file_and_prints_its_path(tmp_path: Path) -> None:
    folder = write_backtest_folder(tmp_path)
    result = CliRunner().invoke(app, ["report", str(folder), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["report"] == str(folder / "report.html")
    assert payload["reports"][0]["kind"] == "backtest" and payload["reports"][0]["bytes"] > 0


@pytest.mark.parametrize(
    ("make", "code", "message"),
    [
        (lambda root: root / "missing", 2, "no such folder"),
        (lambda root: root, 2, "no backtest, sweep or forecast outputs"),
        (lambda root: _broken_metrics(root), 1, "metrics.json: unreadable JSON"),
    ],
)
def test_bad_paths_are_one_line_errors_without_a_traceback(
    tmp_path: Path, make: Any, code: int, message: str
) -> None:
    result = CliRunner().invoke(app, ["report", str(make(tmp_path))])
    assert result.exit_code == code
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def _broken_metrics(root: Path) -> Path:
    folder = write_backtest_folder(root)
    (folder / "metrics.json").write_text("{not json")
    return folder


def test_report_command_has_help() -> None:
    result = CliRunner().invoke(app, ["report", "--help"])
    assert result.exit_code == 0 and "report.html" in result.stdout


# ---------------------------------------------------------------- end to end


def test_a_real_backtest_reports_in_its_own_format(tmp_path: Path, tiny_model_dir: Path) -> None:
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
    )
    engine = Chronos2Engine(EngineConfig(model=str(tiny_model_dir), device="cpu", compile="off"))
    report = run_backtest(config, engine=engine)
    assert not report.failures
    folder = report.results[0].folder
    result = CliRunner().invoke(app, ["report", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    page = assert_self_contained((folder / "report.html").read_text())
    # a real backtest writes equity.parquet: the strategies page (and the latest fills when it traded)
    assert set(page.charts) - {"latest-fan"} == {*BACKTEST_CHARTS, "strategies"}
    run = load_backtest(folder)
    assert run.history is not None and not run.history.changed  # found data/AAA.parquet as recorded
    eq = equity_curves(run)
    assert eq is not None
    assert eq.equity[-1] - 1 == pytest.approx(report.results[0].summary["trading"]["sign"]["total_return"])
