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
- :func:`calibrate`: adaptive conformal inference per level and step
  (:mod:`chronobt.evaluation.calibration`), each window adjusted only by windows resolved by its origin;
  :func:`calibrate_as_requested` applies ``--calibrate``: ``auto`` (the default) calibrates when at
  least :data:`MIN_RESOLVED` windows were resolved by the last origin and otherwise keeps the raw
  quantiles with one warning line, ``conformal`` always calibrates, ``none`` never does.

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
from chronobt.augment.dependence_batch import Coupling, calibration_batch
from chronobt.augment.inversion import DEFAULT_N_PATHS, inverse_quantiles, inversion_device
from chronobt.augment.memory import InversionMemory, check_inversion_memory
from chronobt.augment.pit import sorted_quantiles
from chronobt.config import DEFAULT_QUANTILES, RunOptions
from chronobt.data.symbol_windows import SymbolWindows
from chronobt.errors import ChronobtError
from chronobt.evaluation.calibration import apply_levels, fit_conformal
from chronobt.evaluation.metrics import calibration_error
from chronobt.pipeline.jobs import Job

logger = logging.getLogger(__name__)

#: Resolved windows a forecast adds before the live one to learn dependence and calibration from.
HISTORY_WINDOWS = 100
#: ``--calibrate auto`` calibrates when at least this many windows were resolved by the last origin (the
#: same floor as the learned step dependence's); below it the raw quantiles are kept, with one line.
MIN_RESOLVED = 20
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
    dependence of a path-dependent augmentation or for calibration (``auto`` or ``conformal``), else 0."""
    learns = (options.dependence == "auto" and get_augmentation(spec).path_dependent) or (
        options.calibrate != "none"
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
    if job.raw_quantiles is None:
        raise ChronobtError("internal: job was not forecast before inversion")
    # crossing quantiles sorted once (each inversion and the PITs would sort their rows alike)
    raw = sorted_quantiles(np.asarray(job.raw_quantiles, dtype=np.float64))
    aug, sw = job.augmentation, job.windows

    def invert(
        rows: Any,
        dependence: str,
        coupling: Coupling | None = None,
        *,
        out_levels: Sequence[float] = options.quantiles,
        n_paths: int | None = options.n_paths,
    ) -> np.ndarray:
        kwargs: dict[str, Any] = {"dependence": dependence, "seed": options.seed, "device": target}
        if n_paths is not None:
            kwargs["n_paths"] = n_paths
        if coupling is not None:
            kwargs["correlation"], kwargs["groups"] = coupling
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

    def invert_held(rows: np.ndarray, coupling: Coupling | None) -> np.ndarray:
        dependence = "independent" if coupling is None else "copula"
        return invert(rows, dependence, coupling, out_levels=SELECTION_LEVELS, n_paths=SELECTION_PATHS)

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
        out[coupled] = invert(coupled, "copula", (rolling.matrices(), rolling.fit_of[coupled]))
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


@dataclass(frozen=True)
class Calibration:
    """What ``--calibrate`` did to one symbol's price quantiles.

    Attributes
    ----------
    price_q : ``[w, v, Q, h]`` calibrated quantiles, or ``None`` (the raw ones are the run's intervals).
    method : the conformal fit's record (:meth:`~chronobt.evaluation.calibration.ConformalFit.record`),
        ``None`` when not calibrated.
    record : metrics.json's and latest.json's ``interval_calibration``: ``requested``, ``applied``,
        ``n_resolved`` (windows resolved by the last origin), ``min_resolved`` (``auto``'s floor) and
        ``reason`` (why raw, else null).
    """

    price_q: np.ndarray | None
    method: dict[str, Any] | None
    record: dict[str, Any]


def calibrate_as_requested(
    sw: SymbolWindows, price_q: np.ndarray, options: RunOptions, *, label: str = ""
) -> Calibration:
    """Apply ``options.calibrate`` to ``price_q`` ``[w, v, Q, h]`` of ``sw``'s windows.

    ``auto`` calibrates (as ``conformal``) when at least :data:`MIN_RESOLVED` windows were resolved by the
    last window's origin (a window is resolved when its whole horizon was realised at or before it), else
    keeps the raw quantiles and logs one warning naming ``label`` (``"SYMBOL preaug"``), the count and
    the fix. Only resolved windows ever move a window's levels (no look-ahead).
    """
    origins = np.asarray(sw.origins, dtype=np.int64)
    horizon = sw.futures.shape[-1]
    n_resolved = int(np.searchsorted(origins + horizon, origins[-1], side="right")) if origins.size else 0
    record: dict[str, Any] = {
        "requested": options.calibrate,
        "applied": False,
        "n_resolved": n_resolved,
        "min_resolved": MIN_RESOLVED,
        "reason": None,
    }
    if options.calibrate == "none":
        record["reason"] = "--calibrate none"
        return Calibration(None, None, record)
    if options.calibrate == "auto" and n_resolved < MIN_RESOLVED:
        record["reason"] = f"{n_resolved} resolved windows, below {MIN_RESOLVED}"
        logger.warning(
            "%s: --calibrate auto kept the raw (uncalibrated) intervals: %d window(s) resolved by the last "
            "origin, calibration needs %d (more --windows or history; --calibrate none to choose raw)",
            label or sw.symbol, n_resolved, MIN_RESOLVED,
        )  # fmt: skip
        return Calibration(None, None, record)
    calibrated, method = calibrate(sw, price_q, options)
    return Calibration(calibrated, method, {**record, "applied": True})
