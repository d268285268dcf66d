"""Choosing the step dependence of every refit point in one batch, by the calibration of held-out windows.

:func:`chronobt.augment.dependence.rolling_step_dependence` fits the candidates (independent, AR(1),
shrunk) once per refit point and chooses among them by inverting the point's latest held-out windows
under each and scoring their price quantiles. Refit points' held-out windows overlap, and a window's
sample paths depend only on its own correlation matrix (the draws are seeded per matrix:
:func:`chronobt.augment.inversion.inverse_quantiles`), so :func:`calibration_batch` inverts

* every held-out window under independent steps once, whichever points hold it out;
* every point's coupled candidates in one call, each window with its candidate's matrix (the distinct
  matrices and each window's index among them, not a matrix per window);

and scores each point's candidates on exactly the price quantiles the one-point-at-a-time loop would
compute: the same choices and scores, with fewer paths drawn and two inversion calls instead of three
per refit point.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from chronobt.augment.dependence import BatchChooser, FloatArray

#: Step correlations ``[m, h, h]`` and each window's index among them ``[n]``: window ``i`` is coupled by
#: ``matrices[groups[i]]``.
Coupling = tuple["FloatArray", np.ndarray]
#: Inverts held-out windows ``rows`` ``[n]`` with independent steps (``None``) or coupled by a
#: :data:`Coupling`: price quantiles ``[n, v, Q, h]``.
Invert = Callable[[np.ndarray, "Coupling | None"], np.ndarray]
#: The score of held-out windows ``rows`` from their price quantiles (lower is better; NaN: unusable).
Score = Callable[[np.ndarray, np.ndarray], float]


def calibration_batch(*, invert: Invert, score: Score, last: int) -> BatchChooser:
    """A batch chooser scoring each refit point's candidates on its ``last`` held-out windows.

    For each point the candidates are scored in their given order (independent first) and the lowest
    finite score wins, ties keeping the earlier (simpler) one; no finite score gives independent.
    """

    def choose_all(
        fits: Sequence[tuple[Mapping[str, FloatArray], np.ndarray]],
    ) -> list[tuple[str, dict[str, float]]]:
        rows_of = [np.asarray(held, dtype=np.int64)[-last:] for _, held in fits]
        union = np.unique(np.concatenate(rows_of)) if rows_of else np.zeros(0, dtype=np.int64)
        independent = invert(union, None) if union.size else None
        rows: list[np.ndarray] = []
        matrices: list[FloatArray] = []
        groups: list[np.ndarray] = []
        spans: dict[tuple[int, str], slice] = {}
        start = 0
        for k, (candidates, _) in enumerate(fits):
            for name, matrix in candidates.items():
                if name == "independent" or not rows_of[k].size:
                    continue
                n = rows_of[k].size
                rows.append(rows_of[k])
                groups.append(np.full(n, len(matrices), dtype=np.int64))
                matrices.append(matrix)
                spans[k, name] = slice(start, start + n)
                start += n
        coupling = (np.stack(matrices), np.concatenate(groups)) if rows else None
        coupled = invert(np.concatenate(rows), coupling) if coupling is not None else None
        out: list[tuple[str, dict[str, float]]] = []
        for k, (candidates, _) in enumerate(fits):
            scores: dict[str, float] = {}
            for name in candidates:
                if name == "independent":
                    if independent is None:
                        continue
                    price_q = independent[np.searchsorted(union, rows_of[k])]
                elif coupled is not None and (k, name) in spans:
                    price_q = coupled[spans[k, name]]
                else:
                    continue
                scores[name] = score(rows_of[k], price_q)
            finite = {name: value for name, value in scores.items() if np.isfinite(value)}
            out.append(((min(finite, key=lambda name: finite[name]) if finite else "independent"), scores))
        return out

    return choose_all
