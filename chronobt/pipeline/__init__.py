"""The pipeline: from a symbol's bars to price forecasts, shared by every command.

:mod:`.jobs` loads a symbol, cuts its windows and fits the augmentation per window (a :class:`Job`),
and sends all jobs through the engine in one call; :mod:`.covariates` adds covariate rows and builds run
labels; :mod:`.uncertainty` inverts raw quantiles to prices (with the step dependence learned from
resolved windows) and calibrates them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chronobt import _lazy

if TYPE_CHECKING:
    from chronobt.pipeline.covariates import RunLabel
    from chronobt.pipeline.jobs import (
        Job,
        Progress,
        forecast_jobs,
        latest_window,
        make_job,
        model_context,
        prepare_each,
        prepare_windows,
        symbol_loader,
    )
    from chronobt.pipeline.uncertainty import calibrate, history_windows, invert_job

_EXPORTS = {
    "Job": ".jobs",
    "Progress": ".jobs",
    "forecast_jobs": ".jobs",
    "latest_window": ".jobs",
    "make_job": ".jobs",
    "model_context": ".jobs",
    "prepare_each": ".jobs",
    "prepare_windows": ".jobs",
    "symbol_loader": ".jobs",
    "calibrate": ".uncertainty",
    "history_windows": ".uncertainty",
    "invert_job": ".uncertainty",
    "RunLabel": ".covariates",
}

__all__ = [
    "Job",
    "Progress",
    "RunLabel",
    "calibrate",
    "forecast_jobs",
    "history_windows",
    "invert_job",
    "latest_window",
    "make_job",
    "model_context",
    "prepare_each",
    "prepare_windows",
    "symbol_loader",
]


def __getattr__(name: str) -> Any:
    return _lazy.attribute(__name__, _EXPORTS, name)
