"""Live against backtest: are the forecasts scored as their bars arrived worse than the backtest said?

Per target, the per-window losses of the live forecasts and of the backtest of the same label, model,
horizon and symbol are compared with a one-sided **Mann-Whitney U test** (alternative: live losses are
stochastically larger). Why this test: a window's loss (its horizon MAE divided by the window's MASE
scale) is positive, skewed and heavy-tailed, and a few volatile windows would dominate a Welch t-test's
means and variances; the rank test needs neither normality nor equal variances, and a shift of the whole
distribution is what drift looks like. The windows of one sample must be independent for its p-value to
hold, but rolling origins overlap (an hourly forecast of 24 steps shares 23 bars with the next), so each
sample is first thinned to windows at least ``horizon`` bars apart (:func:`spaced`): no two windows in
the test share a realised bar. ``n_live`` / ``n_backtest`` count the windows in the test.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from chronobt.evaluation import metrics
from chronobt.evaluation.significance import window_mae

#: What the ``drift`` block says its test is.
TEST_NAME = "mann-whitney-u, one-sided (live losses larger), windows >= horizon bars apart"
#: Fewest windows per sample for a p-value (fewer: ``statistic``/``p_value`` null with a ``reason``).
MIN_WINDOWS = 3


@dataclass(frozen=True)
class WindowScores:
    """One sample's windows: bar index of each origin ``[w]``, realised prices ``[w, v, h]``, forecast
    quantiles ``[w, v, Q, h]`` at ``levels`` and the MASE scale ``[w, v]``."""

    origins: np.ndarray
    actual: np.ndarray
    quantiles: np.ndarray
    levels: tuple[float, ...]
    scale: np.ndarray

    def losses(self) -> np.ndarray:
        """Per-window scaled MAE of the median, ``[w, v]`` (the loss the Diebold-Mariano tests use)."""
        median = self.quantiles[:, :, self.levels.index(0.5), :]
        with np.errstate(invalid="ignore", divide="ignore"):
            return window_mae(actual=self.actual, median=median) / self.scale

    def pooled(self) -> dict[str, np.ndarray]:
        """MASE, WQL and 80% coverage per variate over every window ``{name: [v]}``."""
        median = self.quantiles[:, :, self.levels.index(0.5), :]
        out = {
            "mase": metrics.mase(actual=self.actual, forecast=median, scale=self.scale, axis=(0, 2)),
            "wql": metrics.wql(actual=self.actual, quantiles=self.quantiles, levels=self.levels, axis=(0, 2)),
        }
        if {0.1, 0.9} <= set(self.levels):
            lower = self.quantiles[:, :, self.levels.index(0.1), :]
            upper = self.quantiles[:, :, self.levels.index(0.9), :]
            out["coverage_80"] = metrics.coverage(actual=self.actual, lower=lower, upper=upper, axis=(0, 2))
        return out


def spaced(origins: npt.ArrayLike, horizon: int) -> np.ndarray:
    """Positions of windows at least ``horizon`` bars apart, chosen from the latest origin backwards."""
    at = np.asarray(origins, dtype=np.int64)
    keep: list[int] = []
    for i in np.argsort(at)[::-1]:
        if not keep or at[keep[-1]] - at[i] >= horizon:
            keep.append(int(i))
    return np.array(sorted(keep, key=lambda k: at[k]), dtype=np.int64)


def two_sample(live: npt.ArrayLike, backtest: npt.ArrayLike) -> tuple[float | None, float | None, str | None]:
    """``(U, p, reason)`` of the one-sided Mann-Whitney test that ``live`` is larger (NaN dropped)."""
    a = np.asarray(live, dtype=np.float64)
    b = np.asarray(backtest, dtype=np.float64)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if min(a.size, b.size) < MIN_WINDOWS:
        return None, None, f"fewer than {MIN_WINDOWS} windows in a sample ({a.size} live, {b.size} backtest)"
    from scipy import stats  # here: only the track command tests drift

    result = stats.mannwhitneyu(a, b, alternative="greater")
    return float(result.statistic), float(result.pvalue), None


def drift_block(
    live: WindowScores, backtest: WindowScores, *, targets: Sequence[str], horizon: int, alpha: float
) -> dict[str, Any]:
    """The ``drift`` block of a track's ``metrics.json``.

    Per target: ``live_mase``, ``backtest_mase``, ``live_wql``, ``backtest_wql``, ``live_coverage_80``,
    ``backtest_coverage_80`` (every window of each), the differences ``mase_diff``, ``wql_diff``,
    ``coverage_80_diff`` (live minus backtest), the test's ``statistic`` and ``p_value``, ``n_live`` and
    ``n_backtest`` (the spaced windows tested), ``worse`` (``p_value < alpha``) and ``reason`` when no
    test ran; each row also names its ``test`` and ``alpha``.
    """
    keep_live, keep_back = spaced(live.origins, horizon), spaced(backtest.origins, horizon)
    loss_live, loss_back = live.losses()[keep_live], backtest.losses()[keep_back]
    pooled_live, pooled_back = live.pooled(), backtest.pooled()
    per_target: dict[str, Any] = {}
    for i, target in enumerate(targets):
        statistic, p_value, reason = two_sample(loss_live[:, i], loss_back[:, i])
        row: dict[str, Any] = {}
        for name in ("mase", "wql", "coverage_80"):
            a = _finite(pooled_live[name][i]) if name in pooled_live else None
            b = _finite(pooled_back[name][i]) if name in pooled_back else None
            row[f"live_{name}"], row[f"backtest_{name}"] = a, b
            row[f"{name}_diff"] = None if a is None or b is None else a - b
        row.update(
            statistic=statistic,
            p_value=p_value,
            n_live=int(np.isfinite(loss_live[:, i]).sum()),
            n_backtest=int(np.isfinite(loss_back[:, i]).sum()),
            worse=bool(p_value is not None and p_value < alpha),
            reason=reason,
            test=TEST_NAME,
            alpha=alpha,
        )
        per_target[target] = row
    return per_target


def _finite(x: Any) -> float | None:
    value = float(x)
    return value if np.isfinite(value) else None
