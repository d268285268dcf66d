"""One symbol's loaded bars and the rolling windows cut from them (:class:`SymbolWindows`).

:func:`chronobt.pipeline.jobs.prepare_windows` and :func:`~chronobt.pipeline.jobs.latest_window` build it; the
augmentation, the engine, the inversion and the scoring read it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from chronobt.data import OHLC


@dataclass
class SymbolWindows:
    """One symbol's data and rolling windows.

    Attributes
    ----------
    contexts : ndarray [windows, variates, time]
        Price contexts, left-padded with NaN; ``time`` is at most the model's maximum context.
    futures : ndarray [windows, variates, horizon]
        Realised prices after each origin (all NaN for a forecast).
    origins : ndarray [windows]
        Row index of each window's last observed bar.
    filled_context : ndarray [windows, time] bool
        Context bars that were forward-filled at load (``None``: none are).
    filled_future : ndarray [windows, horizon] bool
        Future bars that were forward-filled at load; their ``futures`` are NaN (``None``: none are).
    windows_dropped : int
        Windows left out because their whole horizon was forward-filled.
    covariates : tuple of str
        The ``--covariates`` names these windows carry (``()``: none).
    covariate_names : tuple of str
        One per covariate row (calendar is several rows).
    covariate_contexts : ndarray [windows, rows, time]
        Covariate rows cut like ``contexts`` (``None``: no covariates).
    covariate_futures : ndarray [windows, rows, horizon]
        Known future values of the covariate rows, NaN for past-only ones (``None``: no covariates).
    """

    ohlc: OHLC
    targets: tuple[str, ...]
    contexts: np.ndarray
    futures: np.ndarray
    origins: np.ndarray
    notes: tuple[str, ...] = ()
    filled_context: np.ndarray | None = None
    filled_future: np.ndarray | None = None
    windows_dropped: int = 0
    covariates: tuple[str, ...] = ()
    covariate_names: tuple[str, ...] = ()
    covariate_contexts: np.ndarray | None = None
    covariate_futures: np.ndarray | None = None

    @property
    def symbol(self) -> str:
        return self.ohlc.symbol

    @property
    def context_length(self) -> int:
        """Bars of context the model sees (the width of ``contexts``)."""
        return int(self.contexts.shape[-1])

    @property
    def origin_times(self) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(self.ohlc.frame.index[self.origins])

    @property
    def last(self) -> np.ndarray:
        """Last observed price of each window, [windows, variates]."""
        return self.contexts[:, :, -1]

    @property
    def context_filled(self) -> np.ndarray:
        """``[windows, time]`` bool: forward-filled context bars (all False when the data had no gaps)."""
        if self.filled_context is None:
            return np.zeros((self.contexts.shape[0], self.contexts.shape[-1]), dtype=bool)
        return self.filled_context

    @property
    def future_filled(self) -> np.ndarray:
        """``[windows, horizon]`` bool: forward-filled future bars (never scored, never traded at)."""
        if self.filled_future is None:
            return np.zeros((self.futures.shape[0], self.futures.shape[-1]), dtype=bool)
        return self.filled_future

    @property
    def real_contexts(self) -> np.ndarray:
        """``contexts`` with forward-filled bars as NaN, [windows, variates, time] (a copy if any)."""
        mask = self.context_filled
        if not mask.any():
            return self.contexts
        return np.where(mask[:, None, :], np.nan, self.contexts)

    def subset(self, index: np.ndarray) -> SymbolWindows:
        """The windows at ``index`` (e.g. the validation or test split of a sweep)."""
        return SymbolWindows(
            ohlc=self.ohlc,
            targets=self.targets,
            contexts=self.contexts[index],
            futures=self.futures[index],
            origins=self.origins[index],
            notes=self.notes,
            filled_context=None if self.filled_context is None else self.filled_context[index],
            filled_future=None if self.filled_future is None else self.filled_future[index],
            windows_dropped=self.windows_dropped,
            covariates=self.covariates,
            covariate_names=self.covariate_names,
            covariate_contexts=None if self.covariate_contexts is None else self.covariate_contexts[index],
            covariate_futures=None if self.covariate_futures is None else self.covariate_futures[index],
        )
