"""Inverted price quantiles that leave the price domain are counted in metrics.json and warned about."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from chronobt.config import BacktestConfig, EvaluationOptions
from chronobt.data import load_ohlc
from chronobt.data.symbol_windows import SymbolWindows
from chronobt.evaluation.evaluate import EXPLODING_FACTOR, evaluate, inversion_checks, inversion_warning
from chronobt.pipeline.jobs import make_job, prepare_windows
from chronobt.pipeline.uncertainty import invert_job
from chronobt.runs.backtest import run_backtest
from tests.synthetic import ohlc_frame, write_symbol

HORIZON, CONTEXT, WINDOWS = 8, 128, 4
OPTIONS = EvaluationOptions(horizon=HORIZON, context=CONTEXT)
LEVELS = (0.1, 0.5, 0.9)
Z = (-1.2816, 0.0, 1.2816)  # standard-normal quantiles at LEVELS: a plain "no surprise" z-score forecast


def _write_flat(data_dir: Path, symbol: str = "FLAT", price: float = 2.40, n: int = 400) -> None:
    """A constant price series (an illiquid pair that never trades off one tick)."""
    frame = ohlc_frame(n)
    for col in ("open", "high", "low", "close"):
        frame[col] = price
    data_dir.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(data_dir / f"{symbol}.parquet", index=False)


def _windows(data_dir: Path, symbol: str) -> SymbolWindows:
    return prepare_windows(load_ohlc(symbol, data_dir), OPTIONS, windows=WINDOWS, context=CONTEXT)


def _raw(sw: SymbolWindows) -> np.ndarray:
    """Model quantiles [w, v, 3, h]: the z-scores Z at every step."""
    shape = (len(sw.origins), len(sw.targets), len(LEVELS), HORIZON)
    return np.broadcast_to(np.array(Z)[None, None, :, None], shape).copy()


def test_non_positive_and_exploding_quantiles_are_counted_per_target(tmp_path: Path) -> None:
    write_symbol(tmp_path / "data", "AAA", 400)
    sw = _windows(tmp_path / "data", "AAA")
    price_q = np.repeat(sw.last[:, :, None, None], len(OPTIONS.quantiles), axis=2)
    price_q = np.repeat(price_q, HORIZON, axis=3)  # [w, v, Q, h]: the last price, positive and tame
    assert inversion_checks(sw, price_q) == {t: {"non_positive": 0, "exploding": 0} for t in sw.targets}
    close, high = sw.targets.index("close"), sw.targets.index("high")
    price_q[0, close, 0, :3] = -18.8  # three negative lower quantiles
    price_q[1, close, 0, 0] = 0.0  # zero is not a price either
    price_q[2, high, -1, 0] = np.inf  # non-finite
    price_q[2, high, -1, 1] = np.nan
    largest = np.nanmax(np.abs(sw.contexts[3, high]))
    price_q[3, high, -1, 2] = EXPLODING_FACTOR * largest * 1.01  # just beyond the rule
    price_q[3, high, -1, 3] = EXPLODING_FACTOR * largest * 0.99  # just inside it
    counts = inversion_checks(sw, price_q)
    assert counts["close"] == {"non_positive": 4, "exploding": 0}
    assert counts["high"] == {"non_positive": 0, "exploding": 3}
    assert counts["open"] == counts["low"] == {"non_positive": 0, "exploding": 0}


def test_rolling_norm_on_a_constant_context_inverts_to_negative_prices_that_are_counted(
    tmp_path: Path,
) -> None:
    _write_flat(tmp_path / "data")
    sw = _windows(tmp_path / "data", "FLAT")
    job = make_job(sw, "rolling_norm:window=48")
    job.raw_quantiles = _raw(sw)
    price_q = invert_job(job, LEVELS, OPTIONS).price_q
    assert (price_q < 0).any()  # the zero-scale fallback (|last price|) times a -1.28 z-score
    ev = evaluate(sw, price_q, OPTIONS)
    assert (
        ev.inversion["close"]["non_positive"] == int((price_q[:, sw.targets.index("close")] <= 0).sum()) > 0
    )


def test_the_warning_names_the_counts_and_suggests_another_preaug_or_dependence() -> None:
    counts = {"open": {"non_positive": 0, "exploding": 0}, "close": {"non_positive": 88, "exploding": 2}}
    line = inversion_warning("XRPUSDT", "rolling_norm:window=48", counts, path_dependent=True)
    assert line is not None and "\n" not in line
    assert line.startswith("XRPUSDT: --preaug rolling_norm:window=48 ")
    assert "close: 88 non-positive, 2 exploding" in line and "open" not in line
    assert "another --preaug or --dependence comonotonic" in line
    pointwise = inversion_warning("X", "none", counts, path_dependent=False)
    assert pointwise is not None and "--dependence" not in pointwise
    clean = {"close": {"non_positive": 0, "exploding": 0}}
    assert inversion_warning("X", "none", clean, path_dependent=False) is None


class _ZScoreEngine:
    """Stands in for Chronos2Engine: forecasts the z-scores Z for every window and step."""

    def __init__(self) -> None:
        self.quantile_levels = list(LEVELS)
        self.max_context = 512
        self.device = "cpu"
        self.model_info: dict[str, Any] = {"id": "z-score-stub", "checksum": "0"}

    def predict(self, contexts: np.ndarray, horizon: int, progress: Any = None) -> np.ndarray:
        shape = (contexts.shape[0], contexts.shape[1], len(LEVELS), horizon)
        return np.broadcast_to(np.array(Z)[None, None, :, None], shape).astype(np.float32)

    def record(self) -> dict[str, Any]:
        return {"device": "cpu", "dtype": "float32", "compile": None}


def test_backtest_counts_out_of_domain_inverses_and_warns_once_for_that_symbol(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_symbol(tmp_path / "data", "AAA", 400)  # a random walk: rolling z-scores invert to tame prices
    _write_flat(tmp_path / "data")
    config = BacktestConfig(
        symbols=("AAA", "FLAT"),
        horizon=HORIZON,
        context=CONTEXT,
        windows=WINDOWS,
        data_dir=tmp_path / "data",
        output_dir=tmp_path / "out",
        preaug="rolling_norm:window=48",
    )
    with caplog.at_level(logging.WARNING, logger="chronobt.runs.backtest"):
        report = run_backtest(config, engine=_ZScoreEngine())  # type: ignore[arg-type]
    assert not report.failures
    lines = [r.getMessage() for r in caplog.records if r.name == "chronobt.runs.backtest"]
    assert len(lines) == 1 and lines[0].startswith("FLAT: --preaug rolling_norm:window=48 ")

    def metrics(symbol: str) -> dict[str, Any]:
        folder = tmp_path / "out" / "backtest" / symbol / "rolling_norm_window=48"
        return json.loads((folder / "metrics.json").read_text())

    fc = pd.read_parquet(
        tmp_path / "out" / "backtest" / "FLAT" / "rolling_norm_window=48" / "forecasts.parquet"
    )
    flat = metrics("FLAT")["inversion"]
    levels = [str(q) for q in config.quantiles]
    assert (
        flat["close"]["non_positive"] == int((fc.loc[fc["target"] == "close", levels] <= 0).sum().sum()) > 0
    )
    assert set(flat) == {"open", "high", "low", "close"}
    assert metrics("AAA")["inversion"] == {t: {"non_positive": 0, "exploding": 0} for t in flat}
