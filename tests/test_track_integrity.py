"""The forecast archive and `chronobt track` when things go wrong: kills, tampering, revisions, gaps, the
layout before the index, and the command line (exit codes 1 and 4, --json)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from chronobt import atomic
from chronobt.cli import app
from chronobt.config import ForecastConfig, TrackConfig
from chronobt.engine.core import Chronos2Engine, EngineConfig
from chronobt.evaluation.drift import WindowScores, drift_block, spaced
from chronobt.publish import finish_interrupted
from chronobt.runs import track_ledger
from chronobt.runs.archive import read_index
from chronobt.runs.forecast import run_forecast
from chronobt.runs.track import run_track
from tests.synthetic import ohlc_frame

HORIZON = 4
TRACKED = ("ledger.parquet", "metrics.json", "trades.parquet", "orders.parquet", "manifest.json")


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> Chronos2Engine:
    return Chronos2Engine(EngineConfig(model=str(tiny_model_dir), device="cpu", compile="off"))


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return ohlc_frame(200, seed=3)


def _forecast(data: Path, out: Path, engine: Chronos2Engine, preaug: str = "none", **trading: Any) -> None:
    config = ForecastConfig(
        **trading,
        symbols=("AAA",),
        preaug=preaug,
        horizon=HORIZON,
        context=64,
        dependence="independent",
        calibrate="none",
        data_dir=data,
        output_dir=out,
    )
    assert not run_forecast(config, engine=engine).failures


def _grow(
    root: Path, bars: pd.DataFrame, engine: Chronos2Engine, sizes: range, **trading: Any
) -> tuple[Path, Path]:
    """Cron: for each size, write the first ``size`` bars and forecast (``trading``: --strategy etc.)."""
    data, out = root / "data", root / "out"
    data.mkdir(parents=True, exist_ok=True)
    for n in sizes:
        bars.iloc[:n].to_parquet(data / "AAA.parquet", index=False)
        _forecast(data, out, engine, **trading)
    return data, out


def _track(data: Path, out: Path) -> Any:
    report = run_track(TrackConfig(data_dir=data, output_dir=out))
    assert not report.failures, report.failures
    return report.results[0]


def test_a_torn_last_index_line_is_skipped_reported_and_the_next_append_starts_a_fresh_line(
    tmp_path: Path, bars: pd.DataFrame, engine: Chronos2Engine, caplog: pytest.LogCaptureFixture
) -> None:
    data, out = _grow(tmp_path, bars, engine, range(150, 153))
    index = out / "forecast" / "AAA" / "index.jsonl"
    whole = index.read_bytes()
    index.write_bytes(whole + whole.splitlines(keepends=True)[-1][:57])  # a kill mid-write
    read = read_index(index.parent)
    assert len(read.entries) == 3 and read.skipped == ((4, "torn last line"),)
    assert _track(data, out).metrics["forecasts"] == 3
    assert "line 4 skipped (torn last line)" in caplog.text
    bars.iloc[:153].to_parquet(data / "AAA.parquet", index=False)
    _forecast(data, out, engine)  # appends after the torn fragment, on its own line
    read = read_index(index.parent)
    assert len(read.entries) == 4 and read.skipped == ((4, "not an index entry"),)
    assert index.read_bytes().startswith(whole)  # earlier entries untouched


@pytest.mark.parametrize("point", ["index.append", "index.appended"])
def test_a_forecast_killed_at_its_index_append_leaves_earlier_entries_and_the_next_run_appends(
    tmp_path: Path, bars: pd.DataFrame, engine: Chronos2Engine, monkeypatch: pytest.MonkeyPatch, point: str
) -> None:
    data, out = _grow(tmp_path, bars, engine, range(150, 152))
    index = out / "forecast" / "AAA" / "index.jsonl"
    before = index.read_bytes()

    def kill(name: str, path: Path) -> None:
        if name == point:
            raise KeyboardInterrupt  # the process dies here: nothing after runs

    monkeypatch.setattr(atomic, "FAULT_HOOK", kill)
    bars.iloc[:152].to_parquet(data / "AAA.parquet", index=False)
    with pytest.raises(KeyboardInterrupt):
        _forecast(data, out, engine)
    monkeypatch.setattr(atomic, "FAULT_HOOK", None)
    assert index.read_bytes().startswith(before)
    assert len(read_index(index.parent).entries) == (2 if point == "index.append" else 3)
    _forecast(data, out, engine)  # the next cron run: same bar again, one entry per file
    assert len(read_index(index.parent).entries) == 3
    assert _track(data, out).metrics["forecasts"] == 3


def test_a_track_killed_at_any_write_leaves_its_files_all_old_or_all_new_and_a_rerun_completes(
    tmp_path: Path, bars: pd.DataFrame, engine: Chronos2Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, out = _grow(tmp_path, bars, engine, range(150, 158))
    folder = _track(data, out).folder
    old = {n: (folder / n).read_bytes() for n in TRACKED if n != "manifest.json"}
    _grow(tmp_path, bars, engine, range(158, 160))
    points: list[str] = []

    def snapshot(name: str, path: Path) -> None:
        if "track" in path.parts:
            dest = tmp_path / "snaps" / f"{len(points):03d}-{name}"
            shutil.copytree(out, dest)
            points.append(name)

    monkeypatch.setattr(atomic, "FAULT_HOOK", snapshot)
    new_folder = _track(data, out).folder
    monkeypatch.setattr(atomic, "FAULT_HOOK", None)
    new = {n: (new_folder / n).read_bytes() for n in old}
    assert old != new and "publish.committed" in points
    for snap in sorted((tmp_path / "snaps").iterdir()):
        seen = snap / "track" / "AAA" / "none"
        finish_interrupted(seen, root=snap)  # what the next run does first, under the lock
        assert {n: (seen / n).read_bytes() for n in old} in (old, new), snap.name
        rerun = _track(data, snap)
        assert {n: (rerun.folder / n).read_bytes() for n in old} == new, snap.name


def test_a_tampered_archive_file_is_refused_in_one_line_naming_it_and_never_scored(
    tmp_path: Path, bars: pd.DataFrame, engine: Chronos2Engine, caplog: pytest.LogCaptureFixture
) -> None:
    data, out = _grow(tmp_path, bars, engine, range(150, 160))
    victim = sorted((out / "forecast" / "AAA" / "none").glob("*.parquet"))[2]
    frame = pd.read_parquet(victim)
    frame.loc[frame.index[0], "median"] += 1.0  # a "better" forecast, written after the fact
    frame.to_parquet(victim, index=False)
    result = _track(data, out)
    lines = [r.getMessage() for r in caplog.records if victim.name in r.getMessage()]
    assert len(lines) == 1 and "sha256" in lines[0] and "\n" not in lines[0]
    ledger = pd.read_parquet(result.folder / "ledger.parquet")
    assert victim.name not in set(ledger["file"].str.split("/").str[-1])
    assert result.metrics["forecasts"] == 9 and result.metrics["refused"] == lines


def test_a_forecast_made_before_a_bar_was_revised_is_scored_but_flagged(
    tmp_path: Path, bars: pd.DataFrame, engine: Chronos2Engine
) -> None:
    data, out = _grow(tmp_path, bars, engine, range(150, 160))
    revised = bars.iloc[:159].copy()
    revised.loc[revised.index[154], "close"] *= 1.01  # the vendor revises bar 154
    revised.to_parquet(data / "AAA.parquet", index=False)
    result = _track(data, out)
    ledger = pd.read_parquet(result.folder / "ledger.parquet")
    flagged = ledger.groupby("origin")["revised"].first()
    origins = pd.DatetimeIndex(flagged.index)
    assert flagged[origins >= bars["timestamp"].iloc[154]].all()
    assert not flagged[origins < bars["timestamp"].iloc[154]].any()
    assert result.metrics["revised"]["count"] == int(flagged.sum()) == 5
    assert result.metrics["windows"] > 0  # still scored


def test_a_bar_missing_from_the_data_is_resolved_but_never_an_actual(
    tmp_path: Path, bars: pd.DataFrame, engine: Chronos2Engine
) -> None:
    data, out = _grow(tmp_path, bars, engine, range(150, 152))
    gap = bars["timestamp"].iloc[152]
    bars.iloc[:160].drop(index=152).to_parquet(data / "AAA.parquet", index=False)  # forward-filled at load
    result = _track(data, out)
    ledger = pd.read_parquet(result.folder / "ledger.parquet")
    at_gap = ledger[ledger["timestamp"] == gap]
    assert (
        len(at_gap) and at_gap["resolved"].all() and at_gap["filled"].all() and at_gap["actual"].isna().all()
    )
    other = ledger[ledger["timestamp"] != gap]
    assert other["actual"].notna().all() and not other["filled"].any()
    assert result.metrics["filled"]["actual_bars"] == len(at_gap) // 4


def test_a_forward_filled_bar_never_fills_a_live_order_and_a_revised_origin_close_is_a_differing_decision(
    tmp_path: Path, bars: pd.DataFrame, engine: Chronos2Engine
) -> None:
    data, out = _grow(
        tmp_path, bars, engine, range(150, 156), strategies=("sign", "kelly:cap=1e6"), allow_short=True
    )
    gap, revised_at = bars["timestamp"].iloc[157], bars["timestamp"].iloc[151]
    changed = bars.iloc[:162].copy()
    ohlc = ["open", "high", "low", "close"]
    changed.loc[changed.index[151], ohlc] *= 1.01  # the vendor revises an origin's bar
    changed.drop(index=157).to_parquet(data / "AAA.parquet", index=False)  # bar 157 forward-filled at load
    result = _track(data, out)
    orders = pd.read_parquet(result.folder / "orders.parquet")
    assert set(orders["strategy"]) == {"sign", "kelly:cap=1e+06"} and orders["filled"].any()
    filled = orders[orders["filled"]]
    assert not (filled["entry_time"] == gap).any() and not (filled["exit_time"] == gap).any()
    horizon_end = orders["origin"] + pd.Timedelta(hours=HORIZON)
    ends_in_gap = orders[horizon_end == gap]
    assert len(ends_in_gap) and not ends_in_gap["tradable"].any() and not ends_in_gap["filled"].any()
    kelly = orders[(orders["strategy"] == "kelly:cap=1e+06") & (orders["side"] != "flat")]
    assert (kelly["origin"] == revised_at).any(), "the revised origin's kelly order should be placed"
    differ = result.metrics["orders"]["kelly:cap=1e+06"]["decisions"]
    assert differ["files"] == orders.loc[~orders["agrees"], "file"].tolist()
    assert set(orders.loc[~orders["agrees"], "origin"]) == {revised_at}  # kelly's size reads that close
    assert differ["differ"] == 1 and result.metrics["orders"]["sign"]["decisions"]["differ"] == 0
    assert orders.loc[orders["origin"] == revised_at, "revised"].all()


def test_an_archive_from_before_the_index_gets_one_line_on_what_to_do(tmp_path: Path) -> None:
    folder = tmp_path / "out" / "forecast" / "AAA"
    folder.mkdir(parents=True)
    (folder / "2024-08-30T000000Z.parquet").write_bytes(b"old")
    (folder / "latest.parquet").write_bytes(b"old")
    result = CliRunner().invoke(
        app, ["track", "AAA", "--data-dir", str(tmp_path / "data"), "--output-dir", str(tmp_path / "out")]
    )
    assert result.exit_code == 1
    assert result.stderr.count("error:") == 1
    line = result.stderr.strip().splitlines()[-1]  # after the progress bar
    assert line.startswith("error:") and "layout before the index" in line and "mv " in line


def test_fail_on_drift_exits_4_with_one_line_and_json_lists_the_drift(
    tmp_path: Path, bars: pd.DataFrame, engine: Chronos2Engine, tiny_model_dir: Path
) -> None:
    data, out = _grow(tmp_path, bars, engine, range(150, 170))
    backtest = CliRunner().invoke(
        app,
        ["backtest", "AAA", "--horizon", str(HORIZON), "--context", "64", "--windows", "12", "--stride", "1",
         "--dependence", "independent", "--calibrate", "none", "--model", str(tiny_model_dir),
         "--device", "cpu", "--compile", "off", "--data-dir", str(data), "--output-dir", str(out), "-q"],
    )  # fmt: skip
    assert backtest.exit_code == 0, backtest.output
    base = ["track", "--data-dir", str(data), "--output-dir", str(out)]
    ok = CliRunner().invoke(app, [*base, "--json", "--fail-on-drift"])
    assert ok.exit_code == 0, ok.output
    drift = json.loads(ok.stdout)["results"][0]["drift"]
    assert set(drift) == {"open", "high", "low", "close"} and drift["close"]["n_backtest"] >= 3
    # identical losses never beat alpha 0.01; at alpha 0.99 "worse" is whatever the rank test says
    loose = CliRunner().invoke(app, [*base, "--fail-on-drift", "--drift-alpha", "0.99", "-q"])
    worse = any(row["p_value"] < 0.99 for row in drift.values())
    assert loose.exit_code == (4 if worse else 0)
    if worse:
        assert loose.stderr.count("\n") == 1 and "live forecasts worse than their backtest" in loose.stderr


def test_the_drift_test_calls_clearly_worse_live_losses_significant() -> None:
    rng = np.random.default_rng(0)

    def scores(n: int, noise: float) -> WindowScores:
        actual = 100 + rng.normal(size=(n, 1, 2))
        median = actual + rng.normal(scale=noise, size=actual.shape)
        quantiles = np.stack([median - 1, median, median + 1], axis=2)
        return WindowScores(np.arange(n) * 2, actual, quantiles, (0.1, 0.5, 0.9), np.ones((n, 1)))

    block = drift_block(scores(40, 3.0), scores(80, 0.5), targets=("close",), horizon=2, alpha=0.01)
    row = block["close"]
    assert row["worse"] and row["p_value"] < 1e-6 and row["live_mase"] > row["backtest_mase"]
    assert (row["n_live"], row["n_backtest"]) == (40, 80)
    assert list(spaced(np.arange(10), 4)) == [1, 5, 9]


def test_a_rerun_reads_only_the_forecasts_not_yet_complete(
    tmp_path: Path, bars: pd.DataFrame, engine: Chronos2Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, out = _grow(tmp_path, bars, engine, range(150, 160))
    _track(data, out)
    read: list[str] = []
    original = track_ledger.archived_rows

    def counting(folder: Path, entry: Any, shape: Any) -> pd.DataFrame:
        read.append(entry["file"])
        return original(folder, entry, shape)

    monkeypatch.setattr("chronobt.runs.track.archived_rows", counting)
    bars.iloc[:160].to_parquet(data / "AAA.parquet", index=False)
    _track(data, out)
    assert len(read) == HORIZON  # the forecasts that were pending; the complete ones kept from the ledger
