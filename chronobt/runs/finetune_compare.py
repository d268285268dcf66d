"""Fine-tuned vs zero-shot on the same windows: metrics.json's ``finetune.versus_zero_shot``."""

from __future__ import annotations

from typing import Any

import numpy as np

from chronobt.config import BacktestConfig
from chronobt.data.symbol_windows import SymbolWindows
from chronobt.evaluation.significance import comparison, window_mae, window_quantile_loss


def versus_zero_shot(
    sw: SymbolWindows, tuned_q: np.ndarray, zero_q: np.ndarray, config: BacktestConfig
) -> dict[str, dict[str, Any]]:
    """Diebold-Mariano test and bootstrap skill of fine-tuned vs zero-shot on the same windows, per target,
    on the per-window MAE of the median and the per-window quantile loss (:func:`significance.comparison`;
    negative ``mean_diff`` / positive ``skill``: fine-tuning helped).

    ``tuned_q``, ``zero_q``: ``[windows, variates, Q, horizon]`` price quantiles. Returns
    ``{target: {"mae": comparison, "wql": comparison}}``.
    """
    levels = list(config.quantiles)
    mid = levels.index(0.5)
    losses = {
        "mae": lambda q: window_mae(actual=sw.futures, median=q[:, :, mid, :]),
        "wql": lambda q: window_quantile_loss(actual=sw.futures, quantiles=q, levels=levels),
    }
    out: dict[str, dict[str, Any]] = {}
    for name, loss in losses.items():
        tuned, zero = loss(tuned_q), loss(zero_q)  # [windows, variates]
        for v, target in enumerate(sw.targets):
            out.setdefault(target, {})[name] = comparison(
                loss_model=tuned[:, v],
                loss_baseline=zero[:, v],
                horizon=config.horizon,
                stride=config.effective_stride,
                seed=config.seed,
            )
    return out
