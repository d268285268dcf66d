"""Columns whose names differ only in case (``open`` and ``Open``): merged, or one set chosen."""

from __future__ import annotations

from typing import Any, Literal, get_args

import numpy as np
import pandas as pd

from chronobt.data.columns import row_at, rows_at, shown
from chronobt.errors import ConfigError, DataError

#: Which of two column sets differing only in case wins a conflicting row (``data import --columns``):
#: ``lower`` the all-lowercase names (``open``), ``capitalized`` the others (``Open``, ``OPEN``).
ColumnSet = Literal["lower", "capitalized"]
COLUMN_SETS: tuple[str, ...] = get_args(ColumnSet)


def check_column_set(value: str | None) -> None:
    """ConfigError naming ``--columns`` unless ``value`` is None or one of :data:`COLUMN_SETS`."""
    if value is not None and value not in COLUMN_SETS:
        raise ConfigError(f"--columns {value!r}: expected one of {', '.join(COLUMN_SETS)}")


def merge_case_twins(
    raw: pd.DataFrame,
    source: str,
    first_line: int | None = None,
    *,
    superseded: np.ndarray | None = None,
    prefer: str | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    """Merge columns whose names differ only in case (``open`` and ``Open``, each partly filled).

    Rows take the one filled value; both filled must be equal, except in ``superseded`` rows (``[rows]``
    bool: earlier copies of a repeated timestamp, which the last copy in file order replaces, the
    de-duplication rule) and when ``prefer`` (one of :data:`COLUMN_SETS`) names the set that wins a
    conflicting row. Returns the frame and one note per merge; any other row where both hold different
    values is a DataError naming the rows.
    """
    check_column_set(prefer)
    groups: dict[str, list[Any]] = {}
    for c in raw.columns:
        groups.setdefault(str(c).strip().lower(), []).append(c)
    skip = np.zeros(len(raw), dtype=bool) if superseded is None else np.asarray(superseded, dtype=bool)
    notes: list[str] = []
    for cols in (g for g in groups.values() if len(g) > 1):
        order = cols if prefer is None else sorted(cols, key=lambda c: _is_lower(c) != (prefer == "lower"))
        merged = raw[order[0]].copy()
        resolved = skipped = 0
        for other in order[1:]:
            a, b = merged, raw[other]
            differ = (a.notna() & b.notna()).to_numpy() & ~_same(a, b)
            skipped += int((differ & skip).sum())
            differ &= ~skip
            if differ.any() and prefer is None:
                rows = np.flatnonzero(differ)
                i = int(rows[0])
                raise DataError(
                    f"{source}: columns {str(order[0])!r} and {str(other)!r} differ only in case and "
                    f"conflict in {len(rows)} rows ({rows_at(rows, first_line)}; {row_at(i, first_line)}: "
                    f"{shown(a.iloc[i])} vs {shown(b.iloc[i])}); keep one of them, make them agree, or "
                    f"choose the set that wins with --columns {'|'.join(COLUMN_SETS)}"
                )
            resolved += int(differ.sum())
            merged = a.where(a.notna(), b)
        raw = raw.drop(columns=[c for c in cols if c != order[0]]).assign(**{str(order[0]): merged})
        note = f"columns {', '.join(repr(str(c)) for c in cols)} differ only in case; merged"
        if skipped:
            note += (
                f" ({skipped} conflicting rows are earlier copies of a repeated timestamp; "
                "the last copy wins)"
            )
        if resolved:
            note += f"; {resolved} conflicting rows took {str(order[0])!r} (--columns {prefer})"
        notes.append(note)
    return raw, notes


def _is_lower(column: object) -> bool:
    return str(column) == str(column).lower()


def _same(a: pd.Series, b: pd.Series) -> np.ndarray:
    na = pd.to_numeric(a, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    nb = pd.to_numeric(b, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    numeric = np.isfinite(na) & np.isfinite(nb)
    close = np.isclose(na, nb, rtol=1e-12, atol=0.0)
    text = (a.astype(str).str.strip() == b.astype(str).str.strip()).to_numpy()
    return np.where(numeric, close, text)
