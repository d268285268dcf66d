"""Covariates: extra rows Chronos-2 sees beside a task's targets, in the task's own group.

``--covariates`` names, comma-separated (``none``: no covariates):

- ``volume`` -- past-only: ``log1p(volume)`` of the target's own file (volume is heavy-tailed). A file
  without a volume column is a :class:`~chronobt.errors.DataError` naming the file.
- ``calendar`` -- known into the future, computed from timestamps alone (UTC): ``hour_sin``, ``hour_cos``
  (hour of day, 24-hour period, minutes as fractions of an hour) and ``dow_sin``, ``dow_cos`` (day of
  week, 7-day period, the time of day as a fraction of a day). When every bar of the series has the
  same time of day (daily bars) the two hour rows are constant and are dropped: 2 rows instead of 4.
  Their future values are the real future bars' timestamps in a backtest and
  :meth:`~chronobt.data.OHLC.future_timestamps` in a forecast.
- any other name, e.g. ``BTCUSD`` -- past-only: that symbol's close (from the data folder), aligned on
  the target's timestamps (reindexed: a bar the other file lacks, or forward-filled at its load, stays
  missing; nothing is carried across an origin). Two series without a shared timestamp are a
  :class:`~chronobt.errors.DataError` naming both files.

Rows follow chronos' own order: targets, then the past-only covariates (in the order given), then the
known ones. Covariates are not pre-augmented (the augmentation applies to the targets only), not scored
and not written as forecasts. A run's label is ``<preaug>+<covariate>+...`` (:class:`RunLabel`), e.g.
``differencing+volume+calendar``: the backtest folder name and the ``preaug`` of every record; a
fine-tuned run's ends with ``+finetune-<mode>`` (``differencing+volume+finetune-lora``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from chronobt.data import OHLC
from chronobt.data.windows import cut_windows
from chronobt.errors import DataError

if TYPE_CHECKING:
    from chronobt.data.symbol_windows import SymbolWindows

VOLUME = "volume"
CALENDAR = "calendar"
NONE = "none"
#: How a fine-tuned run's label ends: ``<preaug>[+<covariate>...]+finetune-<mode>``.
FINETUNE_TAG = "finetune-"

_SECONDS_PER_DAY = 86_400.0


def parse_covariates(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"volume, Calendar,btcusd"`` -> ``("volume", "calendar", "BTCUSD")``; ``none`` or empty -> ``()``.

    Separators are commas or ``+`` (``volume+calendar``); a repeated name counts once.
    """
    if text is None:
        return ()
    parts = [text] if isinstance(text, str) else list(text)
    names: list[str] = []
    for part in parts:
        for raw in part.replace("+", ",").split(","):
            token = raw.strip()
            if not token or token.lower() == NONE:
                continue
            low = token.lower()
            names.append(low if low in (VOLUME, CALENDAR) else token.upper())
    return tuple(dict.fromkeys(names))


def parse_covariate_sets(text: str) -> tuple[tuple[str, ...], ...]:
    """Sweep's ``none,volume,calendar,volume+calendar`` -> one covariate set per comma-separated item."""
    sets: list[tuple[str, ...]] = []
    for item in text.split(","):
        if item.strip():
            chosen = parse_covariates(item)
            if chosen not in sets:
                sets.append(chosen)
    return tuple(sets) or ((),)


def covariates_label(covariates: Sequence[str]) -> str:
    """``("volume", "calendar")`` -> ``volume+calendar``; no covariates -> ``none``."""
    return "+".join(covariates) if covariates else NONE


@dataclass(frozen=True)
class RunLabel:
    """A run's identity: the augmentation spec, its covariates and the fine-tune mode of a fine-tuned run.

    ``str()`` is the folder name and the ``run``/cell key written to files (``differencing+volume+calendar``,
    ``differencing+volume+finetune-lora``); :meth:`parse` reads it back. Parse once where a label comes
    from a file or a key, and build with the constructor everywhere else.

    Attributes
    ----------
    spec : the canonical augmentation spec (``rolling_norm:window=20``).
    covariates : the covariate names in their order (``("volume", "calendar")``).
    finetune : ``lora``/``full`` for a fine-tuned run, else ``None``.
    """

    spec: str
    covariates: tuple[str, ...] = ()
    finetune: str | None = None

    def __str__(self) -> str:
        tuned = [f"{FINETUNE_TAG}{self.finetune}"] if self.finetune else []
        return "+".join([self.spec, *self.covariates, *tuned])

    @classmethod
    def parse(cls, text: str) -> RunLabel:
        """``differencing+volume+finetune-lora`` -> ``RunLabel("differencing", ("volume",), "lora")``.

        Unambiguous: a covariate symbol is upper case, so ``finetune-...`` is never one.
        """
        spec, *rest = str(text).split("+")
        tags = [p for p in rest if p.startswith(FINETUNE_TAG)]
        covariates = tuple(p for p in rest if not p.startswith(FINETUNE_TAG))
        return cls(spec, covariates, tags[-1][len(FINETUNE_TAG) :] if tags else None)

    def zero_shot(self) -> RunLabel:
        """This run without its fine-tuning: the zero-shot run it is compared with."""
        return replace(self, finetune=None)

    def tuned(self, mode: str | None) -> RunLabel:
        """This run fine-tuned with ``mode`` (``None``: zero-shot)."""
        return replace(self, finetune=mode or None)

    def equivalent(self) -> RunLabel | None:
        """The run whose forecast this one's equals (an affine augmentation is ``none``'s, with the same
        covariates and fine-tuning: :func:`chronobt.augment.affine_equivalent`), else ``None``.

        Fine-tuned too: Chronos-2 standardises every context and scores its training loss on the
        standardised targets, so a per-series affine map leaves the training gradients as they are.
        """
        from chronobt.augment import affine_equivalent

        same = affine_equivalent(self.spec)
        return None if same is None else replace(self, spec=same)


def equivalent_label(label: str) -> str | None:
    """The label whose forecast ``label``'s equals (:meth:`RunLabel.equivalent`), else ``None``."""
    same = RunLabel.parse(label).equivalent()
    return None if same is None else str(same)


@dataclass(frozen=True)
class CovariateSeries:
    """A target series' covariates aligned on its bars.

    Attributes
    ----------
    names : one per row: ``volume``, ``<SYMBOL>``, ``hour_sin``, ``hour_cos``, ``dow_sin``, ``dow_cos``.
    values : ``[time, rows]`` float64 on the target's timestamps (NaN = missing).
    known : ``[rows]`` bool, rows whose future values are known (calendar); they come last.
    with_hour : whether the calendar rows include hour of day.
    """

    names: tuple[str, ...]
    values: np.ndarray
    known: np.ndarray
    with_hour: bool


def has_time_of_day(index: pd.DatetimeIndex) -> bool:
    """Whether bars fall at different times of day (False for daily bars: hour of day is constant)."""
    seconds = _seconds_of_day(index)
    return bool(len(seconds) and (seconds != seconds[0]).any())


def calendar_features(timestamps: pd.DatetimeIndex, *, with_hour: bool) -> np.ndarray:
    """``[time, 4]`` (hour sin, hour cos, day-of-week sin, day-of-week cos), or ``[time, 2]`` without hour.

    Hour of day has a 24-hour period; day of week a 7-day period starting Monday 00:00 UTC.
    """
    ts = pd.DatetimeIndex(timestamps)
    ts = ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")
    day_fraction = _seconds_of_day(ts) / _SECONDS_PER_DAY  # [time] in [0, 1)
    week_phase = 2 * np.pi * (ts.day_of_week.to_numpy(dtype=np.float64) + day_fraction) / 7.0
    columns = [np.sin(week_phase), np.cos(week_phase)]
    if with_hour:
        day_phase = 2 * np.pi * day_fraction
        columns = [np.sin(day_phase), np.cos(day_phase), *columns]
    return np.stack(columns, axis=1)


def _seconds_of_day(index: pd.DatetimeIndex) -> np.ndarray:
    ts = pd.DatetimeIndex(index)
    return (ts.hour * 3600 + ts.minute * 60 + ts.second).to_numpy(dtype=np.float64)


def covariate_series(
    ohlc: OHLC, covariates: Sequence[str], *, load: Callable[[str], OHLC]
) -> CovariateSeries:
    """The covariate rows of ``ohlc`` (past-only first, calendar last), aligned on its bars.

    ``load(symbol)`` loads another symbol of the data folder (the run's gap limit and calendar).
    Bars forward-filled at load are missing (NaN) in the past-only rows.
    """
    index = ohlc.index
    names: list[str] = []
    columns: list[np.ndarray] = []
    for name in covariates:
        if name == CALENDAR:
            continue
        if name == VOLUME:
            if "volume" not in ohlc.frame.columns:
                raise DataError(
                    f"{ohlc.path}: has no volume column; --covariates volume needs one "
                    "(drop volume from --covariates or use a file with volume)"
                )
            volume = ohlc.frame["volume"].to_numpy(dtype=np.float64)
            column = np.log1p(np.where(volume >= 0, volume, np.nan))
        else:
            column = _other_close(ohlc, name, load)
        columns.append(np.where(ohlc.filled, np.nan, column))
        names.append(name)
    n_past = len(names)
    with_hour = has_time_of_day(index)
    if CALENDAR in covariates:
        features = calendar_features(index, with_hour=with_hour)
        columns.extend(features.T)
        names.extend((["hour_sin", "hour_cos"] if with_hour else []) + ["dow_sin", "dow_cos"])
    values = np.stack(columns, axis=1) if columns else np.empty((len(index), 0))
    known = np.arange(len(names)) >= n_past
    return CovariateSeries(names=tuple(names), values=values, known=known, with_hour=with_hour)


def _other_close(ohlc: OHLC, symbol: str, load: Callable[[str], OHLC]) -> np.ndarray:
    """``symbol``'s close on ``ohlc``'s timestamps ``[time]`` (NaN where it has no real bar)."""
    if symbol == ohlc.symbol:
        raise DataError(f"{ohlc.path}: --covariates {symbol} is the target's own series; name another symbol")
    try:
        other = load(symbol)
    except DataError as exc:
        raise DataError(f"--covariates {symbol} (for {ohlc.symbol}): {exc}") from exc
    close = pd.Series(
        np.where(other.filled, np.nan, other.frame["close"].to_numpy()), index=other.frame.index
    )
    aligned = close.reindex(ohlc.frame.index)  # no fill: a bar the other series lacks stays missing
    if not aligned.notna().any():
        raise DataError(
            f"{ohlc.path} and {other.path} share no timestamps; --covariates {symbol} needs bars at the "
            "same times (same frequency and overlapping dates)"
        )
    return aligned.to_numpy(dtype=np.float64)


def cut_covariates(
    series: CovariateSeries,
    origins: np.ndarray,
    *,
    context: int,
    horizon: int,
    future_times: pd.DatetimeIndex | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Each window's covariate context and known future.

    Returns
    -------
    contexts : ``[windows, rows, context]`` bars ending at each origin, cut as the targets are (left
        NaN padding up to ``context``, the targets' width).
    futures : ``[windows, rows, horizon]``: NaN for past-only rows; the known rows' values at the bars
        after each origin, or, with ``future_times`` (a forecast: one window at the last bar), computed
        from those timestamps.
    """
    contexts, _ = cut_windows(series.values, origins, context=context, horizon=0, with_future=False)
    if contexts.shape[-1] < context:  # origins dropped after the targets were cut: pad to their width
        pad = np.full((*contexts.shape[:2], context - contexts.shape[-1]), np.nan)
        contexts = np.concatenate([pad, contexts], axis=-1)
    futures = np.full((len(origins), len(series.names), horizon), np.nan)
    if not series.known.any():
        return contexts, futures
    if future_times is not None:
        feats = calendar_features(future_times, with_hour=series.with_hour)  # [horizon, known]
        futures[:, series.known, :] = feats.T[None]
        return contexts, futures
    _, known_future = cut_windows(series.values[:, series.known], origins, context=1, horizon=horizon)
    if known_future is None:  # cut_windows returns futures whenever with_future is true
        raise DataError("internal: calendar covariates were cut without their futures")
    futures[:, series.known, :] = known_future
    return contexts, futures


def with_covariates(
    sw: SymbolWindows,
    covariates: Sequence[str],
    *,
    load: Callable[[str], OHLC],
    horizon: int,
    future_times: pd.DatetimeIndex | None = None,
) -> SymbolWindows:
    """``sw`` with ``covariates`` cut beside its targets (``load(symbol)``: another symbol of the data
    folder); ``future_times``: the forecast's future bar timestamps (one window at the last bar)."""
    if not covariates:
        return sw
    series = covariate_series(sw.ohlc, covariates, load=load)
    contexts, futures = cut_covariates(
        series, sw.origins, context=sw.context_length, horizon=horizon, future_times=future_times
    )
    return replace(
        sw,
        covariates=tuple(covariates),
        covariate_names=series.names,
        covariate_contexts=contexts,
        covariate_futures=futures,
    )
