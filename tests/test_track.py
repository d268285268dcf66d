"""`chronobt track` against a backtest: cron simulated on real bars, one bar appended per run.

The data file grows by one real hourly bar of ``data/BTCUSD.parquet`` at a time (30 appends); after each
append ``forecast`` runs for two labels (``none``: pointwise; ``differencing``: path-sampled), then
``track``. With ``--dependence independent``, ``--calibrate none`` and the same seed, the ledger's
forecasts and every score in the track's ``metrics.json`` equal a stride-1 ``backtest`` of the full data
over the same origins: a forecast written before its outcome existed scores as the backtest did, so the
backtest saw no future.

Each forecast also records ``--strategy sign,band,range`` orders: deciding again from its archived
quantiles gives exactly those orders, every complete forecast's orders are filled as the backtest's fill
function fills them on the same bars (``orders.parquet``), and on the backtest's decision grid they equal
the backtest's trades (to the forecasts' float32 rounding, rtol 1e-6).

Tolerances. Pointwise (``none``): every quantile is the exact inverse of the model's, so forecasts agree
to float32 rounding of the model's output (rtol 1e-6); the scores, summed in another order, to 1e-9
relative. Path-sampled (``differencing``): quantiles are read from ``--paths`` sample paths; each quantile
estimate has a Monte Carlo standard error of about 1% of the 80% interval's width at 4096 paths (the
README's figure; sqrt(p(1-p)/P)/density, largest at the 0.1/0.9 levels). Two independent estimates
differ by sqrt(2) of that, so we allow 8% of the step's 80% width per quantile (over 5 standard errors
for the largest of the ~2,000 values compared) and 5% relative on MASE and WQL. Today the independent
draws are one seeded set shared by every window, so the two agree exactly; the tolerance is the contract
a change of draw layout may use.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from chronobt.config import BacktestConfig, ForecastConfig, TrackConfig
from chronobt.engine.core import Chronos2Engine, EngineConfig
from chronobt.runs.backtest import run_backtest
from chronobt.runs.forecast import run_forecast
from chronobt.runs.track import run_track

REPO_DATA = Path(__file__).resolve().parents[1] / "data"
HORIZON, CONTEXT, FIRST, APPENDS = 3, 96, 200, 30
LEVELS = ["0.05", "0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9"]
STRATEGIES = ("sign", "band", "range")  # market orders at the next open, and range's limit orders
SCORES = ("metrics", "per_step", "baselines", "skill", "significance", "trading")


def _options(data: Path, out: Path) -> dict[str, Any]:
    return {
        "horizon": HORIZON,
        "context": CONTEXT,
        "targets": ("high", "low", "close"),
        "dependence": "independent",
        "calibrate": "none",  # explicit: the default may become a calibration
        "quantiles": tuple(float(q) for q in LEVELS),
        "strategies": STRATEGIES,  # forecast --strategy: each forecast records its orders
        "seed": 7,
        "data_dir": data,
        "output_dir": out,
    }


@pytest.fixture(scope="module")
def cron(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> dict[str, Any]:
    """Thirty cron runs (append a bar, forecast two labels with strategy orders, track), then a backtest
    per label with the same options."""
    root = tmp_path_factory.mktemp("cron")
    data, out = root / "data", root / "out"
    data.mkdir()
    bars = pd.read_parquet(REPO_DATA / "BTCUSD.parquet").iloc[: FIRST + APPENDS]
    engine = Chronos2Engine(EngineConfig(model=str(tiny_model_dir), device="cpu", compile="off"))
    opts = _options(data, out)
    for n in range(FIRST + 1, FIRST + APPENDS + 1):
        bars.iloc[:n].to_parquet(data / "BTCUSD.parquet", index=False)
        for preaug in ("none", "differencing"):
            report = run_forecast(ForecastConfig(symbols=("BTCUSD",), preaug=preaug, **opts), engine=engine)
            assert not report.failures
        tracked = run_track(TrackConfig(data_dir=data, output_dir=out, seed=7))
        assert not tracked.failures
    scored = APPENDS - HORIZON  # origins whose whole horizon has arrived
    backtests = {
        preaug: run_backtest(
            BacktestConfig(symbols=("BTCUSD",), preaug=preaug, windows=scored, stride=1, **opts),
            engine=engine,
        ).results[0]
        for preaug in ("none", "differencing")
    }
    return {
        "out": out,
        "data": data,
        "tracked": {r.label: r for r in tracked.results},
        "backtests": backtests,
    }


def _close(a: Any, b: Any, rtol: float, path: str = "") -> None:
    """Every number in ``a`` within ``rtol`` of ``b`` (nested dicts and lists; None and strings equal)."""
    if isinstance(a, dict):
        assert set(a) == set(b), path
        for k in a:
            _close(a[k], b[k], rtol, f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, rtol, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert a == pytest.approx(b, rel=rtol, abs=1e-12, nan_ok=True), path
    else:
        assert a == b, path


def _joined(cron: dict[str, Any], label: str) -> pd.DataFrame:
    ledger = pd.read_parquet(cron["tracked"][label].folder / "ledger.parquet")
    backtest = pd.read_parquet(cron["backtests"][label].folder / "forecasts.parquet")
    joined = ledger.merge(backtest, on=["origin", "step", "target"], suffixes=("", "_bt"))
    assert len(joined) == (APPENDS - HORIZON) * HORIZON * 3
    return joined


def test_a_pointwise_ledger_equals_the_backtest_over_the_same_origins(cron: dict[str, Any]) -> None:
    joined = _joined(cron, "none")
    for col in ["median", *LEVELS]:
        np.testing.assert_allclose(joined[col], joined[f"{col}_bt"], rtol=1e-6)
    np.testing.assert_array_equal(joined["actual"], joined["actual_bt"])
    assert joined["resolved"].all() and not joined["revised"].any()
    tracked = cron["tracked"]["none"].metrics
    summary = cron["backtests"]["none"].summary
    assert (tracked["windows"], tracked["first_origin"], tracked["last_origin"]) == (
        summary["windows"],
        summary["first_origin"],
        summary["last_origin"],
    )
    for key in SCORES:
        _close(tracked[key], summary[key], 1e-9, key)


def test_a_path_sampled_ledger_agrees_with_the_backtest_to_monte_carlo_tolerance(
    cron: dict[str, Any],
) -> None:
    joined = _joined(cron, "differencing")
    width = (joined["0.9_bt"] - joined["0.1_bt"]).to_numpy()
    for col in ["median", *LEVELS]:
        assert (np.abs(joined[col] - joined[f"{col}_bt"]).to_numpy() <= 0.08 * width + 1e-9).all(), col
    tracked = cron["tracked"]["differencing"].metrics["metrics"]
    summary = cron["backtests"]["differencing"].summary["metrics"]
    for target in ("high", "low", "close"):
        for name in ("mase", "wql"):
            assert tracked[target][name] == pytest.approx(summary[target][name], rel=0.05)


def test_the_ledger_has_a_row_per_forecast_step_and_target_with_pending_steps_unresolved(
    cron: dict[str, Any],
) -> None:
    ledger = pd.read_parquet(cron["tracked"]["none"].folder / "ledger.parquet")
    assert list(ledger.columns[:8]) == [
        "symbol", "label", "issued_at", "origin", "step", "timestamp", "target", "median",
    ]  # fmt: skip
    assert {*LEVELS, "actual", "resolved"} <= set(ledger.columns)
    assert len(ledger) == APPENDS * HORIZON * 3
    pending = ledger[~ledger["resolved"]]
    assert len(pending) == sum(range(1, HORIZON + 1)) * 3 and pending["actual"].isna().all()
    metrics = cron["tracked"]["none"].metrics
    assert metrics["forecasts"] == APPENDS and metrics["pending"] == HORIZON
    assert metrics["windows"] == APPENDS - HORIZON


def test_a_backtest_of_the_same_label_gives_a_drift_block_per_target(cron: dict[str, Any]) -> None:
    again = run_track(TrackConfig(data_dir=cron["data"], output_dir=cron["out"], seed=7))
    drift = {r.label: r.metrics["drift"] for r in again.results}
    for target, row in drift["none"].items():
        assert row["live_mase"] == pytest.approx(row["backtest_mase"]), target
        assert row["n_live"] == row["n_backtest"] == -(-(APPENDS - HORIZON) // HORIZON)
        assert 0.0 < row["p_value"] <= 1.0 and not row["worse"]
        assert row["test"].startswith("mann-whitney")


def test_a_rerun_with_nothing_new_leaves_every_file_byte_identical(cron: dict[str, Any]) -> None:
    config = TrackConfig(data_dir=cron["data"], output_dir=cron["out"], seed=7)
    run_track(config)  # the backtests now exist: the drift block is written once
    folders = [r.folder for r in cron["tracked"].values()]
    before = {p: p.read_bytes() for f in folders for p in f.iterdir()}
    report = run_track(config)
    assert not any(r.written for r in report.results)
    assert {p: p.read_bytes() for f in folders for p in f.iterdir()} == before
    assert json.loads((folders[0] / "manifest.json").read_text())["rows"] == APPENDS * HORIZON * 3


def test_the_report_of_a_track_folder_draws_bands_coverage_skill_and_both_loss_distributions(
    cron: dict[str, Any],
) -> None:
    from chronobt.report import write_report

    run_track(TrackConfig(data_dir=cron["data"], output_dir=cron["out"], seed=7))  # drift: backtest found
    page = write_report(cron["tracked"]["none"].folder).read_text()
    for text in (
        "one-step-ahead",
        "rolling 80% coverage",
        "cumulative skill",
        "per-window loss",
        "mann-whitney",
    ):
        assert text in page, text
    assert page.count("<svg") == 1 and ">backtest<" in page


def _entries(cron: dict[str, Any], label: str) -> list[dict[str, Any]]:
    from chronobt.runs.archive import read_index

    entries = [e for e in read_index(cron["out"] / "forecast" / "BTCUSD").entries if e["label"] == label]
    assert len(entries) == APPENDS and all(len(e["orders"]) == len(STRATEGIES) for e in entries)
    return entries


def _archived_quantiles(cron: dict[str, Any], entry: dict[str, Any]) -> np.ndarray:
    """``[1, v, Q, h]``: the archived file's quantiles, as the forecast decided on them."""
    frame = pd.read_parquet(cron["out"] / "forecast" / "BTCUSD" / entry["file"])
    q = np.full((1, len(entry["targets"]), len(LEVELS), HORIZON), np.nan)
    for v, target in enumerate(entry["targets"]):
        rows = frame[frame["target"] == target].sort_values("step")
        for k, level in enumerate(LEVELS):
            q[0, v, k] = rows[level].to_numpy(dtype=np.float64)
    return q


@pytest.mark.parametrize("label", ["none", "differencing"])
def test_deciding_again_from_every_archived_forecast_gives_exactly_its_recorded_orders(
    cron: dict[str, Any], label: str
) -> None:
    from chronobt.data import load_ohlc
    from chronobt.evaluation.strategies import orders_for_forecast

    ohlc = load_ohlc("BTCUSD", cron["data"])
    close = ohlc.frame["close"]
    config = ForecastConfig(symbols=("BTCUSD",), preaug=label, **_options(cron["data"], cron["out"]))
    for entry in _entries(cron, label):  # the pending ones too
        last_close = float(close.loc[pd.Timestamp(entry["origin"])])
        again = orders_for_forecast(_archived_quantiles(cron, entry), last_close, config, entry["targets"])
        assert again == entry["orders"], entry["file"]
    block = cron["tracked"][label].metrics["orders"]
    assert list(block) == list(STRATEGIES)
    for name, row in block.items():
        assert row["decisions"] == {"agree": APPENDS - HORIZON, "differ": 0, "files": []}, name
        assert (row["forecasts"], row["pending"]) == (APPENDS - HORIZON, HORIZON), name


def test_every_complete_forecasts_orders_are_filled_by_the_backtests_fill_rules(cron: dict[str, Any]) -> None:
    from chronobt.data import load_ohlc
    from chronobt.evaluation.fills import REASONS, Bars, Costs, fill, trade_returns
    from chronobt.evaluation.strategies import ForecastView, decide, parse_strategies

    ohlc = load_ohlc("BTCUSD", cron["data"])
    frame, index = ohlc.frame, pd.DatetimeIndex(ohlc.frame.index)
    entries = _entries(cron, "none")
    orders = pd.read_parquet(cron["tracked"]["none"].folder / "orders.parquet")
    complete = [e for e in entries if index.get_loc(pd.Timestamp(e["origin"])) + HORIZON < len(index)]
    assert len(complete) == APPENDS - HORIZON
    assert len(orders) == len(complete) * len(STRATEGIES)
    assert set(orders["file"]) == {e["file"] for e in complete}  # the pending forecasts: no row yet
    at = np.array([index.get_loc(pd.Timestamp(e["origin"])) for e in complete])
    rows = at[:, None] + np.arange(HORIZON + 1)
    bars = Bars(
        **{c: frame[c].to_numpy(dtype=np.float64)[rows] for c in ("open", "high", "low", "close")},
        real=~ohlc.filled[rows],
    )
    view = ForecastView(
        price_q=np.concatenate([_archived_quantiles(cron, e) for e in complete]),
        targets=("high", "low", "close"),
        levels=tuple(float(q) for q in LEVELS),
        reference=bars.close[:, 0],
    )
    for strategy in parse_strategies(STRATEGIES):
        expected = decide(strategy, view, cost=10 / 10_000, allow_short=False)
        fills = fill(expected, bars, entry="next-open")
        net = trade_returns(expected, fills, Costs(fee_bps=10.0), bars_per_year=ohlc.bars_per_year).net
        live = orders[orders["strategy"] == strategy.label].set_index("file")
        live = live.loc[[e["file"] for e in complete]]
        np.testing.assert_array_equal(live["filled"], fills.traded)
        np.testing.assert_array_equal(live["entry"], fills.entry_price)
        np.testing.assert_array_equal(live["exit"], np.where(fills.traded, fills.exit_price, np.nan))
        np.testing.assert_array_equal(live["exit_reason"], np.asarray(REASONS)[fills.reason])
        np.testing.assert_array_equal(live["net_return"], np.where(fills.traded, net, 0.0))
        traded = np.flatnonzero(fills.traded)
        for name, bar, price in (("entry", fills.entry_bar, "entry"), ("exit", fills.exit_bar, "exit")):
            low, high = bars.low[traded, bar[traded]], bars.high[traded, bar[traded]]
            prices = live[price].to_numpy()[traded]
            assert ((low <= prices) & (prices <= high)).all(), (strategy.label, name)
    assert orders["filled"].any() and (orders.loc[orders["filled"], "order"] == "limit").any()


def test_the_live_orders_on_the_backtests_decision_grid_equal_the_backtests_trades(
    cron: dict[str, Any],
) -> None:
    live = pd.read_parquet(cron["tracked"]["none"].folder / "orders.parquet")
    trades = pd.read_parquet(cron["backtests"]["none"].folder / "trades.parquet")
    assert len(trades) > 0
    keys = ["strategy", "origin"]
    joined = trades.merge(live, on=keys, suffixes=("_bt", ""), how="left", validate="one_to_one")
    assert joined["filled"].all()
    for col in ("side", "entry_time", "exit_time", "exit_reason"):
        assert (joined[col] == joined[f"{col}_bt"]).all(), col
    for col in ("size", "entry", "exit", "costs", "net_return"):
        np.testing.assert_allclose(joined[col], joined[f"{col}_bt"], rtol=1e-6, atol=1e-12)
    forecasts = pd.read_parquet(cron["backtests"]["none"].folder / "forecasts.parquet")
    origins = np.sort(forecasts["origin"].unique())
    grid = origins[::-1][::HORIZON]  # the backtest's decision points: every horizon-th origin from the last
    on_grid = live[live["origin"].isin(grid) & live["filled"]]
    assert len(on_grid) == len(trades)  # and no live fill on the grid that the backtest did not trade
