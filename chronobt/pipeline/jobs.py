"""What every command does to a symbol, from loaded bars to price quantiles.

1. :func:`prepare_windows` cuts a loaded series' rolling windows (contexts end at their origin; the
   context is capped at what the model can see, so the augmentation, the MASE scale and the baselines
   are fitted on exactly the bars the model sees); :func:`latest_window` cuts the one window ending at
   the last bar (forecast).
   Bars forward-filled at load (``OHLC.filled``, a 24/7 series' gaps) are never actuals: their futures
   are NaN, and a window whose whole horizon is filled is dropped (counted, one warning line).
2. :func:`make_job` fits an augmentation on each window's own context and transforms it; filled
   context bars become NaN in the model input (missing to Chronos-2), except a filled run ending at
   the origin, which stays flat (see :func:`_mask_filled`). The augmentation itself is fitted on the
   flat forward-filled prices: its state (last price, base, rolling tail) needs finite prices, and
   the last real price is the best stand-in for a bar nobody traded at.
   Covariates (``--covariates``, :mod:`chronobt.pipeline.covariates`) are cut beside the targets and appended
   to each window's rows untransformed; their known future values go to the engine as ``future``.
3. :func:`forecast_jobs` sends the transformed contexts of *all* jobs through the engine in one call;
   the covariate rows are dropped from the forecasts (targets only are inverted and scored).
4. :func:`chronobt.pipeline.uncertainty.invert_job` maps the model's quantiles back to prices (with the step
   dependence learned from resolved windows).

Backtest, sweep and forecast call these; scoring lives in :mod:`chronobt.evaluation.evaluate`, output files in
:mod:`chronobt.runs.results`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path, PurePath
from typing import Any, TypeVar

import numpy as np

from chronobt.augment import Augmentation, AugmentationSpec, get_augmentation
from chronobt.config import EvaluationOptions, RunOptions, parse_date
from chronobt.data import OHLC, SYMBOL_RULE, is_symbol, load_ohlc, symbol_of_file
from chronobt.data.files import CSV_SUFFIXES, PARQUET_SUFFIXES, available_symbols, find_symbol
from chronobt.data.symbol_windows import SymbolWindows
from chronobt.data.windows import MIN_CONTEXT, cut_windows, plan_origins
from chronobt.engine.core import Chronos2Engine
from chronobt.errors import ChronobtError, ConfigError, DataError
from chronobt.pipeline.covariates import CALENDAR, VOLUME, RunLabel, with_covariates

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: progress(stage, done, total): stages "prepare", "cached", "forecast", "evaluate", "write".
Progress = Callable[[str, int, int], None]


def symbol_key(symbol: str) -> str:
    """The name a symbol argument is reported under before its file is loaded: ``data/x.parquet`` -> ``X``."""
    text = str(symbol)
    path = PurePath(text)
    return path.stem.upper() if ("/" in text or "\\" in text or path.suffix) else text.upper()


def resolve_symbols(
    symbols: Sequence[str], options: RunOptions, *, covariates: Sequence[str] | None = None
) -> None:
    """Check, before any work, that every symbol and path of the run names a data file.

    ``symbols`` and the other symbols among ``covariates`` (default ``options.covariates``) are looked
    up (a symbol in ``options.data_dir``, case-insensitive; a path as given) without reading them.
    Whatever names no file is a ConfigError (a usage error, exit code 2) naming each of them, the data
    dir and `chronobt data list`; an empty or malformed symbol too. A file that exists is read and
    validated later, where a failure is the symbol's alone (the others still run).
    """
    data_dir = options.data_dir
    given = options.covariates if covariates is None else covariates
    others = [c for c in given if c not in (VOLUME, CALENDAR)]
    unknown: list[str] = []
    absent: list[str] = []
    for symbol in (*symbols, *others):
        text = str(symbol)
        if not text.strip():
            raise ConfigError(
                "an empty symbol was given; pass a symbol like ETHUSD or a path to a .parquet file "
                f"(see `chronobt data list --data-dir {data_dir}`)"
            )
        if isinstance(symbol, PurePath) or _looks_like_path(text):
            if not Path(text).exists():
                absent.append(text)
            else:  # results go under the file's stem: a bad one is a usage error too
                try:
                    symbol_of_file(Path(text))
                except DataError as exc:
                    raise ConfigError(str(exc)) from None
        elif not is_symbol(text):
            raise ConfigError(
                f"symbol {text!r}: not a usable symbol (use {SYMBOL_RULE}); pass a path to a .parquet file, "
                "or import the data with `chronobt data import FILE.csv --symbol ETHUSD`"
            )
        elif not Path(text).exists() and not _in_data_dir(text, data_dir):
            unknown.append(text)
    parts = [f"{', '.join(absent)}: file not found; check the path"] if absent else []
    if unknown:
        names = ", ".join(repr(name) for name in unknown)
        parts.insert(
            0,
            f"no data for symbol {names} in {data_dir}/ ({available_symbols(data_dir)}); check the name or "
            f"--data-dir, see `chronobt data list --data-dir {data_dir}`, or import it with "
            f"`chronobt data import FILE.csv --symbol {unknown[0].upper()}`",
        )
    if parts:
        raise ConfigError("; ".join(parts))


#: Suffixes that make a symbol argument a path (as :func:`chronobt.data.load_ohlc` reads them).
PATH_SUFFIXES = (*PARQUET_SUFFIXES, *CSV_SUFFIXES, ".json", ".xlsx", ".gz", ".feather")


def _looks_like_path(text: str) -> bool:
    return "/" in text or "\\" in text or PurePath(text).suffix.lower() in PATH_SUFFIXES


def _in_data_dir(symbol: str, data_dir: Path) -> bool:
    """Whether ``data_dir`` has a file for ``symbol`` (several, an error the load reports, count too)."""
    try:
        return find_symbol(symbol, data_dir) is not None
    except ChronobtError:
        return True


def load_symbol(symbol: str, options: RunOptions) -> OHLC:
    """Load ``symbol`` from ``options.data_dir`` with the run's gap limit and trading calendar (repairs
    logged as warnings)."""
    return load_ohlc(symbol, options.data_dir, max_gap=options.max_gap, calendar=options.calendar)


def symbol_loader(options: RunOptions) -> Callable[[str], OHLC]:
    """``load(symbol)`` from ``options.data_dir`` as :func:`load_symbol` (covariates' other symbols)."""
    return lambda symbol: load_symbol(symbol, options)


def prepare_each(
    symbols: Sequence[str],
    options: RunOptions,
    prepare: Callable[[OHLC], T],
    *,
    failures: dict[str, str],
    progress: Progress | None = None,
) -> list[T]:
    """Load every symbol and ``prepare`` it (progress stage ``prepare``).

    A symbol whose data or preparation fails is recorded in ``failures`` under its name (the loaded
    symbol's, else the argument's stem) and left out; the others go on.
    """
    prepared: list[T] = []
    for i, symbol in enumerate(symbols):
        key = symbol_key(symbol)
        try:
            ohlc = load_symbol(symbol, options)
            key = ohlc.symbol
            prepared.append(prepare(ohlc))
        except (ChronobtError, OSError) as exc:
            failures[key] = str(exc)
            logger.debug("symbol %s failed", key, exc_info=True)
        if progress:
            progress("prepare", i + 1, len(symbols))
    return prepared


def model_context(options: RunOptions, engine: Chronos2Engine) -> int:
    """The context the model sees: ``--context`` capped at the model's maximum (one info line if capped)."""
    if options.context <= engine.max_context:
        return options.context
    logger.info(
        "--context %d is more than the model sees: capped at its maximum of %d bars",
        options.context,
        engine.max_context,
    )
    return engine.max_context


def _bound_index(ohlc: OHLC, value: str | int | None, *, side: str) -> int | None:
    """The bar index of ``--start``/``--end`` (a date; an ``int`` is a bar index already)."""
    if isinstance(value, int):
        return value
    ts = parse_date(value, option=f"--{side}")
    if ts is None:
        return None
    index = ohlc.frame.index
    if side == "start":
        return int(index.searchsorted(ts, side="left"))
    return int(index.searchsorted(ts, side="right")) - 1


def prepare_windows(
    ohlc: OHLC,
    options: EvaluationOptions,
    *,
    windows: int,
    context: int,
    start: str | int | None = None,
    end: str | int | None = None,
    log_notes: bool = True,
    bounds: str = "--start/--end",
) -> SymbolWindows:
    """Cut up to ``windows`` rolling windows of ``ohlc`` with at most ``context`` bars each (each shortfall
    logged as one warning line unless ``log_notes`` is false). ``start``/``end`` bound the origins, each
    a date or a bar index; ``bounds`` names what set them (in that line when they are the limit)."""
    values = ohlc.values(options.targets)
    plan = plan_origins(
        len(values),
        horizon=options.horizon,
        context=context,
        windows=windows,
        stride=options.effective_stride,
        first=_bound_index(ohlc, start, side="start"),
        last=_bound_index(ohlc, end, side="end"),
        label=ohlc.symbol,
        bounds=bounds,
    )
    contexts, futures = cut_windows(values, plan.origins, context=plan.context, horizon=options.horizon)
    if futures is None:  # cut_windows returns futures whenever with_future is true
        raise ChronobtError("internal: windows were cut without their futures")
    notes = list(plan.notes)
    origins = plan.origins
    filled_context = filled_future = None
    dropped = 0
    if ohlc.filled.any():
        filled_context, filled_future = _cut_filled(ohlc, origins, plan.context, options.horizon)
        futures[np.broadcast_to(filled_future[:, None, :], futures.shape)] = np.nan
        keep = ~filled_future.all(axis=1)
        dropped = int((~keep).sum())
        if not keep.any():
            raise DataError(
                f"{ohlc.path}: every window's {options.horizon}-bar horizon lies in forward-filled bars "
                "(missing from the file); move --start/--end off the gap or use data without it"
            )
        if dropped:
            notes.append(
                f"{ohlc.symbol}: {dropped} of {len(origins)} windows dropped: their whole "
                f"{options.horizon}-bar horizon lies in forward-filled bars (missing from the file)"
            )
            contexts, futures, origins = contexts[keep], futures[keep], origins[keep]
            filled_context, filled_future = filled_context[keep], filled_future[keep]
    for note in notes if log_notes else ():
        logger.warning("%s", note)
    sw = SymbolWindows(
        ohlc=ohlc,
        targets=options.targets,
        contexts=contexts,
        futures=futures,
        origins=origins,
        notes=tuple(notes),
        filled_context=filled_context,
        filled_future=filled_future,
        windows_dropped=dropped,
    )
    return with_covariates(sw, options.covariates, load=symbol_loader(options), horizon=options.horizon)


def _cut_filled(ohlc: OHLC, origins: np.ndarray, context: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """The filled marks cut like the prices: context [w, time] and future [w, horizon] bool."""
    marks = ohlc.filled.astype(np.float64)[:, None]  # [time, 1]; left padding (NaN) is not filled
    ctx, fut = cut_windows(marks, origins, context=context, horizon=horizon)
    if fut is None:  # cut_windows returns futures whenever with_future is true
        raise ChronobtError("internal: filled marks were cut without their futures")
    return ctx[:, 0, :] == 1.0, fut[:, 0, :] == 1.0


def latest_window(ohlc: OHLC, options: RunOptions, *, context: int, history: int = 0) -> SymbolWindows:
    """The window whose origin is the last bar (futures all NaN), last, after up to ``history`` resolved
    windows before it (non-overlapping, the latest first ending at the last bar), from which a forecast
    learns step dependence and calibration. Contexts [1 + history, variates, <= context]."""
    values = ohlc.values(options.targets)
    if len(values) < MIN_CONTEXT:
        raise DataError(
            f"{ohlc.path}: has {len(values)} bars; a forecast needs at least {MIN_CONTEXT} bars of context"
        )
    origins = np.array([len(values) - 1], dtype=np.int64)
    contexts, _ = cut_windows(values, origins, context=context, horizon=0, with_future=False)
    futures = np.full((1, len(options.targets), options.horizon), np.nan)
    filled_context = _cut_filled(ohlc, origins, context, 0)[0] if ohlc.filled.any() else None
    live = SymbolWindows(
        ohlc=ohlc,
        targets=options.targets,
        contexts=contexts,
        futures=futures,
        origins=origins,
        filled_context=filled_context,
    )
    if options.covariates:
        after = ohlc.frame.index[-1]
        live = with_covariates(
            live,
            options.covariates,
            load=symbol_loader(options),
            horizon=options.horizon,
            future_times=ohlc.future_timestamps(after, options.horizon),
        )
    if history < 1 or len(values) < MIN_CONTEXT + options.horizon:
        return live
    past_options = EvaluationOptions(**{f.name: getattr(options, f.name) for f in fields(RunOptions)})
    try:
        past = prepare_windows(ohlc, past_options, windows=history, context=context, log_notes=False)
    except DataError:  # no resolved window fits (e.g. all in a gap): the forecast learns from none
        return live
    return _stack(past, live)


def _stack(first: SymbolWindows, second: SymbolWindows) -> SymbolWindows:
    """``first``'s windows then ``second``'s (same series), contexts left-padded to one width."""
    width = max(first.context_length, second.context_length)

    def filled(sw: SymbolWindows) -> np.ndarray:
        mask = sw.context_filled
        return np.concatenate([np.zeros((len(mask), width - mask.shape[1]), dtype=bool), mask], axis=1)

    return SymbolWindows(
        ohlc=first.ohlc,
        targets=first.targets,
        contexts=_left_pad([first.contexts, second.contexts]),
        futures=np.concatenate([first.futures, second.futures]),
        origins=np.concatenate([first.origins, second.origins]),
        filled_context=np.concatenate([filled(first), filled(second)]),
        filled_future=np.concatenate([first.future_filled, second.future_filled]),
        windows_dropped=first.windows_dropped,
        covariates=first.covariates,
        covariate_names=first.covariate_names,
        covariate_contexts=_stack_rows(first.covariate_contexts, second.covariate_contexts),
        covariate_futures=_stack_rows(first.covariate_futures, second.covariate_futures, pad=False),
    )


def _stack_rows(
    first: np.ndarray | None, second: np.ndarray | None, *, pad: bool = True
) -> np.ndarray | None:
    if first is None or second is None:
        return None
    return _left_pad([first, second]) if pad else np.concatenate([first, second])


@dataclass
class Job:
    """One (symbol windows, augmentation) pair: fitted state and the model's input."""

    windows: SymbolWindows
    augmentation: Augmentation
    state: Any
    model_input: np.ndarray  # [windows, targets + covariate rows, time]
    raw_quantiles: np.ndarray | None = None  # [windows, targets, Q_model, horizon]
    #: [windows, targets + covariate rows, horizon] known future values (NaN: unknown); None: none known
    future: np.ndarray | None = None

    @property
    def n_targets(self) -> int:
        return int(self.windows.contexts.shape[1])

    @property
    def label(self) -> str:
        """The spec with the windows' covariates, e.g. ``differencing+volume`` (:class:`RunLabel`)."""
        return str(self.run)

    @property
    def run(self) -> RunLabel:
        """The zero-shot run this job forecasts: its spec and the windows' covariates."""
        return RunLabel(self.spec, tuple(self.windows.covariates))

    @property
    def spec(self) -> str:
        return str(self.augmentation.spec)


def make_job(sw: SymbolWindows, spec: str | AugmentationSpec) -> Job:
    """Fit ``spec`` on each window's own context and transform it."""
    aug = get_augmentation(spec)
    times = sw.ohlc.frame.index
    origins = sw.origins
    length = sw.contexts.shape[-1]

    def label(window: int, step: int) -> str:
        row = int(origins[window]) - (length - 1 - step)
        when = times[row] if 0 <= row < len(times) else "?"
        return f"{sw.symbol} {when}"

    state = aug.fit(sw.contexts, variates=sw.targets, label=label)
    model_input = _mask_filled(sw, aug.transform(sw.contexts, state))
    future = None
    if sw.covariate_contexts is not None and sw.covariate_futures is not None:
        model_input = np.concatenate([model_input, sw.covariate_contexts], axis=1)
        unknown = np.full(sw.futures.shape, np.nan)  # targets have no known future
        future = np.concatenate([unknown, sw.covariate_futures], axis=1)
    return Job(windows=sw, augmentation=aug, state=state, model_input=model_input, future=future)


def _mask_filled(sw: SymbolWindows, model_input: np.ndarray) -> np.ndarray:
    """Forward-filled context bars as NaN (missing) in the model input [windows, variates, time].

    The run of filled bars that ends at the origin (a window cut inside a gap) keeps its flat values,
    the last real price: Chronos-2 anchors on the latest observed values, and a missing last bar made
    the bundled model's median errors several times larger, where missing interior bars cost about as
    much as flat ones.
    """
    mask = sw.context_filled
    if not mask.any():
        return model_input
    trailing = np.flip(np.logical_and.accumulate(np.flip(mask, axis=-1), axis=-1), axis=-1)
    mask = mask & ~trailing
    model_input[np.broadcast_to(mask[:, None, :], model_input.shape)] = np.nan
    return model_input


def _left_pad(arrays: Sequence[np.ndarray]) -> np.ndarray:
    length = max(a.shape[-1] for a in arrays)
    out = []
    for a in arrays:
        if a.shape[-1] < length:
            pad = np.full((*a.shape[:-1], length - a.shape[-1]), np.nan)
            a = np.concatenate([pad, a], axis=-1)
        out.append(a)
    return np.concatenate(out, axis=0)


def forecast_jobs(
    engine: Chronos2Engine,
    jobs: Sequence[Job],
    horizon: int,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Forecast every job's windows in one batched engine call; fills ``job.raw_quantiles``."""
    jobs = [j for j in jobs if len(j.model_input)]
    if not jobs:
        return
    if len({j.model_input.shape[1] for j in jobs}) != 1:
        # different target sets cannot share a call; forecast each group on its own
        for n_var in sorted({j.model_input.shape[1] for j in jobs}):
            forecast_jobs(
                engine, [j for j in jobs if j.model_input.shape[1] == n_var], horizon, progress=progress
            )
        return
    known = {}  # future only when some job has known future values (engines without covariates work)
    if any(j.future is not None for j in jobs):
        known["future"] = np.concatenate([_job_future(j, horizon) for j in jobs])
    preds = engine.predict(_left_pad([j.model_input for j in jobs]), horizon, progress=progress, **known)
    start = 0
    for job in jobs:
        n = len(job.model_input)
        job.raw_quantiles = np.asarray(preds[start : start + n, : job.n_targets], dtype=np.float64)
        start += n


def _job_future(job: Job, horizon: int) -> np.ndarray:
    """``job.future`` or all NaN, [windows, rows, horizon]."""
    return job.future if job.future is not None else np.full((*job.model_input.shape[:2], horizon), np.nan)
