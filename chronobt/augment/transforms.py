"""The pre-augmentations. Notation per window and variate: ``x`` the context's valid part (steps
``s .. T-1``, ``s`` the first valid step), ``y`` the augmented values, forecast steps ``T .. T+h-1``.

All arrays handed to the primitives are whole batches: contexts [w, v, t], time-first forecasts
[h, w, v] or sample paths [h, w, v, P].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from chronobt.augment.base import Augmentation, AugmentationState, Label, expand
from chronobt.errors import AugmentationError, ConfigError


def _steps(length: int, values: np.ndarray) -> np.ndarray:
    """Absolute step index T + k of each forecast step, broadcastable against [h, w, v, *paths]."""
    return (length + np.arange(values.shape[0], dtype=np.float64)).reshape((-1,) + (1,) * (values.ndim - 1))


class NoAugmentation(Augmentation):
    """Identity: ``y = x``; inverse ``x = y``."""

    name = "none"
    affine: ClassVar[bool] = True  # y = a x + b per window: see augment.affine_equivalent

    def _fit_chunk(self, x: np.ndarray, start: np.ndarray) -> dict[str, np.ndarray]:
        return {}

    def _transform_chunk(self, x: np.ndarray, state: Any) -> np.ndarray:
        return x.copy()

    def _forward_tf(self, future: np.ndarray, state: Any) -> np.ndarray:
        return future.copy()

    def _inverse_tf(self, values: np.ndarray, state: Any) -> np.ndarray:
        return values.copy()


class Differencing(Augmentation):
    """First differences: ``y[t] = x[t] - x[t-1]``; inverse ``x[T+k] = x[T-1] + sum_{j<=k} y[T+j]``.

    The first valid step has no previous value: it becomes NaN, which Chronos-2 treats as missing
    (a 0 would tell the model "no change" where nothing is known). Path dependent: a quantile of the
    level is not a sum of increment quantiles, so quantile forecasts are inverted by sample paths.
    """

    name = "differencing"
    path_dependent = True

    def _fit_chunk(self, x: np.ndarray, start: np.ndarray) -> dict[str, np.ndarray]:
        return {}

    def _transform_chunk(self, x: np.ndarray, state: Any) -> np.ndarray:
        y = np.empty_like(x)
        y[..., 0] = np.nan
        np.subtract(x[..., 1:], x[..., :-1], out=y[..., 1:])  # NaN at the first valid step
        return y

    def _forward_tf(self, future: np.ndarray, state: AugmentationState) -> np.ndarray:
        previous = np.concatenate([state.last[None], future[:-1]], axis=0)
        return future - previous

    def _inverse_tf(self, values: np.ndarray, state: AugmentationState) -> np.ndarray:
        return self.inverse_tf_owned(values.copy(), state)

    def inverse_tf_owned(self, values: np.ndarray, state: AugmentationState) -> np.ndarray:
        values[0] += expand(state.last, values)
        # in place over steps, not np.cumsum(axis=0): benchmarks/RESULTS.md, section augment_speed.py
        for k in range(1, values.shape[0]):
            values[k] += values[k - 1]
        return values

    def running_sum_from(self, state: AugmentationState) -> np.ndarray:
        return np.asarray(state.last)


@dataclass(frozen=True, eq=False)
class LineState(AugmentationState):
    """Least-squares line ``level + slope * (t - centre)`` over each context's valid steps; [w, v] each."""

    level: np.ndarray
    slope: np.ndarray
    centre: np.ndarray


class Detrending(Augmentation):
    """Remove the context's least-squares line: ``y[t] = x[t] - (a + b t)``; inverse ``x = y + a + b t``.

    The line is fitted over the valid steps only (a single valid value gives slope 0) and extended
    over the forecast steps ``t = T .. T+h-1``.
    """

    name = "detrending"
    state_type = LineState

    def _fit_chunk(self, x: np.ndarray, start: np.ndarray) -> dict[str, np.ndarray]:
        length = x.shape[-1]
        t = np.arange(length, dtype=np.float64)
        n = (length - start).astype(np.float64)
        centre = (start + length - 1) / 2.0
        valid = t >= start[..., None]
        xv = np.where(valid, x, 0.0)
        level = xv.sum(axis=-1) / n
        dt = np.where(valid, t - centre[..., None], 0.0)
        sxx = n * (n * n - 1.0) / 12.0  # sum of (t - centre)^2 over n consecutive steps
        sxy = np.einsum("wvt,wvt->wv", dt, xv - level[..., None])
        slope = np.divide(sxy, sxx, out=np.zeros_like(sxy), where=sxx > 0)
        return {"level": level, "slope": slope, "centre": centre}

    def _line(self, state: LineState, t: np.ndarray, like: np.ndarray) -> np.ndarray:
        return expand(state.level, like) + expand(state.slope, like) * (t - expand(state.centre, like))

    def _transform_chunk(self, x: np.ndarray, state: LineState) -> np.ndarray:
        t = np.arange(x.shape[-1], dtype=np.float64)
        return x - (state.level[..., None] + state.slope[..., None] * (t - state.centre[..., None]))

    def _forward_tf(self, future: np.ndarray, state: LineState) -> np.ndarray:
        return future - self._line(state, _steps(state.length, future), future)

    def _inverse_tf(self, values: np.ndarray, state: LineState) -> np.ndarray:
        return values + self._line(state, _steps(state.length, values), values)


@dataclass(frozen=True, eq=False)
class ScaleState(AugmentationState):
    """``centre`` and ``scale`` of each context; [w, v] each."""

    centre: np.ndarray
    scale: np.ndarray


def _sorted_quantile(sorted_x: np.ndarray, n: np.ndarray, p: float) -> np.ndarray:
    """Quantile ``p`` (numpy's linear rule) of the first ``n`` [w, v] values of each sorted row."""
    pos = p * (n - 1)
    lo = np.floor(pos).astype(np.intp)
    hi = np.minimum(lo + 1, n - 1)
    at_lo = np.take_along_axis(sorted_x, lo[..., None], axis=-1)[..., 0]
    at_hi = np.take_along_axis(sorted_x, hi[..., None], axis=-1)[..., 0]
    return at_lo + (at_hi - at_lo) * (pos - lo)


class RobustScaling(Augmentation):
    """Median/IQR scaling: ``y = (x - median) / scale``; inverse ``x = median + scale * y``.

    ``scale`` is the context's interquartile range; when that is 0 (a mostly constant context) it is
    the context's standard deviation, and 1.0 when the context is constant. The same fitted scale is
    used in both directions.
    """

    name = "robust_scaling"
    state_type = ScaleState
    affine: ClassVar[bool] = True  # y = a x + b per window: see augment.affine_equivalent

    def _fit_chunk(self, x: np.ndarray, start: np.ndarray) -> dict[str, np.ndarray]:
        n = x.shape[-1] - start
        sorted_x = np.sort(x, axis=-1)  # padding (NaN) sorts last
        median = _sorted_quantile(sorted_x, n, 0.5)
        iqr = _sorted_quantile(sorted_x, n, 0.75) - _sorted_quantile(sorted_x, n, 0.25)
        std = np.nanstd(x, axis=-1)
        scale = np.where(iqr > 0, iqr, np.where(std > 0, std, 1.0))
        return {"centre": median, "scale": scale}

    def _transform_chunk(self, x: np.ndarray, state: ScaleState) -> np.ndarray:
        return (x - state.centre[..., None]) / state.scale[..., None]

    def _forward_tf(self, future: np.ndarray, state: ScaleState) -> np.ndarray:
        return (future - state.centre) / state.scale

    def _inverse_tf(self, values: np.ndarray, state: ScaleState) -> np.ndarray:
        return expand(state.centre, values) + expand(state.scale, values) * values


@dataclass(frozen=True, eq=False)
class BaseState(AugmentationState):
    """``base``: each context's first valid value; [w, v]."""

    base: np.ndarray


def _first_valid(x: np.ndarray, start: np.ndarray) -> dict[str, np.ndarray]:
    return {"base": np.take_along_axis(x, start[..., None], axis=-1)[..., 0]}


class LogReturns(Augmentation):
    """Log return from the context's first valid value: ``y = log(x / x[s])``; inverse ``x[s] * exp(y)``.

    Needs positive prices.
    """

    name = "log_returns"
    needs_positive = True
    state_type = BaseState

    def _fit_chunk(self, x: np.ndarray, start: np.ndarray) -> dict[str, np.ndarray]:
        return _first_valid(x, start)

    def _transform_chunk(self, x: np.ndarray, state: BaseState) -> np.ndarray:
        return np.log(x / state.base[..., None])

    def _forward_tf(self, future: np.ndarray, state: BaseState) -> np.ndarray:
        return np.log(future / state.base)

    def _inverse_tf(self, values: np.ndarray, state: BaseState) -> np.ndarray:
        return expand(state.base, values) * np.exp(values)


class PercentChange(Augmentation):
    """Percent change from the first valid value: ``y = (x / x[s] - 1) * 100``; inverse
    ``x = x[s] * (1 + y / 100)``. Needs positive prices.
    """

    name = "percent_change"
    needs_positive = True
    state_type = BaseState
    affine: ClassVar[bool] = True  # y = a x + b per window: see augment.affine_equivalent

    def _fit_chunk(self, x: np.ndarray, start: np.ndarray) -> dict[str, np.ndarray]:
        return _first_valid(x, start)

    def _transform_chunk(self, x: np.ndarray, state: BaseState) -> np.ndarray:
        return (x / state.base[..., None] - 1.0) * 100.0

    def _forward_tf(self, future: np.ndarray, state: BaseState) -> np.ndarray:
        return (future / state.base - 1.0) * 100.0

    def _inverse_tf(self, values: np.ndarray, state: BaseState) -> np.ndarray:
        return expand(state.base, values) * (1.0 + values / 100.0)


@dataclass(frozen=True, eq=False)
class RollingState(AugmentationState):
    """``tail`` [w, v, window]: last context values; ``fallback``, ``tol`` [w, v]: zero-scale rule."""

    tail: np.ndarray
    fallback: np.ndarray
    tol: np.ndarray


#: A rolling standard deviation at or below this fraction of the context's largest absolute value
#: counts as zero (it is rounding noise of a constant window) and the fallback scale is used.
ZERO_SCALE_RTOL = 1e-6


class RollingNorm(Augmentation):
    """Rolling z-score against the previous ``window`` bars: ``y[t] = (x[t] - m[t]) / s[t]`` with
    ``m[t]``, ``s[t]`` the mean and population standard deviation of ``x[t-window .. t-1]``;
    inverse, recursively over the forecast, ``x[t] = m[t] + s[t] * y[t]`` (``m``, ``s`` from the
    previous ``window`` prices, context then reconstructed).

    The first ``window`` valid steps have no full previous window and become NaN (missing to
    Chronos-2); a context needs at least ``window + 2`` valid values. Zero-scale fallback, the same
    in both directions: when ``s[t] <= 1e-6 * max|x|`` (a constant window) ``s[t]`` is replaced by
    the context's mean absolute one-step change (``|x[T-1]|`` if the context is constant, 1.0 if it
    is all zeros).
    """

    name = "rolling_norm"
    path_dependent = True
    parameters = ("window",)
    state_type = RollingState

    def __init__(self, window: int = 20) -> None:
        if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 2:
            raise ConfigError(f"rolling_norm: window must be an integer >= 2, got {window!r}")
        self.window = int(window)

    def _check_lengths(self, n_valid: np.ndarray, names: list[str], label: Label, length: int) -> None:
        short = n_valid < self.window + 2
        if short.any():
            w, v = np.argwhere(short)[0]
            raise AugmentationError(
                f"{self.spec}: the context of variate '{names[v]}' ending at {label(int(w), length - 1)} "
                f"has {int(n_valid[w, v])} values; rolling_norm needs at least window+2 = "
                f"{self.window + 2} - use a longer context or a smaller window"
            )

    def _fit_chunk(self, x: np.ndarray, start: np.ndarray) -> dict[str, np.ndarray]:
        mean_step = np.nanmean(np.abs(np.diff(x, axis=-1)), axis=-1)
        last = np.abs(x[..., -1])
        fallback = np.where(mean_step > 0, mean_step, np.where(last > 0, last, 1.0))
        return {
            "tail": x[..., -self.window :].copy(),
            "fallback": fallback,
            "tol": ZERO_SCALE_RTOL * np.nanmax(np.abs(x), axis=-1),
        }

    def _scale(self, var: np.ndarray, tol: np.ndarray, fallback: np.ndarray) -> np.ndarray:
        sd = np.sqrt(np.maximum(var, 0.0))
        return np.where(sd > tol, sd, fallback)

    def _transform_chunk(self, x: np.ndarray, state: RollingState) -> np.ndarray:
        n, length = self.window, x.shape[-1]
        d = x - state.last[..., None]  # deviations from the last value keep the sums small
        d0 = np.where(np.isnan(d), 0.0, d)
        sums = np.zeros((*x.shape[:-1], length + 1))
        np.cumsum(d0, axis=-1, out=sums[..., 1:])
        s1 = (sums[..., n:length] - sums[..., : length - n]) / n  # mean of d[t-n .. t-1], t = n .. T-1
        np.cumsum(d0 * d0, axis=-1, out=sums[..., 1:])
        s2 = (sums[..., n:length] - sums[..., : length - n]) / n
        scale = self._scale(s2 - s1 * s1, state.tol[..., None], state.fallback[..., None])
        y = np.full_like(x, np.nan)
        y[..., n:] = (d[..., n:] - s1) / scale
        y[np.arange(length) < (state.start + n)[..., None]] = np.nan
        return y

    def _recurse(self, values: np.ndarray, state: RollingState, *, forward: bool) -> np.ndarray:
        """Run the rolling recursion over time-first ``values`` [h, w, v, *paths]."""
        n, h = self.window, values.shape[0]
        c = expand(state.last, values)
        tail = np.moveaxis(state.tail - state.last[..., None], -1, 0)  # [n, w, v]
        hist = np.empty((n + h, *values.shape[1:]))
        hist[:n] = tail.reshape(tail.shape + (1,) * (values.ndim - 3))
        s1 = expand(tail.sum(axis=0), values)
        s2 = expand((tail * tail).sum(axis=0), values)
        tol, fallback = expand(state.tol, values), expand(state.fallback, values)
        out = np.empty_like(values)
        for k in range(h):
            mean = s1 / n
            scale = self._scale(s2 / n - mean * mean, tol, fallback)
            if forward:
                d = values[k] - c
                out[k] = (d - mean) / scale
            else:
                d = mean + scale * values[k]
                out[k] = c + d
            hist[n + k] = d
            old = hist[k]
            s1 = s1 + (d - old)
            s2 = s2 + (d * d - old * old)
        return out

    def _forward_tf(self, future: np.ndarray, state: RollingState) -> np.ndarray:
        return self._recurse(future, state, forward=True)

    def _inverse_tf(self, values: np.ndarray, state: RollingState) -> np.ndarray:
        return self._recurse(values, state, forward=False)
