"""`--preaug auto` checks that the sweep's choice still applies and scores only windows after its span."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from chronobt.cli import app
from chronobt.config import BacktestConfig, ForecastConfig, SweepConfig
from chronobt.engine.core import Chronos2Engine, EngineConfig
from chronobt.runs.backtest import run_backtest
from chronobt.runs.forecast import run_forecast
from chronobt.runs.sweep import run_sweep
from tests.synthetic import ohlc_frame

SWEPT_BARS = 300
CHOICE = "differencing"


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> Chronos2Engine:
    return Chronos2Engine(EngineConfig(model=str(tiny_model_dir), device="cpu", compile="off"))


def write_bars(data_dir: Path, frame: pd.DataFrame, symbol: str = "AAA") -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / f"{symbol}.parquet"
    frame.reset_index(drop=True).to_parquet(path, index=False)
    return path


@pytest.fixture()
def swept(tmp_path: Path, engine: Chronos2Engine) -> tuple[Path, Path]:
    """(data dir, output dir) after a sweep of AAA's first 300 bars; the choice forced to differencing."""
    data, out = tmp_path / "data", tmp_path / "out"
    write_bars(data, ohlc_frame(SWEPT_BARS, seed=1))
    config = SweepConfig(
        symbols=("AAA",),
        preaugs=(CHOICE,),
        horizon=8,
        context=128,
        validation_windows=4,
        test_windows=3,
        data_dir=data,
        output_dir=out,
    )
    run_sweep(config, engine=engine)
    best = out / "sweep" / "best" / "AAA.json"
    payload = json.loads(best.read_text())
    best.write_text(json.dumps({**payload, "best_preaug": CHOICE}))  # a known choice, whatever won
    return data, out


def backtest(data: Path, out: Path, engine: Chronos2Engine, **kw: Any) -> Any:
    options: dict[str, Any] = dict(
        symbols=("AAA",), preaug="auto", horizon=8, context=128, windows=100, data_dir=data, output_dir=out
    )
    options.update(kw)
    return run_backtest(BacktestConfig(**options), engine=engine)


def stale_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "other conditions" in r.getMessage()
    ]


def test_auto_with_bars_appended_after_the_sweep_uses_the_choice_without_warning(
    swept: tuple[Path, Path], engine: Chronos2Engine, caplog: pytest.LogCaptureFixture
) -> None:
    data, out = swept
    write_bars(data, ohlc_frame(SWEPT_BARS + 40, seed=1))  # the same 300 bars, 40 more after them
    report = backtest(data, out, engine)
    (result,) = report.results
    assert result.preaug == CHOICE and stale_warnings(caplog) == []
    assert result.summary["auto"]["differences"] == []


@pytest.mark.parametrize(
    ("frame", "needle"),
    [
        (ohlc_frame(SWEPT_BARS, seed=9), "changed"),  # replaced: same timestamps, other prices
        (ohlc_frame(SWEPT_BARS, seed=1).iloc[:280], "truncated"),
        (ohlc_frame(SWEPT_BARS, seed=1).iloc[10:], "first bar"),
    ],
    ids=["replaced", "truncated", "cut-at-start"],
)
def test_auto_on_replaced_or_truncated_data_warns_once_naming_the_data(
    swept: tuple[Path, Path],
    engine: Chronos2Engine,
    caplog: pytest.LogCaptureFixture,
    frame: pd.DataFrame,
    needle: str,
) -> None:
    data, out = swept
    write_bars(data, frame)
    (result,) = backtest(data, out, engine, start="2022-01-05").results
    (line,) = stale_warnings(caplog)
    assert line.startswith("AAA:") and "data (" in line and needle in line and "\n" not in line
    assert result.preaug == CHOICE and result.summary["auto"]["differences"]


def test_auto_with_another_horizon_warns_naming_the_horizon(
    swept: tuple[Path, Path], engine: Chronos2Engine, caplog: pytest.LogCaptureFixture
) -> None:
    data, out = swept
    backtest(data, out, engine, horizon=6)
    (line,) = stale_warnings(caplog)
    assert "horizon 6 (the sweep's was 8)" in line and "data (" not in line


def test_forecast_with_auto_warns_when_the_data_was_replaced(
    swept: tuple[Path, Path], engine: Chronos2Engine, caplog: pytest.LogCaptureFixture
) -> None:
    data, out = swept
    write_bars(data, ohlc_frame(SWEPT_BARS, seed=9))
    config = ForecastConfig(
        symbols=("AAA",), preaug="auto", horizon=8, context=128, data_dir=data, output_dir=out
    )
    (result,) = run_forecast(config, engine=engine).results
    assert result.preaug == CHOICE
    (line,) = stale_warnings(caplog)
    assert "data (" in line


@pytest.mark.parametrize("command", ["backtest", "forecast"])
def test_strict_auto_makes_a_stale_choice_an_error_with_exit_1(
    swept: tuple[Path, Path], tiny_model_dir: Path, command: str
) -> None:
    data, out = swept
    write_bars(data, ohlc_frame(SWEPT_BARS, seed=1).iloc[:280])
    args = [command, "AAA", "--preaug", "auto", "--strict-auto", "--horizon", "8", "--context", "128"]
    engine_args = ["--model", str(tiny_model_dir), "--device", "cpu", "--compile", "off"]
    result = CliRunner().invoke(app, [*args, *engine_args, "--data-dir", str(data), "--output-dir", str(out)])
    assert result.exit_code == 1, result.output
    assert "truncated" in result.stderr and "--strict-auto" in result.stderr
    assert not (out / command).exists() or not any((out / command).rglob("*.json"))


def test_auto_backtest_starts_after_the_validation_span_unless_start_is_given(
    swept: tuple[Path, Path], engine: Chronos2Engine
) -> None:
    data, out = swept
    choice = json.loads((out / "sweep" / "best" / "AAA.json").read_text())
    index = pd.DatetimeIndex(ohlc_frame(SWEPT_BARS, seed=1)["timestamp"])
    last_val = index.get_loc(pd.Timestamp(choice["splits"]["validation"]["last_origin"]))
    first_val = index.get_loc(pd.Timestamp(choice["splits"]["validation"]["first_origin"]))

    (result,) = backtest(data, out, engine).results
    auto = result.summary["auto"]
    first_origin = index.get_loc(pd.Timestamp(result.summary["first_origin"]))
    assert first_origin >= last_val + 8  # no scored bar was one the choice was made on
    assert auto["windows_in_selection_span"] == 0 and auto["choice"] == CHOICE
    assert auto["selection_span"] == [index[first_val].isoformat(), index[last_val + 8].isoformat()]
    stored = json.loads((result.folder / "metrics.json").read_text())
    assert stored["auto"] == auto

    (early,) = backtest(data, out, engine, start=index[0].isoformat()).results
    assert index.get_loc(pd.Timestamp(early.summary["first_origin"])) < first_val
    assert early.summary["auto"]["windows_in_selection_span"] >= 4


def test_auto_with_a_path_argument_finds_the_choice_under_the_files_symbol(
    swept: tuple[Path, Path], engine: Chronos2Engine, caplog: pytest.LogCaptureFixture
) -> None:
    data, out = swept
    (result,) = backtest(data, out, engine, symbols=(str(data / "AAA.parquet"),)).results
    assert result.symbol == "AAA" and result.preaug == CHOICE
    assert not any("no sweep result" in r.getMessage() for r in caplog.records)


def test_auto_backtest_has_its_own_folder_and_blames_the_span_for_fewer_windows(
    swept: tuple[Path, Path], engine: Chronos2Engine, caplog: pytest.LogCaptureFixture
) -> None:
    data, out = swept
    (explicit,) = backtest(data, out, engine, preaug=CHOICE).results
    assert explicit.folder == out / "backtest" / "AAA" / CHOICE
    written = (explicit.folder / "metrics.json").read_bytes()
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        (auto,) = backtest(data, out, engine).results
    assert auto.folder == out / "backtest" / "AAA" / "auto"
    assert (explicit.folder / "metrics.json").read_bytes() == written  # the explicit result is kept
    assert auto.summary["preaug"] == CHOICE and auto.summary["auto"]["choice"] == CHOICE
    assert auto.summary["windows"] < explicit.summary["windows"]
    (note,) = [r.getMessage() for r in caplog.records if "requested windows" in r.getMessage()]
    assert "--preaug auto's span" in note and "data holds" not in note
