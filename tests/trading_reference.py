"""The trading rule as it was before strategies (verbatim but this docstring): the reference that
``sign`` with ``--entry close`` and no slippage must reproduce exactly."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

TRADE_COLUMNS = ("origin", "side", "entry", "exit", "gross_return", "net_return")


@dataclass(frozen=True, eq=False)
class TradingResult:
    """Summary of the trading view plus its per-trade table (see the module docstring for definitions).

    Undefined values (Sharpe with fewer than two trades or no variation, win rate without trades, buy
    and hold without a tradable window) are NaN here and ``None`` in :meth:`summary`.
    """

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
        out: dict[str, Any] = {}
        for key, value in vars(self).items():
            if key == "trades":
                continue
            out[key] = None if isinstance(value, float) and not math.isfinite(value) else value
        return out


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
    """Trade each non-overlapping window on its median forecast and score the result.

    Parameters
    ----------
    last_close
        ``[w]`` close at each origin (the entry price), windows in ascending origin order.
    forecast_close
        ``[w]`` median close forecast ``horizon`` bars after the origin.
    realized_close
        ``[w]`` realised close ``horizon`` bars after the origin (the exit price).
    horizon
        Bars between entry and exit.
    bars_per_year
        Bars in a year of this series (8760 hourly 24/7, 365 daily 24/7, 252 business days, ...).
    stride
        Bars between consecutive origins; default ``horizon``.
    fee_bps
        Fee per side in basis points of the notional.
    allow_short
        Also short when the forecast falls by more than the round-trip fee.
    origins
        ``[w]`` labels of the windows (origin timestamps or bar indices) for the trade table's ``origin``
        column; default the window numbers ``0 .. w-1``.
    tradable
        ``[w]`` bool: windows that may be traded (the others stay flat); default all.
    bars
        ``[w]`` ascending bar index of each origin; default evenly spaced by ``stride``.

    Returns
    -------
    TradingResult
    """
    prices = [np.asarray(x, dtype=np.float64) for x in (last_close, forecast_close, realized_close)]
    n = prices[0].size
    if prices[0].ndim != 1 or n == 0 or any(p.shape != prices[0].shape for p in prices):
        raise ValueError(
            f"the three close arrays must share one non-empty 1-d shape, got {[p.shape for p in prices]}"
        )
    stride = horizon if stride is None else stride
    if horizon < 1 or stride < 1 or bars_per_year <= 0 or fee_bps < 0:
        raise ValueError(
            "need horizon >= 1, stride >= 1, bars_per_year > 0 and fee_bps >= 0; "
            f"got {horizon}, {stride}, {bars_per_year}, {fee_bps}"
        )
    labels = pd.RangeIndex(n) if origins is None else pd.Index(origins)
    if labels.shape != (n,):
        raise ValueError(f"origins must label the {n} windows, got shape {labels.shape}")
    ok = np.ones(n, dtype=bool) if tradable is None else np.asarray(tradable, dtype=bool)
    at = stride * np.arange(n, dtype=np.int64) if bars is None else np.asarray(bars, dtype=np.int64)
    if ok.shape != (n,) or at.shape != (n,) or np.any(np.diff(at) <= 0):
        raise ValueError(
            f"tradable and bars must have the {n} windows' shape (bars ascending), "
            f"got {ok.shape} and {at.shape}"
        )
    every = math.ceil(horizon / stride)
    step = every * stride
    used = np.flatnonzero((at[-1] - at) % step == 0)  # the grid anchored at the latest window
    entry, forecast, exit_ = (p[used] for p in prices)
    ok = ok[used]
    fee = fee_bps / 10_000.0

    with np.errstate(invalid="ignore"):
        expected = forecast / entry - 1.0
        side = np.where(expected > 2 * fee, 1, 0)
        if allow_short:
            side = np.where(expected < -2 * fee, -1, side)
        side = np.where(ok, side, 0)
        gross = np.where(side != 0, side * (exit_ / entry - 1.0), 0.0)
    net = gross - 2 * fee * np.abs(side)

    span = int(at[used[-1]] - at[used[0]]) + horizon  # bars from the first entry to the last exit
    equity = np.concatenate([[1.0], np.cumprod(1.0 + net)])
    total = float(equity[-1] - 1.0)
    growth = 1.0 + total
    annualized = growth ** (bars_per_year / span) - 1.0 if growth > 0 else -1.0
    traded = side != 0
    n_trades = int(traded.sum())
    sd = float(np.std(net, ddof=1)) if net.size > 1 else 0.0
    defined = n_trades >= 2 and sd > 0
    sharpe = float(net.mean() / sd * math.sqrt(bars_per_year / step)) if defined else math.nan
    drawdown = float(np.max(1.0 - equity / np.maximum.accumulate(equity)))
    held = np.flatnonzero(ok)
    hold = float(exit_[held[-1]] / entry[held[0]] - 1.0 - 2 * fee) if held.size else math.nan

    table = pd.DataFrame(
        {
            "origin": labels[used[traded]],
            "side": np.where(side > 0, "long", "short")[traded],
            "entry": entry[traded],
            "exit": exit_[traded],
            "gross_return": gross[traded],
            "net_return": net[traded],
        },
        columns=list(TRADE_COLUMNS),
    )
    return TradingResult(
        total_return=total,
        annualized_return=float(annualized),
        sharpe=sharpe,
        max_drawdown=drawdown,
        win_rate=float(np.mean(net[traded] > 0)) if n_trades else math.nan,
        exposure=n_trades * horizon / span,
        n_trades=n_trades,
        buy_and_hold=hold,
        windows_used=int(used.size),
        step=int(step),
        untradable=int((~ok).sum()),
        trades=table,
    )
