"""Choosing every refit point's dependence in one batch gives the per-point loop's choices and scores."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from chronobt.augment import dependence as dep
from chronobt.augment.dependence_batch import calibration_batch


def _scores(n: int = 160, v: int = 2, h: int = 6, rho: float = 0.6, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    cov = dep.ar1_correlation(rho, h)
    return rng.multivariate_normal(np.zeros(h), cov, size=(n, v))


def test_the_batch_chooser_makes_the_choices_of_one_point_at_a_time() -> None:
    z = _scores()
    origins = np.arange(z.shape[0]) * 6
    calls: list[int] = []

    def invert(rows: np.ndarray, coupling: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
        """A stand-in inversion: each window's result depends only on its own rows and matrix."""
        calls.append(rows.size)
        mix = 0.0 if coupling is None else 10 * coupling[0][coupling[1], 0, 1:2]
        return z[rows].sum(axis=-1) + mix

    def score(rows: np.ndarray, price_q: np.ndarray) -> float:
        return float(np.abs(price_q - z[rows].mean()).mean())

    def per_point(candidates: Mapping[str, np.ndarray], held: np.ndarray) -> tuple[str, dict[str, float]]:
        rows = held[-30:]
        scores = {
            name: score(
                rows,
                invert(rows, None if name == "independent" else (m[None], np.zeros(rows.size, dtype=int))),
            )
            for name, m in candidates.items()
        }
        return min(scores, key=lambda name: scores[name]), scores

    one = dep.rolling_step_dependence(z, origins, 6, refit_every=30, choose=per_point)
    per_point_calls = len(calls)
    calls.clear()
    batch = dep.rolling_step_dependence(
        z, origins, 6, refit_every=30, choose_all=calibration_batch(invert=invert, score=score, last=30)
    )
    assert len(calls) == 2 < per_point_calls  # independent once, every coupled candidate in one call
    assert [f.record() for f in batch.fits] == [f.record() for f in one.fits]
    assert np.array_equal(batch.fit_of, one.fit_of)
    assert sum(f.criterion == "calibration" for f in batch.fits) >= 3


def test_a_batch_without_points_to_choose_inverts_nothing() -> None:
    z = _scores(n=10)
    calls: list[int] = []

    def invert(rows: np.ndarray, coupling: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
        calls.append(rows.size)
        return np.zeros((rows.size, 1))

    chooser = calibration_batch(invert=invert, score=lambda rows, q: 0.0, last=30)
    rolling = dep.rolling_step_dependence(z, np.arange(10) * 6, 6, choose_all=chooser)
    assert calls == [] and all(f.method == "independent" for f in rolling.fits)
