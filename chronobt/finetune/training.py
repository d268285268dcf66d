"""Fine-tuning one Chronos-2 model and caching it: settings, ``Chronos2Pipeline.fit``, the cache folder.

:func:`train` fine-tunes a copy of the base engine's model on training series into
``<output-dir>/finetune/<key>/`` (a ``save_pretrained`` folder plus ``finetune.json``): trained in a
temporary sibling and renamed when done, so an interrupt leaves no half-written checkpoint; a CUDA
out-of-memory error halves the batch and retries. LoRA adapters are merged into the weights before
saving, so a cached model loads like any other checkpoint (:func:`load_finetuned`). chronos' printer
callback is removed and its tqdm bar disabled: progress goes to the ``progress`` callback (stage
``finetune``) and the logged training losses into the record (first/last/min).

The settings (:class:`~chronobt.config.FinetuneSettings`, re-exported here) hold the defaults, which
follow ``Chronos2Pipeline.fit``, and the checks.

Training series go to ``fit`` in chronos' prepared-input form (``context`` rows: targets, past-only
covariates, then the covariates known into the future, with ``n_targets``, ``n_covariates`` and
``n_future_covariates``), the row order the forecasts use. In training chronos takes a known covariate's
future from the series' own later bars, so a series that ends at the cutoff reads nothing after it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import shutil
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from chronobt._version import __version__
from chronobt.atomic import replace_dir_atomic, write_json_atomic
from chronobt.config import FinetuneSettings
from chronobt.engine.core import Chronos2Engine, load_pipeline
from chronobt.errors import ConfigError, ModelError
from chronobt.pipeline.jobs import Progress

logger = logging.getLogger(__name__)

#: Bumped when the cache folder's layout or the training recipe changes.
CACHE_FORMAT = 1
RECORD_FILE = "finetune.json"


@dataclass(frozen=True)
class TrainingSeries:
    """One training series: ``values`` ``[rows, time]`` float64, the targets (augmented) first, then the
    covariate rows as the forecasts see them, past-only before the ``n_known`` known into the future."""

    values: np.ndarray
    n_targets: int
    n_known: int = 0

    @property
    def n_covariates(self) -> int:
        return int(self.values.shape[0]) - self.n_targets

    def prepared(self, horizon: int) -> dict[str, Any]:
        """chronos' prepared input (``chronos.chronos2.preprocess.PreparedInput``) of this series."""
        import torch

        rows = int(self.values.shape[0])
        return {
            "context": torch.tensor(self.values, dtype=torch.float32),
            "future_covariates": torch.full((rows, horizon), float("nan")),  # read at inference only
            "n_targets": self.n_targets,
            "n_covariates": self.n_covariates,
            "n_future_covariates": self.n_known,
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


def data_fingerprint(series: Sequence[np.ndarray]) -> str:
    """sha256 of the training arrays (shapes and bytes, NaN-canonical)."""
    digest = hashlib.sha256()
    for array in series:
        clean = np.where(np.isnan(array), np.nan, np.ascontiguousarray(array, dtype=np.float64))
        digest.update(str(clean.shape).encode())
        digest.update(clean.tobytes())
    return digest.hexdigest()


def cache_key(
    *,
    base_checksum: str,
    series: Sequence[TrainingSeries],
    specs: Sequence[str],
    settings: FinetuneSettings,
    horizon: int,
    covariates: Sequence[str] = (),
) -> str:
    """A 16-hex hash of everything the fine-tuned weights depend on."""
    import chronos

    payload = {
        "format": CACHE_FORMAT,
        "chronobt": __version__,
        "chronos": getattr(chronos, "__version__", None),
        "base_checksum": base_checksum,
        "data": data_fingerprint([s.values for s in series]),
        "preaugs": list(specs),
        "horizon": horizon,
        # --refit-every moves the cutoffs (in the data fingerprint) but not what a cutoff's training does
        **{k: v for k, v in settings.record().items() if k != "refit_every"},
        # only with covariates, so the keys of runs without them stay what they were
        **({"covariates": list(covariates), "known": [s.n_known for s in series]} if covariates else {}),
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
    series: Sequence[TrainingSeries],
    settings: FinetuneSettings,
    *,
    horizon: int,
    folder: Path,
    info: dict[str, Any],
    progress: Progress | None = None,
    root: Path | None = None,
) -> None:
    """Fine-tune ``base`` on ``series`` (targets and covariate rows) into ``folder``, atomically.

    A CUDA out-of-memory error halves the batch and retries; an interrupt leaves no folder behind.
    ``root``: the output folder ``folder`` lies in; no symbolic link below it is written through.
    """
    import torch
    from chronos import Chronos2Pipeline

    batch = settings.batch_size
    inputs = [s.prepared(horizon) for s in series]
    with replace_dir_atomic(folder, root=root) as tmp:
        while True:
            losses: list[float] = []
            t0 = time.perf_counter()
            try:
                # fork_rng + manual_seed: LoRA's adapter init draws from torch's global generator before
                # the trainer seeds it; seeding here makes the weights a function of the inputs only
                with warnings.catch_warnings(), torch.random.fork_rng():
                    torch.manual_seed(settings.seed)
                    # transformers 5 deprecation raised inside peft's LoRA wrapping; nothing for a user to do
                    warnings.filterwarnings(
                        "ignore", message=".*is_gradient_checkpointing", category=FutureWarning
                    )
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
        write_json_atomic(tmp / RECORD_FILE, record, root=root)


def loss_summary(losses: Sequence[float]) -> dict[str, Any]:
    """``{"first", "last", "min", "logged"}`` of the training losses the trainer logged."""
    if not losses:
        return {"first": None, "last": None, "min": None, "logged": 0}
    return {"first": losses[0], "last": losses[-1], "min": min(losses), "logged": len(losses)}


def read_record(folder: Path) -> dict[str, Any]:
    """The ``finetune.json`` record of a cached fine-tuned model folder (``OSError``/``ValueError`` if it is
    missing or not a JSON object)."""
    record = json.loads((folder / RECORD_FILE).read_text())
    if not isinstance(record, dict):
        raise ValueError(f"{folder / RECORD_FILE}: expected a JSON object")
    return record


def load_finetuned(
    base: Chronos2Engine, folder: Path, *, base_checksum: str
) -> tuple[Chronos2Engine, dict[str, Any]]:
    """An engine over the weights in ``folder`` (same engine config as ``base``) and the folder's record."""
    record = read_record(folder)
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
