"""The bundled ``chronos2-mini`` checkpoint ships with the package, loads offline and forecasts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import chronobt
from chronobt.engine.checkpoints import STANDARD_QUANTILES

BUNDLED = Path(chronobt.__file__).resolve().parent / "assets" / "chronos2-mini"
MAX_BYTES = 20 * 1024 * 1024


@pytest.fixture(scope="module")
def pipeline(monkeypatch_module: pytest.MonkeyPatch):  # -> Chronos2Pipeline
    from chronos import BaseChronosPipeline

    return BaseChronosPipeline.from_pretrained(str(BUNDLED), device_map="cpu")


@pytest.fixture(scope="module")
def monkeypatch_module():  # -> Iterator[pytest.MonkeyPatch]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        yield mp


def test_bundled_checkpoint_files_are_small_and_documented() -> None:
    weights = BUNDLED / "model.safetensors"
    assert weights.is_file(), f"{weights} is missing; run scripts/train_mini.py"
    assert weights.stat().st_size <= MAX_BYTES
    card = (BUNDLED / "MODEL_CARD.md").read_text()
    assert "cutoff" in card.lower() and "scripts/train_mini.py" in card


def test_bundled_config_has_standard_quantiles_and_trained_512_context() -> None:
    config = json.loads((BUNDLED / "config.json").read_text())
    chronos_config = config["chronos_config"]
    assert config["architectures"] == ["Chronos2Model"]
    assert tuple(chronos_config["quantiles"]) == STANDARD_QUANTILES
    assert chronos_config["context_length"] == 512  # the context of the final training stage (MODEL_CARD.md)
    assert chronos_config["input_patch_size"] == 16


def test_bundled_model_loads_offline_as_chronos2_pipeline(pipeline) -> None:
    from chronos import Chronos2Pipeline

    assert isinstance(pipeline, Chronos2Pipeline)
    assert tuple(round(q, 2) for q in pipeline.quantiles) == STANDARD_QUANTILES


def test_bundled_model_tracks_random_walks_like_naive_with_calibrated_80pc_interval(pipeline) -> None:
    rng = np.random.default_rng(0)
    horizon, length, n = 24, 512, 64
    steps = rng.standard_t(5, size=(n, 4, length + horizon)) * 0.01
    prices = 100.0 * np.exp(np.cumsum(steps, axis=-1))  # [series, variates, time]
    context, future = prices[..., :length], prices[:, 3, length:]
    preds = pipeline.predict(context.astype(np.float32), prediction_length=horizon)
    q = np.stack([p.numpy()[3] for p in preds])  # close: [series, quantiles, horizon]
    model_mae = np.abs(q[:, STANDARD_QUANTILES.index(0.5)] - future).mean()
    naive_mae = np.abs(context[:, 3, -1:] - future).mean()
    lo, hi = q[:, STANDARD_QUANTILES.index(0.1)], q[:, STANDARD_QUANTILES.index(0.9)]
    coverage = ((future >= lo) & (future <= hi)).mean()
    assert model_mae < 1.15 * naive_mae, (model_mae, naive_mae)
    assert 0.6 <= coverage <= 0.95, coverage
