"""Atomic file writes and checksums: an interrupted run never leaves a half-written result.

The bottom of the package: it imports nothing of chronobt, so every layer (data, results, sweep) can
write through it. Files and folders get the permissions the umask gives, like any other; nothing here
changes the process umask.

Every writer puts the bytes in a temporary file in the destination's own folder (so the final
``os.replace`` is a rename on one filesystem, atomic on POSIX and Windows) and removes the temporary
file when anything fails. ``replace_dir_atomic`` does the same for a whole folder of results.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = [
    "replace_dir_atomic",
    "sha256_file",
    "write_bytes_atomic",
    "write_json_atomic",
    "write_parquet_atomic",
    "write_text_atomic",
]

_CHUNK = 1 << 20


def _write_atomic(path: Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a temporary sibling of ``path``, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _fresh_name(path.parent, f".{path.name}.", ".tmp")
    try:
        # 0o666 less the umask, like any ordinary file (mkstemp would make 0600)
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return path


def _fresh_name(folder: Path, prefix: str, suffix: str) -> Path:
    """A path in ``folder`` that does not exist yet (the caller creates it exclusively)."""
    return folder / f"{prefix}{uuid.uuid4().hex[:12]}{suffix}"


def write_bytes_atomic(path: Path | str, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; return the path."""
    return _write_atomic(Path(path), lambda tmp: tmp.write_bytes(data))


def write_text_atomic(path: Path | str, text: str, *, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically; return the path."""
    return write_bytes_atomic(path, text.encode(encoding))


def write_json_atomic(path: Path | str, payload: Any, *, indent: int | None = 2) -> Path:
    """Write ``payload`` as JSON (keys in the given order, ``default=str``) atomically.

    ``indent=None`` writes one line with the C encoder, several times faster for large payloads.
    """
    text = json.dumps(payload, indent=indent, default=str, allow_nan=True) + "\n"
    return write_text_atomic(path, text)


def write_parquet_atomic(path: Path | str, frame: pd.DataFrame | pa.Table, *, index: bool = False) -> Path:
    """Write a DataFrame (its index too when ``index``) or an Arrow table to a parquet file atomically.

    Only the non-float columns are dictionary-encoded: forecasts and prices rarely repeat, and trying a
    dictionary for them first doubled the time of writing a backtest's forecasts.
    """
    table = frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(frame, preserve_index=index)
    dictionary = [f.name for f in table.schema if not pa.types.is_floating(f.type)]
    return _write_atomic(Path(path), lambda tmp: pq.write_table(table, tmp, use_dictionary=dictionary))


@contextmanager
def replace_dir_atomic(final_dir: Path | str) -> Iterator[Path]:
    """Yield a fresh temporary sibling folder; on success it replaces ``final_dir``.

    If the ``with`` block raises, the temporary folder is removed and ``final_dir`` (old results, if
    any) is left exactly as it was. On success the old folder is moved aside, the new one renamed
    into place, and the old one deleted; the window where ``final_dir`` is missing is two renames.

    Examples
    --------
    >>> with replace_dir_atomic(Path("results/ETHUSD")) as tmp:  # doctest: +SKIP
    ...     write_json_atomic(tmp / "summary.json", {...})
    """
    final = Path(final_dir)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = _fresh_name(final.parent, f".{final.name}.", ".tmp")
    tmp.mkdir(mode=0o777)  # less the umask, like any folder (mkdtemp would make 0700)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old: Path | None = None
    try:
        if final.exists():
            old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
            os.replace(final, old)
        os.replace(tmp, final)
    except BaseException:
        # Put the old results back if the swap itself failed half-way.
        if old is not None and not final.exists():
            with contextlib.suppress(OSError):
                os.replace(old, final)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def sha256_file(path: Path | str) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()
