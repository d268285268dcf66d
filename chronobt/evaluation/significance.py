"""Is the model really better than a baseline? Diebold-Mariano tests and bootstrap skill intervals.

Backtest windows are rolling origins ``stride`` bars apart with a forecast of ``horizon`` bars; when
``stride < horizon`` consecutive windows share realised bars, so their losses are correlated. Both tools
here account for that:

- :func:`diebold_mariano` (Diebold & Mariano, 1995) on the per-window loss differential
  ``d_i = loss_model_i - loss_baseline_i``, with the long-run variance from the autocovariances of ``d``
  up to lag ``k - 1``, ``k = ceil(horizon / stride)`` (the windows that overlap a given one; lag 0 only
  when windows do not overlap), the small-sample correction of Harvey, Leybourne & Newbold (1997) with
  ``k`` in place of the forecast horizon, and a two-sided p-value from Student's t with ``n - 1``
  degrees of freedom. A negative statistic (and ``mean_diff``) means the model's loss is lower.
- :func:`skill_interval`, a moving-block bootstrap (Kuensch, 1989) percentile interval for the skill
  ``1 - mean loss_model / mean loss_baseline``, resampling *pairs* of losses in blocks of
  :func:`block_length` ``= max(k, round(n ** (1/3)))`` consecutive windows (at least the overlap, so a
  block keeps the windows that share bars together; ``n^(1/3)`` is the rate-optimal order for the
  variance of a mean, Hall, Horowitz & Jing, 1995).

Per-window losses come from :func:`window_mae` and :func:`window_quantile_loss` (``[w, v]``); divide
them by the MASE scale (:func:`chronobt.evaluation.metrics.naive_scale`) to compare windows of different price
levels on one footing (the scaled MAE of a window is its MASE). :func:`significance_block` assembles the
strict-JSON block of ``metrics.json``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.special import stdtr  # Student's t cdf; scipy.stats would add ~0.4 s of imports

from chronobt.errors import ConfigError
from chronobt.evaluation.metrics import pinball

FloatArray = npt.NDArray[np.float64]

#: Bootstrap replicates of :func:`skill_interval` (the 2.5% / 97.5% percentiles are stable to ~0.5% of
#: the interval's width at this count).
N_BOOTSTRAP = 2000


def _nanmean_last(x: FloatArray) -> FloatArray:
    """Mean over the last axis ignoring NaN; NaN (silently) where all are NaN."""
    valid = ~np.isnan(x)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(np.where(valid, x, 0.0).sum(axis=-1) / valid.sum(axis=-1), dtype=np.float64)


def window_mae(*, actual: npt.ArrayLike, median: npt.ArrayLike) -> FloatArray:
    """Per-window MAE of the median over the horizon: ``[w, v, h]`` each -> ``[w, v]`` (NaN steps dropped)."""
    return _nanmean_last(np.abs(np.subtract(median, actual, dtype=np.float64)))


def window_quantile_loss(
    *, actual: npt.ArrayLike, quantiles: npt.ArrayLike, levels: Sequence[float]
) -> FloatArray:
    """Per-window mean pinball loss over the levels and the horizon.

    ``actual`` ``[w, v, h]``, ``quantiles`` ``[w, v, Q, h]`` at ``levels`` -> ``[w, v]``; NaN points are
    left out, a window without any valid point is NaN.
    """
    loss = pinball(actual=actual, quantiles=quantiles, levels=levels)  # [w, v, Q, h]
    return _nanmean_last(loss.reshape(*loss.shape[:2], -1))


def overlap(horizon: int, stride: int) -> int:
    """``k = ceil(horizon / stride)``: how many consecutive windows share realised bars (1: none)."""
    if horizon < 1 or stride < 1:
        raise ConfigError(f"horizon and stride must be >= 1, got horizon={horizon}, stride={stride}")
    return -(-horizon // stride)


@dataclass(frozen=True)
class DMTest:
    """A Diebold-Mariano test; ``statistic``/``p_value`` are ``None`` with a ``reason`` when undefined."""

    statistic: float | None
    p_value: float | None
    n: int  # windows used (both losses finite)
    lag: int  # highest autocovariance lag in the long-run variance (k - 1)
    mean_diff: float | None  # mean of loss_model - loss_baseline
    reason: str | None = None


def _paired(loss_model: npt.ArrayLike, loss_baseline: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    a = np.asarray(loss_model, dtype=np.float64)
    b = np.asarray(loss_baseline, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"losses must be two [windows] arrays of one length, got {a.shape} and {b.shape}")
    keep = np.isfinite(a) & np.isfinite(b)
    return a[keep], b[keep]


def diebold_mariano(
    *, loss_model: npt.ArrayLike, loss_baseline: npt.ArrayLike, horizon: int, stride: int
) -> DMTest:
    """Two-sided Diebold-Mariano test (Harvey-Leybourne-Newbold corrected) of equal mean loss.

    Parameters
    ----------
    loss_model, loss_baseline
        ``[windows]`` per-window losses in ascending origin order; windows where either is NaN are dropped
        (the remaining ones keep their order).
    horizon, stride
        Forecast length and bars between origins; the variance uses autocovariance lags ``0 .. k - 1``
        with ``k = ceil(horizon / stride)``.

    Returns
    -------
    :class:`DMTest`. With ``n`` windows, ``d = loss_model - loss_baseline``, ``gamma_j`` the lag-``j``
    autocovariance of ``d`` (divisor ``n``), ``V = (gamma_0 + 2 sum_{j<k} gamma_j) / n``, the statistic
    is ``mean(d) / sqrt(V) * sqrt((n + 1 - 2k + k(k-1)/n) / n)`` and the p-value ``2 P(T_{n-1} > |stat|)``.
    Undefined (``None`` + reason) for fewer than ``max(2, k + 1)`` windows, a non-positive correction or
    a non-positive variance (e.g. identical forecasts).
    """
    k = overlap(horizon, stride)
    a, b = _paired(loss_model, loss_baseline)
    d = a - b
    n = int(d.size)
    mean_diff = float(d.mean()) if n else None

    def undefined(reason: str) -> DMTest:
        return DMTest(None, None, n, k - 1, mean_diff, reason)

    if n < max(2, k + 1):
        return undefined(f"{n} windows with finite losses; the test needs at least {max(2, k + 1)}")
    correction = (n + 1 - 2 * k + k * (k - 1) / n) / n
    if correction <= 0:
        return undefined(f"{n} windows are too few for overlap k={k} (Harvey correction <= 0)")
    e = d - d.mean()
    gammas = np.array([e[j:] @ e[: n - j] for j in range(k)]) / n  # k lags, k is small
    variance = (gammas[0] + 2.0 * gammas[1:].sum()) / n
    if gammas[0] <= 1e-24 * float(np.mean(a**2) + np.mean(b**2)):
        return undefined("the loss differential has zero variance (identical losses?)")
    if variance <= 0:
        return undefined("the long-run variance estimate of the loss differential is negative")
    statistic = float(d.mean() / math.sqrt(variance) * math.sqrt(correction))
    p_value = float(2.0 * stdtr(n - 1, -abs(statistic)))  # = 2 * t.sf(|stat|, n - 1)
    return DMTest(statistic, p_value, n, k - 1, mean_diff)


def block_length(n: int, k: int) -> int:
    """Moving-block length ``max(k, round(n ** (1/3)))``, at most ``n`` (and at least 1)."""
    return max(1, min(n, max(k, round(n ** (1.0 / 3.0)))))


def _skill(model_mean: Any, baseline_mean: Any) -> Any:
    with np.errstate(invalid="ignore", divide="ignore"):
        return 1.0 - np.divide(model_mean, baseline_mean)


def skill_interval(
    *,
    loss_model: npt.ArrayLike,
    loss_baseline: npt.ArrayLike,
    horizon: int,
    stride: int,
    n_boot: int = N_BOOTSTRAP,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float | None, tuple[float | None, float | None]]:
    """Skill ``1 - mean loss_model / mean loss_baseline`` and its moving-block bootstrap interval.

    ``loss_model``/``loss_baseline`` are ``[windows]`` in origin order (NaN pairs dropped). Each of the
    ``n_boot`` replicates concatenates ``ceil(n / b)`` blocks of ``b = block_length(n, k)`` consecutive
    windows with uniformly drawn starts (truncated to ``n``), resampling the same windows for both losses;
    the interval is the ``(1 - level) / 2`` and ``(1 + level) / 2`` percentiles of the replicates' skill.
    Replicate sums come from prefix sums of the losses, so the work is ``O(n_boot * n / b)``, vectorized
    over replicates; seeded by ``seed``. Returns ``(skill, (lo, hi))``, ``None`` where undefined (no
    windows, or a zero baseline loss).
    """
    if n_boot < 1:
        raise ConfigError(f"n_boot must be >= 1, got {n_boot}")
    a, b = _paired(loss_model, loss_baseline)
    n = int(a.size)
    if n == 0:
        return None, (None, None)
    point = _finite(_skill(a.mean(), b.mean()))
    size = block_length(n, overlap(horizon, stride))
    n_blocks = -(-n // size)
    tail = n - (n_blocks - 1) * size  # length of the last (truncated) block
    starts = np.random.default_rng(seed).integers(0, n - size + 1, size=(n_boot, n_blocks))
    sums = []
    for x in (a, b):
        c = np.concatenate([[0.0], np.cumsum(x)])
        full = c[size:] - c[:-size]  # [n - size + 1] sums of the blocks starting at each window
        last = c[tail : tail + n - size + 1] - c[: n - size + 1]
        sums.append(full[starts[:, :-1]].sum(axis=1) + last[starts[:, -1]])
    replicates = _skill(sums[0], sums[1])  # the 1/n of both means cancels
    replicates = replicates[np.isfinite(replicates)]
    if replicates.size == 0:
        return point, (None, None)
    lo, hi = np.quantile(replicates, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return point, (float(lo), float(hi))


def _finite(x: Any) -> float | None:
    return float(x) if x is not None and np.isfinite(x) else None


def comparison(
    *,
    loss_model: npt.ArrayLike,
    loss_baseline: npt.ArrayLike,
    horizon: int,
    stride: int,
    n_boot: int = N_BOOTSTRAP,
    seed: int = 0,
) -> dict[str, Any]:
    """One model-vs-baseline entry: the DM test and the bootstrap skill, strict JSON.

    ``{"statistic", "p_value", "n", "lag", "mean_diff", "skill", "skill_ci95": [lo, hi], "reason"}``
    (``None`` where undefined; ``reason`` says why the test is undefined, else ``None``).
    """
    test = diebold_mariano(loss_model=loss_model, loss_baseline=loss_baseline, horizon=horizon, stride=stride)
    value, (lo, hi) = skill_interval(
        loss_model=loss_model,
        loss_baseline=loss_baseline,
        horizon=horizon,
        stride=stride,
        n_boot=n_boot,
        seed=seed,
    )
    return {
        "statistic": _finite(test.statistic),
        "p_value": _finite(test.p_value),
        "n": test.n,
        "lag": test.lag,
        "mean_diff": _finite(test.mean_diff),
        "skill": value,
        "skill_ci95": [lo, hi],
        "reason": test.reason,
    }


def significance_block(
    *,
    actual: npt.ArrayLike,
    median: npt.ArrayLike,
    quantiles: npt.ArrayLike,
    levels: Sequence[float],
    baselines: Mapping[str, tuple[npt.ArrayLike, npt.ArrayLike]],
    targets: Sequence[str],
    stride: int,
    scale: npt.ArrayLike | None = None,
    n_boot: int = N_BOOTSTRAP,
    seed: int = 0,
) -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
    """The ``significance`` block of ``metrics.json``: target -> baseline -> loss -> :func:`comparison`.

    Parameters
    ----------
    actual, median
        ``[w, v, h]`` realised prices and the model's median, windows in ascending origin order.
    quantiles
        ``[w, v, Q, h]`` model quantiles at ascending ``levels``.
    baselines
        name -> ``(point [w, v, h], quantiles [w, v, Q, h])`` at the same levels (a
        :class:`chronobt.evaluation.baselines.BaselineForecast` unpacks as that pair).
    targets
        ``v`` variate names.
    stride
        Bars between origins (the horizon is ``actual.shape[-1]``).
    scale
        Optional ``[w, v]`` MASE scale; when given, both losses of every window are divided by it (the
        ``mae`` loss is then the window's MASE), so high-priced windows do not dominate. Windows with a
        zero or NaN scale drop out.

    Returns
    -------
    ``{target: {baseline: {"mae": {...}, "quantile": {...}}}}``; the ``quantile`` loss is the mean pinball
    loss over levels and horizon. Each replicate set is seeded by ``seed`` (the same for every entry).
    """
    a = np.asarray(actual, dtype=np.float64)
    if len(targets) != a.shape[1]:
        raise ValueError(f"{len(targets)} target names for {a.shape[1]} variates")
    horizon = a.shape[-1]
    divisor = np.ones(a.shape[:2]) if scale is None else np.asarray(scale, dtype=np.float64)
    divisor = np.where(divisor == 0.0, np.nan, divisor)

    def losses(point: npt.ArrayLike, q: npt.ArrayLike) -> dict[str, FloatArray]:
        return {
            "mae": window_mae(actual=a, median=point) / divisor,
            "quantile": window_quantile_loss(actual=a, quantiles=q, levels=levels) / divisor,
        }

    model = losses(median, quantiles)
    others = {name: losses(point, q) for name, (point, q) in baselines.items()}
    return {
        target: {
            name: {
                loss: comparison(
                    loss_model=model[loss][:, v],
                    loss_baseline=theirs[loss][:, v],
                    horizon=horizon,
                    stride=stride,
                    n_boot=n_boot,
                    seed=seed,
                )
                for loss in ("mae", "quantile")
            }
            for name, theirs in others.items()
        }
        for v, target in enumerate(targets)
    }
