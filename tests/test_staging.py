"""Staged batches (CUDA's overlap of host preparation and upload with compute), rehearsed on a CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from chronobt.engine.core import Chronos2Engine, EngineConfig
from chronobt.engine.staging import Stager
from tests.synthetic import random_walk_contexts


def _engine(model_dir: Path, *, staged: bool) -> Chronos2Engine:
    engine = Chronos2Engine(EngineConfig(model=str(model_dir), device="cpu", compile="off", batch_size=8))
    engine._stage_batches = staged
    return engine


def test_cpu_engines_do_not_stage_and_staged_batches_give_the_same_forecasts(tiny_model_dir: Path) -> None:
    contexts = random_walk_contexts([300, 37, 120, 16, 250], n_time=300, seed=3)
    plain = _engine(tiny_model_dir, staged=False)
    assert plain._stage_batches is False  # CPU: in turn, as before
    staged = _engine(tiny_model_dir, staged=True)
    np.testing.assert_array_equal(staged.predict(contexts, 24), plain.predict(contexts, 24))
    stager = staged._stager
    assert stager is not None and (stager.hits, stager.misses, stager.dropped) == (2, 1, 0)


def test_an_out_of_memory_halving_prepares_the_halved_batch_afresh(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    contexts = random_walk_contexts([300, 37, 120, 16, 250], n_time=300, seed=3)
    expected = _engine(tiny_model_dir, staged=False).predict(contexts, 24)
    engine = _engine(tiny_model_dir, staged=True)
    real, calls = engine._eager_forward, {"n": 0}

    def once_out_of_memory(context: torch.Tensor, group_ids: torch.Tensor, n: int) -> torch.Tensor:
        calls["n"] += 1
        if calls["n"] == 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(context, group_ids, n)

    engine._eager_forward = once_out_of_memory
    np.testing.assert_array_equal(engine.predict(contexts, 24), expected)
    stager = engine._stager
    assert stager is not None and (stager.hits, stager.misses, stager.dropped) == (3, 2, 0)
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
