"""A track's recorded orders on hand-made bars: a limit touched is not filled, one traded through is, the
target is taken, and a forecast whose bars have not all arrived has no row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from chronobt.data import load_ohlc
from chronobt.runs.results import quantile_column
from chronobt.runs.track_ledger import Shape
from chronobt.runs.track_orders import ORDER_COLUMNS, recorded_orders, score_orders
from tests.synthetic import ohlc_frame

H, LIMIT, TARGET, STOP = 3, 100.0, 103.0, 98.0
SHAPE = Shape(horizon=H, targets=("low", "high", "close"), levels=(0.05, 0.2, 0.5, 0.8))


def _bars(tmp_path: Path) -> pd.DataFrame:
    """60 hourly bars; after the origin (bar 50): bar 51 only touches the limit, bar 52 trades through it,
    bar 53 trades through the target."""
    frame = ohlc_frame(60, seed=5)
    rows = {
        50: (101.0, 102.0, 100.5, 101.0),
        51: (101.0, 101.5, LIMIT, 100.5),  # low == limit: touched, not filled
        52: (100.5, 101.0, 99.0, 100.2),  # through the limit, above the stop: filled at the limit
        53: (101.0, 104.0, 100.8, 103.5),  # through the target: sold at the target
    }
    for i, values in rows.items():
        frame.loc[i, ["open", "high", "low", "close"]] = values
    frame.to_parquet(tmp_path / "AAA.parquet", index=False)
    return frame


def _ledger(frame: pd.DataFrame, origins: dict[str, int]) -> pd.DataFrame:
    """Ledger rows whose quantiles put range's limit, target and stop at LIMIT, TARGET and STOP."""
    rows = []
    stamps = pd.DatetimeIndex(frame["timestamp"])
    for file, at in origins.items():
        for step in range(1, H + 1):
            for target in SHAPE.targets:
                q = {"low": (STOP, LIMIT, 101.0, 102.0), "high": (101.0, 101.5, 102.0, TARGET)}
                values = q.get(target, (99.0, 100.0, 101.0, 102.0))
                rows.append(
                    {
                        "file": file,
                        "origin": stamps[at],
                        "step": step,
                        "target": target,
                        "resolved": at + step < len(frame),
                        "revised": False,
                        **{quantile_column(lv): v for lv, v in zip(SHAPE.levels, values, strict=True)},
                    }
                )
    return pd.DataFrame(rows)


def _entry(frame: pd.DataFrame, file: str, at: int) -> dict[str, object]:
    order = {
        "strategy": "range",
        "side": "long",
        "size": 1.0,
        "entry": "limit",
        "limit": LIMIT,
        "target": TARGET,
        "stop": STOP,
        "steps": {"limit": [LIMIT] * H, "target": [TARGET] * H, "stop": [STOP] * H},
    }
    origin = frame["timestamp"].iloc[at].isoformat()
    return {
        "file": file,
        "origin": origin,
        "issued_at": origin,
        "orders": [order],
        "config": {"fee_bps": 10.0, "slippage_bps": 0.0, "allow_short": False},
    }


def test_a_recorded_range_order_fills_through_its_limit_exits_at_its_target_and_agrees(
    tmp_path: Path,
) -> None:
    frame = _bars(tmp_path)
    ohlc = load_ohlc("AAA", tmp_path)
    entries = [_entry(frame, "a.parquet", 50), _entry(frame, "b.parquet", 58)]  # b: bars still to come
    rows, block = score_orders(
        _ledger(frame, {"a.parquet": 50, "b.parquet": 58}), ohlc, SHAPE, entries, fee_bps=10.0
    )
    assert list(rows.columns) == list(ORDER_COLUMNS) and list(rows["file"]) == ["a.parquet"]
    row = rows.iloc[0]
    assert (row["order"], row["side"], bool(row["filled"]), bool(row["agrees"])) == (
        "limit",
        "long",
        True,
        True,
    )
    assert row["entry_time"] == frame["timestamp"].iloc[52] and row["entry"] == LIMIT
    assert row["exit_time"] == frame["timestamp"].iloc[53] and row["exit"] == TARGET
    assert row["exit_reason"] == "target"
    assert row["net_return"] == pytest.approx(TARGET / LIMIT - 1.0 - 2 * 10 / 10_000)
    assert block is not None
    summary = block["range"]
    assert (summary["forecasts"], summary["pending"], summary["n_orders"], summary["n_filled"]) == (
        1,
        1,
        1,
        1,
    )
    assert summary["exits"] == {"target": 1, "stop": 0, "horizon": 0}
    assert summary["decisions"] == {"agree": 1, "differ": 0, "files": []}


def test_recorded_orders_hold_a_price_without_steps_for_every_bar_and_a_flat_order_has_none() -> None:
    orders = recorded_orders(
        [
            {"strategy": "sign", "side": "short", "size": 1.0, "limit": None, "target": None, "stop": None},
            {"strategy": "range", "side": "flat", "size": 0.0, "limit": None, "target": None, "stop": None},
            {"strategy": "x", "side": "long", "size": 0.5, "limit": 10.0, "target": None, "stop": 9.0},
        ],
        H,
    )
    np.testing.assert_array_equal(orders.side, [-1, 0, 1])
    np.testing.assert_array_equal(orders.size, [1.0, 0.0, 0.5])
    assert np.isnan(orders.limit[:2]).all() and (orders.limit[2] == 10.0).all()
    assert np.isnan(orders.target).all() and (orders.stop[2] == 9.0).all()
