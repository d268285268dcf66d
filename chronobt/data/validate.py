"""Validation and loud repairs: order, duplicates, prices, calendar, gap filling."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from chronobt.data.columns import (
    FIRST_LINE,
    map_prices,
    parse_timestamps,
    pick_volume,
    row_at,
    second_time_column,
    shown,
    time_values,
)
from chronobt.data.frequency import first_flagged, fmt_time, infer_calendar
from chronobt.data.ohlc import MAX_ABS_PRICE, MIN_ROWS, TARGETS, DataReport
from chronobt.data.splits import Jump, adjust_splits, find_jumps
from chronobt.data.twins import merge_case_twins
from chronobt.errors import ConfigError, DataError


def check_max_gap(max_gap: int | None) -> None:
    """ConfigError naming ``--max-gap`` unless it is ``None`` (fill any gap) or a count of bars >= 0."""
    if max_gap is not None and max_gap < 0:
        raise ConfigError(f"--max-gap {max_gap}: expected 0 or a positive number of bars")


def validate_frame(
    raw: pd.DataFrame,
    *,
    source: str,
    max_gap: int | None,
    fill: bool,
    symbol: str | None = None,
    tz: str | None = None,
    columns: str | None = None,
    adjust: bool = False,
) -> tuple[pd.DataFrame, DataReport]:
    """Map columns, parse timestamps, check prices, repair order/duplicates, infer calendar, fill gaps.

    ``tz``: the zone of timestamps written without one (None: they are taken as UTC and reported).
    ``columns``: which set of case-twin columns wins a conflicting row (``"lower"``, ``"capitalized"``;
    None: a conflict is a DataError), see :func:`~chronobt.data.twins.merge_case_twins`.
    One-bar moves that look like an unadjusted split or a bad print are reported
    (:mod:`chronobt.data.splits`); ``adjust`` back-adjusts the splits among them.
    Errors name file lines for a CSV export (``raw.attrs[FIRST_LINE]``), else 0-based data rows.
    """
    if len(raw) == 0:
        raise DataError(f"{source}: has no rows; export some bars")
    first_line = raw.attrs.get(FIRST_LINE)
    first_line = first_line if isinstance(first_line, int) else None
    frame, mapped, naive, merged, volume_missing = _read_columns(raw, source, symbol, tz, first_line, columns)
    rows_read = len(frame)
    file_rows = pd.Series(np.arange(len(frame)), index=frame.index)
    frame, order = _order_and_dedupe(frame)

    if len(frame) < MIN_ROWS:
        raise DataError(
            f"{source}: only {len(frame)} distinct timestamp(s) ({fmt_time(frame.index[0])}); at least "
            f"{MIN_ROWS} bars are needed to infer the bar frequency (far more for a backtest)"
        )

    o, h, lo, c = (frame[t].to_numpy() for t in TARGETS)
    inconsistent = np.asarray((h < np.maximum(o, c)) | (lo > np.minimum(o, c)) | (h < lo))
    non_positive = np.asarray((np.stack([o, h, lo, c]) <= 0).any(axis=0))

    frame, jumps, adjusted = _judge_jumps(frame, file_rows, first_line, adjust)

    freq, calendar, step = infer_calendar(pd.DatetimeIndex(frame.index))
    gaps = missing = longest = 0
    longest_after = None
    if calendar == "continuous" and step is not None:
        frame, gaps, missing, longest, longest_after = _fill_gaps(frame, step, freq, source, max_gap, fill)

    report = DataReport(
        source=source,
        rows_read=rows_read,
        rows=len(frame),
        **order,
        ohlc_inconsistent=int(inconsistent.sum()),
        ohlc_inconsistent_first=first_flagged(frame.index, inconsistent),
        non_positive=int(non_positive.sum()),
        non_positive_first=first_flagged(frame.index, non_positive),
        non_positive_last=first_flagged(frame.index[::-1], non_positive[::-1]),
        volume_missing=volume_missing,
        gaps=gaps,
        missing_bars=missing,
        filled_bars=missing if fill else 0,
        longest_gap=longest,
        longest_gap_after=longest_after,
        freq=freq,
        calendar=calendar,
        columns={k: str(v) for k, v in mapped.items()},
        naive_timestamps=naive,
        tz=tz or "",
        merged_columns=tuple(merged),
        jumps=jumps,
        splits_adjusted=adjusted,
    )
    return frame, report


def _judge_jumps(
    frame: pd.DataFrame, file_rows: pd.Series, first_line: int | None, adjust: bool
) -> tuple[pd.DataFrame, tuple[Jump, ...], tuple[Jump, ...]]:
    """The suspicious one-bar moves of the sorted bars (and, with ``adjust``, the frame back-adjusted for
    its splits and what remains suspicious after that). ``file_rows``: each bar's row in file order."""
    kept = file_rows[~file_rows.index.duplicated(keep="last")]  # the de-duplication keeps the last copy
    rows = kept.reindex(frame.index).to_numpy()
    jumps = find_jumps(frame, lambda i: row_at(int(rows[i]), first_line))
    splits = tuple(j for j in jumps if j.kind == "split")
    if not (adjust and splits):
        return frame, jumps, ()
    frame = adjust_splits(frame, splits)
    return frame, tuple(j for j in jumps if j.kind != "split"), splits


def _read_columns(
    raw: pd.DataFrame,
    source: str,
    symbol: str | None,
    tz: str | None,
    first_line: int | None,
    prefer: str | None = None,
) -> tuple[pd.DataFrame, dict[str, Any], bool, list[str], int]:
    """The frame in file order ``[time, open..close(, volume)]``, the column map, whether the times were
    naive, the case-twin notes and how many volume values were missing (set to 0)."""
    superseded = _superseded_rows(raw, source, tz, first_line)
    raw, merged = merge_case_twins(raw, source, first_line, superseded=superseded, prefer=prefer)
    columns = map_prices(list(raw.columns), strict=True, source=source)
    times, time_col = time_values(raw, source)
    index, naive = parse_timestamps(times, source, time_col, tz=tz, first_line=first_line)
    if pd.api.types.is_numeric_dtype(times.dtype) and not isinstance(raw.index, pd.DatetimeIndex):
        _cross_check_dates(raw, time_col, index, source, tz, first_line)
    data: dict[str, np.ndarray] = {}
    for target in TARGETS:
        data[target] = _check_prices(raw[columns[target]], index, source, str(columns[target]), first_line)
    volume_missing = 0
    vol_col = pick_volume([c for c in raw.columns if c not in columns.values()], symbol)
    if vol_col is not None:
        columns["volume"] = vol_col
        vol = pd.to_numeric(raw[vol_col], errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(vol)
        volume_missing = int(bad.sum())
        data["volume"] = np.where(bad, 0.0, vol)
    frame = pd.DataFrame(data, index=pd.DatetimeIndex(index, name="timestamp"))
    return frame, columns, naive, merged, volume_missing


def _superseded_rows(
    raw: pd.DataFrame, source: str, tz: str | None, first_line: int | None
) -> np.ndarray | None:
    """``[rows]`` bool: rows a later row of the same timestamp replaces (the de-duplication rule keeps
    the last in file order), computed only when case-twin columns are to be merged; None when there are
    none or the times cannot be read before merging (then every row is compared)."""
    names = [str(c).strip().lower() for c in raw.columns]
    if len(set(names)) == len(names):
        return None
    try:
        times, time_col = time_values(raw, source)
        index, _ = parse_timestamps(times, source, time_col, tz=tz, first_line=first_line)
    except DataError:
        return None
    return np.asarray(index.duplicated(keep="last"))


def _order_and_dedupe(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Sort ascending; exact copies collapse, conflicting rows keep the last in file order.

    Returns the frame and the :class:`DataReport` fields saying what was done.
    """
    ns = pd.DatetimeIndex(frame.index).asi8
    descents = int((np.diff(ns) < 0).sum())
    newest_first = bool(len(ns) > 1 and descents > 0 and np.all(np.diff(ns) <= 0))
    if descents:
        frame = frame.iloc[np.argsort(ns, kind="stable")]
    exact = conflicting = np.zeros(len(frame), dtype=bool)
    dup_exact_first = dup_conf_first = None
    if len(frame) > 1 and (np.diff(pd.DatetimeIndex(frame.index).asi8) == 0).any():  # sorted: repeats adjoin
        exact = frame.reset_index().duplicated(keep="last").to_numpy()
        dup_exact_first = frame.index[exact].min() if exact.any() else None
        frame = frame[~exact]
        conflicting = frame.index.duplicated(keep="last")
        dup_conf_first = frame.index[conflicting].min() if conflicting.any() else None
        frame = frame[~conflicting]
    return frame, {
        "newest_first": newest_first,
        "unsorted_rows": descents,
        "duplicate_exact": int(exact.sum()),
        "duplicate_exact_first": dup_exact_first,
        "duplicate_conflicting": int(conflicting.sum()),
        "duplicate_conflicting_first": dup_conf_first,
    }


def _cross_check_dates(
    raw: pd.DataFrame,
    time_col: str,
    index: pd.DatetimeIndex,
    source: str,
    tz: str | None,
    first_line: int | None,
) -> None:
    """Unix times must agree with a date column beside them to within one bar (the median spacing)."""
    other = second_time_column(raw, time_col)
    if other is None or len(index) < 2:
        return
    try:
        dates, _ = parse_timestamps(
            raw[other].reset_index(drop=True), source, str(other), tz=tz, first_line=first_line
        )
    except DataError:
        return  # not a usable date column: nothing to cross-check
    ns = index.asi8
    spacing = np.abs(np.diff(np.sort(ns)))
    bar = int(np.median(spacing[spacing > 0])) if (spacing > 0).any() else 0
    off = np.abs(ns - dates.asi8) > bar
    if off.any():
        i = int(off.argmax())
        raise DataError(
            f"{source}: {row_at(i, first_line)}: column {time_col!r} {shown(raw[time_col].iloc[i])} reads "
            f"{fmt_time(index[i])} but column {str(other)!r} says {shown(raw[other].iloc[i])} "
            f"({int(off.sum())} rows disagree by more than a bar); fix those rows or drop one of the two "
            "columns"
        )


def _check_prices(
    col: pd.Series, index: pd.DatetimeIndex, source: str, name: str, first_line: int | None
) -> np.ndarray:
    """Float64 prices ``[time]``; non-numeric, missing/non-finite or absurd values are a DataError."""
    where = f"{source}: column {name!r}"
    numeric = pd.to_numeric(col, errors="coerce") if not pd.api.types.is_numeric_dtype(col.dtype) else col
    if pd.api.types.is_bool_dtype(numeric.dtype):
        raise DataError(f"{where} holds booleans, not prices; point it at the price column")
    values = numeric.to_numpy(dtype=np.float64, na_value=np.nan)
    non_numeric = np.zeros(len(values), dtype=bool)
    if not pd.api.types.is_numeric_dtype(col.dtype):
        text = col.astype(str).str.strip()
        non_numeric = np.isnan(values) & col.notna().to_numpy() & text.ne("").to_numpy()
        non_numeric &= ~text.str.lower().isin(["nan", "none", "null", "na", "<na>"]).to_numpy()
    problems = [
        (non_numeric, "non-numeric", "make them plain numbers"),
        (~np.isfinite(values), "missing or non-finite (NaN/inf)", "drop or fill those rows"),
        (np.abs(np.nan_to_num(values)) > MAX_ABS_PRICE, f"absurd (|value| > {MAX_ABS_PRICE:g})", "fix them"),
    ]
    for mask, what, fix in problems:
        if mask.any():
            i = int(mask.argmax())
            count = int(mask.sum())
            scope = f"all {count}" if count == len(values) else f"{count} of {len(values)}"
            raise DataError(
                f"{where} has {scope} rows with {what} values (first at {fmt_time(index[i])}, "
                f"{row_at(i, first_line)}: {shown(col.iloc[i])}); {fix}"
            )
    return values


def _fill_gaps(
    frame: pd.DataFrame, step: pd.Timedelta, freq: str, source: str, max_gap: int | None, fill: bool
) -> tuple[pd.DataFrame, int, int, int, pd.Timestamp | None]:
    """Put a 24/7 series on its regular grid: missing bars become flat bars at the previous close.

    A filled frame gets a boolean ``filled`` column marking those bars (see :attr:`OHLC.filled`).
    """
    ns = pd.DatetimeIndex(frame.index).asi8
    off_grid = (ns - ns[0]) % step.value != 0
    if off_grid.any():
        i = int(off_grid.argmax())
        raise DataError(
            f"{source}: {int(off_grid.sum())} timestamps are off the regular {freq} grid starting at "
            f"{fmt_time(frame.index[0])} (first at {fmt_time(frame.index[i])}); resample the file to "
            "regular bars"
        )
    missing = np.diff(ns) // step.value - 1
    gap_at = np.flatnonzero(missing > 0)
    if len(gap_at) == 0:
        return frame, 0, 0, 0, None
    longest_i = int(gap_at[missing[gap_at].argmax()])
    longest = int(missing[longest_i])
    after = frame.index[longest_i]
    total = int(missing.sum())
    if max_gap is not None and longest > max_gap:
        raise DataError(
            f"{source}: a gap of {longest} missing {freq} bars after {fmt_time(after)} exceeds --max-gap "
            f"{max_gap} ({len(gap_at)} gaps, {total} missing bars in all); raise --max-gap or cut the file"
        )
    if not fill:
        return frame, len(gap_at), total, longest, after
    grid = pd.date_range(frame.index[0], frame.index[-1], freq=step, name="timestamp")
    out = frame.reindex(grid)
    out["filled"] = out["close"].isna().to_numpy()  # the synthetic bars: never scored nor traded on
    out["close"] = out["close"].ffill()
    for col in ("open", "high", "low"):
        out[col] = out[col].fillna(out["close"])
    if "volume" in out:
        out["volume"] = out["volume"].fillna(0.0)
    return out, len(gap_at), total, longest, after
