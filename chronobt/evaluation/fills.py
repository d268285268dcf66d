"""Filling a strategy's orders bar by bar against the realised bars after each origin.

All windows are filled at once, as array operations; the only loop runs over the horizon's bars.
The fill rules (``o, hi, lo, c``: a bar's open, high, low and close):

- a **market** entry fills at the origin's close (``--entry close``; optimistic: the signal uses that
  close, and nobody trades at the price the signal was computed from) or at the open of the bar after
  the origin (``--entry next-open``, the default);
- a **limit buy** at ``L`` fills only when a bar trades through it, ``lo < L`` (a bar whose low only
  touches ``L`` does not fill), at ``min(o, L)``: at the limit, or at the open when the bar opens below it;
- a **take-profit** (limit sell) at ``T`` fills when ``hi > T``, at ``max(o, T)``;
- a **stop** (sell stop, long) at ``S`` fills when ``lo <= S``, at ``min(o, S)``: at the stop, or at the
  open when the bar gaps below it;
- when one bar reaches both the stop and the target, the **stop is taken first** (the bars' path inside a
  bar is unknown; this is the pessimistic choice, where backtesting.py assumes the same when it cannot
  tell);
- on the bar a limit entry fills, only the stop is checked (again pessimistic): it fills at
  ``min(S, entry price)``; the target is first checked on the next bar;
- a position still open after the horizon's last bar is sold at that bar's close;
- a **forward-filled bar** (missing from the file) never fills anything. A window whose entry bar (for a
  market entry) or horizon bar is forward-filled is not traded at all (``tradable`` False).

Every fill price lies within its bar's low-high range.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from chronobt.evaluation.strategies import Orders

EntryMode = Literal["next-open", "close"]
#: ``exit_reason`` codes (``Fills.reason``) and their names in trades.parquet.
REASONS = ("", "target", "stop", "horizon")
TARGET, STOP, HORIZON = 1, 2, 3


@dataclass(frozen=True, eq=False)
class Bars:
    """The realised bars of every window: ``open``, ``high``, ``low``, ``close`` and ``real`` (not
    forward-filled), each ``[w, h + 1]``; column 0 is the origin's bar, column ``k`` the ``k``-th after."""

    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    real: np.ndarray


@dataclass(frozen=True, eq=False)
class Fills:
    """Where each window's position was entered and left (``[w]`` each).

    ``traded``: a position was entered; ``entry_bar``/``exit_bar``: 0 the origin's bar, ``k`` the k-th bar
    after it; ``entry_price``/``exit_price`` NaN when not traded; ``reason``: :data:`REASONS` index;
    ``bars_held``: bars the position was open for, counting the entry bar (not the origin's) and the exit
    bar; ``tradable``: the window's needed bars are real.
    """

    traded: np.ndarray
    entry_bar: np.ndarray
    entry_price: np.ndarray
    exit_bar: np.ndarray
    exit_price: np.ndarray
    reason: np.ndarray
    bars_held: np.ndarray
    tradable: np.ndarray


def fill(orders: Orders, bars: Bars, *, entry: EntryMode = "next-open") -> Fills:
    """Fill ``orders`` (one per window) on ``bars`` by the rules in the module docstring."""
    n, width = bars.close.shape
    h = width - 1
    limit_order = np.isfinite(orders.limit).any(axis=1)
    first = 0 if entry == "close" else 1
    tradable = bars.real[:, h] & (limit_order | bars.real[:, first])
    want = (orders.side != 0) & tradable
    market = want & ~limit_order
    entry_bar = np.where(market, first, -1)
    entry_price = np.where(market, bars.close[:, 0] if first == 0 else bars.open[:, 1], np.nan)
    exit_bar = np.full(n, -1)
    exit_price = np.full(n, np.nan)
    reason = np.zeros(n, dtype=np.int8)
    has_stops = np.isfinite(orders.stop).any() or np.isfinite(orders.target).any()
    for k in range(1, h + 1) if (limit_order.any() or has_stops) else ():
        o, hi, lo, real = bars.open[:, k], bars.high[:, k], bars.low[:, k], bars.real[:, k]
        stop, target = orders.stop[:, k - 1], orders.target[:, k - 1]
        holding = (entry_bar >= 0) & (entry_bar < k) & (exit_bar < 0) & real
        with np.errstate(invalid="ignore"):
            stopped = holding & (lo <= stop)
            reached = holding & ~stopped & (hi > target)
        _exit(exit_bar, exit_price, reason, stopped, k, np.minimum(o, stop), STOP)
        _exit(exit_bar, exit_price, reason, reached, k, np.maximum(o, target), TARGET)
        limit = orders.limit[:, k - 1]
        with np.errstate(invalid="ignore"):
            fills = want & limit_order & (entry_bar < 0) & real & (lo < limit)
        entry_bar = np.where(fills, k, entry_bar)
        entry_price = np.where(fills, np.minimum(o, limit), entry_price)
        with np.errstate(invalid="ignore"):
            same_bar = fills & (lo <= stop)
        _exit(exit_bar, exit_price, reason, same_bar, k, np.minimum(stop, entry_price), STOP)
    open_at_end = (entry_bar >= 0) & (exit_bar < 0)
    _exit(exit_bar, exit_price, reason, open_at_end, h, bars.close[:, h], HORIZON)
    traded = entry_bar >= 0
    bars_held = np.where(traded, exit_bar - np.maximum(entry_bar, 1) + 1, 0)
    return Fills(
        traded=traded,
        entry_bar=entry_bar,
        entry_price=np.where(traded, entry_price, np.nan),
        exit_bar=exit_bar,
        exit_price=exit_price,
        reason=reason,
        bars_held=bars_held,
        tradable=tradable,
    )


def _exit(
    exit_bar: np.ndarray,
    exit_price: np.ndarray,
    reason: np.ndarray,
    mask: np.ndarray,
    k: int,
    price: np.ndarray,
    code: int,
) -> None:
    """Record the exits in ``mask`` at bar ``k`` and ``price`` (in place)."""
    exit_bar[mask] = k
    exit_price[mask] = price[mask]
    reason[mask] = code


@dataclass(frozen=True)
class Costs:
    """What trading costs: ``fee_bps`` and ``slippage_bps`` per side (on the entry notional),
    ``borrow_rate`` a year on the borrowed notional, accrued per bar held over ``bars_per_year``."""

    fee_bps: float = 10.0
    slippage_bps: float = 0.0
    borrow_rate: float = 0.0

    @property
    def per_side(self) -> float:
        """Fee plus slippage per side, a fraction of the notional."""
        return (self.fee_bps + self.slippage_bps) / 10_000.0


@dataclass(frozen=True, eq=False)
class TradeReturns:
    """Each window's returns as fractions of equity (``[w]``; 0 when not traded): ``gross``, the costs
    ``fees``, ``slippage`` and ``borrow``, and ``net = gross - fees - slippage - borrow``."""

    gross: np.ndarray
    fees: np.ndarray
    slippage: np.ndarray
    borrow: np.ndarray
    net: np.ndarray


def trade_returns(orders: Orders, fills: Fills, costs: Costs, *, bars_per_year: float) -> TradeReturns:
    """Gross and net returns of each window's position.

    ``gross = side * size * (exit / entry - 1)``; fees and slippage are ``size * 2 * bps / 10_000`` (both
    sides, on the entry notional); borrowing is ``borrow_rate * bars_held / bars_per_year`` on the
    borrowed notional: the whole size of a short, the part above 1 of a long.
    """
    traded = fills.traded
    size = np.where(traded, orders.size, 0.0)
    side = np.where(traded, orders.side, 0)
    with np.errstate(invalid="ignore"):
        gross = np.where(traded, side * size * (fills.exit_price / fills.entry_price - 1.0), 0.0)
    fees = size * 2 * (costs.fee_bps / 10_000.0)
    slippage = size * 2 * (costs.slippage_bps / 10_000.0)
    borrowed = np.where(side < 0, size, np.maximum(size - 1.0, 0.0))
    borrow = borrowed * costs.borrow_rate * fills.bars_held / bars_per_year
    net = gross - fees - slippage - borrow
    return TradeReturns(gross=gross, fees=fees, slippage=slippage, borrow=borrow, net=net)
