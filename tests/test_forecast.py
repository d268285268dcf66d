"""`chronobt forecast`: files, future timestamps, context = the latest bars."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from chronobt.cli import app
from chronobt.config import ForecastConfig
from chronobt.engine.core import Chronos2Engine, EngineConfig
from chronobt.runs.forecast import run_forecast
from tests.synthetic import ohlc_frame, write_symbol
from tests.test_sweep import own_output

QUANTILE_COLS = ["0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9"]


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> Chronos2Engine:
    return Chronos2Engine(EngineConfig(model=str(tiny_model_dir), device="cpu", compile="off"))


def _cli(model: Path, data_dir: Path, out: Path, *args: str) -> Any:
    opts = [
        "--horizon",
        "8",
        "--context",
        "128",
        "--model",
        str(model),
        "--device",
        "cpu",
        "--compile",
        "off",
    ]
    return CliRunner().invoke(
        app, ["forecast", *args, *opts, "--data-dir", str(data_dir), "--output-dir", str(out)]
    )


def test_forecast_writes_history_latest_parquet_and_json(tmp_path: Path, tiny_model_dir: Path) -> None:
    write_symbol(tmp_path / "data", "AAA", 300)
    out = tmp_path / "out"
    result = _cli(tiny_model_dir, tmp_path / "data", out, "AAA", "--preaug", "differencing")
    assert result.exit_code == 0, result.output
    assert "close" in result.stdout  # the table of the close forecast

    raw = ohlc_frame(300)
    last = raw["timestamp"].iloc[-1]
    folder = out / "forecast" / "AAA"
    archived = f"differencing/{last.strftime('%Y-%m-%dT%H%M%SZ')}.parquet"
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == [
        archived,
        "index.jsonl",
        "latest.json",
        "latest.parquet",
    ]
    frame = pd.read_parquet(folder / "latest.parquet")
    history = pd.read_parquet(folder / archived)
    pd.testing.assert_frame_equal(frame, history)
    assert {"symbol", "timestamp", "step", "target", "median", *QUANTILE_COLS, "preaug", "model"} <= set(
        frame
    )
    assert len(frame) == 8 * 4
    assert set(frame["preaug"]) == {"differencing"} and set(frame["symbol"]) == {"AAA"}
    assert (frame["median"] == frame["0.5"]).all()
    assert (np.diff(frame[QUANTILE_COLS].to_numpy(), axis=1) >= -1e-9).all()
    # hourly 24/7 data continues hourly after the last bar
    close = frame[frame["target"] == "close"].sort_values("step")
    expected = pd.date_range(last + pd.Timedelta(hours=1), periods=8, freq="h")
    assert list(close["timestamp"]) == list(expected)

    payload = json.loads((folder / "latest.json").read_text())
    assert payload["last_bar"]["timestamp"] == last.isoformat()
    assert payload["last_bar"]["close"] == pytest.approx(raw["close"].iloc[-1])
    assert payload["model"]["checksum"] and payload["engine"]["device"] == "cpu"
    assert "versions" in payload and payload["file"].endswith(".parquet")
    assert len(payload["forecast"]) == len(frame)
    assert payload["forecast"][0]["median"] == pytest.approx(frame["median"].iloc[0])


def test_daily_stock_forecast_skips_weekends(tmp_path: Path, engine: Chronos2Engine) -> None:
    data = tmp_path / "data"
    data.mkdir()
    frame = ohlc_frame(300, freq="B", start="2022-01-03")
    frame.to_parquet(data / "STK.parquet", index=False)
    assert frame["timestamp"].iloc[-1].day_of_week == 4  # the series ends on a Friday
    cfg = ForecastConfig(symbols=("STK",), horizon=8, context=128, data_dir=data, output_dir=tmp_path / "out")
    report = run_forecast(cfg, engine=engine)
    assert not report.failures
    stamps = pd.DatetimeIndex(sorted(set(report.results[0].frame["timestamp"])))
    assert len(stamps) == 8
    assert (stamps.day_of_week < 5).all()
    assert stamps[0] == frame["timestamp"].iloc[-1] + pd.Timedelta(days=3)  # Friday -> Monday
    assert list(stamps) == list(pd.bdate_range(stamps[0], periods=8, tz="UTC"))


def test_forecast_uses_only_the_latest_context_bars(tmp_path: Path, engine: Chronos2Engine) -> None:
    data = tmp_path / "data"
    data.mkdir()
    base = ohlc_frame(300)
    base.to_parquet(data / "AAA.parquet", index=False)
    cfg = ForecastConfig(
        symbols=("AAA",), horizon=8, context=128, data_dir=data, output_dir=tmp_path / "out", calibrate="none"
    )  # the model's forecast alone: calibration learns from resolved windows before the context, by design
    first = run_forecast(cfg, engine=engine).results[0].frame

    old = base.copy()
    old.loc[50, ["open", "high", "low", "close"]] *= 1.5  # before the latest 128 bars
    old.to_parquet(data / "AAA.parquet", index=False)
    unchanged = run_forecast(cfg, engine=engine).results[0].frame
    pd.testing.assert_frame_equal(unchanged[QUANTILE_COLS], first[QUANTILE_COLS])

    recent = base.copy()
    recent.loc[299, ["high", "close"]] *= 1.2  # the last bar
    recent.to_parquet(data / "AAA.parquet", index=False)
    moved = run_forecast(cfg, engine=engine).results[0].frame
    assert not np.allclose(moved["median"], first["median"])


def test_forecast_quiet_prints_nothing_and_json_prints_the_forecast(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    write_symbol(tmp_path / "data", "AAA", 300)
    quiet = _cli(tiny_model_dir, tmp_path / "data", tmp_path / "out", "AAA", "--quiet")
    assert quiet.exit_code == 0 and quiet.stdout == "" and own_output(quiet.stderr) == ""
    as_json = _cli(tiny_model_dir, tmp_path / "data", tmp_path / "out", "AAA", "--json", "--quiet")
    assert as_json.exit_code == 0
    result = json.loads(as_json.stdout)["results"][0]
    assert result["symbol"] == "AAA" and len(result["forecast"]) == 8 * 4


def test_a_failing_symbol_exits_3_and_the_others_are_written(tmp_path: Path, tiny_model_dir: Path) -> None:
    write_symbol(tmp_path / "data", "AAA", 300)
    write_symbol(tmp_path / "data", "TINY", 20)
    result = _cli(tiny_model_dir, tmp_path / "data", tmp_path / "out", "AAA", "TINY")
    assert result.exit_code == 3, result.output
    assert "TINY" in result.stderr
    assert (tmp_path / "out" / "forecast" / "AAA" / "latest.json").is_file()
    assert not (tmp_path / "out" / "forecast" / "TINY").exists()
