"""The loaded series (:class:`OHLC`), its repair report and the rows of ``chronobt data list``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from chronobt.data import sessions
from chronobt.data.frequency import DAY, Calendar, as_utc, fmt_time, freq_step
from chronobt.data.splits import Jump
from chronobt.errors import DataError

TARGETS: tuple[str, ...] = ("open", "high", "low", "close")


MAX_ABS_PRICE = 1e15  # larger magnitudes are corrupt values (1e308, overflowed ints), not prices


MIN_ROWS = 2  # fewer bars cannot define a frequency


MIN_MEASURED_YEARS = 0.5  # a shorter series annualises with the nominal bars per year


MAX_JUMPS_SHOWN = 5  # suspicious bars listed one per warning line; the rest are counted


@dataclass(frozen=True)
class DataReport:
    """What loading found and repaired. Counts are rows; ``*_first`` is the first offending timestamp."""

    source: str
    rows_read: int
    rows: int
    newest_first: bool = False
    unsorted_rows: int = 0
    duplicate_exact: int = 0
    duplicate_exact_first: pd.Timestamp | None = None
    duplicate_conflicting: int = 0
    duplicate_conflicting_first: pd.Timestamp | None = None
    ohlc_inconsistent: int = 0
    ohlc_inconsistent_first: pd.Timestamp | None = None
    non_positive: int = 0
    non_positive_first: pd.Timestamp | None = None
    non_positive_last: pd.Timestamp | None = None
    volume_missing: int = 0
    gaps: int = 0
    missing_bars: int = 0
    filled_bars: int = 0
    longest_gap: int = 0
    longest_gap_after: pd.Timestamp | None = None
    freq: str = ""
    calendar: str = ""
    columns: dict[str, str] = field(default_factory=dict)  # target -> source column name
    naive_timestamps: bool = False  # written without a zone and taken as UTC
    tz: str = ""  # zone the naive timestamps were converted from (import --tz)
    merged_columns: tuple[str, ...] = ()  # one note per pair of case-twin columns merged
    jumps: tuple[Jump, ...] = ()  # one-bar moves like an unadjusted split or a bad print (data.splits)
    splits_adjusted: tuple[Jump, ...] = ()  # the splits back-adjusted on request (--adjust-splits)

    def warnings(self) -> list[str]:
        """One line per repair or finding worth a user's attention (empty when the file is clean)."""
        out: list[str] = []
        if self.naive_timestamps:
            out.append(
                "timestamps have no time zone; taken as UTC (if they are local times, re-import with "
                "--tz ZONE, e.g. --tz America/New_York)"
            )
        elif self.tz:
            out.append(f"local {self.tz} timestamps converted to UTC")
        out.extend(self.merged_columns)
        if self.newest_first:
            out.append("rows were newest-first; reversed to ascending time order")
        elif self.unsorted_rows:
            out.append(f"{self.unsorted_rows} rows were out of time order; sorted ascending")
        if self.duplicate_exact:
            out.append(
                f"{self.duplicate_exact} exact duplicate rows dropped "
                f"(first at {fmt_time(self.duplicate_exact_first)})"
            )
        if self.duplicate_conflicting:
            out.append(
                f"{self.duplicate_conflicting} rows repeat a timestamp with different values; kept the "
                f"last in file order (first at {fmt_time(self.duplicate_conflicting_first)})"
            )
        if self.ohlc_inconsistent:
            out.append(
                f"{self.ohlc_inconsistent} rows have inconsistent OHLC (high below max(open, close) or "
                f"low above min(open, close); first at {fmt_time(self.ohlc_inconsistent_first)}); kept as is"
            )
        if self.non_positive:
            span = fmt_time(self.non_positive_first)
            if self.non_positive > 1:
                span = f"first at {span}, last at {fmt_time(self.non_positive_last)}"
            else:
                span = f"at {span}"
            out.append(
                f"{self.non_positive} rows have zero or negative prices ({span}); log_returns and "
                "percent_change stop with an error for this symbol if a window's context holds one "
                "(other augmentations are unaffected; --start after the last one avoids them)"
            )
        if self.volume_missing:
            out.append(f"{self.volume_missing} missing volume values set to 0")
        out.extend(self._jump_lines())
        if self.filled_bars:
            out.append(
                f"{self.filled_bars} missing {self.freq} bars forward-filled ({self.gaps} gap(s), longest "
                f"{self.longest_gap} bars after {fmt_time(self.longest_gap_after)}); --max-gap N refuses "
                "longer"
            )
        elif self.missing_bars:
            out.append(
                f"{self.missing_bars} {self.freq} bars missing ({self.gaps} gap(s), "
                f"longest {self.longest_gap} bars after {fmt_time(self.longest_gap_after)}); "
                "they are forward-filled when loaded"
            )
        return out

    def _jump_lines(self) -> list[str]:
        out = [
            f"back-adjusted an unadjusted {j.label} split at {j.timestamp} ({j.where}): earlier prices "
            f"{'divided' if (j.factor or 1) > 1 else 'multiplied'} by "
            f"{max(j.factor or 1, 1 / (j.factor or 1)):g}, volume the other way (--adjust-splits)"
            for j in self.splits_adjusted
        ]
        out.extend(j.describe() for j in self.jumps[:MAX_JUMPS_SHOWN])
        if len(self.jumps) > MAX_JUMPS_SHOWN:
            out.append(
                f"{len(self.jumps) - MAX_JUMPS_SHOWN} more suspicious one-bar moves "
                "(`chronobt data check --json` lists them all under report.jumps)"
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (timestamps as ISO strings) including ``warnings``."""
        out = {k: (v.isoformat() if isinstance(v, pd.Timestamp) else v) for k, v in asdict(self).items()}
        out["warnings"] = self.warnings()
        return out


@dataclass(frozen=True, eq=False)
class OHLC:
    """One validated OHLC series.

    Attributes
    ----------
    symbol : str
        Upper-case symbol (the file stem for a path).
    path : Path
        The parquet file it was read from.
    frame : pd.DataFrame
        DatetimeIndex (tz UTC, named ``timestamp``, ascending, unique); float64 columns open, high, low,
        close and volume when the file has one; bool ``filled`` when gaps were filled (see ``filled``).
    freq : str
        Pandas offset alias of one bar: ``"h"``, ``"D"``, ``"B"``, ``"min"``, ``"15min"``, ...
    calendar : {"continuous", "exchange"}
        24/7 with gaps filled, or a trading calendar whose bars are consecutive.
    report : DataReport
        Repairs and findings.
    sha256 : str
        Hex SHA-256 of the file.
    trading_calendar : str or None
        ``exchange_calendars`` name (``"XNYS"``) whose sessions and holidays the bars follow, named by
        the caller or inferred (see :mod:`chronobt.data.sessions`); None when there is none.
    """

    symbol: str
    path: Path
    frame: pd.DataFrame
    freq: str
    calendar: Calendar
    report: DataReport
    sha256: str
    trading_calendar: str | None = None

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def index(self) -> pd.DatetimeIndex:
        """The bar timestamps, ``[time]``."""
        return pd.DatetimeIndex(self.frame.index)

    def values(self, targets: Sequence[str] = TARGETS) -> np.ndarray:
        """Prices as a float64 array ``[time, variates]`` in ``targets`` order (a fresh copy)."""
        missing = [t for t in targets if t not in self.frame.columns]
        if missing:
            raise DataError(
                f"{self.path}: no column {', '.join(map(repr, missing))} "
                f"(has {', '.join(self.frame.columns)}); choose targets from those"
            )
        return self.frame.loc[:, list(targets)].to_numpy(dtype=np.float64, copy=True)

    @property
    def filled(self) -> np.ndarray:
        """``[time]`` bool: bars missing from the file and forward-filled at load (all False if none)."""
        if "filled" in self.frame.columns:
            return self.frame["filled"].to_numpy(dtype=bool)
        return np.zeros(len(self.frame), dtype=bool)

    @cached_property
    def _step(self) -> pd.Timedelta | None:
        return freq_step(self.freq)

    @cached_property
    def _bars_per_day(self) -> int:
        """Bars per trading day for intraday exchange series: per recent session of the trading calendar,
        else the median over recent UTC dates."""
        if self.trading_calendar is not None:
            pattern = sessions.session_pattern(self.trading_calendar, self.index)
            return max(1, round(pattern["per_session"]))
        recent = self.index[self.index > self.index[-1] - sessions.RECENT]
        counts = pd.Series(1, index=recent.normalize()).groupby(level=0).size()
        return max(1, round(float(counts.median())))

    @property
    def season_length(self) -> int:
        """Bars in one natural season: 24 hourly 24/7, 7 daily 24/7, 5 business days, 52 weekly, ..."""
        if self.freq == "B":
            return 5
        step = self._step
        if step is None:
            return {"M": 12, "Q": 4}.get(self.freq[:1], 1)
        if step < DAY:
            if self.calendar == "exchange":
                return self._bars_per_day
            per_day = int(DAY / step)
            return per_day if per_day <= 96 else max(1, int(pd.Timedelta(hours=1) / step))
        if step == DAY:
            return 7
        if step == 7 * DAY:
            return 52
        return 1

    @property
    def bars_per_year(self) -> float:
        """Bars per year for annualising: measured from the series (see :attr:`annualisation`)."""
        return float(self.annualisation["bars_per_year"])

    @cached_property
    def annualisation(self) -> dict[str, Any]:
        """How :attr:`bars_per_year` was derived: ``{"bars_per_year", "method", "span_years"}``.

        ``method`` is ``"measured"`` (bars in the series / years spanned, the span counting the last bar's
        length) for a series of at least :data:`MIN_MEASURED_YEARS`, else ``"nominal"``: 8760 hourly 24/7,
        365 daily 24/7, 252 business days, the weekly trading slots x 365/7 for intraday exchange series.
        Filled gaps of a 24/7 series count as bars; closed hours and holidays of an exchange do not.
        """
        step = self._step
        last_bar = step if step is not None else pd.Timedelta(0)
        span = self.index[-1] - self.index[0] + last_bar
        span_years = float(span / pd.Timedelta(days=365.25))
        if span_years >= MIN_MEASURED_YEARS:
            bars, method = len(self) / span_years, "measured"
        else:
            bars, method = self._nominal_bars_per_year(), "nominal"
        return {"bars_per_year": float(bars), "method": method, "span_years": round(span_years, 4)}

    def _nominal_bars_per_year(self) -> float:
        if self.freq == "B":
            return 252.0
        step = self._step
        if step is None:
            return {"M": 12.0, "Q": 4.0, "Y": 1.0}.get(self.freq[:1], 1.0)
        if self.calendar == "exchange" and step < DAY:
            if self.trading_calendar is not None:
                return 252.0 * self._bars_per_day
            return len(self._session_slots) * 365.0 / 7.0  # trading bars per week, 52.14 weeks
        return float(pd.Timedelta(days=365) / step)

    def future_timestamps(self, after: pd.Timestamp | str, n: int) -> pd.DatetimeIndex:
        """The ``n`` bar timestamps after ``after``, following the series' own frequency and calendar.

        Hourly 24/7 continues hourly; daily stocks continue on business days (on the trading calendar's
        sessions when there is one: holidays skipped); intraday series on a trading calendar follow its
        coming sessions with the bar offsets from the open seen in the series' last weeks (DST, early
        closes and holidays followed); other intraday exchange series (FX) skip the weekly hours that
        did not trade in the series' last weeks.
        """
        start = as_utc(pd.Timestamp(after))
        if n <= 0:
            return pd.DatetimeIndex([], tz="UTC", name="timestamp")
        step = self._step
        if self.trading_calendar is not None:
            if self.freq == "B" or step == DAY:
                return sessions.future_daily(self.trading_calendar, self.index, start, n)
            if step is not None and step < DAY:
                return sessions.future_intraday(self.trading_calendar, self.index, start, n)
        if self.calendar == "exchange" and step is not None and step < DAY:
            return self._future_in_session(start, n, step)
        rng = pd.date_range(start=start, periods=n + 2, freq=self.freq)
        return pd.DatetimeIndex(rng[rng > start][:n], name="timestamp")

    @cached_property
    def _session_slots(self) -> np.ndarray:
        """Positions within the week (ns since Thursday 1970-01-01 00:00) at which the series trades.

        Read from the last :data:`~chronobt.data.sessions.RECENT` weeks, so a DST change is followed. A
        slot counts when it holds at least a fifth of the busiest slot's bars, so a stray weekend bar
        does not open the weekend.
        """
        recent = self.index[self.index > self.index[-1] - sessions.RECENT]
        slots, counts = np.unique(recent.asi8 % (7 * DAY.value), return_counts=True)
        return slots[counts >= 0.2 * counts.max()]

    def _future_in_session(self, start: pd.Timestamp, n: int, step: pd.Timedelta) -> pd.DatetimeIndex:
        week_ns = 7 * DAY.value
        allowed = self._session_slots
        chunk = max(2 * n, int(7 * DAY / step) + 1)
        found: list[np.ndarray] = []
        total = 0
        cursor = start.value
        while total < n:
            cand = cursor + step.value * np.arange(1, chunk + 1, dtype=np.int64)
            keep = cand[np.isin(cand % week_ns, allowed)]
            found.append(keep)
            total += len(keep)
            cursor = int(cand[-1])
        ns = np.concatenate(found)[:n]
        return pd.DatetimeIndex(pd.to_datetime(ns, unit="ns", utc=True), name="timestamp")

    def summary(self) -> dict[str, Any]:
        """JSON-ready description: symbol, path, rows, span, freq, calendar, checksum and the report."""
        return {
            "symbol": self.symbol,
            "path": str(self.path),
            "rows": len(self),
            "first": self.index[0].isoformat(),
            "last": self.index[-1].isoformat(),
            "freq": self.freq,
            "calendar": self.calendar,
            "trading_calendar": self.trading_calendar,
            "season_length": self.season_length,
            "bars_per_year": self.bars_per_year,
            "annualisation": self.annualisation,
            "columns": [c for c in self.frame.columns if c != "filled"],
            "sha256": self.sha256,
            "report": self.report.to_dict(),
        }


@dataclass(frozen=True)
class SymbolInfo:
    """One row of ``chronobt data list``; ``error`` is set (and the rest empty) for an unreadable file."""

    symbol: str
    path: Path
    rows: int = 0
    first: pd.Timestamp | None = None
    last: pd.Timestamp | None = None
    freq: str = ""
    calendar: str = ""
    warnings: int = 0
    error: str | None = None
    trading_calendar: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["path"] = str(self.path)
        out["first"] = self.first.isoformat() if self.first is not None else None
        out["last"] = self.last.isoformat() if self.last is not None else None
        return out
