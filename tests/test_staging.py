"""Staged batches (CUDA's overlap of host preparation and upload with compute), rehearsed on a CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from chronobt.engine.core import Chronos2Engine, EngineConfig
from chronobt.engine.staging import Stager
from tests.synthetic import random_walk_contexts


def _engine(model_dir: Path, *, staged: bool | None, wrap_forward=None) -> Chronos2Engine:
    config = EngineConfig(model=str(model_dir), device="cpu", compile="off", batch_size=8)
    return Chronos2Engine(config, stage_batches=staged, wrap_forward=wrap_forward)


def test_cpu_engines_do_not_stage_and_staged_batches_give_the_same_forecasts(tiny_model_dir: Path) -> None:
    contexts = random_walk_contexts([300, 37, 120, 16, 250], n_time=300, seed=3)
    plain = _engine(tiny_model_dir, staged=None)
    staged = _engine(tiny_model_dir, staged=True)
    np.testing.assert_array_equal(staged.predict(contexts, 24), plain.predict(contexts, 24))
    assert plain.last_call is not None and plain.last_call.staged is None  # CPU: in turn, as before
    report = staged.last_call
    assert report is not None and report.staged == (2, 1, 0)  # (hits, misses, dropped)


def test_an_out_of_memory_halving_prepares_the_halved_batch_afresh(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    contexts = random_walk_contexts([300, 37, 120, 16, 250], n_time=300, seed=3)
    expected = _engine(tiny_model_dir, staged=False).predict(contexts, 24)
    calls = {"n": 0}

    def once_out_of_memory(real):
        def forward(context: torch.Tensor, group_ids: torch.Tensor, n: int) -> torch.Tensor:
            calls["n"] += 1
            if calls["n"] == 2:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return real(context, group_ids, n)

        return forward

    engine = _engine(tiny_model_dir, staged=True, wrap_forward=once_out_of_memory)
    np.testing.assert_array_equal(engine.predict(contexts, 24), expected)
    report = engine.last_call
    assert report is not None and report.staged == (3, 2, 0)  # (hits, misses, dropped)
    assert engine.record()["oom_retries"] == 1


def test_the_stager_keys_batches_by_start_and_size() -> None:
    made: list[tuple[int, int]] = []

    def make(start: int, per_batch: int) -> np.ndarray:
        made.append((start, per_batch))
        return np.full((per_batch, 4), float(start), dtype=np.float32)

    stager = Stager(torch.device("cpu"), make, cuda=False)
    assert stager.take(0, 2)[0, 0] == 0
    stager.stage(2, 2)
    assert stager.take(2, 2)[0, 0] == 2 and stager.hits == 1
    stager.stage(4, 2)
    assert stager.take(4, 1).shape == (1, 4) and stager.dropped == 1
    assert made == [(0, 2), (2, 2), (4, 2), (4, 1)]
    out = stager.download(torch.ones(2, 3, dtype=torch.float64))
    assert out.dtype == np.float32 and out.shape == (2, 3)
    stager.release()  # the engine releases it after its call: the call's contexts are not kept
    with pytest.raises(RuntimeError, match="released"):
        stager.take(6, 2)
