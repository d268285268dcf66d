"""Online conformal recalibration of quantile forecasts from resolved windows only.

Implements adaptive conformal inference (ACI; Gibbs & Candes, 2021, "Adaptive Conformal Inference Under
Distribution Shift", NeurIPS) for each quantile separately: for a nominal level ``tau`` the one-sided
set ``(-inf, q(tau_t)]`` should hold the outcome with probability ``tau``, so the issued level follows

    tau_{t+1} = tau_t + gamma * (tau - hit_t),      hit_t = 1{y_t <= q_t(tau_t)}

(the ACI update ``alpha_{t+1} = alpha_t + gamma (alpha - err_t)`` with ``alpha = 1 - tau`` and ``err_t``
the miscoverage of that set), one recursion per variate, nominal level and horizon step. Over any run
of ``T`` resolved windows the hit rate is within ``(max(tau_1, 1 - tau_1) + gamma) / (gamma T)`` of
``tau`` whatever the data (their Proposition 4.1), so an interval between two calibrated quantiles is
calibrated too. ACI rather than rolling conformalised quantile regression because it needs no refit and
no calibration split: the model's own quantiles are the score, one cheap update per resolved window,
and it tracks drifting miscalibration instead of averaging it over a fixed window.

Feedback is delayed, as in a real backtest: window ``i`` (origin = its last observed bar) is issued
the levels reached after the windows resolved by then (``origin_j + horizon <= origin_i``, see
:func:`chronobt.augment.dependence.resolved_before`), and the update of window ``j`` uses the level window
``j``
was issued. ``hit_t`` is read off the PIT of the outcome (``PIT <= tau_t``; exact for continuous
predictive distributions). An issued level maps to a value through the inverse-CDF interpolation of
:mod:`chronobt.augment.sampling` (Gaussian tails beyond the outermost predicted levels) after clipping to
``[clip, 1 - clip]``; crossing calibrated quantiles are sorted.

The median (level 0.5) is not recalibrated: its issued level stays 0.5, so the calibrated forecast's
median is the model's own (up to the sort of a crossing). The point forecast that a backtest scores
(MASE, the Diebold-Mariano tests) is then the one ``forecast`` issues and the strategies trade; the
intervals around it are what calibration is for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.special import ndtri

from chronobt.augment.dependence import pit, resolved_before
from chronobt.augment.sampling import check_levels
from chronobt.errors import ConfigError

FloatArray = npt.NDArray[np.float64]

#: Default ACI step size: ~1/gamma = 50 resolved windows of memory. Gibbs & Candes use 0.005, which adapts
#: too slowly for a 200-window backtest; 0.02 is the smallest step that brought every step's 80% coverage
#: within 0.03 of nominal on real hourly series (benchmarks/RESULTS.md, section ``calibration_table.py``).
GAMMA = 0.02
#: Issued levels are clipped to ``[CLIP, 1 - CLIP]`` before they are mapped to values.
CLIP = 1e-3


def quantiles_at(q: npt.ArrayLike, levels: Sequence[float], targets: npt.ArrayLike) -> FloatArray:
    """Values of quantiles ``q`` ``[..., Q, h]`` at per-element ``targets`` ``[..., K, h]`` in (0, 1).

    The inverse-CDF interpolation of :func:`chronobt.augment.sampling.interpolate_quantiles` (linear in
    the level inside the predicted levels, linear in the normal score beyond them), with a target level
    per element instead of one shared list.
    """
    qa = np.asarray(q, dtype=np.float64)
    lv = check_levels(levels, qa.shape[-2])
    t = np.asarray(targets, dtype=np.float64)
    seg = np.clip(np.searchsorted(lv, t, side="right") - 1, 0, lv.size - 2)
    lo_l, hi_l = lv[seg], lv[seg + 1]
    outside = (t < lv[0]) | (t > lv[-1])
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.asarray((t - lo_l) / (hi_l - lo_l), dtype=np.float64)
        if outside.any():  # normal scores only where a target lies beyond the levels (few, costly)
            t_o, lo_o, hi_o = np.broadcast_to(t, outside.shape)[outside], lo_l[outside], hi_l[outside]
            frac[outside] = (ndtri(t_o) - ndtri(lo_o)) / (ndtri(hi_o) - ndtri(lo_o))
        lo = np.take_along_axis(qa, seg, axis=-2)
        hi = np.take_along_axis(qa, seg + 1, axis=-2)
        mixed = (1.0 - frac) * lo + frac * hi
    return np.asarray(np.where(frac == 0.0, lo, np.where(frac == 1.0, hi, mixed)))


def apply_levels(
    quantiles: npt.ArrayLike, levels: Sequence[float], issued: npt.ArrayLike, *, clip: float = CLIP
) -> FloatArray:
    """Calibrated quantiles ``[w, v, Q, h]``: each nominal level's value read at its issued level.

    ``issued`` is ``[w, v, Q, h]`` (one per window) or ``[v, Q, h]`` (the same for all windows, e.g.
    :attr:`ConformalFit.final` applied to a new forecast); clipped to ``[clip, 1 - clip]``; crossing
    results are sorted along the level axis.
    """
    qa = np.asarray(quantiles, dtype=np.float64)
    if qa.ndim != 4:
        raise ValueError(f"quantiles must be [w, v, Q, h], got {qa.shape}")
    if not (np.diff(qa, axis=2) >= 0).all():
        qa = np.sort(qa, axis=2)
    t = np.broadcast_to(np.clip(np.asarray(issued, dtype=np.float64), clip, 1.0 - clip), qa.shape)
    return np.sort(quantiles_at(qa, levels, t), axis=2)


@dataclass(frozen=True, eq=False)
class ConformalFit:
    """ACI state of a backtest.

    Attributes
    ----------
    gamma : step size.
    levels : ``[Q]`` nominal levels.
    issued : ``[w, v, Q, h]`` level issued to each window (from the windows resolved before it).
    final : ``[v, Q, h]`` level after every window resolved by ``as_of``: the one for a new forecast.
    n_resolved : windows whose outcomes entered ``final``.
    clip : issued levels are clipped to ``[clip, 1 - clip]`` when mapped to values.
    """

    gamma: float
    levels: FloatArray
    issued: FloatArray
    final: FloatArray
    n_resolved: int
    clip: float = CLIP

    def record(self, targets: Sequence[str]) -> dict[str, Any]:
        """Strict JSON: method, reference, gamma, nominal and final levels per target ``[Q][h]``."""
        if len(targets) != self.final.shape[0]:
            raise ValueError(f"{len(targets)} target names for {self.final.shape[0]} variates")
        return {
            "method": "aci",
            "reference": "Gibbs & Candes (2021), Adaptive Conformal Inference Under Distribution Shift",
            "gamma": float(self.gamma),
            "clip": float(self.clip),
            "levels": [float(x) for x in self.levels],
            "n_resolved": int(self.n_resolved),
            "final_levels": {
                t: np.round(self.final[i], 12).tolist() for i, t in enumerate(targets)
            },  # [Q][h]
        }


def fit_conformal(
    *,
    quantiles: npt.ArrayLike,
    levels: Sequence[float],
    actual: npt.ArrayLike,
    origins: npt.ArrayLike,
    horizon: int,
    gamma: float = GAMMA,
    as_of: int | None = None,
    clip: float = CLIP,
) -> ConformalFit:
    """Run the delayed ACI recursion over the windows in origin order.

    Parameters
    ----------
    quantiles
        ``[w, v, Q, h]`` raw forecasts (price space) at ascending ``levels``.
    actual
        ``[w, v, h]`` outcomes; NaN (unresolved or missing) leaves that element's level unchanged.
    origins
        ``[w]`` ascending bar index of each window's last observed bar; ``horizon`` bars forecast.
    as_of
        Bar index of the forecast the :attr:`ConformalFit.final` levels are for (the windows with
        ``origin + horizon <= as_of`` are resolved then); default: after every window resolved.

    The loop runs over windows (updates are sequential in time) and applies each block of newly
    resolved windows at once, vectorized over windows, variates, levels and steps.
    """
    if not 0.0 < gamma < 1.0:
        raise ConfigError(f"gamma must be in (0, 1), got {gamma}")
    if not 0.0 < clip < 0.5:
        raise ConfigError(f"clip must be in (0, 0.5), got {clip}")
    qa = np.asarray(quantiles, dtype=np.float64)
    lv = check_levels(levels, qa.shape[2] if qa.ndim == 4 else None)
    u = pit(quantiles=qa, levels=levels, actual=actual)  # [w, v, h]
    counts = resolved_before(origins, horizon)
    n_w = qa.shape[0]
    if counts.size != n_w:
        raise ValueError(f"{counts.size} origins for {n_w} windows")
    o = np.asarray(origins, dtype=np.int64)
    last = n_w if as_of is None else int(np.searchsorted(o + horizon, int(as_of), side="right"))
    tau = np.broadcast_to(lv[:, None], (qa.shape[1], lv.size, qa.shape[3])).copy()  # [v, Q, h]
    issued = np.empty_like(qa)
    held = np.isclose(lv, 0.5)[:, None]  # [Q, 1]: the median keeps its level (the model's point forecast)
    done = 0

    def resolve(upto: int) -> None:
        nonlocal done
        if upto <= done:
            return
        outcome = u[done:upto, :, None, :]  # [b, v, 1, h]
        hit = (outcome <= np.clip(issued[done:upto], clip, 1.0 - clip)).astype(np.float64)
        step = np.where(np.isnan(outcome) | held, 0.0, lv[:, None] - hit)  # [b, v, Q, h]
        tau[...] += gamma * step.sum(axis=0)
        done = upto

    final = None
    for i in range(n_w):
        if final is None and counts[i] > last:  # the forecast's levels: exactly the first `last` windows
            resolve(last)
            final = tau.copy()
        resolve(int(counts[i]))
        issued[i] = tau
    if final is None:
        resolve(last)
        final = tau.copy()
    return ConformalFit(float(gamma), lv, issued, final, last, float(clip))
