"""Finding a symbol's file in the data folder and reading parquet/CSV exports."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import re
from pathlib import Path

import pandas as pd

from chronobt.data.columns import FIRST_LINE, map_prices
from chronobt.errors import ConfigError, DataError

PARQUET_SUFFIXES = (".parquet", ".pq")


CSV_SUFFIXES = (".csv", ".tsv", ".txt")


_SYMBOL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._^=-]*$")


SYMBOL_RULE = "letters, digits and . _ - ^ =, starting with a letter or digit"


def parquet_files(data_dir: Path) -> list[Path]:
    try:
        entries = list(data_dir.iterdir())
    except PermissionError:
        raise DataError(f"{data_dir}: permission denied listing the folder; {_PERMISSION_FIX}") from None
    return sorted(
        (p for p in entries if p.suffix.lower() in PARQUET_SUFFIXES and not p.name.startswith(".")),
        key=lambda p: p.stem.upper(),
    )


_PERMISSION_FIX = "make it readable for your user (e.g. chmod u+r) or copy it somewhere you can read"


def permission_denied(path: Path) -> DataError:
    """The error for a file the user may not read: what and how to fix it."""
    return DataError(f"{path}: permission denied reading the file; {_PERMISSION_FIX}")


def find_symbol(symbol: str, data_dir: Path) -> Path | None:
    if not data_dir.is_dir():
        return None
    hits = [p for p in parquet_files(data_dir) if p.stem.upper() == symbol.upper()]
    if len(hits) > 1:
        raise DataError(
            f"symbol {symbol!r} matches several files in {data_dir}/ ({', '.join(p.name for p in hits)}); "
            "keep one or pass the path"
        )
    return hits[0] if hits else None


def available_symbols(data_dir: Path) -> str:
    if not data_dir.is_dir():
        return f"{data_dir} does not exist"
    names = [p.stem.upper() for p in parquet_files(data_dir)]
    return "available: " + ", ".join(names) if names else "it holds no .parquet files"


def is_symbol(text: str) -> bool:
    """Whether ``text`` is safe as a symbol and in a path: :data:`SYMBOL_RULE` (no ``..``, no ``/``)."""
    return bool(_SYMBOL_RE.match(text or ""))


def check_symbol(symbol: str) -> str:
    """``--symbol`` upper-cased; a ConfigError unless it follows :data:`SYMBOL_RULE`."""
    if not is_symbol(symbol):
        raise ConfigError(f"--symbol {symbol!r}: use {SYMBOL_RULE} (e.g. ETHUSD)")
    return symbol.upper()


def symbol_of_file(path: Path) -> str:
    """The symbol a data file stands for: its stem, upper-cased, checked like ``--symbol``.

    Results are written under the symbol's name, so a stem such as ``..`` (``...parquet``) or ``.x``
    would put them outside their folder: a DataError naming the file and the way out.
    """
    stem = path.stem
    if not is_symbol(stem):
        raise DataError(
            f"{path}: the file name {stem!r} is not a usable symbol (use {SYMBOL_RULE}); rename the file "
            "(e.g. ETHUSD.parquet) or import the data under a plain name with "
            "`chronobt data import FILE.csv --symbol ETHUSD`"
        )
    return stem.upper()


def _check_file(path: Path, kind: str) -> None:
    if not path.exists():
        raise DataError(f"{path}: file not found; check the path")
    if path.is_dir():
        parts = sorted(path.rglob("*.parquet"))
        if parts and kind == ".parquet":
            raise DataError(
                f"{path}: is a directory of {len(parts)} parquet part files (a dataset, e.g. "
                f"{parts[0].relative_to(path)}), expected one .parquet file; combine the parts into one "
                f"file with python -c \"import pandas as pd; pd.read_parquet('{path}')"
                f".to_parquet('{path.stem}_all.parquet')\" and load that"
            )
        raise DataError(f"{path}: is a directory, expected a {kind} file; pass the file inside it")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty (0 bytes); re-export or re-import it")


def check_parquet_path(path: Path) -> Path:
    _check_file(path, ".parquet")
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        raise DataError(
            f"{path}: is a {suffix} file, expected .parquet; convert it first with "
            f"`chronobt data import {path} --symbol {path.stem.upper()}`"
        )
    if suffix not in PARQUET_SUFFIXES:
        raise DataError(
            f"{path}: unsupported extension {suffix or '(none)'!r}, expected a .parquet file "
            "(CSV exports go through `chronobt data import`)"
        )
    return path


def read_parquet(path: Path) -> tuple[pd.DataFrame, str]:
    """The file's frame and the hex SHA-256 of the very bytes parsed (one read, so they agree)."""
    try:
        data = path.read_bytes()
        return pd.read_parquet(io.BytesIO(data)), hashlib.sha256(data).hexdigest()
    except PermissionError:
        raise permission_denied(path) from None
    except Exception as exc:  # pyarrow raises several unrelated types for corrupt files
        reason = " ".join(str(exc).split())[:200]
        raise DataError(
            f"{path}: cannot read parquet ({type(exc).__name__}: {reason}); the file is corrupt or not "
            "parquet: re-create it with `chronobt data import`"
        ) from None


def read_csv(path: Path) -> pd.DataFrame:
    _check_file(path, ".csv")
    name = path.name.lower().removesuffix(".gz")
    if not name.endswith(CSV_SUFFIXES):
        raise DataError(f"{path}: expected a .csv export (got {path.suffix!r}); parquet files load directly")
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8-sig") as handle:
            head = [handle.readline() for _ in range(30)]
    except PermissionError:
        raise permission_denied(path) from None
    except (UnicodeDecodeError, OSError, EOFError) as exc:
        raise DataError(
            f"{path}: not a readable text CSV ({type(exc).__name__}); export it as UTF-8 CSV"
        ) from None
    lines = [ln.rstrip("\r\n") for ln in head if ln.strip()]
    if not lines:
        raise DataError(f"{path}: no rows (only blank lines); re-export it")
    try:
        delimiter = csv.Sniffer().sniff("\n".join(lines[:10]), delimiters=",;\t|").delimiter
    except csv.Error:
        delimiter = ","
    header_row = None
    for i, line in enumerate(h.rstrip("\r\n") for h in head):
        fields = next(csv.reader([line], delimiter=delimiter), [])
        once = list({f.strip().lower(): f for f in fields}.values())  # case twins (open, Open) count once
        if map_prices(once, strict=False).keys() >= {"open", "close"}:
            header_row = i
            break
    if header_row is None:
        fields = next(csv.reader([lines[0]], delimiter=delimiter), [])
        raise DataError(
            f"{path}: cannot find a header with open/high/low/close columns in the first 30 lines "
            f"(found columns: {', '.join(map(repr, fields))}); rename the columns to timestamp, open, high, "
            "low, close[, volume]"
        )
    try:
        frame = pd.read_csv(
            path, skiprows=header_row, sep=delimiter, skipinitialspace=True, encoding="utf-8-sig"
        )
    except PermissionError:
        raise permission_denied(path) from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise DataError(f"{path}: cannot parse CSV ({reason}); fix the malformed lines") from None
    frame.attrs[FIRST_LINE] = header_row + 2  # 1-based: the banner lines, the header, then the rows
    return frame
