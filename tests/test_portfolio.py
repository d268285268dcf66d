"""One account over several symbols: exposure caps, calendars aligned on time, attribution, files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from chronobt.cli import app
from chronobt.config import BacktestConfig
from chronobt.errors import ConfigError
from chronobt.evaluation.portfolio import Sleeve, attribution, combine, equity_frame, periods_per_year
from tests.synthetic import write_symbol


def _sleeve(symbol: str, times: pd.DatetimeIndex, returns: list[float], size: list[float]) -> Sleeve:
    n = len(times)
    return Sleeve(
        symbol=symbol,
        times=times.to_numpy(dtype="datetime64[ns]"),
        returns=np.asarray(returns, dtype=np.float64),
        size=np.asarray(size, dtype=np.float64),
        hold=np.full(n, 0.01),
    )


def test_positions_decided_together_are_capped_per_symbol_then_scaled_to_the_gross_limit() -> None:
    t = pd.date_range("2024-01-01", periods=2, freq="D")
    a = _sleeve("A", t, [0.02, -0.01], [1.0, 0.5])
    b = _sleeve("B", t, [0.04, 0.03], [2.0, 0.0])
    account = combine([a, b], max_gross=1.0, max_weight=0.8)
    # t0: signals 1.0 and 2.0 capped at 0.8 each (gross 1.6), scaled by 1/1.6 -> 0.5 each
    assert account.weights[:, 0] == pytest.approx([0.5, 0.5])
    assert account.scale[:, 0] == pytest.approx([0.5, 0.25])
    assert account.returns[0] == pytest.approx(0.5 * 0.02 + 0.25 * 0.04)
    # t1: A alone at 0.5 fits; B flat contributes nothing
    assert account.weights[:, 1] == pytest.approx([0.5, 0.0])
    assert account.returns[1] == pytest.approx(-0.01)
    assert account.equity == pytest.approx(np.cumprod(1 + account.returns))
    assert account.contribution.sum(axis=0) == pytest.approx(account.returns)
    got = attribution(account)
    assert got["B"]["contribution"] == pytest.approx(0.01) and got["A"]["max_weight"] == pytest.approx(0.5)


def test_a_single_sleeve_within_the_caps_is_the_symbols_own_account() -> None:
    t = pd.date_range("2024-01-01", periods=5, freq="h")
    a = _sleeve("A", t, [0.01, -0.02, 0.0, 0.03, 0.01], [1.0, 1.0, 0.0, 1.0, 1.0])
    account = combine([a], max_gross=1.0, max_weight=1.0)
    assert account.returns == pytest.approx(a.returns)
    assert account.hold == pytest.approx(a.hold)


def test_a_stock_position_is_held_over_the_weekend_beside_24_7_crypto() -> None:
    crypto = pd.date_range("2024-01-05 21:00", periods=4, freq="D")  # Fri, Sat, Sun, Mon 21:00 UTC
    stock = pd.DatetimeIndex(["2024-01-05 21:00", "2024-01-08 21:00"])  # Fri and Mon closes
    c = _sleeve("BTC", crypto, [0.01, 0.01, 0.01, 0.01], [1.0, 1.0, 1.0, 1.0])
    s = _sleeve("SPY", stock, [0.02, 0.02], [1.0, 1.0])
    account = combine([c, s], max_gross=1.0, max_weight=1.0)
    assert len(account.times) == 4  # the union of both calendars' decision times
    # Friday: both decide, 0.5 each; over the weekend the stock keeps its 0.5 and crypto reuses its own
    assert account.weights[:, 0] == pytest.approx([0.5, 0.5])
    assert account.weights[:, 1] == pytest.approx([0.5, 0.5]) and account.weights[:, 2] == pytest.approx(
        [0.5, 0.5]
    )
    assert account.returns[1] == pytest.approx(0.005)  # only crypto's period is booked on Saturday
    assert account.gross_exposure.max() <= 1.0 + 1e-12


def test_a_symbol_deciding_later_gets_only_the_budget_left() -> None:
    a = _sleeve("A", pd.DatetimeIndex(["2024-01-01 00:00"]), [0.01], [0.7])
    b = _sleeve("B", pd.DatetimeIndex(["2024-01-01 12:00"]), [0.01], [1.0])
    account = combine([a, b], max_gross=1.0, max_weight=1.0)
    assert account.weights[:, 1] == pytest.approx([0.7, 0.3])


def test_a_symbols_position_is_released_when_its_last_period_ends() -> None:
    early = pd.date_range("2024-01-01", periods=3, freq="h")  # ends 03:00 (one spacing on)
    late = pd.date_range("2024-01-01 05:00", periods=2, freq="h")
    a = _sleeve("A", early, [0.01, 0.01, 0.01], [1.0, 1.0, 1.0])
    b = _sleeve("B", late, [0.02, 0.02], [1.0, 1.0])
    account = combine([a, b], max_gross=1.0, max_weight=1.0)
    assert account.weights[:, 3] == pytest.approx([0.0, 1.0])  # A's budget is free again for B
    with_end = Sleeve(a.symbol, a.times, a.returns, a.size, a.hold, end=np.datetime64("2024-01-01T06:00"))
    held = combine([with_end, b], max_gross=1.0, max_weight=1.0)
    assert held.weights[:, 3] == pytest.approx([1.0, 0.0])  # still held at 05:00: B gets nothing left


@settings(max_examples=40, deadline=None)
@given(
    st.integers(min_value=0, max_value=10_000),
    st.floats(min_value=0.1, max_value=2.0),
    st.floats(min_value=0.05, max_value=1.5),
)
def test_gross_and_per_symbol_exposure_never_exceed_their_caps(
    seed: int, gross: float, weight: float
) -> None:
    rng = np.random.default_rng(seed)
    base = pd.Timestamp("2024-01-01")
    sleeves = []
    for i in range(3):
        offsets = np.sort(rng.choice(200, size=rng.integers(1, 30), replace=False))
        times = pd.DatetimeIndex(base + pd.to_timedelta(offsets, unit="h"))
        n = len(times)
        size = np.where(rng.random(n) < 0.3, 0.0, rng.uniform(0.1, 2.0, n))
        sleeves.append(_sleeve(f"S{i}", times, list(rng.normal(0, 0.01, n)), list(size)))
    account = combine(sleeves, max_gross=gross, max_weight=weight)
    assert np.all(account.gross_exposure <= gross + 1e-12)
    assert np.all(np.abs(account.weights) <= weight + 1e-12)
    assert account.contribution.sum(axis=0) == pytest.approx(account.returns)


def test_periods_per_year_come_from_the_timeline() -> None:
    t = pd.date_range("2024-01-01", periods=366, freq="D")
    assert periods_per_year(t) == pytest.approx(365.25, rel=1e-3)
    assert np.isnan(periods_per_year(t[:1]))


def test_equity_frame_has_the_account_and_its_attribution() -> None:
    t = pd.date_range("2024-01-01", periods=2, freq="D")
    account = combine([_sleeve("A", t, [0.01, 0.02], [1, 1]), _sleeve("B", t, [0.0, 0.01], [1, 1])])
    frame = equity_frame(account, "sign")
    assert list(frame.columns[:5]) == ["strategy", "timestamp", "return", "equity", "gross_exposure"]
    assert {"weight_A", "contribution_B"} <= set(frame.columns)
    assert str(frame["timestamp"].dt.tz) == "UTC"


def test_caps_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--max-gross and --max-weight"):
        BacktestConfig(symbols=("AAA",), max_gross=0.0, data_dir=tmp_path)


def test_backtest_portfolio_writes_one_account_over_the_symbols(tmp_path: Path, tiny_model_dir: Path) -> None:
    write_symbol(tmp_path / "data", "AAA", 300, seed=1)
    write_symbol(tmp_path / "data", "BBB", 300, freq="D", seed=2)
    out = tmp_path / "out"
    args = ["backtest", "AAA", "BBB", "--portfolio", "--max-weight", "0.6", "--strategy", "sign,band"]
    args += ["--horizon", "4", "--context", "64", "--windows", "12", "--allow-short", "--fee-bps", "0"]
    args += ["--model", str(tiny_model_dir), "--device", "cpu", "--compile", "off"]
    result = CliRunner().invoke(app, [*args, "--data-dir", str(tmp_path / "data"), "--output-dir", str(out)])
    assert result.exit_code == 0, result.output
    folder = out / "backtest" / "_portfolio" / "none"
    assert sorted(p.name for p in folder.iterdir()) == [
        "equity.parquet",
        "manifest.json",
        "metrics.json",
        "trades.parquet",
    ]
    assert "portfolio of AAA, BBB" in result.stdout
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["symbols"] == ["AAA", "BBB"] and set(metrics["trading"]) == {"sign", "band"}
    equity = pd.read_parquet(folder / "equity.parquet")
    trades = pd.read_parquet(folder / "trades.parquet")
    for strategy, stats in metrics["trading"].items():
        rows = equity[equity["strategy"] == strategy]
        assert rows["gross_exposure"].max() <= 1.0 + 1e-12
        assert rows[["weight_AAA", "weight_BBB"]].abs().max().max() <= 0.6 + 1e-12
        assert stats["total_return"] == pytest.approx(rows["equity"].iloc[-1] - 1.0)
        parts = stats["attribution"]
        assert sum(p["contribution"] for p in parts.values()) == pytest.approx(rows["return"].sum())
        mine = trades[trades["strategy"] == strategy]
        assert mine["portfolio_return"].sum() == pytest.approx(rows["return"].sum())
        scaled = (mine["weight"] / mine["size"] * mine["costs"]).sum()
        assert stats["costs"]["total"] == pytest.approx(scaled) and stats["buy_and_hold"] is not None
    # the hourly symbol's windows end days before the daily one's: both get the budget in turn
    sign = equity[equity["strategy"] == "sign"]
    assert sign["weight_AAA"].abs().max() > 0 and sign["weight_BBB"].abs().max() > 0
    manifest = json.loads((folder / "manifest.json").read_text())
    assert set(manifest["sources"]) == {"AAA", "BBB"}
