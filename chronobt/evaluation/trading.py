"""The trading view of a backtest: every ``--strategy`` traded on the same windows, with honest fills.

Each strategy (:mod:`chronobt.evaluation.strategies`) turns a window's forecast and the close at its
origin into orders; :mod:`chronobt.evaluation.fills` fills them bar by bar on the realised bars after the
origin and charges fees, slippage and borrowing. This module picks the windows traded, runs every
strategy on them and builds the per-strategy summaries and the tables ``trades.parquet`` and
``equity.parquet``.

Overlapping windows (stride < horizon) cannot all be traded with one unit of capital, so only every
``ceil(horizon / stride)``-th window is used, counting back from the latest one; consecutive used windows
(the **decision points**) are ``step = ceil(horizon / stride) * stride`` bars apart. With ``bars`` (each
origin's bar index) the used windows are those on that grid, so a window left out of the arrays (the
backtest drops windows whose whole horizon was forward-filled) leaves a hole in the grid.

Per strategy, over the used windows (flat ones hold cash at 0%):

- ``total_return``: the compounded per-period net returns; ``annualized_return`` ``(1 + total) **
  (bars_per_year / span) - 1``, ``span`` the bars from the first used origin to the last one's horizon;
- ``sharpe``: mean over sample sd of the per-period net returns times ``sqrt(bars_per_year / step)``,
  zero risk-free rate, ``None`` with fewer than two trades; ``max_drawdown`` of the equity curve from
  1.0 (a positive fraction); ``win_rate`` the trades with a net return > 0;
- ``exposure``: bars in a position / span; ``n_trades``; ``buy_and_hold``: the close at the first window
  whose origin and horizon bars are real to the close at the last one's horizon, less one round trip of
  fees and slippage; ``untradable``: used windows whose needed bars were forward-filled (kept flat);
- ``costs``: the options (``entry``, ``fee_bps``, ``slippage_bps``, ``borrow_rate``) and what the trades
  paid, summed over trades as fractions of equity (``fees``, ``slippage``, ``borrow``, ``total``).

The statistics come from one function, :func:`chronobt.evaluation.trading_stats.strategy_statistics`, over
the per-period series; the summary's own ``annualized_return``, ``exposure`` and ``buy_and_hold`` (above)
are kept.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from chronobt.evaluation import trading_stats
from chronobt.evaluation.fills import REASONS, Bars, Costs, EntryMode, fill, trade_returns
from chronobt.evaluation.strategies import ForecastView, Strategy, decide

TRADE_COLUMNS = (
    "strategy",
    "origin",
    "side",
    "size",
    "entry_time",
    "entry",
    "exit_time",
    "exit",
    "exit_reason",
    "costs",
    "gross_return",
    "net_return",
)
EQUITY_COLUMNS = ("strategy", "timestamp", "return", "equity", "gross_exposure")


@dataclass(frozen=True, eq=False)
class TradingView:
    """Every strategy's summary (``{label: {...}}``, strict JSON) and the ``trades`` and ``equity``
    tables (columns :data:`TRADE_COLUMNS`, :data:`EQUITY_COLUMNS`, strategies in the order given)."""

    summaries: dict[str, dict[str, Any]]
    trades: pd.DataFrame
    equity: pd.DataFrame


@dataclass(frozen=True)
class Execution:
    """How orders are executed: ``entry`` for market orders, ``costs``, and whether shorts are allowed."""

    entry: EntryMode = "next-open"
    costs: Costs = field(default_factory=Costs)
    allow_short: bool = False


def used_windows(at: np.ndarray, horizon: int, stride: int) -> tuple[np.ndarray, int]:
    """Positions of the traded windows (the grid of ``step`` bars anchored at the latest origin) and
    ``step``; ``at`` ``[w]`` ascending bar index of each origin."""
    every = math.ceil(horizon / stride)
    step = every * stride
    return np.flatnonzero((at[-1] - at) % step == 0), step


def trade(
    view: ForecastView,
    bars: Bars,
    strategies: Sequence[Strategy],
    execution: Execution,
    *,
    horizon: int,
    bars_per_year: float,
    stride: int | None = None,
    origins: Sequence[Any] | pd.Index | npt.NDArray[Any] | None = None,
    at: npt.ArrayLike | None = None,
    times: np.ndarray | None = None,
    seed: int = 0,
) -> TradingView:
    """Trade every strategy on the used windows of ``view`` and ``bars`` (``[w]`` windows each).

    ``origins`` labels the windows (default ``0 .. w-1``); ``at`` ``[w]`` their ascending bar indices
    (default evenly spaced by ``stride``, itself defaulting to the horizon); ``times`` ``[w, h + 1]`` the
    timestamps of each window's bars (origin first) for the trade table, default the bar indices.
    """
    n = view.reference.size
    stride = horizon if stride is None else stride
    if horizon < 1 or stride < 1 or bars_per_year <= 0:
        raise ValueError(
            f"need horizon >= 1, stride >= 1 and bars_per_year > 0; got {horizon}, {stride}, {bars_per_year}"
        )
    labels = pd.RangeIndex(n) if origins is None else pd.Index(origins)
    bar_at = stride * np.arange(n, dtype=np.int64) if at is None else np.asarray(at, dtype=np.int64)
    if labels.shape != (n,) or bar_at.shape != (n,) or np.any(np.diff(bar_at) <= 0):
        raise ValueError(
            f"origins and bars must label the {n} windows (bars ascending), "
            f"got {labels.shape} and {bar_at.shape}"
        )
    used, step = used_windows(bar_at, horizon, stride)
    stamps = bar_at[:, None] + np.arange(horizon + 1) if times is None else times
    every_window = used.size == n  # non-overlapping windows: no copy of the forecasts
    sub_view = (
        view
        if every_window
        else ForecastView(
            price_q=view.price_q[used],
            targets=view.targets,
            levels=view.levels,
            reference=view.reference[used],
        )
    )
    sub_bars = Bars(*(np.asarray(getattr(bars, f))[used] for f in ("open", "high", "low", "close", "real")))
    span = int(bar_at[used[-1]] - bar_at[used[0]]) + horizon
    context = _Context(
        labels=labels[used],
        times=np.asarray(stamps)[used],
        span=span,
        step=step,
        bars_per_year=bars_per_year,
        hold=_hold_returns(sub_bars),
        buy_and_hold=_buy_and_hold(sub_bars, execution.costs),
        seed=seed,
    )
    summaries: dict[str, dict[str, Any]] = {}
    trades, equity = [], []
    for strategy in strategies:
        summary, t, e = _one_strategy(strategy, sub_view, sub_bars, execution, context)
        summaries[strategy.label] = summary
        trades.append(t)
        equity.append(e)
    return TradingView(
        summaries=summaries,
        trades=pd.concat(trades, ignore_index=True) if trades else _empty(TRADE_COLUMNS),
        equity=pd.concat(equity, ignore_index=True) if equity else _empty(EQUITY_COLUMNS),
    )


@dataclass(frozen=True, eq=False)
class _Context:
    """What every strategy of one trading view shares (the used windows' labels, times and span)."""

    labels: pd.Index
    times: np.ndarray
    span: int
    step: int
    bars_per_year: float
    hold: np.ndarray
    buy_and_hold: float
    seed: int


def _one_strategy(
    strategy: Strategy, view: ForecastView, bars: Bars, execution: Execution, ctx: _Context
) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame]:
    """One strategy's summary, trade rows and equity rows on the used windows."""
    costs = execution.costs
    allow_short = execution.allow_short and strategy.name != "range"  # range is long only
    orders = decide(strategy, view, cost=costs.per_side, allow_short=allow_short)
    fills = fill(orders, bars, entry=execution.entry)
    r = trade_returns(orders, fills, costs, bars_per_year=ctx.bars_per_year)
    traded = fills.traded
    rows = np.flatnonzero(traded)
    take = np.arange(len(fills.traded))
    trades = pd.DataFrame(
        {
            "strategy": strategy.label,
            "origin": ctx.labels[rows],
            "side": np.where(orders.side > 0, "long", "short")[rows],
            "size": orders.size[rows],
            "entry_time": _stamps(ctx.times[take, np.maximum(fills.entry_bar, 0)][rows]),
            "entry": fills.entry_price[rows],
            "exit_time": _stamps(ctx.times[take, np.maximum(fills.exit_bar, 0)][rows]),
            "exit": fills.exit_price[rows],
            "exit_reason": np.asarray(REASONS, dtype=object)[fills.reason][rows],
            "costs": (r.fees + r.slippage + r.borrow)[rows],
            "gross_return": r.gross[rows],
            "net_return": r.net[rows],
        },
        columns=list(TRADE_COLUMNS),
    )
    net = r.net
    curve = np.cumprod(1.0 + net)
    exposure = np.where(traded, orders.size * fills.bars_held / ctx.step, 0.0)
    equity = pd.DataFrame(
        {
            "strategy": strategy.label,
            "timestamp": ctx.labels,
            "return": net,
            "equity": curve,
            "gross_exposure": exposure,
        },
        columns=list(EQUITY_COLUMNS),
    )
    total = float(curve[-1] - 1.0)
    growth = 1.0 + total
    summary: dict[str, Any] = {
        "total_return": total,
        "annualized_return": growth ** (ctx.bars_per_year / ctx.span) - 1.0 if growth > 0 else -1.0,
        "sharpe": None,
        "max_drawdown": None,
        "win_rate": None,
        "exposure": float(fills.bars_held.sum()) / ctx.span,
        "n_trades": int(traded.sum()),
        "buy_and_hold": ctx.buy_and_hold,
    }
    stats = trading_stats.strategy_statistics(
        net, curve, trades, ctx.hold, ctx.step, ctx.bars_per_year, ctx.seed, span_bars=ctx.span
    )
    summary.update({k: v for k, v in stats.items() if summary.get(k) is None})  # the view's own first
    summary.update(
        windows_used=int(net.size),
        step=int(ctx.step),
        untradable=int((~fills.tradable).sum()),
        strategy=strategy.name,
        params=dict(strategy.params),
        costs=_costs_block(execution, r.fees[rows], r.slippage[rows], r.borrow[rows]),
    )
    return _strict(summary), trades, equity


def _costs_block(
    execution: Execution, fees: np.ndarray, slippage: np.ndarray, borrow: np.ndarray
) -> dict[str, Any]:
    c = execution.costs
    paid = {"fees": float(fees.sum()), "slippage": float(slippage.sum()), "borrow": float(borrow.sum())}
    return {
        "entry": execution.entry,
        "fee_bps": c.fee_bps,
        "slippage_bps": c.slippage_bps,
        "borrow_rate": c.borrow_rate,
        **paid,
        "total": paid["fees"] + paid["slippage"] + paid["borrow"],
    }


def _hold_returns(bars: Bars) -> np.ndarray:
    """Buy-and-hold's return over each period: the close at one used origin to the next (the last to
    its horizon's close)."""
    start = bars.close[:, 0]
    end = np.concatenate([start[1:], bars.close[-1:, -1]])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(end / start - 1.0, dtype=np.float64)


def _buy_and_hold(bars: Bars, costs: Costs) -> float:
    held = np.flatnonzero(bars.real[:, 0] & bars.real[:, -1])
    if not held.size:
        return math.nan
    return float(bars.close[held[-1], -1] / bars.close[held[0], 0] - 1.0 - 2 * costs.per_side)


def _strict(summary: dict[str, Any]) -> dict[str, Any]:
    """NaN and infinities as ``None`` (strict JSON)."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in summary.items()}


def _stamps(values: np.ndarray) -> Any:
    """Bar times as UTC timestamps (``datetime64`` values are UTC), bar indices as they are."""
    if np.issubdtype(values.dtype, np.datetime64):
        return pd.DatetimeIndex(values).tz_localize("UTC")
    return values


def _empty(columns: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame({c: [] for c in columns}, columns=list(columns))


@dataclass(frozen=True, eq=False)
class TradingResult:
    """One strategy's summary (the fields of the module docstring) and its trade table, as
    :func:`simulate` returns them; undefined values are NaN here and ``None`` in :meth:`summary`."""

    total_return: float
    annualized_return: float
    sharpe: float
    max_drawdown: float
    win_rate: float
    exposure: float
    n_trades: int
    buy_and_hold: float
    windows_used: int
    step: int
    untradable: int
    trades: pd.DataFrame  # columns TRADE_COLUMNS, one row per trade (flat windows omitted)

    def summary(self) -> dict[str, Any]:
        """Everything but ``trades``, as strict-JSON values (NaN -> ``None``)."""
        return _strict({k: v for k, v in vars(self).items() if k != "trades"})


def simulate(
    *,
    last_close: npt.ArrayLike,
    forecast_close: npt.ArrayLike,
    realized_close: npt.ArrayLike,
    horizon: int,
    bars_per_year: float,
    stride: int | None = None,
    fee_bps: float = 10.0,
    allow_short: bool = False,
    origins: Sequence[Any] | pd.Index | npt.NDArray[Any] | None = None,
    tradable: npt.ArrayLike | None = None,
    bars: npt.ArrayLike | None = None,
) -> TradingResult:
    """The ``sign`` strategy entered at the origin's close (``--entry close``) from closes alone.

    ``last_close``, ``forecast_close`` (the median close at the horizon) and ``realized_close`` are
    ``[w]``; ``tradable`` ``[w]`` marks the windows whose origin and horizon bars are real (default all);
    the rest as :func:`trade`.
    """
    prices = [np.asarray(x, dtype=np.float64) for x in (last_close, forecast_close, realized_close)]
    n = prices[0].size
    if prices[0].ndim != 1 or n == 0 or any(p.shape != prices[0].shape for p in prices):
        raise ValueError(
            f"the three close arrays must share one non-empty 1-d shape, got {[p.shape for p in prices]}"
        )
    if fee_bps < 0:
        raise ValueError(f"fee_bps must be >= 0, got {fee_bps}")
    ok = np.ones(n, dtype=bool) if tradable is None else np.asarray(tradable, dtype=bool)
    if ok.shape != (n,):
        raise ValueError(f"tradable must have the {n} windows' shape, got {ok.shape}")
    close = np.full((n, horizon + 1), np.nan)
    close[:, 0], close[:, -1] = prices[0], prices[2]
    real = np.ones_like(close, dtype=bool)
    real[:, 0] = real[:, -1] = ok
    view = ForecastView(
        price_q=prices[1][:, None, None, None] * np.ones((1, 1, 1, horizon)),
        targets=("close",),
        levels=(0.5,),
        reference=prices[0],
    )
    execution = Execution(entry="close", costs=Costs(fee_bps=fee_bps), allow_short=allow_short)
    result = trade(
        view,
        Bars(open=close, high=close, low=close, close=close, real=real),
        [Strategy("sign")],
        execution,
        horizon=horizon,
        bars_per_year=bars_per_year,
        stride=stride,
        origins=origins,
        at=bars,
    )
    s = result.summaries["sign"]
    values: dict[str, Any] = {k: math.nan if s[k] is None else s[k] for k in _RESULT_FIELDS}
    return TradingResult(**values, trades=result.trades)


_RESULT_FIELDS = (
    "total_return",
    "annualized_return",
    "sharpe",
    "max_drawdown",
    "win_rate",
    "exposure",
    "n_trades",
    "buy_and_hold",
    "windows_used",
    "step",
    "untradable",
)
