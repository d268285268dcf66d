"""The typed values runs pass around: run labels, the backtest summary, the selection start, executors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from chronobt.config import BacktestConfig
from chronobt.data import load_ohlc
from chronobt.engine.core import Chronos2Engine, EngineConfig
from chronobt.pipeline.covariates import RunLabel
from chronobt.runs.backtest import run_backtest
from chronobt.runs.choice import ResolvedPreaug
from chronobt.runs.chunks import BacktestBatch
from chronobt.runs.executors import LocalExecutor, runs_in_process
from chronobt.runs.summary import BacktestSummary
from tests.synthetic import write_symbol


@pytest.mark.parametrize(
    "text",
    [
        "none",
        "differencing+volume+calendar",
        "rolling_norm:window=20+BTCUSD+finetune-lora",
        "none+finetune-full",
    ],
)
def test_run_label_prints_what_it_parses(text: str) -> None:
    assert str(RunLabel.parse(text)) == text


def test_run_label_fields_and_variants() -> None:
    label = RunLabel("robust_scaling", ("volume",), "full")
    assert str(label) == "robust_scaling+volume+finetune-full"
    assert (
        str(label.zero_shot()) == "robust_scaling+volume"
        and label.zero_shot().tuned("lora").finetune == "lora"
    )
    assert str(label.equivalent()) == "none+volume+finetune-full"
    assert RunLabel("differencing").equivalent() is None


def test_start_after_selection_is_the_bar_after_the_span_or_the_end(tmp_path: Path) -> None:
    write_symbol(tmp_path, "AAA", 100)
    ohlc = load_ohlc("AAA", tmp_path)
    index = ohlc.frame.index

    def resolved(first: int, last: int) -> ResolvedPreaug:
        part = {"first_origin": index[first].isoformat(), "last_origin": index[last].isoformat()}
        choice = {"splits": {"validation": part}, "config": {"horizon": 8}}
        return ResolvedPreaug(spec="none", choice=choice)

    assert resolved(50, 60).start_after_selection(ohlc) == 68
    assert resolved(50, 95).start_after_selection(ohlc) == len(index)  # the span reaches past the data
    assert ResolvedPreaug(spec="none").start_after_selection(ohlc) is None


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> Chronos2Engine:
    return Chronos2Engine(EngineConfig(model=str(tiny_model_dir), device="cpu", compile="off"))


class _Recording:
    """An in-process executor that records the chunks it is given."""

    in_process = True

    def __init__(self, engine: Chronos2Engine) -> None:
        self.local = LocalExecutor(engine)
        self.chunks: list[Any] = []

    def map(self, fn: Any, chunks: Any, **kwargs: Any) -> Any:
        self.chunks.extend(chunks)
        return self.local.map(fn, chunks, **kwargs)

    def close(self) -> None:
        pass


def test_local_backtest_sends_every_symbol_as_one_batch_through_the_executor_and_writes_its_summary(
    tmp_path: Path, engine: Chronos2Engine
) -> None:
    for symbol in ("AAA", "BBB"):
        write_symbol(tmp_path / "data", symbol, 300)
    config = BacktestConfig(
        symbols=("AAA", "BBB"),
        preaug="differencing",
        horizon=6,
        context=64,
        windows=4,
        data_dir=tmp_path / "data",
        output_dir=tmp_path / "out",
    )
    executor = _Recording(engine)
    report = run_backtest(config, engine=engine, executor=executor)
    assert not report.failures and runs_in_process(executor) and LocalExecutor.in_process
    assert len(executor.chunks) == 1 and isinstance(executor.chunks[0], BacktestBatch)
    assert [j.windows.symbol for j in executor.chunks[0].jobs] == ["AAA", "BBB"]
    for result in report.results:
        text = (result.folder / "metrics.json").read_text()
        summary = result.summary
        assert json.loads(text) == summary.to_json() and list(json.loads(text)) == list(summary)  # key order
        assert BacktestSummary.from_json(json.loads(text)) == summary
        assert summary["windows"] == summary.windows == 4 and summary.run == "differencing"
        assert pd.Timestamp(summary.first_origin) < pd.Timestamp(summary.last_origin)
        assert summary.auto is None and "auto" not in summary and summary.versus_zero_shot is None


def test_summary_from_a_partial_file_has_empty_fields() -> None:
    summary = BacktestSummary.from_json({"symbol": "AAA", "preaug": "none", "windows": 3})
    assert (summary.symbol, summary.run, summary.windows, summary.metrics, summary.trading) == (
        "AAA",
        "none",
        3,
        {},
        None,
    )
