"""One-bar moves like unadjusted splits and bad prints: reported everywhere, adjusted only on request."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from chronobt.cli import app
from chronobt.data import check_ohlc, import_csv_report, load_ohlc
from chronobt.data.splits import OUTLIER_Z

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()
SPLIT_ROW = 200  # the first bar after the split


def daily(n: int = 300, *, sigma: float = 0.015, seed: int = 1, freq: str = "B") -> pd.DataFrame:
    """A daily random walk (``sigma`` per bar), opens a small gap from the previous close."""
    rng = np.random.default_rng(seed)
    close = 40.0 * np.exp(np.cumsum(rng.normal(0, sigma, n)))
    open_ = np.concatenate([[40.0], close[:-1]]) * np.exp(rng.normal(0, sigma / 4, n))
    spread = close * sigma * 0.3
    return pd.DataFrame(
        {
            "timestamp": pd.date_range("2020-01-02", periods=n, freq=freq, tz="UTC"),
            "open": open_,
            "high": np.maximum(open_, close) + spread,
            "low": np.minimum(open_, close) - spread,
            "close": close,
            "volume": rng.uniform(1e6, 2e6, n),
        }
    )


def aapl_like() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(unadjusted, adjusted): a 2:1 split before SPLIT_ROW, close 88.99 -> next open 44.86."""
    adjusted = daily()
    adjusted.iloc[:, 1:5] *= 44.495 / adjusted.loc[SPLIT_ROW - 1, "close"]
    adjusted.loc[SPLIT_ROW, "open"] = 44.86
    row = adjusted.loc[SPLIT_ROW]
    adjusted.loc[SPLIT_ROW, "high"] = max(row["high"], row["open"], row["close"])
    adjusted.loc[SPLIT_ROW, "low"] = min(row["low"], row["open"], row["close"])
    raw = adjusted.copy()
    raw.iloc[:SPLIT_ROW, 1:5] *= 2.0
    raw.loc[: SPLIT_ROW - 1, "volume"] /= 2.0
    return raw, adjusted


def write(frame: pd.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    return path


def test_an_unadjusted_2_for_1_split_is_flagged_with_its_row_ratio_and_fix(tmp_path: Path) -> None:
    raw, _ = aapl_like()
    assert raw.loc[SPLIT_ROW - 1, "close"] == pytest.approx(88.99)
    report = check_ohlc(write(raw, tmp_path / "AAPL.parquet")).report
    (jump,) = report.jumps
    assert (jump.kind, jump.label, jump.bar, jump.where) == (
        "split",
        "2:1",
        SPLIT_ROW,
        f"data row {SPLIT_ROW}",
    )
    line = next(w for w in report.warnings() if "split" in w)
    assert "close 88.99 -> open 44.86 at 2020-10-08 00:00 (data row 200): ratio 0.504" in line
    assert "unadjusted 2:1 split" in line and "--adjust-splits" in line


def test_every_load_logs_the_split_warning_naming_the_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(aapl_like()[0], tmp_path / "AAPL.parquet")
    with caplog.at_level(logging.WARNING):
        load_ohlc(path)
    assert any(str(path) in r.getMessage() and "2:1 split" in r.getMessage() for r in caplog.records)


def test_a_reverse_split_is_flagged_with_its_factor(tmp_path: Path) -> None:
    frame = daily()
    frame.iloc[SPLIT_ROW:, 1:5] *= 10.0  # 1:10 reverse split: prices after it are ten times higher
    (jump,) = check_ohlc(write(frame, tmp_path / "R.parquet")).report.jumps
    assert (jump.kind, jump.label, jump.factor) == ("split", "1:10", pytest.approx(0.1))


def test_csv_import_names_the_file_line_and_adjusts_only_when_asked(tmp_path: Path) -> None:
    raw, adjusted = aapl_like()
    csv = tmp_path / "aapl.csv"
    raw.to_csv(csv, index=False)
    path, report = import_csv_report(csv, symbol="AAPL", data_dir=tmp_path / "plain")
    assert f"(line {SPLIT_ROW + 2})" in report.jumps[0].describe()  # header is line 1
    stored = pd.read_parquet(path)
    np.testing.assert_allclose(stored["close"], raw["close"])  # never adjusted silently
    path, report = import_csv_report(csv, symbol="AAPL", data_dir=tmp_path / "fixed", adjust_splits=True)
    assert report.jumps == () and [j.label for j in report.splits_adjusted] == ["2:1"]
    assert any(w.startswith("back-adjusted an unadjusted 2:1 split") for w in report.warnings())
    stored = pd.read_parquet(path)
    for col in ("open", "high", "low", "close", "volume"):
        np.testing.assert_allclose(stored[col], adjusted[col], rtol=1e-12)
    assert check_ohlc(path).report.warnings() == []


def test_data_import_adjust_splits_through_the_cli(tmp_path: Path) -> None:
    raw, adjusted = aapl_like()
    csv = tmp_path / "aapl.csv"
    raw.to_csv(csv, index=False)
    out = tmp_path / "data"
    args = ["data", "import", str(csv), "-s", "AAPL", "--data-dir", str(out)]
    flagged = runner.invoke(app, args)
    assert flagged.exit_code == 0, flagged.output
    assert "2:1 split" in flagged.stdout + flagged.stderr
    fixed = runner.invoke(app, [*args, "--force", "--adjust-splits", "--json"])
    assert fixed.exit_code == 0, fixed.output
    summary = json.loads(fixed.stdout)
    assert summary["report"]["warnings"] == []
    assert [j["factor"] for j in summary["import_report"]["splits_adjusted"]] == [2.0]
    np.testing.assert_allclose(pd.read_parquet(out / "AAPL.parquet")["close"], adjusted["close"])


def test_data_check_reports_and_adjust_splits_rewrites_the_stored_file(tmp_path: Path) -> None:
    raw, adjusted = aapl_like()
    path = write(raw, tmp_path / "AAPL.parquet")
    plain = runner.invoke(app, ["data", "check", "AAPL", "--data-dir", str(tmp_path), "--json"])
    assert plain.exit_code == 0, plain.output
    assert [j["kind"] for j in json.loads(plain.stdout)["report"]["jumps"]] == ["split"]
    np.testing.assert_allclose(pd.read_parquet(path)["close"], raw["close"])  # check alone writes nothing
    fixed = runner.invoke(app, ["data", "check", "AAPL", "--data-dir", str(tmp_path), "--adjust-splits"])
    assert fixed.exit_code == 0, fixed.output
    assert "splits adjusted" in fixed.stdout and "clean: no repairs or findings" in fixed.stdout
    np.testing.assert_allclose(pd.read_parquet(path)["close"], adjusted["close"])
    again = runner.invoke(app, ["data", "check", "AAPL", "--data-dir", str(tmp_path), "--adjust-splits"])
    assert "no split found; file unchanged" in again.stdout


def test_a_30_percent_crash_is_flagged_only_beyond_the_robust_multiple(tmp_path: Path) -> None:
    volatile = daily(sigma=0.04, freq="D")  # 24/7, 4% a day: a -30% day is about 9 robust sd
    volatile.loc[SPLIT_ROW:, ["open", "high", "low", "close"]] *= 0.7
    volatile.loc[SPLIT_ROW, "open"] = volatile.loc[SPLIT_ROW - 1, "close"]  # 24/7: opens at the last close
    volatile.loc[SPLIT_ROW, "high"] = volatile.loc[SPLIT_ROW, "open"]
    assert check_ohlc(write(volatile, tmp_path / "VOL.parquet")).report.jumps == ()
    calm = daily(sigma=0.003, freq="D")  # the same crash on a 0.3% series is ~120 robust sd
    calm.loc[SPLIT_ROW:, ["open", "high", "low", "close"]] *= 0.7
    (jump,) = check_ohlc(write(calm, tmp_path / "CALM.parquet")).report.jumps
    assert jump.kind == "jump" and abs(jump.z) > OUTLIER_Z and jump.bar == SPLIT_ROW
    assert "extreme real move; check the source" in jump.describe()


def test_a_bad_print_that_the_next_bar_takes_back_is_one_finding(tmp_path: Path) -> None:
    frame = daily(sigma=0.01)
    frame.loc[150, ["close", "high"]] = frame.loc[150, "close"] * 10.0  # a tenfold print for one bar
    frame.loc[151, "open"] = frame.loc[149, "close"]
    (jump,) = check_ohlc(write(frame, tmp_path / "BAD.parquet")).report.jumps
    assert (jump.kind, jump.bar, jump.where) == ("bad_print", 150, "data row 150")
    assert "looks like a bad print; fix or drop that row" in jump.describe()


@pytest.mark.parametrize("name", ["AAPL", "BTCUSD", "ETHUSD", "MSFT"])
def test_the_shipped_real_series_raise_no_false_alarm(name: str) -> None:
    assert check_ohlc(name, REPO / "data").report.jumps == ()
