"""Horizons beyond Chronos-2's ``max_output_patches``: chronos' own autoregressive unrolling (eager).

``Chronos2Pipeline._predict_batch`` is private to chronos (called through
:func:`chronobt.engine.chronos_compat.predict_batch`); its failure is a :class:`ModelError` that says so
(an out-of-memory error still propagates, so the engine can halve the batch).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from chronobt.engine import chronos_compat
from chronobt.errors import ModelError

#: chronos' default quantiles for long-horizon unrolling.
UNROLLED_QUANTILES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def unroll(
    pipeline: Any,
    context: torch.Tensor,
    group_ids: torch.Tensor,
    horizon: int,
    *,
    quantile_levels: Sequence[float],
    max_output_patches: int,
    output_patch_size: int,
    future: torch.Tensor | None = None,
) -> torch.Tensor:
    """Quantile forecasts ``[rows, Q, horizon]`` of ``context`` ``[rows, C]`` on its device (``future``:
    known future covariates ``[rows, horizon]``, NaN where unknown)."""
    levels = [q for q in UNROLLED_QUANTILES if q in quantile_levels] or list(quantile_levels)
    if future is None:
        future = torch.full((context.shape[0], horizon), torch.nan, device=context.device)
    try:
        (preds,) = chronos_compat.predict_batch(
            pipeline,
            context=context,
            group_ids=group_ids,
            future_covariates=future,
            unrolled_quantiles_tensor=torch.tensor(levels),
            prediction_length=horizon,
            max_output_patches=max_output_patches,
            target_idx_ranges=[(0, context.shape[0])],
        )
    except torch.OutOfMemoryError:
        raise
    except Exception as exc:
        steps = max_output_patches * output_patch_size
        text = (str(exc).strip().splitlines() or ["no message"])[0][:300]
        raise ModelError(
            f"chronos' internal Chronos2Pipeline._predict_batch failed ({type(exc).__name__}: {text}); "
            f"horizon {horizon} > {steps} steps needs its long-horizon unrolling: "
            f"use --horizon {steps} or less, or chronos-forecasting 2.3.2"
        ) from exc
    return preds
