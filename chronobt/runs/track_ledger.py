"""A track's ledger: every archived forecast's rows beside the bars that have arrived since.

One row per (forecast, step, target): ``symbol``, ``label``, ``issued_at`` (when the forecast was
written), ``origin``, ``step``, ``timestamp``, ``target``, ``median``, the quantile columns (named as in
``forecasts.parquet``), ``origin_price`` (the target at the origin bar in the data file: the naive
forecast), ``actual`` (null until the bar arrives, and for a bar missing from the file and
forward-filled at load: such a bar is never an actual), ``resolved`` (the step's time has arrived in the
data file), ``filled`` (resolved but no real bar), ``revised`` (the data file's bars up to the origin
changed since the forecast was made), ``file``, ``model``, ``model_checksum``.

:func:`windows_of` turns the complete forecasts (every step resolved) back into the arrays the backtest
scores: windows cut from the data file at the archived origins, with each forecast's own context length.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from chronobt.atomic import sha256_file
from chronobt.data import OHLC
from chronobt.data.symbol_windows import SymbolWindows
from chronobt.data.windows import cut_windows
from chronobt.runs.archive import prefix_hashes
from chronobt.runs.results import quantile_column

#: The ledger's columns before the quantile columns, and after them.
HEAD = ("symbol", "label", "issued_at", "origin", "step", "timestamp", "target", "median")
TAIL = ("origin_price", "actual", "resolved", "filled", "revised", "file", "model", "model_checksum")


@dataclass(frozen=True)
class Shape:
    """What every forecast of one ledger shares (the latest archived forecast's)."""

    horizon: int
    targets: tuple[str, ...]
    levels: tuple[float, ...]

    @classmethod
    def of(cls, entry: Mapping[str, Any]) -> Shape:
        return cls(
            int(entry["horizon"]), tuple(entry["targets"]), tuple(float(q) for q in entry["quantiles"])
        )

    @property
    def columns(self) -> list[str]:
        return [*HEAD, *(quantile_column(q) for q in self.levels), *TAIL]


def refusal(folder: Path, entry: Mapping[str, Any]) -> str | None:
    """One line when ``entry``'s file is missing, outside the archive or not the bytes the index hashed."""
    rel = Path(str(entry["file"]))
    path = folder / rel
    if rel.is_absolute() or ".." in rel.parts:
        return f"{path}: the index names a file outside {folder}; not scored"
    if not path.is_file():
        return f"{path}: archived forecast missing (the index lists it); not scored"
    found = sha256_file(path)
    if found != entry["sha256"]:
        return (
            f"{path}: sha256 {found[:12]} does not match its index entry ({str(entry['sha256'])[:12]}): "
            "the archived forecast changed after it was written; refused, not scored"
        )
    return None


def archived_rows(folder: Path, entry: Mapping[str, Any], shape: Shape) -> pd.DataFrame:
    """The rows of one verified archived forecast in ledger columns (``actual`` etc. still to resolve)."""
    frame = pd.read_parquet(folder / str(entry["file"]))
    rows = frame[["origin", "step", "timestamp", "target", "median", *map(quantile_column, shape.levels)]]
    rows = rows.assign(
        symbol=str(entry["symbol"]),
        label=str(entry["label"]),
        issued_at=pd.Timestamp(entry["issued_at"]).tz_convert("UTC"),
        file=str(entry["file"]),
        model=str(entry.get("model")),
        model_checksum=str(entry.get("model_checksum")),
        origin_price=np.nan,
        actual=np.nan,
        resolved=False,
        filled=False,
        revised=False,
    )
    rows["step"] = rows["step"].astype(np.int32)
    rows["target"] = rows["target"].astype(str)
    return rows[shape.columns]


def resolve(rows: pd.DataFrame, ohlc: OHLC, targets: Sequence[str]) -> pd.DataFrame:
    """``rows`` with ``actual``, ``resolved`` and ``filled`` from the data file as it is now."""
    index = pd.DatetimeIndex(ohlc.frame.index)
    stamps = pd.DatetimeIndex(rows["timestamp"])
    resolved = np.asarray(stamps <= index[-1])
    pos = index.get_indexer(stamps)
    real = (pos >= 0) & ~np.asarray(ohlc.filled, dtype=bool)[np.maximum(pos, 0)]
    values = ohlc.values(tuple(targets))  # [time, v]
    column = pd.Index(list(targets)).get_indexer(rows["target"])
    actual = np.where(real & resolved, values[np.maximum(pos, 0), np.maximum(column, 0)], np.nan)
    at = index.get_indexer(pd.DatetimeIndex(rows["origin"]))
    origin_price = np.where(at >= 0, values[np.maximum(at, 0), np.maximum(column, 0)], np.nan)
    return rows.assign(origin_price=origin_price, actual=actual, resolved=resolved, filled=resolved & ~real)


def revisions(ohlc: OHLC, entries: Sequence[Mapping[str, Any]], targets: Sequence[str]) -> dict[str, bool]:
    """Per archived file: whether the data file's bars up to its origin differ from when it was made
    (an origin no longer in the file counts as revised)."""
    index = pd.DatetimeIndex(ohlc.frame.index)
    origins = pd.DatetimeIndex([pd.Timestamp(e["origin"]) for e in entries])
    pos = index.get_indexer(origins)
    hashes = prefix_hashes(ohlc, targets, [int(p) + 1 for p in pos])
    return {
        str(e["file"]): bool(p < 0 or h != (e.get("data") or {}).get("prefix_sha256"))
        for e, p, h in zip(entries, pos, hashes, strict=True)
    }


def complete_files(ledger: pd.DataFrame) -> list[str]:
    """Files whose every step has resolved, by origin."""
    if ledger.empty:
        return []
    done = ledger.groupby("file", sort=False)["resolved"].all()
    origin = ledger.groupby("file", sort=False)["origin"].first()
    files = done[done].index
    return sorted(files, key=lambda f: (origin[f], f))


@dataclass(frozen=True)
class Scored:
    """The complete forecasts as the backtest's arrays: windows and price quantiles ``[w, v, Q, h]``,
    the files in window order and the files left out (their origin is not in the data file, or their
    whole horizon lies in forward-filled bars)."""

    windows: SymbolWindows
    price_q: np.ndarray
    files: tuple[str, ...]
    dropped: tuple[str, ...]


def windows_of(ledger: pd.DataFrame, ohlc: OHLC, shape: Shape, contexts: Mapping[str, int]) -> Scored | None:
    """The complete forecasts of ``ledger`` as windows cut from ``ohlc`` at their origins, each with the
    context length it was made with (``contexts``: file -> bars); ``None`` when none is complete."""
    files = complete_files(ledger)
    index = pd.DatetimeIndex(ohlc.frame.index)
    origin_of = ledger.groupby("file", sort=False)["origin"].first()
    pos = index.get_indexer(pd.DatetimeIndex([origin_of[f] for f in files])) if files else np.array([], int)
    missing = [f for f, p in zip(files, pos, strict=True) if p < 0]
    files = [f for f, p in zip(files, pos, strict=True) if p >= 0]
    if not files:
        return None
    rows = ledger[ledger["file"].isin(files)]
    w = pd.Index(files).get_indexer(rows["file"])
    v = pd.Index(list(shape.targets)).get_indexer(rows["target"])
    s = rows["step"].to_numpy(dtype=np.int64) - 1
    n, n_v, h = len(files), len(shape.targets), shape.horizon
    actual = np.full((n, n_v, h), np.nan)
    actual[w, v, s] = rows["actual"].to_numpy(dtype=np.float64)
    price_q = np.full((n, n_v, len(shape.levels), h), np.nan)
    for k, level in enumerate(shape.levels):
        price_q[w, v, k, s] = rows[quantile_column(level)].to_numpy(dtype=np.float64)
    origins = index.get_indexer(pd.DatetimeIndex([origin_of[f] for f in files])).astype(np.int64)
    bars = np.array([int(contexts[f]) for f in files])
    width = int(min(bars.max(), origins.max() + 1))
    ctx, _ = cut_windows(ohlc.values(shape.targets), origins, context=width, horizon=0, with_future=False)
    unseen = np.arange(ctx.shape[-1])[None, :] < ctx.shape[-1] - bars[:, None]  # beyond each one's context
    ctx[np.broadcast_to(unseen[:, None, :], ctx.shape)] = np.nan
    marks, _ = cut_windows(
        ohlc.filled.astype(np.float64)[:, None], origins, context=width, horizon=0, with_future=False
    )
    filled_future = np.isnan(actual).all(axis=1)  # [w, h]: no real bar at the step
    keep = ~filled_future.all(axis=1)
    sw = SymbolWindows(
        ohlc=ohlc,
        targets=shape.targets,
        contexts=ctx[keep],
        futures=actual[keep],
        origins=origins[keep],
        filled_context=(marks[:, 0, :] == 1.0)[keep],
        filled_future=filled_future[keep],
        windows_dropped=int((~keep).sum()),
    )
    dropped = tuple(missing) + tuple(f for f, k in zip(files, keep, strict=True) if not k)
    kept = tuple(f for f, k in zip(files, keep, strict=True) if k)
    if not kept:
        return None
    return Scored(windows=sw, price_q=price_q[keep], files=kept, dropped=dropped)
