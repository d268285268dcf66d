"""chronobt: backtest Amazon's Chronos-2 on OHLC price data.

The public API a notebook needs is importable from here; heavy modules (torch) load lazily.
The library prints nothing: its warnings go to the ``chronobt`` logger, which has a ``NullHandler``
(the logging HOWTO's rule for libraries), so they show only where the caller configures logging
(``logging.basicConfig()``); the command line shows them on stderr.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

from chronobt._version import __version__

logging.getLogger(__name__).addHandler(logging.NullHandler())  # no "last resort" printing to stderr

if TYPE_CHECKING:
    from chronobt.augment import get_augmentation
    from chronobt.config import BacktestConfig, ForecastConfig, SweepConfig
    from chronobt.data import load_ohlc
    from chronobt.engine.config import EngineConfig
    from chronobt.engine.core import Chronos2Engine
    from chronobt.runs.backtest import run_backtest
    from chronobt.runs.forecast import run_forecast
    from chronobt.runs.sweep import run_sweep

_LAZY = {
    "load_ohlc": "chronobt.data",
    "get_augmentation": "chronobt.augment",
    "Chronos2Engine": "chronobt.engine.core",
    "EngineConfig": "chronobt.engine.config",
    "BacktestConfig": "chronobt.config",
    "run_backtest": "chronobt.runs.backtest",
    "SweepConfig": "chronobt.config",
    "run_sweep": "chronobt.runs.sweep",
    "ForecastConfig": "chronobt.config",
    "run_forecast": "chronobt.runs.forecast",
}

__all__ = [
    "BacktestConfig",
    "Chronos2Engine",
    "EngineConfig",
    "ForecastConfig",
    "SweepConfig",
    "__version__",
    "get_augmentation",
    "load_ohlc",
    "run_backtest",
    "run_forecast",
    "run_sweep",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'chronobt' has no attribute {name!r}")
