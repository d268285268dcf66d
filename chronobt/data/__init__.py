"""OHLC data: load, validate, repair (loudly), infer the calendar, import CSV exports.

A file becomes an :class:`OHLC`: a UTC-indexed float64 frame of open/high/low/close[/volume] on a known
bar frequency and calendar, with a :class:`DataReport` of everything that was repaired. Anything that
cannot be repaired safely is a :class:`~chronobt.errors.DataError` naming the file, the column, how many
rows and the first offending timestamp, and how to fix it.

Calendars
---------
``continuous``
    24/7 series (crypto). Bars sit on a regular grid; missing bars are forward-filled (flat bars at the
    previous close, volume 0) and reported, or refused beyond ``max_gap`` bars.
``exchange``
    Trading-calendar series (daily stocks without weekends, FX without weekend hours). Bars are taken as
    consecutive; nothing is filled. Future timestamps skip the closed hours/days.

Modules: :mod:`~chronobt.data.ohlc` (the types), :mod:`~chronobt.data.store` (the entry points below),
:mod:`~chronobt.data.files` (finding and reading files, symbols safe in paths),
:mod:`~chronobt.data.columns` (column mapping, timestamp parsing), :mod:`~chronobt.data.twins`
(case-twin column sets), :mod:`~chronobt.data.validate`
(checks and repairs), :mod:`~chronobt.data.splits` (one-bar moves like unadjusted splits or bad prints,
back-adjusting splits on request), :mod:`~chronobt.data.frequency`
(bar frequency and calendar inference), :mod:`~chronobt.data.sessions` (exchange trading calendars:
XNYS inference, session bar patterns, future bars).
"""

from chronobt.data.files import SYMBOL_RULE, check_symbol, is_symbol, symbol_of_file
from chronobt.data.ohlc import MAX_ABS_PRICE, OHLC, TARGETS, DataReport, SymbolInfo
from chronobt.data.store import (
    adjust_stored_splits,
    check_ohlc,
    import_csv,
    import_csv_report,
    list_symbols,
    load_ohlc,
    require_bars,
    resolve_path,
    save_ohlc,
    save_ohlc_report,
)

__all__ = [
    "MAX_ABS_PRICE",
    "OHLC",
    "SYMBOL_RULE",
    "TARGETS",
    "DataReport",
    "SymbolInfo",
    "adjust_stored_splits",
    "check_ohlc",
    "check_symbol",
    "import_csv",
    "import_csv_report",
    "is_symbol",
    "list_symbols",
    "load_ohlc",
    "require_bars",
    "resolve_path",
    "save_ohlc",
    "save_ohlc_report",
    "symbol_of_file",
]
