"""Inverting a job's forecasts to price quantiles, with uncertainty learned only from resolved windows.

- :func:`invert_job`: the price quantiles of a forecast job. With ``--dependence auto`` (the default) and a
  path-dependent augmentation (differencing, rolling_norm), the dependence between forecast steps is
  estimated per window from the windows whose whole horizon was realised at or before its origin
  (:mod:`chronobt.augment.dependence`: PITs of the realised model-space values under each step's predictive
  distribution, normal scores, a Gaussian copula: AR(1), a shrunk correlation or independent steps,
  chosen by the calibration of the held-out windows' price quantiles under each, :data:`SELECTION_WINDOWS`
  of them with :data:`SELECTION_PATHS` paths), and the sample paths are drawn from that copula. Below
  :data:`~chronobt.augment.dependence.MIN_WINDOWS` resolved windows the steps are independent, and the
  record says
  so. Pointwise augmentations invert each step exactly: no dependence is involved.
- :func:`calibrate`: ``--calibrate conformal``, adaptive conformal inference per level and step
  (:mod:`chronobt.evaluation.calibration`), each window adjusted only by windows resolved by its origin.

A forecast has no realised future: it also forecasts the latest :data:`HISTORY_WINDOWS` resolved windows
of the same series in the same run (:func:`chronobt.pipeline.jobs.latest_window`) and learns from those.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from chronobt.augment import get_augmentation
from chronobt.augment.dependence import REFIT_EVERY, rolling_dependence
from chronobt.augment.dependence_batch import calibration_batch
from chronobt.augment.inversion import DEFAULT_N_PATHS, inverse_quantiles, inversion_device
from chronobt.augment.memory import InversionMemory, check_inversion_memory
from chronobt.config import DEFAULT_QUANTILES, RunOptions
from chronobt.data.symbol_windows import SymbolWindows
from chronobt.errors import ChronobtError
from chronobt.evaluation.calibration import apply_levels, fit_conformal
from chronobt.evaluation.metrics import calibration_error
from chronobt.pipeline.jobs import Job

logger = logging.getLogger(__name__)

#: Resolved windows a forecast adds before the live one to learn dependence and calibration from.
HISTORY_WINDOWS = 100
#: Choosing the dependence: the latest held-out windows inverted per candidate, their sample paths and
#: the levels whose calibration is scored (fixed: the choice does not depend on ``--quantiles``).
SELECTION_WINDOWS = 60
SELECTION_PATHS = 512
SELECTION_LEVELS = DEFAULT_QUANTILES


@dataclass(frozen=True)
class Inversion:
    """Price quantiles ``[w, v, Q_out, h]`` and how the forecast steps were coupled (JSON record)."""

    price_q: np.ndarray
    dependence: dict[str, Any]


def history_windows(spec: str, options: RunOptions) -> int:
    """Resolved windows a forecast needs before its live one: :data:`HISTORY_WINDOWS` for ``auto``
    dependence of a path-dependent augmentation or for conformal calibration, else 0."""
    learns = (options.dependence == "auto" and get_augmentation(spec).path_dependent) or (
        options.calibrate == "conformal"
    )
    return HISTORY_WINDOWS if learns else 0


def check_paths_memory(options: RunOptions, specs: Sequence[str], *, windows: int) -> None:
    """Before any work: a ConfigError (the estimate and the limit) when the sample paths of ``options``
    could not be held inverting ``windows`` windows of a path-dependent one of ``specs``, with one worker.

    The draws are counted for as many step correlations as ``--dependence auto`` can fit (one per
    :data:`~chronobt.augment.dependence.REFIT_EVERY` windows, and the independent steps' own).
    """
    if options.dependence == "comonotonic":
        return  # no sample paths
    sets = 1 if options.dependence == "independent" else 2 + windows // REFIT_EVERY
    for spec in dict.fromkeys(specs):
        aug = get_augmentation(spec)
        if aug.path_dependent:
            need = InversionMemory.of(
                aug,
                windows=windows,
                variates=len(options.targets),
                horizon=options.horizon,
                n_paths=options.n_paths or DEFAULT_N_PATHS,
                draw_sets=min(sets, windows),
            )
            check_inversion_memory(need)


def invert_job(job: Job, levels: Sequence[float], options: RunOptions, *, device: Any = None) -> Inversion:
    """Invert ``job``'s model quantiles (at ``levels``) to price quantiles at ``options.quantiles``.

    ``device`` is the engine's: on CUDA the sample paths are drawn and read there
    (:mod:`chronobt.augment.inversion_torch`, the same numbers to the keyed read's bound); elsewhere the
    host loops are faster and run.
    """
    target = inversion_device(device)
    raw = job.raw_quantiles
    if raw is None:
        raise ChronobtError("internal: job was not forecast before inversion")
    aug, sw = job.augmentation, job.windows

    def invert(
        rows: Any,
        dependence: str,
        correlation: np.ndarray | None = None,
        *,
        out_levels: Sequence[float] = options.quantiles,
        n_paths: int | None = options.n_paths,
    ) -> np.ndarray:
        kwargs: dict[str, Any] = {"dependence": dependence, "seed": options.seed, "device": target}
        if n_paths is not None:
            kwargs["n_paths"] = n_paths
        if correlation is not None:
            kwargs["correlation"] = correlation
        return inverse_quantiles(
            aug, raw[rows], levels=levels, state=job.state.take(rows), out_levels=out_levels, **kwargs
        )

    if options.dependence != "auto":
        record: dict[str, Any] = {"requested": options.dependence, "method": options.dependence}
        return Inversion(invert(slice(None), options.dependence), record)
    if not aug.path_dependent:
        record = {"requested": "auto", "method": "exact", "reason": f"{aug.spec} inverts each step exactly"}
        return Inversion(invert(slice(None), "independent"), record)
    realised = aug.transform_future(sw.futures, job.state)  # model space; NaN where not realised

    def invert_held(rows: np.ndarray, correlation: np.ndarray | None) -> np.ndarray:
        dependence = "independent" if correlation is None else "copula"
        return invert(rows, dependence, correlation, out_levels=SELECTION_LEVELS, n_paths=SELECTION_PATHS)

    def score(rows: np.ndarray, price_q: np.ndarray) -> float:
        return calibration_error(actual=sw.futures[rows], quantiles=price_q, levels=SELECTION_LEVELS)

    # every refit point's choice at once: the latest held-out windows inverted per candidate, the best
    # price calibration wins (each held-out window's independent paths drawn once for all points)
    by_calibration = calibration_batch(invert=invert_held, score=score, last=SELECTION_WINDOWS)
    rolling = rolling_dependence(
        quantiles=raw,
        levels=levels,
        actual=realised,
        origins=sw.origins,
        horizon=sw.futures.shape[-1],
        choose_all=by_calibration,
    )
    out = np.empty((*raw.shape[:2], len(options.quantiles), raw.shape[-1]))
    coupled = np.array([fit.method != "independent" for fit in rolling.fits])[rolling.fit_of]
    if (~coupled).any():
        out[~coupled] = invert(~coupled, "independent")
    if coupled.any():  # one call: the fits' chunks run in parallel; each window's draws follow its matrix
        out[coupled] = invert(coupled, "copula", rolling.correlations()[coupled])
    latest = rolling.fits[int(rolling.fit_of[-1])]
    if latest.method == "independent" and latest.reason:
        logger.info(
            "%s %s: --dependence auto used independent steps (%s)", sw.symbol, aug.spec, latest.reason
        )
    return Inversion(out, {"requested": "auto", **rolling.record()})


def calibrate(
    sw: SymbolWindows, price_q: np.ndarray, options: RunOptions
) -> tuple[np.ndarray, dict[str, Any]]:
    """Conformally calibrated ``price_q`` ``[w, v, Q, h]`` and the record of the fit.

    Window ``i``'s levels are adjusted only by windows resolved by its origin, so the last window of a
    forecast (futures unknown) gets the levels learned from every resolved window before it.
    """
    fit = fit_conformal(
        quantiles=price_q,
        levels=options.quantiles,
        actual=sw.futures,
        origins=sw.origins,
        horizon=sw.futures.shape[-1],
        as_of=int(sw.origins[-1]),  # the record's final levels: those the last window was issued
    )
    return apply_levels(price_q, options.quantiles, fit.issued), fit.record(sw.targets)
