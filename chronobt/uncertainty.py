"""Honest uncertainty of a job's price quantiles, learned only from windows resolved before each origin.

- :func:`invert_quantiles`: the price quantiles of a forecast job. With ``--dependence auto`` (the default)
  and a path-dependent augmentation, the dependence between forecast steps is estimated per window from
  the windows whose whole horizon was realised at or before its origin (:mod:`chronobt.dependence`: PITs
  of the realised model-space values, normal scores, a Gaussian copula chosen between AR(1) and a shrunk
  correlation by held-out likelihood), and the sample paths are drawn from that copula. Below
  :data:`~chronobt.dependence.MIN_WINDOWS` resolved windows the steps are independent, and the record says
  so. Pointwise augmentations invert each step exactly: no dependence is needed.
- :func:`calibrate`: ``--calibrate conformal``, adaptive conformal inference per level and step
  (:mod:`chronobt.calibration`), fitted only on resolved windows.

A forecast has no realised future: it forecasts the latest resolved windows of the same series in the
same run (:data:`HISTORY_WINDOWS`) and uses what they resolved.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from chronobt.calibration import fit_conformal
from chronobt.config import RunOptions
from chronobt.dependence import MIN_WINDOWS, rolling_dependence
from chronobt.errors import ChronobtError
from chronobt.pipeline import Job, SymbolWindows

logger = logging.getLogger(__name__)

#: Resolved windows a forecast adds before the live one to learn dependence and calibration from.
HISTORY_WINDOWS = 100


def needs_history(job_spec_path_dependent: bool, options: RunOptions) -> bool:
    """Whether a forecast must also forecast past windows (auto dependence of a path-dependent
    augmentation, or conformal calibration)."""
    return (options.dependence == "auto" and job_spec_path_dependent) or options.calibrate == "conformal"


def invert_quantiles(
    job: Job, levels: Sequence[float], options: RunOptions
) -> tuple[np.ndarray, dict[str, Any]]:
    """Price quantiles ``[w, v, Q_out, h]`` of ``job`` and the record of how steps were coupled."""
    if job.raw_quantiles is None:
        raise ChronobtError("internal: job was not forecast before inversion")
    aug, sw = job.augmentation, job.windows
    kwargs: dict[str, Any] = {"seed": options.seed}
    if options.n_paths is not None:
        kwargs["n_paths"] = options.n_paths

    def invert(
        rows: np.ndarray | slice, dependence: str, correlation: np.ndarray | None = None
    ) -> np.ndarray:
        extra = {"correlation": correlation} if correlation is not None else {}
        return aug.inverse_quantiles(
            job.raw_quantiles[rows],  # type: ignore[index]
            levels=levels,
            state=job.state.take(rows),
            out_levels=options.quantiles,
            dependence=dependence,
            **kwargs,
            **extra,
        )

    if options.dependence != "auto":
        return invert(slice(None), options.dependence), {
            "requested": options.dependence,
            "method": options.dependence,
        }
    if not aug.path_dependent:
        record = {"requested": "auto", "method": "exact", "reason": f"{aug.spec} inverts each step exactly"}
        return invert(slice(None), "independent"), record
    realised = aug.transform_future(sw.futures, job.state)  # model space; NaN where not realised
    rolling = rolling_dependence(
        quantiles=job.raw_quantiles,
        levels=levels,
        actual=realised,
        origins=sw.origins,
        horizon=sw.futures.shape[-1],
    )
    out = np.empty((*job.raw_quantiles.shape[:2], len(options.quantiles), job.raw_quantiles.shape[-1]))
    for f, fit in enumerate(rolling.fits):
        rows = np.flatnonzero(rolling.fit_of == f)
        if fit.method == "independent":
            out[rows] = invert(rows, "independent")
        else:
            out[rows] = invert(rows, "copula", fit.correlation)
    record = {"requested": "auto", **rolling.record()}
    latest = record["latest"]
    if latest.get("fallback_reason") and int(rolling.counts[-1]) < MIN_WINDOWS:
        logger.info(
            "%s %s: --dependence auto fell back to independent steps for the latest window (%s)",
            sw.symbol,
            aug.spec,
            latest["fallback_reason"],
        )
    return out, record


def calibrate(
    sw: SymbolWindows, price_q: np.ndarray, options: RunOptions
) -> tuple[np.ndarray, dict[str, Any]]:
    """Conformally calibrated ``price_q`` ``[w, v, Q, h]`` (window ``i`` adjusted only by windows resolved
    by its origin) and the record of the fit."""
    fit = fit_conformal(
        quantiles=price_q,
        levels=options.quantiles,
        actual=sw.futures,
        origins=sw.origins,
        horizon=sw.futures.shape[-1],
    )
    from chronobt.calibration import apply_levels

    return apply_levels(price_q, options.quantiles, fit.issued), fit.record(sw.targets)
