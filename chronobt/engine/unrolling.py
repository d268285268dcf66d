"""Horizons beyond Chronos-2's ``max_output_patches``: chronos' own autoregressive unrolling (eager).

One fixed-shape batch runs through ``Chronos2Pipeline._predict_batch``, private to chronos (looked up by
:func:`chronobt.engine.chronos_compat.predict_batch_method`). When that name is gone or takes other
arguments, the batch runs through chronos' public ``Chronos2Pipeline.predict`` instead, one prepared
input per task (its rows, in order, all of them targets, with the same known future): the same unrolling,
the same quantiles, and the reason is returned for the engine's ``record()``. An error raised by the
unrolling itself is a :class:`ModelError` that says so (an out-of-memory error still propagates, so the
engine can halve the batch).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import torch

from chronobt.engine import chronos_compat
from chronobt.errors import ModelError, first_line

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
) -> tuple[torch.Tensor, str | None]:
    """Quantile forecasts ``[rows, Q, horizon]`` (on the CPU) of ``context`` ``[rows, C]``, and why chronos'
    public ``predict`` ran instead of its private batch method (``None`` when it did not).

    Parameters
    ----------
    group_ids : ``[rows]``, ``arange(tasks).repeat_interleave(variates)`` (the engine's layout).
    future : known future covariates ``[rows, horizon]``, NaN where unknown; ``None``: nothing known.
    """
    levels = [q for q in UNROLLED_QUANTILES if q in quantile_levels] or list(quantile_levels)
    if future is None:
        future = torch.full((context.shape[0], horizon), torch.nan, device=context.device)
    fallback = None
    try:
        method = chronos_compat.predict_batch_method(pipeline)
    except chronos_compat.MissingInternal as exc:
        fallback = f"chronos internals changed: {exc}; running Chronos2Pipeline.predict"
    try:
        if fallback is not None:
            return _public_predict(
                pipeline, context, group_ids, future, horizon, levels, max_output_patches
            ), fallback
        (preds,) = method(
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
        name = "public Chronos2Pipeline.predict" if fallback is not None else "internal Chronos2Pipeline."
        name += "" if fallback is not None else chronos_compat.PREDICT_BATCH_METHOD
        raise ModelError(
            f"chronos' {name} failed ({type(exc).__name__}: {first_line(exc)}); "
            f"horizon {horizon} > {steps} steps needs its long-horizon unrolling: "
            f"use --horizon {steps} or less, or chronos-forecasting 2.3.2"
        ) from exc
    return preds, None


def _public_predict(
    pipeline: Any,
    context: torch.Tensor,
    group_ids: torch.Tensor,
    future: torch.Tensor,
    horizon: int,
    levels: list[float],
    max_output_patches: int,
) -> torch.Tensor:
    """The batch through chronos' public ``predict``: one prepared input per group (``group_ids`` contiguous),
    every row a target, all in one batch -> ``[rows, Q, horizon]`` on the CPU."""
    sizes = torch.unique_consecutive(group_ids, return_counts=True)[1].tolist()
    contexts = torch.split(context.detach().float().cpu(), sizes)
    futures = torch.split(future.detach().float().cpu(), sizes)
    inputs = [
        {
            "context": c,
            "future_covariates": f,
            "n_targets": len(c),
            "n_covariates": 0,
            "n_future_covariates": 0,
        }
        for c, f in zip(contexts, futures, strict=True)
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # chronos' "prediction length" advice: known here
        preds = pipeline.predict(
            inputs,
            prediction_length=horizon,
            batch_size=context.shape[0],
            context_length=context.shape[1],
            max_output_patches=max_output_patches,
            unrolled_quantiles=levels,
        )
    return torch.cat(preds, dim=0)
