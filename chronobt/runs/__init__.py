"""Runs: the commands' orchestration and their output files.

:mod:`.backtest` (with :mod:`.backtest_write`, :mod:`.summary`, the typed ``metrics.json``, and
:mod:`.finetune_compare`), :mod:`.sweep` (with :mod:`.cells`, :mod:`.leaderboard`, :mod:`.choice` and
:mod:`.finetune_cells`) and :mod:`.forecast`; :mod:`.chunks` is one symbol's work without file access,
run in this process or on Ray actors by :mod:`.executors`; :mod:`.results` is the output schema and
:mod:`.publish` publishes several files together (all old or all new after a kill).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chronobt import _lazy

if TYPE_CHECKING:
    from chronobt.runs.backtest import BacktestReport, run_backtest
    from chronobt.runs.forecast import ForecastReport, run_forecast
    from chronobt.runs.summary import BacktestSummary
    from chronobt.runs.sweep import SweepReport, run_sweep

_EXPORTS = {
    "run_backtest": ".backtest",
    "BacktestReport": ".backtest",
    "run_sweep": ".sweep",
    "SweepReport": ".sweep",
    "run_forecast": ".forecast",
    "ForecastReport": ".forecast",
    "BacktestSummary": ".summary",
}

__all__ = [
    "BacktestReport",
    "BacktestSummary",
    "ForecastReport",
    "SweepReport",
    "run_backtest",
    "run_forecast",
    "run_sweep",
]


def __getattr__(name: str) -> Any:
    return _lazy.attribute(__name__, _EXPORTS, name)
