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
the fine-tune settings; a folder appears only once training finished (trained in a temporary sibling,
then renamed). LoRA adapters are merged into the weights before saving, so a cached model loads like
any other checkpoint.

Defaults follow ``Chronos2Pipeline.fit``: 1000 steps, batch 256, learning rate 1e-6 for ``full``; for
``lora`` chronos' docstring recommends a higher rate, 1e-5, which is our default there.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from chronobt._version import __version__
from chronobt.atomic import replace_dir_atomic, write_json_atomic
from chronobt.config import RunOptions
from chronobt.engine import Chronos2Engine, load_pipeline
from chronobt.errors import ConfigError, DataError, ModelError
from chronobt.pipeline import Job, Progress, SymbolWindows, forecast_jobs, make_job

logger = logging.getLogger(__name__)

#: chronos' ``Chronos2Pipeline.fit`` defaults (steps, batch) and learning rates (full: the default;
#: lora: the rate its docstring recommends).
DEFAULT_STEPS = 1000
DEFAULT_BATCH_SIZE = 256
DEFAULT_LR = {"full": 1e-6, "lora": 1e-5}
#: Bumped when the cache folder's layout or the training recipe changes.
CACHE_FORMAT = 1
RECORD_FILE = "finetune.json"


@dataclass(frozen=True)
class FinetuneSettings:
    """How to fine-tune: mode ``lora``/``full``, steps, learning rate, context, refits, grouping."""

    mode: str
    steps: int = DEFAULT_STEPS
    learning_rate: float = 1e-6
    context: int | None = None
    refit_every: int | None = None
    per_symbol: bool = False
    batch_size: int = DEFAULT_BATCH_SIZE
    seed: int = 0

    @classmethod
    def from_config(cls, config: RunOptions) -> FinetuneSettings | None:
        """The settings of ``config`` (``None`` when ``--finetune off``)."""
        if config.finetune == "off":
            return None
        return cls(
            mode=config.finetune,
            steps=config.finetune_steps or DEFAULT_STEPS,
            learning_rate=config.finetune_lr or DEFAULT_LR[config.finetune],
            context=config.finetune_context,
            refit_every=config.refit_every,
            per_symbol=config.finetune_per_symbol,
            batch_size=config.finetune_batch or DEFAULT_BATCH_SIZE,
            seed=config.seed,
        )

    def record(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "steps": self.steps,
            "learning_rate": self.learning_rate,
            "context": self.context,
            "refit_every": self.refit_every,
            "per_symbol": self.per_symbol,
            "batch_size": self.batch_size,
            "seed": self.seed,
        }


def require_peft(mode: str) -> None:
    """ConfigError naming the extra when ``mode`` is ``lora`` and ``peft`` is not installed."""
    if mode == "lora" and importlib.util.find_spec("peft") is None:
        raise ConfigError(
            "--finetune lora needs the 'peft' package, which is not installed; "
            "pip install 'chronobt[finetune]' (or use --finetune full)"
        )


def weights_checksum(model: Any) -> str:
    """sha256 over a model's state dict (names, shapes, float32 bytes), independent of how it was saved."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        array = tensor.detach().to("cpu").float().contiguous().numpy()
        digest.update(f"{name}{tuple(array.shape)}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


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


def data_fingerprint(series: Sequence[np.ndarray]) -> str:
    """sha256 of the training arrays (shapes and bytes, NaN-canonical)."""
    digest = hashlib.sha256()
    for array in series:
        clean = np.where(np.isnan(array), np.nan, np.ascontiguousarray(array, dtype=np.float64))
        digest.update(str(clean.shape).encode())
        digest.update(clean.tobytes())
    return digest.hexdigest()


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


def cache_key(
    *,
    base_checksum: str,
    series: Sequence[np.ndarray],
    specs: Sequence[str],
    settings: FinetuneSettings,
    horizon: int,
) -> str:
    """A 16-hex hash of everything the fine-tuned weights depend on."""
    import chronos

    payload = {
        "format": CACHE_FORMAT,
        "chronobt": __version__,
        "chronos": getattr(chronos, "__version__", None),
        "base_checksum": base_checksum,
        "data": data_fingerprint(series),
        "preaugs": list(specs),
        "horizon": horizon,
        **settings.record(),
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _loss_callback(progress: Progress | None, losses: list[float]) -> Any:
    from transformers.trainer_callback import TrainerCallback

    class _Callback(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
            if logs and "loss" in logs:
                losses.append(float(logs["loss"]))

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if progress:
                progress("finetune", int(state.global_step), int(state.max_steps))

    return _Callback()


def train(
    base: Chronos2Engine,
    series: Sequence[np.ndarray],
    settings: FinetuneSettings,
    *,
    horizon: int,
    folder: Path,
    info: dict[str, Any],
    progress: Progress | None = None,
) -> None:
    """Fine-tune ``base`` on ``series`` (each ``[variates, time]``) into ``folder``, atomically.

    A CUDA out-of-memory error halves the batch and retries; an interrupt leaves no folder behind.
    """
    import torch
    from chronos import Chronos2Pipeline

    batch = settings.batch_size
    inputs = [{"target": s} for s in series]
    with replace_dir_atomic(folder) as tmp:
        while True:
            losses: list[float] = []
            t0 = time.perf_counter()
            try:
                tuned = base.pipeline.fit(
                    inputs,
                    prediction_length=horizon,
                    finetune_mode=settings.mode,
                    context_length=settings.context,
                    learning_rate=settings.learning_rate,
                    num_steps=settings.steps,
                    batch_size=batch,
                    output_dir=tmp / "trainer",
                    callbacks=[_loss_callback(progress, losses)],
                    remove_printer_callback=True,
                    disable_tqdm=True,
                    logging_steps=max(1, settings.steps // 20),
                    seed=settings.seed,
                    data_seed=settings.seed,
                )
                break
            except torch.OutOfMemoryError as exc:
                shutil.rmtree(tmp / "trainer", ignore_errors=True)
                if batch <= 1:
                    raise ModelError(f"fine-tuning runs out of memory even at batch 1: {exc}") from exc
                batch //= 2
                logger.warning("fine-tuning ran out of memory: retrying with batch %d", batch)
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
        seconds = time.perf_counter() - t0
        model = tuned.model
        if settings.mode == "lora":
            model = model.merge_and_unload()
        shutil.rmtree(tmp / "trainer", ignore_errors=True)
        Chronos2Pipeline(model=model).save_pretrained(tmp)
        record = {
            **info,
            "mode": settings.mode,
            "settings": settings.record(),
            "batch_size_used": batch,
            "steps": settings.steps,
            "train_seconds": round(seconds, 3),
            "loss": loss_summary(losses),
            "checksum": weights_checksum(model),
            "created_at": pd.Timestamp.now(tz="UTC").isoformat(),
        }
        write_json_atomic(tmp / RECORD_FILE, record)


def loss_summary(losses: Sequence[float]) -> dict[str, Any]:
    """``{"first", "last", "min", "logged"}`` of the training losses the trainer logged."""
    if not losses:
        return {"first": None, "last": None, "min": None, "logged": 0}
    return {"first": losses[0], "last": losses[-1], "min": min(losses), "logged": len(losses)}


def load_finetuned(
    base: Chronos2Engine, folder: Path, *, base_checksum: str
) -> tuple[Chronos2Engine, dict[str, Any]]:
    """An engine over the weights in ``folder`` (same engine config as ``base``) and the folder's record."""
    record = json.loads((folder / RECORD_FILE).read_text())
    pipeline = load_pipeline(folder)
    checksum = weights_checksum(pipeline.model)
    engine = Chronos2Engine(base.config, pipeline=pipeline)
    base_id = base.model_info.get("id")
    engine.model_info = {
        "id": f"{base_id}+finetune-{record['mode']}",
        "source": "finetune",
        "path": str(folder),
        "checksum": checksum,
        "revision": None,
        "base_id": base_id,
        "base_checksum": base_checksum,
        "cache_key": record["key"],
        "cutoff": record["cutoff"],
        "steps": record["steps"],
        "loss": record["loss"],
    }
    record["checksum"] = checksum
    return engine, record


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


def forecast_sweep(
    job_lists: Sequence[Sequence[Job]],
    base: Chronos2Engine,
    settings: FinetuneSettings,
    *,
    horizon: int,
    output_dir: Path,
    progress: Progress | None = None,
) -> list[list[Job]]:
    """A sweep's fine-tuned forecasts: ``job_lists[symbol][cell]`` -> the same jobs, forecast.

    Each augmentation gets its own models (the training series are transformed by it), trained on
    every symbol's series (one per symbol with ``per_symbol``) before each refit point.
    """
    out: list[list[Job]] = [list(jobs) for jobs in job_lists]
    for spec in sorted({job.spec for jobs in job_lists for job in jobs}):
        where = [(i, k) for i, jobs in enumerate(job_lists) for k, job in enumerate(jobs) if job.spec == spec]
        jobs = [job_lists[i][k] for i, k in where]
        refits = finetune_engines(
            jobs, base, settings, horizon=horizon, output_dir=output_dir, progress=progress
        )
        for (i, k), tuned in zip(where, forecast_refits(refits, jobs, horizon), strict=True):
            out[i][k] = tuned
    return out
