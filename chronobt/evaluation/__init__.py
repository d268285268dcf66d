"""Evaluation: pure metrics, naive baselines, significance tests, calibration and the trading view.

:mod:`.metrics` (pure array functions and the one-pass ``summarize``), :mod:`.baselines` (naive,
seasonal naive, drift), :mod:`.significance` (Diebold-Mariano, block-bootstrap skill intervals),
:mod:`.calibration` (adaptive conformal inference), :mod:`.trading` (the trading view) and
:mod:`.evaluate` (a symbol's windows scored against the baselines: :class:`Evaluation`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chronobt import _lazy

if TYPE_CHECKING:
    from chronobt.evaluation.calibration import apply_levels, fit_conformal
    from chronobt.evaluation.evaluate import (
        Evaluation,
        Reference,
        evaluate,
        filled_record,
        inversion_warning,
        score_reference,
    )
    from chronobt.evaluation.metrics import METRIC_NAMES, calibration_error
    from chronobt.evaluation.significance import comparison, window_mae, window_quantile_loss

_EXPORTS = {
    "Evaluation": ".evaluate",
    "Reference": ".evaluate",
    "evaluate": ".evaluate",
    "score_reference": ".evaluate",
    "filled_record": ".evaluate",
    "inversion_warning": ".evaluate",
    "comparison": ".significance",
    "window_mae": ".significance",
    "window_quantile_loss": ".significance",
    "METRIC_NAMES": ".metrics",
    "calibration_error": ".metrics",
    "apply_levels": ".calibration",
    "fit_conformal": ".calibration",
}

__all__ = [
    "METRIC_NAMES",
    "Evaluation",
    "Reference",
    "apply_levels",
    "calibration_error",
    "comparison",
    "evaluate",
    "filled_record",
    "fit_conformal",
    "inversion_warning",
    "score_reference",
    "window_mae",
    "window_quantile_loss",
]


def __getattr__(name: str) -> Any:
    return _lazy.attribute(__name__, _EXPORTS, name)
