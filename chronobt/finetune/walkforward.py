"""Walk-forward fine-tuning of Chronos-2 on the symbols' own history, without look-ahead.

A model that forecasts origins from bar ``t`` onward is trained on bars up to ``t`` only, in every
training series. The windows of a run are split into *refit segments* (``refit_every`` windows each;
``None``: one segment, trained once before the first evaluated origin); a segment's cutoff is the
earliest first origin of its windows across the symbols trained together, and each symbol's training
series ends at its last bar at or before that time.

Training data: each symbol's bars up to the cutoff, transformed by the run's augmentation fitted on that
whole training series (:func:`training_series`; the same fit/transform/filled-bar masking as inference,
applied to one window ending at the cutoff). Chronos-2 samples its training windows from these series.
There is no validation split (the fit's own validation stays off), so nothing after the cutoff is read.

By default one model per refit point is trained on every symbol's series; ``per_symbol`` trains one per
symbol. Weights are cached under ``<output-dir>/finetune/<key>/`` (a ``save_pretrained`` folder plus
``finetune.json``), keyed by the base weights' checksum, the training arrays' hash, the augmentation and
the fine-tune settings (:mod:`chronobt.finetune.training`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from chronobt.engine import Chronos2Engine
from chronobt.errors import ConfigError, DataError
from chronobt.finetune.training import (
    RECORD_FILE,
    FinetuneSettings,
    cache_key,
    load_finetuned,
    require_peft,
    train,
    weights_checksum,
)
from chronobt.pipeline import Job, Progress, SymbolWindows, forecast_jobs, make_job


def training_series(sw: SymbolWindows, spec: str, cutoff: int) -> np.ndarray:
    """One symbol's training series: bars ``0..cutoff`` transformed by ``spec`` fitted on them.

    Returns ``[variates, time]`` float64 (forward-filled bars NaN except a run ending at the cutoff,
    as at inference). Nothing after ``cutoff`` is read.
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
    return make_job(window, spec).model_input[0]


@dataclass
class Refit:
    """One fine-tuned model and the windows it forecasts: ``windows[job position] -> window indices``."""

    engine: Chronos2Engine
    record: dict[str, Any]
    windows: dict[int, np.ndarray] = field(default_factory=dict)


def plan_refits(jobs: Sequence[Job], settings: FinetuneSettings) -> list[dict[int, np.ndarray]]:
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


def finetune_engines(
    jobs: Sequence[Job],
    base: Chronos2Engine,
    settings: FinetuneSettings,
    *,
    horizon: int,
    output_dir: Path,
    progress: Progress | None = None,
) -> list[Refit]:
    """The fine-tuned engine of every refit segment (and symbol, with ``per_symbol``), trained or cached.

    Progress: stage ``finetune`` (training steps of the model being trained), ``finetune cached``
    (models served from the cache).
    """
    require_peft(settings.mode)
    if any(job.windows.covariates for job in jobs):
        raise ConfigError("--finetune does not take covariates yet (here from --preaug auto's sweep choice)")
    base_checksum = base.model_info.get("checksum") or weights_checksum(base.pipeline.model)
    groups = [[pos] for pos in range(len(jobs))] if settings.per_symbol else [list(range(len(jobs)))]
    refits: list[Refit] = []
    cached = 0
    for segment in plan_refits(jobs, settings):
        for group in groups:
            members = [pos for pos in group if pos in segment]
            if not members:
                continue
            cutoff_time = min(jobs[pos].windows.origin_times[segment[pos][0]] for pos in members)
            series, cutoffs = [], {}
            for pos in members:
                sw = jobs[pos].windows
                row = int(sw.ohlc.frame.index.searchsorted(cutoff_time, side="right")) - 1
                if row + 1 < 2 * horizon:
                    raise DataError(
                        f"{sw.ohlc.path}: {row + 1} bars up to {cutoff_time.isoformat()} are too few to "
                        f"fine-tune on (need {2 * horizon}); start the windows later (--start)"
                    )
                series.append(training_series(sw, jobs[pos].spec, row))
                cutoffs[sw.symbol] = sw.ohlc.frame.index[row].isoformat()
            key = cache_key(
                base_checksum=base_checksum,
                series=series,
                specs=[jobs[pos].spec for pos in members],
                settings=settings,
                horizon=horizon,
            )
            folder = output_dir / "finetune" / key
            info = {
                "key": key,
                "cutoff": cutoff_time.isoformat(),
                "cutoffs": cutoffs,
                "symbols": [jobs[pos].windows.symbol for pos in members],
                "preaugs": sorted({jobs[pos].spec for pos in members}),
            }
            if not (folder / RECORD_FILE).is_file():
                train(base, series, settings, horizon=horizon, folder=folder, info=info, progress=progress)
                was_cached = False
            else:
                cached += 1
                was_cached = True
                if progress:
                    progress("finetune cached", cached, cached)
            engine, record = load_finetuned(base, folder, base_checksum=base_checksum)
            record["cached"] = was_cached
            refits.append(Refit(engine=engine, record=record, windows={p: segment[p] for p in members}))
    return refits


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
