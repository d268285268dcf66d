"""One-bar moves that look like an unadjusted split or a bad print, and back-adjusting splits.

A bar is judged by two ratios to the previous bar's close: its open (the gap, ``open_t / close_{t-1}``)
and its close (``close_t / close_{t-1}``), against the series' own volatility: the robust standard
deviation ``s = 1.4826 * MAD`` of its non-zero one-bar log close returns (at least
:data:`MIN_RETURNS` of them; a shorter or flat series is not judged).

``split``
    The gap ratio lies within :data:`SPLIT_TOLERANCE` of ``1 / f`` for a common split factor ``f`` in
    :data:`SPLIT_FACTORS` (2:1, 3:1, ..., 3:2 and the reverse splits 1:2, 1:3, ..., 2:3), the close
    ratio within :data:`SPLIT_CLOSE_TOLERANCE` of the same, and the gap is at least
    :data:`SPLIT_Z` robust sd. A split happens between sessions, so both the open and the close move
    by the factor; a 24/7 series opens at the previous close and a real crash there shows in the
    close only.
``bad_print``
    Any other one-bar close move beyond :data:`OUTLIER_Z` robust sd that the next bar takes back
    (the close returns to within a quarter of the move): a print far off the market.
``jump``
    Any other one-bar close move beyond :data:`OUTLIER_Z` robust sd that stays: an unadjusted
    corporate action, a re-based quote or an extreme real move.

Thresholds: real hourly crypto reaches about 52 robust sd in one bar (LTC, BTC and ETH on Binance,
2017-2024) and daily stocks about 34 (AAPL's -52% day on 2000-09-29), so ``OUTLIER_Z = 60`` stays above
real moves while a 10x bad print or a -30% print on a series of 0.5% daily moves (71 sd) is flagged.
A -30% crash on a series whose typical move is 3% (about 12 sd) is not. That AAPL day opened 5.2% away
from half the previous close, hence the tighter 3% for a split's gap (a real split's gap is the
factor times an ordinary overnight move). Nothing is ever changed
silently: :func:`adjust_splits` runs only when asked (``--adjust-splits``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

import numpy as np
import pandas as pd

from chronobt.data.frequency import fmt_time

#: Forward split factors (2 = a 2:1 split: every price halves); their reciprocals are reverse splits.
SPLIT_FACTORS: tuple[float, ...] = (2.0, 3.0, 4.0, 5.0, 7.0, 8.0, 10.0, 15.0, 20.0, 1.5)
SPLIT_TOLERANCE = 0.03  # |log(gap ratio * f)| at most log(1.03): within 3% of the split ratio
SPLIT_CLOSE_TOLERANCE = 0.1  # |log(close ratio * f)|: the split day's own move may add about 10%
SPLIT_Z = 10.0  # the gap must be at least this many robust sd
OUTLIER_Z = 60.0  # a one-bar close move beyond this many robust sd is flagged
MIN_RETURNS = 30  # non-zero one-bar returns needed to estimate the series' volatility
REVERT_SHARE = 0.25  # a bad print: the next bar brings the close back to within this share of the move
MAD_TO_SD = 1.4826  # MAD of a normal sample -> its standard deviation

JumpKind = Literal["split", "bad_print", "jump"]


@dataclass(frozen=True)
class Jump:
    """One suspicious bar: where it is, the prices around it and what it looks like.

    ``where`` names the row as errors do (``line 57`` of a CSV export, ``row 56`` of a parquet file);
    ``factor`` is the split factor (2.0 for 2:1, 0.1 for a 1:10 reverse split; None for other kinds);
    ``z`` the close move in robust sd of the series.
    """

    timestamp: str
    where: str
    bar: int  # position in the sorted, de-duplicated bars (before any gap filling)
    kind: JumpKind
    previous_close: float
    open: float
    close: float
    ratio: float  # close / previous close
    gap_ratio: float  # open / previous close
    z: float
    factor: float | None = None

    @property
    def label(self) -> str:
        """``"2:1"`` (``"1:10"`` for a reverse split); empty for other kinds."""
        if self.factor is None:
            return ""
        frac = Fraction(self.factor).limit_denominator(20)
        return f"{frac.numerator}:{frac.denominator}"

    def describe(self) -> str:
        """One line: where, the prices, the ratio, the likely cause and the fix."""
        at = f"{self.timestamp} ({self.where})"
        if self.kind == "split":
            f = self.factor or 1.0
            change = f"divided by {f:g}" if f > 1 else f"multiplied by {1 / f:g}"
            return (
                f"close {self.previous_close:g} -> open {self.open:g} at {at}: ratio "
                f"{self.gap_ratio:.3f}, looks like an unadjusted {self.label} split (earlier prices not "
                f"{change}); back-adjust the stored file with `chronobt data check SYMBOL --adjust-splits` "
                "(or import again: `chronobt data import FILE -s SYMBOL --force --adjust-splits`), "
                "or fix the file"
            )
        moved = (
            f"close {self.previous_close:g} -> {self.close:g} at {at}: ratio {self.ratio:.3f}, "
            f"{abs(self.z):.0f}"
        )
        if self.kind == "bad_print":
            return (
                f"{moved} robust sd of this series' one-bar moves (limit {OUTLIER_Z:g}) and back the "
                "next bar: looks like a bad print; fix or drop that row"
            )
        return (
            f"{moved} robust sd of this series' one-bar moves (limit {OUTLIER_Z:g}): an unadjusted "
            "corporate action, a re-based quote or an extreme real move; check the source"
        )


def find_jumps(frame: pd.DataFrame, where: Callable[[int], str]) -> tuple[Jump, ...]:
    """The suspicious bars of ``frame`` (sorted, unique times; open/close columns), in time order.

    ``where(i)`` names bar ``i``'s row in the source (see :class:`Jump`).
    """
    o = frame["open"].to_numpy(dtype=np.float64)
    c = frame["close"].to_numpy(dtype=np.float64)
    if len(c) < MIN_RETURNS + 1:
        return ()
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.log(c[1:] / c[:-1])  # [n - 1]: bar i + 1's close move
        g = np.log(o[1:] / c[:-1])
    moving = np.isfinite(r) & (r != 0)
    if moving.sum() < MIN_RETURNS:
        return ()
    centre = float(np.median(r[moving]))
    scale = MAD_TO_SD * float(np.median(np.abs(r[moving] - centre)))
    if not scale > 0:
        return ()
    z = (r - centre) / scale
    log_f = np.log(np.array([*SPLIT_FACTORS, *(1 / f for f in SPLIT_FACTORS)]))
    with np.errstate(invalid="ignore"):
        distance = np.abs(g[:, None] + log_f[None, :])  # [n - 1, F]
    best = np.argmin(np.nan_to_num(distance, nan=np.inf), axis=1)
    split = (
        (np.take_along_axis(distance, best[:, None], axis=1)[:, 0] <= np.log1p(SPLIT_TOLERANCE))
        & (np.abs(r + log_f[best]) <= SPLIT_CLOSE_TOLERANCE)
        & (np.abs(g - centre) >= SPLIT_Z * scale)
    )
    flagged = np.flatnonzero(split | (np.isfinite(z) & (np.abs(z) >= OUTLIER_Z)))
    jumps: list[Jump] = []
    taken_back = -1  # the return index of a bad print's second leg (the same print, not a new one)
    for i in flagged:
        if i == taken_back:
            continue
        kind: JumpKind = "split"
        if not split[i]:
            back = i + 1 < len(r) and abs(r[i] + r[i + 1]) <= REVERT_SHARE * abs(r[i])
            kind = "bad_print" if back else "jump"
            taken_back = i + 1 if back else taken_back
        jumps.append(
            Jump(
                timestamp=fmt_time(frame.index[i + 1]),
                where=where(int(i + 1)),
                bar=int(i + 1),
                kind=kind,
                previous_close=float(c[i]),
                open=float(o[i + 1]),
                close=float(c[i + 1]),
                ratio=float(np.exp(r[i])),
                gap_ratio=float(np.exp(g[i])),
                z=float(z[i]),
                factor=float(np.exp(log_f[best[i]])) if kind == "split" else None,
            )
        )
    return tuple(jumps)


def adjust_splits(frame: pd.DataFrame, jumps: tuple[Jump, ...]) -> pd.DataFrame:
    """Back-adjust ``frame`` (the bars :func:`find_jumps` judged) for its ``split`` jumps: the bars before
    each split get their prices divided by its factor and their volume multiplied by it (the traded
    value is unchanged). Returns a new frame."""
    out = frame.copy()
    prices = [out.columns.get_loc(c) for c in ("open", "high", "low", "close") if c in out.columns]
    for jump in jumps:
        if jump.kind != "split" or jump.factor is None:
            continue
        out.iloc[: jump.bar, prices] = out.iloc[: jump.bar, prices].to_numpy() / jump.factor
        if "volume" in out.columns:
            vol = out.columns.get_loc("volume")
            out.iloc[: jump.bar, vol] = out.iloc[: jump.bar, vol].to_numpy() * jump.factor
    return out
