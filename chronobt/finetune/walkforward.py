"""Walk-forward fine-tuning of Chronos-2 on the symbols' own history, without look-ahead.

A model that forecasts origins from bar ``t`` onward is trained on bars up to ``t`` only, in every
training series. The windows of a run are split into *refit segments* (``refit_every`` windows each;
``None``: one segment, trained once before the first evaluated origin); a segment's cutoff is the
earliest first origin of its windows across the symbols trained together, and each symbol's training
series ends at its last bar at or before that time.

Training data: each symbol's bars up to the cutoff, transformed by the run's augmentation fitted on that
whole training series (:func:`training_series`; the same fit/transform/filled-bar masking as inference,
applied to one window ending at the cutoff), with the run's covariate rows up to the cutoff beside them
(untransformed, as at inference; a known covariate's future in training comes from the series' own later
bars, so from bars up to the cutoff too). Chronos-2 samples its training windows from these series.
There is no validation split (the fit's own validation stays off), so nothing after the cutoff is read.

Two steps, so a caller can key its results by the models before training any: :func:`plan_models`
cuts the training series and computes each model's cache key; :func:`fit_models` trains (or loads) them.

By default one model per refit point is trained on every symbol's series; ``per_symbol`` trains one per
symbol. Weights are cached under ``<output-dir>/finetune/<key>/`` (a ``save_pretrained`` folder plus
``finetune.json``), keyed by the base weights' checksum, the training arrays' hash, the augmentation and
the fine-tune settings (:mod:`chronobt.finetune.training`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from chronobt.data import OHLC
from chronobt.data.symbol_windows import SymbolWindows
from chronobt.engine.core import Chronos2Engine
from chronobt.errors import ChronobtError, DataError
from chronobt.finetune.training import (
    RECORD_FILE,
    FinetuneSettings,
    TrainingSeries,
    cache_key,
    load_finetuned,
    require_peft,
    train,
    weights_checksum,
)
from chronobt.pipeline.covariates import covariate_series
from chronobt.pipeline.jobs import Job, Progress, forecast_jobs, make_job

#: load(symbol): another symbol of the data folder (a covariate's series).
Loader = Callable[[str], OHLC]
#: on_error(member position, message): a member left out of training (instead of raising).
OnError = Callable[[int, str], None]


class Source(Protocol):
    """What a model is trained for: a symbol's windows and the augmentation spec (a :class:`Job` is one)."""

    @property
    def windows(self) -> SymbolWindows: ...

    @property
    def spec(self) -> str: ...


@dataclass(frozen=True)
class Member:
    """A :class:`Source` without a fitted job: the windows and the spec they are forecast with."""

    windows: SymbolWindows
    spec: str


def training_series(
    sw: SymbolWindows, spec: str, cutoff: int, *, load: Loader | None = None
) -> TrainingSeries:
    """One symbol's training series: bars ``0..cutoff`` transformed by ``spec`` fitted on them, and the
    windows' covariate rows (``sw.covariates``; ``load`` loads another symbol's) up to ``cutoff``.

    Targets are forward-filled bars NaN except a run ending at the cutoff, as at inference; the
    covariate rows are those of :func:`chronobt.pipeline.covariates.covariate_series`. Nothing after
    ``cutoff``
    reaches the series.
    """
    ohlc = sw.ohlc
    values = ohlc.values(sw.targets)[: cutoff + 1]  # [time, variates]
    filled = ohlc.filled[: cutoff + 1]
    window = SymbolWindows(
        ohlc=ohlc,
        targets=sw.targets,
        contexts=values.T[None].copy(),
        futures=np.full((1, len(sw.targets), 0), np.nan),
        origins=np.array([cutoff], dtype=np.int64),
        filled_context=filled[None].copy() if filled.any() else None,
    )
    targets = make_job(window, spec).model_input[0]
    if not sw.covariates:
        return TrainingSeries(values=targets, n_targets=len(sw.targets))
    if load is None:
        raise ChronobtError("internal: fine-tuning with covariates needs a loader for their symbols")
    series = covariate_series(ohlc, sw.covariates, load=load)
    if series.names != sw.covariate_names:
        raise ChronobtError(
            f"internal: covariate rows {series.names} differ from the windows' {sw.covariate_names}"
        )
    rows = series.values[: cutoff + 1].T  # [rows, time]
    return TrainingSeries(
        values=np.concatenate([targets, rows]), n_targets=len(sw.targets), n_known=int(series.known.sum())
    )


@dataclass
class Refit:
    """One fine-tuned model and the windows it forecasts: ``windows[job position] -> window indices``."""

    engine: Chronos2Engine
    record: dict[str, Any]
    windows: dict[int, np.ndarray] = field(default_factory=dict)


@dataclass
class ModelPlan:
    """One model to fine-tune or load: its cache key, training series, record and the windows it forecasts
    (``windows[member position] -> window indices``)."""

    key: str
    series: list[TrainingSeries]
    info: dict[str, Any]
    windows: dict[int, np.ndarray]

    def folder(self, output_dir: Path) -> Path:
        return output_dir / "finetune" / self.key

    def cached(self, output_dir: Path) -> bool:
        return (self.folder(output_dir) / RECORD_FILE).is_file()


def plan_refits(jobs: Sequence[Source], settings: FinetuneSettings) -> list[dict[int, np.ndarray]]:
    """Window groups per refit point: ``[{job position: window indices}]`` in time order.

    Segment ``k`` holds windows ``k*refit_every .. (k+1)*refit_every - 1`` of every job (all windows
    when ``refit_every`` is ``None``).
    """
    longest = max(len(j.windows.origins) for j in jobs)
    every = settings.refit_every or longest
    segments = []
    for start in range(0, longest, every):
        segment = {
            pos: np.arange(start, min(start + every, len(j.windows.origins)))
            for pos, j in enumerate(jobs)
            if start < len(j.windows.origins)
        }
        segments.append(segment)
    return segments


def plan_models(
    sources: Sequence[Source],
    settings: FinetuneSettings,
    *,
    base_checksum: str,
    horizon: int,
    load: Loader | None = None,
    on_error: OnError | None = None,
) -> list[ModelPlan]:
    """The model of every refit segment (and source, with ``per_symbol``): training series cut at the
    segment's cutoff and the cache key. Nothing is trained.

    A source whose training series cannot be made (too few bars, an augmentation that does not apply)
    raises, or with ``on_error`` is reported there and left out of that model.
    """
    groups = [[pos] for pos in range(len(sources))] if settings.per_symbol else [list(range(len(sources)))]
    plans: list[ModelPlan] = []
    for segment in plan_refits(sources, settings):
        for group in groups:
            members = [pos for pos in group if pos in segment]
            if not members:
                continue
            cutoff_time = min(sources[pos].windows.origin_times[segment[pos][0]] for pos in members)
            series, cutoffs, kept = [], {}, []
            for pos in members:
                sw = sources[pos].windows
                row = int(sw.ohlc.frame.index.searchsorted(cutoff_time, side="right")) - 1
                try:
                    if row + 1 < 2 * horizon:
                        raise DataError(
                            f"{sw.ohlc.path}: {row + 1} bars up to {cutoff_time.isoformat()} are too few to "
                            f"fine-tune on (need {2 * horizon}); {_short_hint(len(members))}"
                        )
                    series.append(training_series(sw, sources[pos].spec, row, load=load))
                except (ChronobtError, ValueError) as exc:
                    if on_error is None:
                        raise
                    on_error(pos, f"fine-tuning: {exc}")
                    continue
                cutoffs[sw.symbol] = sw.ohlc.frame.index[row].isoformat()
                kept.append(pos)
            if not kept:
                continue
            covariates = sources[kept[0]].windows.covariates
            key = cache_key(
                base_checksum=base_checksum,
                series=series,
                specs=[sources[pos].spec for pos in kept],
                settings=settings,
                horizon=horizon,
                covariates=covariates,
            )
            info = {
                "key": key,
                "cutoff": cutoff_time.isoformat(),
                "cutoffs": cutoffs,
                "symbols": [sources[pos].windows.symbol for pos in kept],
                "preaugs": sorted({sources[pos].spec for pos in kept}),
                **({"covariates": list(covariates)} if covariates else {}),
            }
            plans.append(ModelPlan(key=key, series=series, info=info, windows={p: segment[p] for p in kept}))
    return plans


def _short_hint(members: int) -> str:
    if members > 1:  # the cutoff is the earliest first origin of the symbols trained together
        return (
            "a model trained on several symbols stops at their earliest first origin: pass "
            "--finetune-per-symbol to train each up to its own"
        )
    return "start the windows later (backtest --start; sweep: fewer --validation-windows/--test-windows)"


def fit_models(
    plans: Sequence[ModelPlan],
    base: Chronos2Engine,
    settings: FinetuneSettings,
    *,
    horizon: int,
    output_dir: Path,
    base_checksum: str,
    progress: Progress | None = None,
) -> list[Refit]:
    """The fine-tuned engine of every plan, trained into ``<output_dir>/finetune/<key>/`` or loaded from it.

    Progress: stage ``finetune`` (training steps of the model being trained), ``finetune cached``
    (models served from the cache).
    """
    refits: list[Refit] = []
    cached = 0
    for plan in plans:
        folder = plan.folder(output_dir)
        was_cached = plan.cached(output_dir)
        if not was_cached:
            train(
                base,
                plan.series,
                settings,
                horizon=horizon,
                folder=folder,
                info=plan.info,
                progress=progress,
                root=output_dir,
            )
        else:
            cached += 1
            if progress:
                progress("finetune cached", cached, cached)
        engine, record = load_finetuned(base, folder, base_checksum=base_checksum)
        record["cached"] = was_cached
        refits.append(Refit(engine=engine, record=record, windows=dict(plan.windows)))
    return refits


def base_checksum_of(base: Chronos2Engine) -> str:
    """The base weights' checksum: the model record's, else computed."""
    return str(base.model_info.get("checksum") or weights_checksum(base.pipeline.model))


def finetune_engines(
    jobs: Sequence[Job],
    base: Chronos2Engine,
    settings: FinetuneSettings,
    *,
    horizon: int,
    output_dir: Path,
    load: Loader | None = None,
    progress: Progress | None = None,
) -> list[Refit]:
    """The fine-tuned engine of every refit segment (and symbol, with ``per_symbol``), trained or cached
    (:func:`plan_models` then :func:`fit_models`); ``load`` loads covariate symbols."""
    require_peft(settings.mode)
    checksum = base_checksum_of(base)
    plans = plan_models(jobs, settings, base_checksum=checksum, horizon=horizon, load=load)
    return fit_models(
        plans,
        base,
        settings,
        horizon=horizon,
        output_dir=output_dir,
        base_checksum=checksum,
        progress=progress,
    )


def forecast_refits(
    refits: Sequence[Refit],
    jobs: Sequence[Job],
    horizon: int,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> list[Job]:
    """Copies of ``jobs`` whose ``raw_quantiles`` come from each window's fine-tuned model."""
    out = [
        Job(windows=j.windows, augmentation=j.augmentation, state=j.state, model_input=j.model_input)
        for j in jobs
    ]
    total = sum(len(idx) for r in refits for idx in r.windows.values())
    done = 0
    for refit in refits:
        parts = {
            pos: Job(
                windows=jobs[pos].windows,
                augmentation=jobs[pos].augmentation,
                state=None,
                model_input=jobs[pos].model_input[idx],
            )
            for pos, idx in refit.windows.items()
        }
        n = sum(len(idx) for idx in refit.windows.values())

        def step(d: int, t: int, offset: int = done, n: int = n) -> None:
            if progress:
                progress(offset + round(n * d / max(t, 1)), total)

        forecast_jobs(refit.engine, list(parts.values()), horizon, progress=step)
        for pos, part in parts.items():
            job = out[pos]
            if part.raw_quantiles is None:
                continue
            if job.raw_quantiles is None:
                shape = (len(job.model_input), *part.raw_quantiles.shape[1:])
                job.raw_quantiles = np.full(shape, np.nan)
            job.raw_quantiles[refit.windows[pos]] = part.raw_quantiles
        done += n
    return out


def refit_of(refits: Sequence[Refit], pos: int) -> list[Refit]:
    """The refits that forecast windows of job ``pos``, in time order."""
    return [r for r in refits if pos in r.windows]


def symbol_record(refits: Sequence[Refit], pos: int, settings: FinetuneSettings) -> dict[str, Any]:
    """``metrics.json``'s ``finetune`` block for one symbol: settings and each refit it used."""
    return {
        **settings.record(),
        "refits": [
            {
                **{k: r.record.get(k) for k in ("key", "cutoff", "steps", "loss", "cached", "checksum")},
                "train_seconds": r.record.get("train_seconds"),
                "symbols": r.record.get("symbols"),
                "first_window": int(r.windows[pos][0]),
                "windows": len(r.windows[pos]),
            }
            for r in refit_of(refits, pos)
        ],
    }
