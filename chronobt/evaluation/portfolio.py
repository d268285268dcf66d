"""One account over several symbols' strategies: positions scaled to exposure caps, bars aligned on time.

Each symbol contributes a *sleeve*: one strategy's decision times (UTC), the position size it held over
each period (``|size|``, 0 when flat) and the net return of that period at that size (a fraction of
equity, costs paid). Symbols trade on their own calendars (a stock's sessions with overnight and weekend
gaps beside 24/7 crypto), so their decision times differ; the account's timeline is the union of all
decision times, in time order. At each time ``T``, in order:

1. the symbols deciding at ``T`` close their previous position (weight 0), and so does a symbol whose
   last period has ended (its ``end``) by ``T``; the others keep theirs (a stock's Friday position is
   held over the weekend until its next decision);
2. each deciding symbol's signal, its own size, is capped at ``max_weight``;
3. the deciding symbols share what ``max_gross`` leaves after the positions still open, in proportion
   to their capped signals: all are scaled by ``min(1, (max_gross - open) / sum(capped))``, so the gross
   exposure ``sum(|weight|)`` never exceeds ``max_gross`` and no symbol exceeds ``max_weight``; when
   every symbol decides at the same times this is plain proportional scaling;
4. a symbol's period return is its sleeve's return times ``weight / size`` (fees, slippage, price moves
   and short borrowing scale with the position; borrowing on a long above 1x is charged on the sleeve's
   own size, an over-estimate when scaled down), booked at the period's decision time ``T``.

The account's return at ``T`` is the sum of the periods booked at ``T`` (the per-symbol terms are the
attribution: they add up to it), compounded into one equity curve from 1.0. Buy-and-hold is an
equal-weight account (``1 / S`` in each of the ``S`` symbols) booked the same way from each symbol's
buy-and-hold return over its periods.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class Sleeve:
    """One symbol's strategy at its decision points (``[n]`` each, ``times`` ascending and distinct)."""

    symbol: str
    times: npt.NDArray[np.datetime64]  # [n] decision times, UTC
    returns: FloatArray  # [n] net return of each period at the strategy's own size
    size: FloatArray  # [n] |position| held over each period (0: flat)
    hold: FloatArray  # [n] buy-and-hold return of the symbol over each period
    #: when the last period ends (its position is released then); default one median spacing after the
    #: last decision (with one decision: held to the end of the account's timeline)
    end: np.datetime64 | None = None

    def last_end(self) -> Any:
        """The ``datetime64[ns]`` end of the last period, or ``None`` (held to the timeline's end)."""
        if self.end is not None:
            return np.asarray(self.end, dtype="datetime64[ns]")[()]
        t = np.asarray(self.times, dtype="datetime64[ns]")
        return t[-1] + np.median(np.diff(t)).astype("timedelta64[ns]") if t.size > 1 else None

    def __post_init__(self) -> None:
        n = len(self.times)
        shapes = {np.shape(x) for x in (self.returns, self.size, self.hold)}
        if n == 0 or shapes != {(n,)}:
            raise ValueError(
                f"{self.symbol}: a sleeve needs n > 0 times and [n] arrays, got {n} and {shapes}"
            )
        if np.any(np.diff(np.asarray(self.times, dtype="datetime64[ns]").astype(np.int64)) <= 0):
            raise ValueError(f"{self.symbol}: decision times must be strictly ascending")


@dataclass(frozen=True, eq=False)
class Portfolio:
    """The account on the union of the sleeves' decision times (``[m]``; ``[S, m]`` per symbol)."""

    symbols: tuple[str, ...]
    times: npt.NDArray[np.datetime64]  # [m] the account's timeline
    returns: FloatArray  # [m] net return booked at each time
    equity: FloatArray  # [m] equity after each time (from 1.0)
    gross_exposure: FloatArray  # [m] sum of |weights| after the decisions at each time
    weights: FloatArray  # [S, m] each symbol's weight after the decisions at each time
    scale: FloatArray  # [S, m] weight / size of the period decided at each time (0 elsewhere)
    contribution: FloatArray  # [S, m] each symbol's booked return (sums to ``returns``)
    hold: FloatArray  # [m] the equal-weight buy-and-hold account's booked return


def _grid(sleeves: Sequence[Sleeve]) -> tuple[npt.NDArray[np.datetime64], npt.NDArray[np.intp]]:
    """The union of decision times and each sleeve's positions in it (concatenated)."""
    stamps = [np.asarray(s.times, dtype="datetime64[ns]") for s in sleeves]
    times = np.unique(np.concatenate(stamps))
    return times, np.searchsorted(times, np.concatenate(stamps))


def combine(sleeves: Sequence[Sleeve], *, max_gross: float = 1.0, max_weight: float = 1.0) -> Portfolio:
    """The account over ``sleeves`` (rules in the module docstring).

    Parameters
    ----------
    sleeves
        One per symbol, the same strategy.
    max_gross
        Largest sum of ``|weight|`` (1.0: no leverage), > 0.
    max_weight
        Largest ``|weight|`` of one symbol, > 0.
    """
    if not sleeves or not (max_gross > 0 and max_weight > 0):
        raise ValueError(f"need sleeves, max_gross > 0 and max_weight > 0; got {max_gross}, {max_weight}")
    times, at = _grid(sleeves)
    n_s, m = len(sleeves), times.size
    row = np.repeat(np.arange(n_s), [len(s.times) for s in sleeves])
    decide = np.zeros((n_s, m), dtype=bool)
    raw, ret, hold = np.zeros((n_s, m)), np.zeros((n_s, m)), np.zeros((n_s, m))
    decide[row, at] = True
    release = np.full(n_s, m)  # the first timeline position at or after each sleeve's end
    for i, s in enumerate(sleeves):
        end = s.last_end()
        release[i] = m if end is None else np.searchsorted(times, end, side="left")
    raw[row, at] = np.abs(np.concatenate([s.size for s in sleeves]))
    ret[row, at] = np.concatenate([s.returns for s in sleeves])
    hold[row, at] = np.concatenate([s.hold for s in sleeves])

    weights, scale = np.zeros((n_s, m)), np.zeros((n_s, m))
    w = np.zeros(n_s)
    for k in range(m):  # path-dependent: the budget left depends on the positions still open
        d = decide[:, k]
        w[d | (release <= k)] = 0.0
        capped = np.minimum(raw[d, k], max_weight)
        total = float(capped.sum())
        budget = max(max_gross - float(w.sum()), 0.0)
        w[d] = capped * (min(1.0, budget / total) if total > 0 else 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            scale[d, k] = np.where(raw[d, k] > 0, w[d] / raw[d, k], 0.0)
        weights[:, k] = w
    contribution = scale * ret
    returns = contribution.sum(axis=0)
    return Portfolio(
        symbols=tuple(s.symbol for s in sleeves),
        times=times,
        returns=returns,
        equity=np.cumprod(1.0 + returns),
        gross_exposure=weights.sum(axis=0),
        weights=weights,
        scale=scale,
        contribution=contribution,
        hold=np.nansum(hold, axis=0) / n_s,
    )


def periods_per_year(times: npt.ArrayLike) -> float:
    """Decision times per year of the account's ``[m]`` timeline: ``m`` over the years it spans (the
    first to the last time plus one average spacing); NaN with fewer than two times."""
    t = np.asarray(times, dtype="datetime64[ns]").astype(np.int64)
    if t.size < 2:
        return math.nan
    years = (t[-1] - t[0]) / (365.25 * 86_400e9) * t.size / (t.size - 1)
    return float(t.size / years)


def attribution(portfolio: Portfolio) -> dict[str, dict[str, float]]:
    """Per symbol: ``contribution`` (the sum of its booked returns), ``mean_weight`` (its average
    ``|weight|`` over the timeline) and ``max_weight``."""
    return {
        s: {
            "contribution": float(portfolio.contribution[i].sum()),
            "mean_weight": float(np.abs(portfolio.weights[i]).mean()),
            "max_weight": float(np.abs(portfolio.weights[i]).max()),
        }
        for i, s in enumerate(portfolio.symbols)
    }


def equity_frame(portfolio: Portfolio, strategy: str) -> pd.DataFrame:
    """The account's rows of ``equity.parquet``: ``strategy``, ``timestamp``, ``return``, ``equity``,
    ``gross_exposure``, then ``weight_<SYMBOL>`` and ``contribution_<SYMBOL>`` per symbol."""
    frame = pd.DataFrame(
        {
            "strategy": strategy,
            "timestamp": pd.DatetimeIndex(portfolio.times).tz_localize("UTC"),
            "return": portfolio.returns,
            "equity": portfolio.equity,
            "gross_exposure": portfolio.gross_exposure,
        }
    )
    for i, s in enumerate(portfolio.symbols):
        frame[f"weight_{s}"] = portfolio.weights[i]
        frame[f"contribution_{s}"] = portfolio.contribution[i]
    return frame
