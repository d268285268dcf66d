"""Bars missing from a 24/7 file are forward-filled at load; they are never scored nor traded at."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from chronobt.augment import AVAILABLE_AUGMENTATIONS
from chronobt.config import BacktestConfig, EvaluationOptions
from chronobt.data import load_ohlc
from chronobt.data.symbol_windows import SymbolWindows
from chronobt.engine.core import Chronos2Engine, EngineConfig
from chronobt.errors import DataError
from chronobt.evaluation.evaluate import evaluate, score_reference
from chronobt.evaluation.metrics import naive_scale
from chronobt.pipeline.jobs import make_job, prepare_windows
from chronobt.runs.backtest import run_backtest
from tests.synthetic import ohlc_frame

N, HORIZON, CONTEXT, WINDOWS = 400, 8, 128, 6
# Origins 351, 359, ..., 391 (stride = horizon); window k forecasts bars origin+1 .. origin+8.
HORIZON_GAP = np.arange(360, 368)  # the whole horizon of the window at origin 359 (and origin 367 itself)
PARTIAL_GAP = np.arange(378, 381)  # three bars of the horizon of the window at origin 375
CONTEXT_GAP = np.arange(300, 311)  # inside every window's context
GAPS = np.concatenate([CONTEXT_GAP, HORIZON_GAP, PARTIAL_GAP])
OPTIONS = EvaluationOptions(horizon=HORIZON, context=CONTEXT)


def _write_gappy(data_dir: Path, symbol: str = "GAP") -> pd.DataFrame:
    """An hourly random walk with the GAPS rows deleted; returns the complete frame (indexed by time)."""
    full = ohlc_frame(N)
    data_dir.mkdir(parents=True, exist_ok=True)
    full.drop(index=GAPS).to_parquet(data_dir / f"{symbol}.parquet", index=False)
    return full.set_index("timestamp")


@pytest.fixture
def gappy(tmp_path: Path) -> tuple[Path, pd.DataFrame]:
    return tmp_path / "data", _write_gappy(tmp_path / "data")


def _windows(data_dir: Path) -> SymbolWindows:
    return prepare_windows(load_ohlc("GAP", data_dir), OPTIONS, windows=WINDOWS, context=CONTEXT)


def test_loading_marks_exactly_the_forward_filled_bars(gappy: tuple[Path, pd.DataFrame]) -> None:
    ohlc = load_ohlc("GAP", gappy[0])
    assert len(ohlc) == N
    assert np.flatnonzero(ohlc.filled).tolist() == sorted(GAPS.tolist())
    assert ohlc.values().shape == (N, 4)  # the marks are not a price column
    assert "filled" not in ohlc.summary()["columns"]


def test_a_series_without_gaps_has_no_filled_bars(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    ohlc_frame(N).to_parquet(tmp_path / "data" / "FULL.parquet", index=False)
    ohlc = load_ohlc("FULL", tmp_path / "data")
    assert ohlc.filled.shape == (N,) and not ohlc.filled.any()


def test_a_window_whose_horizon_is_entirely_filled_is_dropped_with_one_warning(
    gappy: tuple[Path, pd.DataFrame], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="chronobt.pipeline.jobs"):
        sw = _windows(gappy[0])
    assert sw.origins.tolist() == [351, 367, 375, 383, 391]
    assert sw.windows_dropped == 1
    lines = [r.getMessage() for r in caplog.records if r.name == "chronobt.pipeline.jobs"]
    assert len(lines) == 1 and "1 of 6 windows dropped" in lines[0] and "forward-filled" in lines[0]


def test_filled_future_bars_are_missing_actuals_and_real_ones_are_the_file_values(
    gappy: tuple[Path, pd.DataFrame],
) -> None:
    sw = _windows(gappy[0])
    steps = sw.origins[:, None] + np.arange(1, HORIZON + 1)  # [w, h] bar index of each future bar
    filled = np.isin(steps, GAPS)
    assert filled.sum() == 3 and (sw.future_filled == filled).all()
    assert np.isnan(sw.futures[filled[:, None, :].repeat(4, axis=1)]).all()
    raw = gappy[1].iloc[:, :4].to_numpy()  # open, high, low, close of the complete series
    real = ~filled
    np.testing.assert_array_equal(sw.futures.transpose(0, 2, 1)[real], raw[steps[real]])


def test_more_than_max_gap_missing_bars_is_still_an_error(gappy: tuple[Path, pd.DataFrame]) -> None:
    with pytest.raises(DataError, match="exceeds --max-gap 10"):
        load_ohlc("GAP", gappy[0], max_gap=10)


def test_every_window_dropped_is_a_data_error_naming_the_file(gappy: tuple[Path, pd.DataFrame]) -> None:
    ohlc = load_ohlc("GAP", gappy[0])
    end = str(gappy[1].index[359])  # one window, at origin 359: its horizon is the 8-bar gap
    with pytest.raises(DataError, match=r"GAP\.parquet: every window's 8-bar horizon lies in forward-filled"):
        prepare_windows(ohlc, OPTIONS, windows=1, context=CONTEXT, end=end)


@pytest.mark.parametrize("preaug", sorted(AVAILABLE_AUGMENTATIONS))
def test_filled_context_bars_are_missing_values_in_the_model_input(
    gappy: tuple[Path, pd.DataFrame], preaug: str
) -> None:
    sw = _windows(gappy[0])
    spec = "rolling_norm:window=8" if preaug == "rolling_norm" else preaug
    job = make_job(sw, spec)
    mask = sw.context_filled  # [w, time]
    assert mask.sum() == _filled_in_contexts(sw.origins)
    # origin 367 is the last bar of the 8-bar horizon gap: that trailing run stays flat (the anchor)
    trailing = np.zeros_like(mask)
    trailing[sw.origins.tolist().index(367), -8:] = True
    missing = mask & ~trailing
    assert np.isnan(job.model_input[np.broadcast_to(missing[:, None, :], job.model_input.shape)]).all()
    # every other bar is unchanged: the same transform as on the flat forward-filled context
    plain = job.augmentation.transform(sw.contexts, job.state)
    kept = np.broadcast_to(~missing[:, None, :], plain.shape)
    np.testing.assert_array_equal(job.model_input[kept], plain[kept])
    assert np.isfinite(job.model_input[:, :, -1]).all()


def _filled_in_contexts(origins: np.ndarray) -> int:
    """Filled bars summed over the contexts (the CONTEXT bars ending at each origin)."""
    return sum(int(np.isin(np.arange(o - CONTEXT + 1, o + 1), GAPS).sum()) for o in origins)


def _perfect_forecast(sw: SymbolWindows, full: pd.DataFrame, *, at_filled: float) -> np.ndarray:
    """Price quantiles [w, v, Q, h] equal to the true bars, ``at_filled`` at the filled ones."""
    steps = sw.origins[:, None] + np.arange(1, HORIZON + 1)
    truth = full.iloc[:, :4].to_numpy()[steps].transpose(0, 2, 1)  # [w, v, h]
    truth = np.where(sw.future_filled[:, None, :], at_filled, truth)
    return np.repeat(truth[:, :, None, :], len(OPTIONS.quantiles), axis=2)


def test_filled_bars_never_count_as_actuals_in_the_model_or_baseline_metrics(
    gappy: tuple[Path, pd.DataFrame],
) -> None:
    sw = _windows(gappy[0])
    price_q = _perfect_forecast(sw, gappy[1], at_filled=1e6)
    lowest = price_q[:, :, 0, :]  # the 0.1 quantile: a 1e6-wide interval at the filled bars
    lowest[np.broadcast_to(sw.future_filled[:, None, :], lowest.shape)] = 0.0
    ev = evaluate(sw, price_q, OPTIONS)
    for target in sw.targets:
        assert ev.metrics[target]["mae"] == 0.0 and ev.metrics[target]["coverage_80"] == 1.0
        assert ev.metrics[target]["width_80"] == 0.0  # the filled bars' interval is not scored
    # the naive baseline (last context price) is scored on the 5 * 8 - 3 real future bars only
    close = sw.targets.index("close")
    errors = np.abs(sw.futures[:, close, :] - sw.last[:, close, None])
    assert np.isnan(errors).sum() == 3
    assert ev.baselines["naive"]["close"]["mae"] == pytest.approx(np.nanmean(errors))
    # the MASE scale is the in-context naive error over real bars (filled bars would add zeros)
    scale = score_reference(sw, OPTIONS.quantiles, horizon=HORIZON).scale
    assert (scale > naive_scale(sw.contexts)).all()


def test_a_window_whose_entry_or_exit_bar_is_filled_is_not_traded(gappy: tuple[Path, pd.DataFrame]) -> None:
    sw = _windows(gappy[0])
    price_q = _perfect_forecast(sw, gappy[1], at_filled=np.nan)
    price_q[:] = sw.last[:, :, None, None] * 1.5  # a 50% rise forecast everywhere: go long if allowed
    ev = evaluate(sw, price_q, replace(OPTIONS, entry="close"))
    assert ev.trading is not None and ev.trades is not None
    # origin 367 is a filled bar (entry); origin 375 exits at 383, real; its horizon gap is inside
    traded = pd.DatetimeIndex(ev.trades["origin"])
    assert traded.tolist() == list(sw.origin_times[[0, 2, 3, 4]])
    sign = ev.trading["sign"]
    assert sign["n_trades"] == 4 and sign["untradable"] == 1
    assert sign["windows_used"] == 5
    # entering at the next bar's open, origin 367's entry bar 368 is real: all five windows trade
    ev = evaluate(sw, price_q, OPTIONS)
    assert ev.trading is not None and ev.trading["sign"]["n_trades"] == 5
    assert ev.trading["sign"]["untradable"] == 0


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> Chronos2Engine:
    return Chronos2Engine(EngineConfig(model=str(tiny_model_dir), device="cpu", compile="off"))


def test_backtest_marks_filled_bars_in_forecasts_and_counts_them_in_metrics(
    tmp_path: Path, engine: Chronos2Engine
) -> None:
    data_dir, full = tmp_path / "data", _write_gappy(tmp_path / "data")
    config = BacktestConfig(
        symbols=("GAP",),
        horizon=HORIZON,
        context=CONTEXT,
        windows=WINDOWS,
        data_dir=data_dir,
        output_dir=tmp_path / "out",
        preaug="differencing",
    )
    report = run_backtest(config, engine=engine)
    assert not report.failures
    folder = tmp_path / "out" / "backtest" / "GAP" / "differencing"
    fc = pd.read_parquet(folder / "forecasts.parquet")
    assert len(fc) == 5 * HORIZON * 4
    filled_times = set(full.index[GAPS])
    assert (fc["filled"] == fc["timestamp"].isin(filled_times)).all()
    assert fc["filled"].sum() == 3 * 4
    assert fc.loc[fc["filled"], "actual"].isna().all() and fc.loc[~fc["filled"], "actual"].notna().all()
    assert np.isfinite(fc["median"]).all()  # the model still forecasts the filled bars
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["windows"] == 5
    assert metrics["filled"] == {
        "actual_bars": 3,
        "context_bars": _filled_in_contexts(np.array([351, 367, 375, 383, 391])),
        "windows_dropped": 1,
    }
    assert metrics["trading"]["sign"]["untradable"] == 0  # next-open: origin 367's entry bar 368 is real
