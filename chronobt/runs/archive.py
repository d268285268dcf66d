"""The forecast archive: one folder per run label and an append-only index per symbol.

``forecast`` keeps every run's forecast as ``forecast/<SYMBOL>/<label>/<last-bar>.parquet`` (the label
as in backtest folder names: ``differencing``, ``none+calendar``) and appends one JSON line per archived
forecast to ``forecast/<SYMBOL>/index.jsonl``: the file, its sha256, the origin, the model and its
checksum, the config and a hash of the data file's bars up to the origin (:func:`prefix_hashes`).

The index is append-only: each line is written with one ``write`` on a descriptor opened ``O_APPEND |
O_NOFOLLOW`` and fsynced (the folder too when the index is new). A run killed mid-append leaves at most
one torn last line; readers skip it (and any line that is not a whole JSON object) and report it, and
the next append starts on a fresh line, so earlier entries are never touched. ``track`` reads it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from chronobt.atomic import check_no_symlinks, fault_point, write_error
from chronobt.data import OHLC

INDEX_NAME = "index.jsonl"
#: the keys a line must have to be an entry (``track`` needs them all)
REQUIRED = frozenset(
    {"file", "sha256", "symbol", "label", "origin", "issued_at", "horizon", "context", "targets", "quantiles"}
)
#: a history file name of the layout before the index: ``<last-bar>.parquet`` beside ``latest.parquet``
_STAMPED = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{6}Z\.parquet$")
#: bars hashed per update of the prefix digests (bounds the copy made per chunk)
_HASH_CHUNK = 65536


@dataclass(frozen=True)
class IndexRead:
    """The entries of an index in file order (a re-archived file: its last entry only) and the lines
    skipped (``(line number, why)``: a torn last line, or a line that is not a JSON object)."""

    entries: tuple[dict[str, Any], ...] = ()
    skipped: tuple[tuple[int, str], ...] = field(default_factory=tuple)


def index_path(folder: Path) -> Path:
    """``forecast/<SYMBOL>/index.jsonl`` of a symbol's forecast folder."""
    return Path(folder) / INDEX_NAME


def prefix_hashes(ohlc: OHLC, targets: Sequence[str], rows: Sequence[int]) -> list[str]:
    """SHA-256 of the first ``n`` bars (timestamps, then the ``targets`` prices) for each ``n`` in ``rows``.

    One pass over the bars (digests copied at each requested length), so hashing the prefix of every
    archived forecast costs one hash of the file. Bars are hashed row by row: the timestamp (int64 ns)
    then the target prices (float64), forward-filled bars as the loaded frame holds them.
    """
    index = np.ascontiguousarray(pd.DatetimeIndex(ohlc.frame.index).asi8, dtype=np.int64)
    values = ohlc.values(tuple(targets))
    record = np.empty(len(index), dtype=[("t", "<i8"), ("v", "<f8", (len(targets),))])
    record["t"], record["v"] = index, values
    wanted = sorted(set(int(n) for n in rows))
    digest, done, out = hashlib.sha256(), 0, {}
    for n in wanted:
        n = min(max(n, 0), len(index))
        while done < n:
            stop = min(n, done + _HASH_CHUNK)
            digest.update(record[done:stop].tobytes())
            done = stop
        out[n] = digest.copy().hexdigest()
    return [out[min(max(int(n), 0), len(index))] for n in rows]


def append_entry(folder: Path, entry: Mapping[str, Any], *, root: Path) -> Path:
    """Append ``entry`` as one JSON line to ``folder``'s index, fsynced; returns the index path.

    A torn last line (a run killed mid-append) is closed with a newline first, so it stays one bad line
    that readers skip. Fault points (tests): ``index.append`` before the write, ``index.appended`` after
    it and before the fsync.
    """
    path = check_no_symlinks(index_path(folder), root)
    line = (json.dumps(dict(entry), sort_keys=True, separators=(",", ":"), allow_nan=False) + "\n").encode()
    created = not path.exists()
    try:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o666)
    except OSError as exc:
        raise write_error(path, exc) from exc
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = b"\n" + line
        fault_point("index.append", path)
        os.write(fd, line)
        fault_point("index.appended", path)
        os.fsync(fd)
    except OSError as exc:
        raise write_error(path, exc) from exc
    finally:
        os.close(fd)
    if created:
        _fsync_dir(path.parent)
    return path


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_index(folder: Path) -> IndexRead:
    """The entries of ``folder``'s index (none when it has no index), skipping what is not an entry.

    An entry is a JSON object with the :data:`REQUIRED` keys; a later entry for the same file (a forecast
    of the same bar and label rerun) replaces the earlier one.
    """
    path = index_path(folder)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return IndexRead()
    except OSError as exc:
        raise write_error(path, exc) from exc
    lines = raw.split(b"\n")
    entries: dict[str, dict[str, Any]] = {}
    skipped: list[tuple[int, str]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        last = number == len(lines)  # no newline after it: the append did not finish
        try:
            entry = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            entry = None
        if last or not isinstance(entry, dict) or not set(entry) >= REQUIRED:
            skipped.append((number, "torn last line" if last else "not an index entry"))
            continue
        entries.pop(str(entry["file"]), None)
        entries[str(entry["file"])] = entry
    return IndexRead(tuple(entries.values()), tuple(skipped))


def legacy_files(folder: Path) -> list[str]:
    """History files of the layout before the index (``forecast/<SYMBOL>/<last-bar>.parquet``)."""
    try:
        return sorted(p.name for p in Path(folder).iterdir() if _STAMPED.match(p.name) and p.is_file())
    except OSError:
        return []


def legacy_message(folder: Path, names: Sequence[str]) -> str:
    """The one line that says what to do with an archive from before the index."""
    return (
        f"{folder}: {len(names)} forecast file(s) in the layout before the index ({names[0]} ...) cannot be "
        f"tracked (no {INDEX_NAME}: no checksum or data hash to verify them); move them out of the way "
        f"(e.g. `mkdir {folder}/unindexed && mv {folder}/*Z.parquet {folder}/unindexed/`) and let "
        "`chronobt forecast` archive new forecasts, which `chronobt track` scores as their bars arrive"
    )
