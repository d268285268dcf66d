"""Reading the output files a report draws from, with one-line errors that name the file and the fix.

Also finds the OHLC file a run used (``data.path`` in its manifest or ``latest.json``), for the bars
before a forecast: the path as recorded (absolute, or relative to the current folder), else relative to
each folder above the output folder (``results/`` usually sits beside ``data/``). A data file that cannot
be found or read is not an error: the charts then show no history before the forecasts, with a note.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from chronobt.errors import ChronobtError, DataError

logger = logging.getLogger(__name__)


def read_json(path: Path, *, rerun: str) -> dict[str, Any]:
    """A JSON object from ``path``; a missing or broken file is a :class:`DataError` saying to ``rerun``."""
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: missing; {rerun}") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: unreadable JSON ({exc}); {rerun}") from None
    if not isinstance(payload, dict):
        raise DataError(f"{path}: expected a JSON object, found {type(payload).__name__}; {rerun}")
    return payload


def read_table(path: Path, *, rerun: str, columns: tuple[str, ...] = ()) -> pd.DataFrame:
    """A parquet (or ``.csv``) table that must hold ``columns``; otherwise a :class:`DataError`."""
    try:
        frame = pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)
    except FileNotFoundError:
        raise DataError(f"{path}: missing; {rerun}") from None
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise DataError(f"{path}: unreadable ({type(exc).__name__}: {exc}); {rerun}") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {', '.join(missing)} (found {', '.join(map(str, frame.columns))}); "
            f"{rerun}"
        )
    return frame


def as_utc(values: Any) -> pd.DatetimeIndex:
    """Timestamps (tz-aware or naive-as-UTC, or ISO strings) as a UTC ``DatetimeIndex``."""
    index = pd.DatetimeIndex(pd.to_datetime(values, utc=True))
    return index


@dataclass(frozen=True)
class History:
    """The OHLC bars of the run's data file (UTC index, gaps filled as the run filled them)."""

    frame: pd.DataFrame
    path: Path
    changed: bool  # the file's sha256 differs from the one the run recorded

    def before(self, column: str, end: pd.Timestamp, bars: int) -> pd.Series:
        """The last ``bars`` values of ``column`` at or before ``end``."""
        series = self.frame[column]
        stop = int(series.index.searchsorted(end, side="right"))
        return series.iloc[max(0, stop - bars) : stop]

    def between(self, column: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.Series:
        series = self.frame[column]
        return series.loc[(series.index >= start) & (series.index <= end)]


def load_history(record: dict[str, Any] | None, folder: Path) -> tuple[History | None, str]:
    """The data file named by ``record`` (``{"path": ..., "sha256": ...}``) and a note for the page.

    Returns ``(None, reason)`` when the file cannot be found or read.
    """
    from chronobt.data import check_ohlc

    if not record or not record.get("path"):
        return None, "the run record names no data file"
    recorded = Path(str(record["path"]))
    for candidate in _candidates(recorded, folder):
        if not candidate.is_file():
            continue
        try:
            ohlc = check_ohlc(candidate)
        except (ChronobtError, OSError) as exc:
            logger.debug("history %s unreadable: %s", candidate, exc)
            return None, f"data file {candidate} unreadable: {exc}"
        changed = bool(record.get("sha256")) and record.get("sha256") != ohlc.sha256
        note = f"history from {candidate}" + (" (changed since the run: sha256 differs)" if changed else "")
        return History(frame=ohlc.frame, path=candidate, changed=changed), note
    return None, f"data file {recorded} not found; no history drawn before the forecasts"


def _candidates(recorded: Path, folder: Path) -> list[Path]:
    if recorded.is_absolute():
        return [recorded]
    return [recorded, *(parent / recorded for parent in folder.resolve().parents)]
