"""The report of a portfolio folder (``<output-dir>/backtest/_portfolio/<label>/``): one account over symbols.

From the folder's ``metrics.json``, ``equity.parquet``, ``trades.parquet`` and ``manifest.json``
(:mod:`chronobt.runs.portfolio`): every strategy's statistics side by side, then per strategy (one tab
each) the account's equity and drawdown against the equal-weight buy-and-hold account (rebuilt by
:mod:`chronobt.report.portfolio_data`), each symbol's cumulative contribution with the symbols'
``|weight|`` stacked under ``--max-gross``, and the per-symbol attribution table; the caps used and the
run record.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from chronobt.report import charts as c
from chronobt.report.page import Page, esc, figure, key_values, num, pct, signed, table, tabs
from chronobt.report.portfolio_data import (
    PortfolioRun,
    Source,
    as_steps,
    hold_curve,
    load_portfolio,
    load_sources,
    symbol_end,
    weights_path,
)
from chronobt.report.record import flatten
from chronobt.report.sources import as_utc
from chronobt.report.strategies import FEW_TRADES


def render_portfolio(folder: Path) -> str:
    """The HTML report of one portfolio folder."""
    run = load_portfolio(folder)
    symbols, trading = run.symbols, run.trading
    times = as_utc(run.equity["timestamp"])
    span = f"{times.min():%Y-%m-%d %H:%M} .. {times.max():%Y-%m-%d %H:%M} UTC · " if len(times) else ""
    page = Page(
        title=f"Portfolio · {', '.join(symbols)} · {run.metrics.get('label', '?')}",
        subtitle=esc(
            f"{len(symbols)} symbols · {len(trading)} strategies · {span}--max-gross "
            f"{num(run.metrics.get('max_gross'))}, --max-weight {num(run.metrics.get('max_weight'))}"
        ),
    )
    if not trading or run.equity.empty:
        page.add("none", "No account", "<p>The portfolio folder holds no strategy's account.</p>")
        return page.html()
    page.add("statistics", "Statistics", _statistics(trading))
    sources, missing = load_sources(run)
    panels = [
        (name, _account(run, k, name, sources, missing))
        for k, name in enumerate(trading)
        if not run.rows(name).empty
    ]
    page.add("accounts", "Equity and attribution", tabs("strategy", panels))
    page.add("caps", "Caps", _caps(run))
    page.add("record", "Run record", _record(run))
    return page.html()


def _statistics(trading: dict[str, dict[str, Any]]) -> str:
    """Every strategy's statistics, one column each."""

    def share(x: Any) -> str:
        return "—" if x is None or not math.isfinite(float(x)) else f"{float(x) * 100:.2f}%"

    def sharpe(t: dict[str, Any]) -> str:
        n = int(t.get("n_trades") or 0)
        few = f' <span class="neg">! fewer than {FEW_TRADES} trades</span>' if n < FEW_TRADES else ""
        return f"{num(t.get('sharpe'), 3)} ({n} trade{'' if n == 1 else 's'}){few}"

    def interval(t: dict[str, Any]) -> str:
        ci = t.get("sharpe_ci95") or [None, None]
        return "—" if None in ci else f"[{num(ci[0], 3)}, {num(ci[1], 3)}]"

    rows: list[tuple[str, Any]] = [
        ("total return", lambda t: signed(pct(t.get("total_return")), t.get("total_return"))),
        ("buy and hold (equal weight)", lambda t: signed(pct(t.get("buy_and_hold")), t.get("buy_and_hold"))),
        ("annualized return", lambda t: pct(t.get("annualized_return"))),
        ("volatility (annualized)", lambda t: share(t.get("volatility"))),
        ("Sharpe", sharpe),
        ("Sharpe 95% interval (block bootstrap)", interval),
        ("PSR (Sharpe > 0)", lambda t: num(t.get("psr"), 3)),
        ("PSR against buy and hold", lambda t: num(t.get("psr_vs_hold"), 3)),
        ("Sortino", lambda t: num(t.get("sortino"), 3)),
        ("Calmar", lambda t: num(t.get("calmar"), 3)),
        ("max drawdown", lambda t: pct(-(t.get("max_drawdown") or 0.0))),
        ("max drawdown duration (periods)", lambda t: num(t.get("max_drawdown_bars"))),
        ("win rate", lambda t: share(t.get("win_rate"))),
        ("profit factor", lambda t: num(t.get("profit_factor"), 3)),
        ("expectancy (mean trade)", lambda t: pct(t.get("expectancy"), 3)),
        ("best / worst trade", lambda t: f"{pct(t.get('best_trade'))} / {pct(t.get('worst_trade'))}"),
        ("exposure (times in a position)", lambda t: share(t.get("exposure"))),
        ("turnover (x equity a year)", lambda t: num(t.get("turnover"), 3)),
        ("costs paid", lambda t: share((t.get("costs") or {}).get("total"))),
        ("alpha (annualized) / beta", lambda t: f"{pct(t.get('alpha'))} / {num(t.get('beta'), 3)}"),
        ("periods per year", lambda t: num(t.get("periods_per_year"), 4)),
    ]
    body = [[esc(label), *(cell(t) for t in trading.values())] for label, cell in rows]
    note = (
        "From metrics.json (definitions in the README's trading statistics): the account's per-period net "
        "returns, one period per time of the union timeline; trades are the symbols' trades at the weight "
        "the account took; costs paid = the trades' costs × weight / size, as fractions of equity."
    )
    return table(["statistic", *trading], body) + f'<p class="note">{esc(note)}</p>'


def _colours(n: int) -> list[str]:
    if n <= len(c.TARGET_COLOURS):
        return list(c.TARGET_COLOURS[:n])
    import matplotlib

    cmap = matplotlib.colormaps["tab20"]
    return [matplotlib.colors.to_hex(cmap(i % 20)) for i in range(n)]


def _account(run: PortfolioRun, k: int, strategy: str, sources: list[Source], missing: str) -> str:
    """One strategy's tab: equity against buy and hold, attribution chart and table."""
    rows = run.rows(strategy)
    hold = hold_curve(run, strategy, sources)
    times = rows["timestamp"]
    with c.Chart(f"portfolio-equity-{k}", (11, 4.6)) as chart:
        c.equity_drawdown(
            chart,
            times=times,
            equity=rows["equity"].to_numpy(dtype=np.float64),
            title=f"{strategy}: the account's equity (from 1) against buy and hold",
            label="account",
            benchmark=None if hold is None else as_steps(c.utc(times), hold),
            benchmark_label="buy and hold",
        )
    why = (
        missing
        or "the rebuilt curve does not end at metrics.json's buy_and_hold (data changed since the run?)"
    )
    note = (
        " Buy and hold: the equal-weight account (1/S in each symbol) booked at each symbol's decision times "
        "from its close, as metrics.json's buy_and_hold."
        if hold is not None
        else f" Buy and hold not drawn: {why}."
    )
    out = figure(
        "portfolio-equity",
        chart.text,
        esc(
            "From equity.parquet: the equity after each time's booked periods (a period is booked at its "
            "decision time)." + note
        ),
    )
    ends = {s.symbol: symbol_end(s, strategy) for s in sources}
    out += _attribution_chart(run, k, strategy, rows, [ends.get(s) for s in run.symbols])
    out += _attribution_table(run, strategy, rows)
    return out


def _attribution_chart(run: PortfolioRun, k: int, strategy: str, rows: pd.DataFrame, ends: list[Any]) -> str:
    symbols = run.symbols
    colours = _colours(len(symbols))
    max_gross = float(run.metrics.get("max_gross") or 1.0)
    with c.Chart(f"portfolio-attribution-{k}", (11, 4.6)) as chart:
        ax, ax_w = chart.grid(2, 1, sharex=True, height_ratios=(3, 1.6), margins=(0.07, 0.87, 0.08, 0.93))
        t = c.utc(rows["timestamp"])
        for s, colour in zip(symbols, colours, strict=True):
            column = f"contribution_{s}"
            if column in rows:
                cumulative = np.cumsum(rows[column].to_numpy(dtype=np.float64)) * 100
                ax.step(t, cumulative, where="post", color=colour, lw=1.4, label=s)
        total = np.cumsum(rows["return"].to_numpy(dtype=np.float64)) * 100
        ax.step(t, total, where="post", color=c.ACTUAL, lw=1.0, ls="--", label="sum (account)")
        ax.axhline(0.0, color=c.CONTEXT, lw=0.8, ls=":")
        ax.set_ylabel("cumulative %")
        ax.set_title(f"{strategy}: each symbol's cumulative contribution (booked returns summed)")
        ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0))
        weights = np.stack(
            [rows.get(f"weight_{s}", 0.0 * rows["return"]).to_numpy(np.float64) for s in symbols]
        )
        x, held = weights_path(t, weights, ends)
        ax_w.stackplot(x, *held, colors=colours, step="post", alpha=0.55, lw=0)
        ax_w.axhline(max_gross, color=c.CUT, lw=0.9, ls=":", label="--max-gross")
        ax_w.set_ylim(0, max(max_gross, float(rows["gross_exposure"].max())) * 1.1)
        ax_w.set_ylabel("|weight|")
        ax_w.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0))
        c.date_axis(ax_w)
    return figure(
        "attribution",
        chart.text,
        esc(
            "Top: the running sum of each symbol's booked returns (contribution_<SYMBOL>); they add up to "
            "the account's (dashed), which compounds into the equity. Bottom: the symbols' |weight| as held "
            "(weight_<SYMBOL>; a symbol is flat once its last period ends), stacked: the gross exposure, "
            "under --max-gross (dotted)."
        ),
    )


def _attribution_table(run: PortfolioRun, strategy: str, rows: pd.DataFrame) -> str:
    parts = (run.trading.get(strategy) or {}).get("attribution") or {}
    trades = run.trades
    if len(trades) and {"strategy", "symbol"} <= set(trades.columns):
        trades = trades[trades["strategy"] == strategy]
    else:
        trades = pd.DataFrame(columns=["symbol"])
    body = []
    for s in run.symbols:
        part = parts.get(s) or {}
        mine = trades[trades["symbol"] == s]
        n = len(mine)
        wins = float((mine["net_return"] > 0).mean()) if n and "net_return" in mine else None
        paid = (
            float((mine["weight"] / mine["size"] * mine["costs"]).sum())
            if n and {"weight", "size", "costs"} <= set(mine.columns)
            else None
        )
        body.append(
            [
                esc(s),
                signed(pct(part.get("contribution")), part.get("contribution")),
                num(part.get("mean_weight"), 3),
                num(part.get("max_weight"), 3),
                str(n),
                num(wins, 3),
                "—" if paid is None else f"{paid * 100:.3f}%",
            ]
        )
    total = float(rows["return"].sum())
    body.append(["<b>account</b>", signed(pct(total), total), "", "", str(len(trades)), "", ""])
    header = ["symbol", "contribution", "mean |weight|", "max |weight|", "trades", "win rate", "costs paid"]
    return table(header, body) + (
        '<p class="note">contribution = the sum of the symbol\'s booked returns (metrics.json attribution); '
        "win rate and costs from trades.parquet at the account's weight.</p>"
    )


def _caps(run: PortfolioRun) -> str:
    max_gross, max_weight = run.metrics.get("max_gross"), run.metrics.get("max_weight")
    body = []
    for name in run.trading:
        rows = run.rows(name)
        if rows.empty:
            continue
        gross = rows["gross_exposure"].to_numpy(dtype=np.float64)
        weights = rows[[f"weight_{s}" for s in run.symbols if f"weight_{s}" in rows]].abs()
        at_cap = float(np.mean(gross >= float(max_gross or 1.0) - 1e-9))
        body.append(
            [
                esc(name),
                num(gross.max(), 3),
                num(gross.mean(), 3),
                num(float(weights.to_numpy().max()) if weights.size else None, 3),
                f"{at_cap * 100:.0f}%",
            ]
        )
    header = ["strategy", "largest gross", "mean gross", "largest symbol |weight|", "times at --max-gross"]
    intro = (
        f"<p>--max-gross {num(max_gross)} (largest sum of the symbols' |weights|; above 1 is leverage), "
        f"--max-weight {num(max_weight)} (largest |weight| of one symbol).</p>"
    )
    return intro + table(header, body)


def _record(run: PortfolioRun) -> str:
    mf = run.manifest
    config, model = mf.get("config") or {}, mf.get("model") or {}
    pairs: dict[str, Any] = {
        "symbols": ", ".join(run.symbols),
        "label": run.metrics.get("label"),
        **{f"source {s}": p for s, p in (mf.get("sources") or {}).items()},
        "strategies": ", ".join(map(str, config.get("strategies") or run.trading)),
        "max gross": run.metrics.get("max_gross"),
        "max weight": run.metrics.get("max_weight"),
        **{k: config.get(k) for k in ("entry", "fee_bps", "slippage_bps", "borrow_rate", "allow_short")},
        **{k: config.get(k) for k in ("horizon", "context", "windows", "stride", "seed")},
        "model": model.get("id"),
        "model checksum": model.get("checksum"),
        "model source": model.get("source"),
        "device": mf.get("device"),
        "dtype": mf.get("dtype"),
        **flatten("versions", mf.get("versions") or {}),
        "command": " ".join(map(str, mf.get("command") or [])),
        "created at": mf.get("created_at"),
        "folder": str(run.folder),
    }
    return key_values(pairs)
