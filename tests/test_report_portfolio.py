"""The portfolio page: one account over symbols, its buy and hold, attribution, statistics, caps, record."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from chronobt.cli import app
from chronobt.report import kind_of, write_reports
from chronobt.report.portfolio import render_portfolio
from chronobt.report.portfolio_data import (
    as_steps,
    hold_curve,
    load_portfolio,
    load_sources,
    weights_path,
)
from tests.synthetic import write_symbol

pytest.importorskip("matplotlib")

SECTIONS = ("statistics", "accounts", "caps", "record")


@pytest.fixture(scope="module")
def portfolio_run(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> tuple[Path, str]:
    """``backtest AAA BBB --portfolio --report`` (hourly and daily bars): the output dir and stdout."""
    root = tmp_path_factory.mktemp("portfolio")
    write_symbol(root / "data", "AAA", 300, seed=1)
    write_symbol(root / "data", "BBB", 300, freq="D", seed=2)
    out = root / "out"
    args = ["backtest", "AAA", "BBB", "--portfolio", "--max-weight", "0.6", "--strategy", "sign,band"]
    args += ["--horizon", "4", "--context", "64", "--windows", "12", "--allow-short", "--report"]
    args += ["--model", str(tiny_model_dir), "--device", "cpu", "--compile", "off"]
    result = CliRunner().invoke(app, [*args, "--data-dir", str(root / "data"), "--output-dir", str(out)])
    assert result.exit_code == 0, result.output
    return out, result.output


def _folder(out: Path) -> Path:
    return out / "backtest" / "_portfolio" / "none"


def test_backtest_portfolio_report_writes_the_portfolio_page_with_its_sections_and_charts(
    portfolio_run: tuple[Path, str],
) -> None:
    out, output = portfolio_run
    page = (_folder(out) / "report.html").read_text(encoding="utf-8")
    assert str(_folder(out) / "report.html") in output
    for anchor in SECTIONS:
        assert f'<section id="{anchor}">' in page
    charts = re.findall(r'<figure class="chart" data-chart="([^"]+)"><svg', page)
    assert charts.count("portfolio-equity") == 2 and charts.count("attribution") == 2  # one per strategy
    assert "! fewer than" not in page  # 24 trades each
    assert "Buy and hold: the equal-weight account" in page  # rebuilt from the symbols' folders
    assert "--max-weight 0.6" in page and "AAA" in page and "BBB" in page
    assert not re.search(r'(src|href)="(https?:|//)', page)  # self-contained


def test_report_of_the_output_dir_finds_the_portfolio_and_the_index_links_it(
    portfolio_run: tuple[Path, str],
) -> None:
    out, _ = portfolio_run
    assert kind_of(_folder(out)) == "portfolio"
    assert kind_of(out / "backtest" / "AAA" / "none") == "backtest"  # has forecasts: still a backtest
    written = write_reports(out)
    kinds = {r.folder: r.kind for r in written.reports}
    assert kinds[_folder(out)] == "portfolio"
    index = (out / "report.html").read_text(encoding="utf-8")
    assert 'href="backtest/_portfolio/none/report.html"' in index


def test_rebuilt_buy_and_hold_ends_at_the_recorded_total(portfolio_run: tuple[Path, str]) -> None:
    run = load_portfolio(_folder(portfolio_run[0]))
    sources, missing = load_sources(run)
    assert missing == "" and [s.symbol for s in sources] == ["AAA", "BBB"]
    for strategy, stats in run.trading.items():
        curve = hold_curve(run, strategy, sources)
        assert curve is not None and curve.shape == (len(run.rows(strategy)),)
        assert curve[-1] - 1.0 == pytest.approx(stats["buy_and_hold"], abs=1e-12)


def test_a_moved_folder_with_few_trades_is_marked_and_drawn_without_buy_and_hold(
    portfolio_run: tuple[Path, str], tmp_path: Path
) -> None:
    folder = tmp_path / "copy"
    shutil.copytree(_folder(portfolio_run[0]), folder)
    metrics = json.loads((folder / "metrics.json").read_text())
    metrics["trading"]["sign"]["n_trades"] = 3
    (folder / "metrics.json").write_text(json.dumps(metrics))
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["sources"] = {s: str(tmp_path / "gone" / s) for s in manifest["sources"]}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    page = render_portfolio(folder)
    assert page.count("! fewer than 10 trades") == 1  # sign only
    assert "Buy and hold not drawn: AAA&#x27;s result folder, BBB&#x27;s result folder" in page
    assert page.count("<svg") == 4


def test_a_symbol_is_flat_once_its_last_period_ends_between_the_accounts_times() -> None:
    t = pd.DatetimeIndex(["2024-01-01 00:00", "2024-01-01 01:00", "2024-01-03 00:00"]).to_numpy()
    weights = np.array([[0.5, 0.5, 0.0], [0.0, 0.0, 0.4]])  # A decides twice, B once, two days later
    ends = [np.datetime64("2024-01-01T02:00", "ns"), np.datetime64("2024-01-03T04:00", "ns")]
    x, held = weights_path(t, weights, ends)
    assert list(x) == [*t[:2], ends[0], t[2], ends[1]]
    assert held[0].tolist() == [0.5, 0.5, 0.0, 0.0, 0.0]  # not carried over the two days
    assert held[1].tolist() == [0.0, 0.0, 0.0, 0.4, 0.0]
    x, held = weights_path(t, weights, [None, None])  # unknown ends: held to the next time
    assert list(x) == list(t) and held[0].tolist() == [0.5, 0.5, 0.0]


def test_as_steps_holds_each_value_until_the_next_time() -> None:
    t = pd.date_range("2024-01-01", periods=3, freq="D").to_numpy()
    x, y = as_steps(t, np.array([1.0, 1.1, 0.9]))
    assert list(x) == [t[0], t[1], t[1], t[2], t[2]] and y.tolist() == [1.0, 1.0, 1.1, 1.1, 0.9]
