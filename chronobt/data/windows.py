"""Rolling forecast origins and the vectorized cutting of contexts and futures.

An *origin* is the index of the **last observed bar** of a window; its forecast covers
``origin + 1 .. origin + horizon``. Contexts come out as ``[windows, variates, time]``, left-padded
with NaN where a window has fewer bars than the longest; futures as ``[windows, variates, horizon]``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from chronobt.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

#: Fewest bars a context may hold (bars up to and including the origin). 64 bars are four Chronos-2
#: patches of 16, leave 63 one-step differences for the MASE scale and the baselines' residual spread,
#: and hold more than two seasons of hourly (24) or daily (7) data for the seasonal-naive baseline.
MIN_CONTEXT = 64


@dataclass(frozen=True)
class WindowPlan:
    """Where the backtest windows sit in one series.

    Attributes
    ----------
    origins
        ``[windows]`` int64, ascending: index of each window's last observed bar.
    context
        Effective context length: ``min(requested context, bars available to the latest origin)``;
        the width of the arrays :func:`cut_windows` returns.
    requested_windows
        How many windows were asked for (``len(origins)`` may be fewer).
    short_contexts
        How many of the earliest windows have fewer than ``context`` bars (NaN-padded on the left);
        expected, not warned about (e.g. daily data shorter than the default context 2048).
    notes
        User-facing warning lines, one each: empty, or the single line saying the data holds fewer
        windows than requested.
    """

    origins: npt.NDArray[np.int64]
    context: int
    requested_windows: int
    short_contexts: int = 0
    notes: tuple[str, ...] = ()


def _check_positive(**values: int | None) -> None:
    for name, value in values.items():
        if value is not None and value < 1:
            raise ConfigError(f"{name} must be a positive number of bars, got {value}")


def plan_origins(
    n_bars: int,
    *,
    horizon: int,
    context: int,
    windows: int,
    stride: int | None = None,
    min_context: int = MIN_CONTEXT,
    first: int | None = None,
    last: int | None = None,
    label: str = "series",
    bounds: str = "--start/--end",
) -> WindowPlan:
    """Place up to ``windows`` rolling origins at the end of a series of ``n_bars`` bars.

    The latest origin is the latest bar that still has ``horizon`` future bars (``n_bars - 1 - horizon``);
    the others step back ``stride`` bars each. ``first`` / ``last`` (inclusive bar indices, from
    ``--start`` / ``--end``) bound the **origins**: context bars before ``first`` are still used as history,
    and the futures of an origin at ``last`` reach ``last + horizon``. Every origin has at least
    ``min_context`` bars up to and including it.

    Parameters
    ----------
    n_bars
        Number of bars in the series.
    horizon
        Bars forecast after each origin.
    context
        Requested context length (bars up to and including the origin); at least ``min_context``.
    windows
        Number of windows requested.
    stride
        Bars between consecutive origins; default ``horizon`` (windows do not overlap).
    min_context
        Fewest context bars an origin may have; default :data:`MIN_CONTEXT`.
    first, last
        Optional inclusive bounds on the origin index.
    bounds
        What set ``first``/``last`` (named in the shortfall note when they, not the data, limit it).
    label
        Name of the series (the symbol) used in notes and error messages.

    Returns
    -------
    WindowPlan
        Ascending origins (as many as fit, at least one) and notes saying what was cut short.

    Raises
    ------
    ConfigError
        A non-positive ``horizon``/``context``/``windows``/``stride``, or ``context < min_context``.
    DataError
        Not a single origin fits (the message gives the numbers and what to change).
    """
    stride = horizon if stride is None else stride
    _check_positive(horizon=horizon, context=context, windows=windows, stride=stride, min_context=min_context)
    if context < min_context:
        raise ConfigError(
            f"--context {context} is below the minimum context of {min_context} bars; "
            f"use --context >= {min_context}"
        )
    latest = n_bars - 1 - horizon
    earliest = min_context - 1
    if latest < earliest:
        raise DataError(
            f"{label} has {n_bars} bars; need at least min_context {min_context} + horizon {horizon} = "
            f"{min_context + horizon}; lower --horizon or use a longer series"
        )
    in_data = (latest - earliest) // stride + 1  # windows the whole series holds
    if last is not None:
        latest = min(latest, last)
    if first is not None:
        earliest = max(earliest, first)
    if latest < earliest:
        raise DataError(
            f"{label}: no window fits between bars {earliest} and {latest} (origins need {min_context} "
            f"context bars up to them and {horizon} future bars after them, in {n_bars} bars); "
            "widen --start/--end"
        )
    n_fit = min(windows, (latest - earliest) // stride + 1)
    origins = latest - stride * np.arange(n_fit - 1, -1, -1, dtype=np.int64)
    effective = int(min(context, origins[-1] + 1))
    notes: list[str] = []
    if n_fit < windows:
        held = f"origins inside {bounds} hold" if in_data > n_fit else "data holds"
        notes.append(
            f"{label}: {held} {n_fit} of {windows} requested windows (horizon {horizon}, "
            f"stride {stride}, at least {min_context} context bars); using {n_fit}"
        )
    short = int(np.count_nonzero(origins + 1 < effective))
    return WindowPlan(
        origins=origins,
        context=effective,
        requested_windows=windows,
        short_contexts=short,
        notes=tuple(notes),
    )


def cut_windows(
    values: npt.ArrayLike,
    origins: npt.ArrayLike,
    *,
    context: int,
    horizon: int,
    with_future: bool = True,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64] | None]:
    """Cut every window's context (and future) out of one series in a single vectorized gather.

    Parameters
    ----------
    values
        ``[time, variates]`` the series.
    origins
        ``[windows]`` index of each window's last observed bar.
    context
        Longest context wanted; the returned width is ``L = min(context, max(origins) + 1)``.
    horizon
        Future bars per window (ignored when ``with_future`` is false).
    with_future
        Also return the realised futures (needs ``origin + horizon < time`` for every origin).

    Returns
    -------
    contexts
        ``[windows, variates, L]`` float64: the up-to-``L`` bars ending at each origin (the origin bar is
        the last column), left-padded with NaN where fewer bars exist. No bar after the origin appears.
    futures
        ``[windows, variates, horizon]`` float64 bars ``origin + 1 .. origin + horizon``, or ``None``.
    """
    series = np.asarray(values, dtype=np.float64)
    at = np.asarray(origins, dtype=np.int64)
    if series.ndim != 2:
        raise ValueError(f"values must be [time, variates], got shape {series.shape}")
    if at.ndim != 1 or at.size == 0:
        raise ValueError(f"origins must be a non-empty 1-d index array, got shape {at.shape}")
    n_time, n_var = series.shape
    reach = horizon if with_future else 0
    if at.min() < 0 or at.max() + reach >= n_time:
        raise ValueError(
            f"origins must lie in [0, {n_time - 1 - reach}] for {n_time} bars and horizon {reach}, "
            f"got [{at.min()}, {at.max()}]"
        )
    width = int(min(context, at.max() + 1))
    # Time-contiguous [variates, width - 1 + time]: window i of the sliding view covers padded columns
    # i .. i + width - 1, i.e. series bars i - width + 1 .. i, so window `origin` ends at the origin bar.
    padded = np.concatenate([np.full((n_var, width - 1), np.nan), series.T], axis=1)
    gathered = sliding_window_view(padded, width, axis=1)[:, at]  # [variates, windows, L], one copy
    contexts = gathered.transpose(1, 0, 2)
    futures = None
    if with_future:
        steps = at[:, None] + np.arange(1, horizon + 1)  # [windows, horizon]
        futures = np.ascontiguousarray(series[steps].transpose(0, 2, 1))
    return np.ascontiguousarray(contexts), futures
