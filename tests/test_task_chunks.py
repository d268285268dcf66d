"""Encoder blocks over chunks of tasks: the whole batch's forecasts, checked before use, CPU only."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from chronobt.engine import cpu_sizing
from chronobt.engine.checkpoints import ArchSpec, random_model, save_random_checkpoint
from chronobt.engine.core import Chronos2Engine, EngineConfig
from chronobt.engine.views.group_attention import block_diagonal_view
from chronobt.engine.views.lastblock import output_only_view
from chronobt.engine.views.task_chunks import TaskChunkedBlock, task_chunked_view
from tests.synthetic import random_walk_contexts

SPEC = ArchSpec(d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4, context_length=256)


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return random_model(SPEC, seed=3)


def _inputs(n_variates: int, tasks: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    rows = tasks * n_variates
    context = torch.randn(rows, 256, generator=gen).cumsum(-1) + 50
    context[:n_variates, :90] = torch.nan  # left padding of the first task
    context[rows - 1, 200:203] = torch.nan  # a gap in the last task
    return context, torch.arange(tasks).repeat_interleave(n_variates)


@pytest.mark.parametrize("tasks_per_chunk", [1, 2, 4, 5])
@pytest.mark.parametrize("output_only", [False, True])
def test_chunked_blocks_give_the_whole_batch_forecast(
    model: torch.nn.Module, tasks_per_chunk: int, output_only: bool
) -> None:
    context, group_ids = _inputs(3, tasks=5)  # 2 and 4 tasks per chunk leave a shorter last chunk
    whole = block_diagonal_view(model, 3)
    if output_only:
        whole = output_only_view(whole, 2)
    chunked = task_chunked_view(whole, n_variates=3, tasks_per_chunk=tasks_per_chunk)
    with torch.inference_mode():
        full = model(context=context, group_ids=group_ids, num_output_patches=2).quantile_preds
        expected = whole(context=context, group_ids=group_ids, num_output_patches=2).quantile_preds
        got = chunked(context=context, group_ids=group_ids, num_output_patches=2).quantile_preds
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got, full, rtol=1e-5, atol=1e-5)
    assert {id(p) for p in chunked.parameters()} == {id(p) for p in model.parameters()}


def test_a_chunked_block_slices_per_series_position_ids(model: torch.nn.Module) -> None:
    context, group_ids = _inputs(2, tasks=3)
    view = block_diagonal_view(model, 2)
    captured: dict[str, torch.Tensor] = {}

    def keep(_module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        captured.update(hidden=args[0], **{k: v for k, v in kwargs.items() if k != "output_attentions"})

    handle = view.encoder.block[0].register_forward_pre_hook(keep, with_kwargs=True)
    with torch.inference_mode():
        view(context=context, group_ids=group_ids, num_output_patches=2)
    handle.remove()
    hidden, batch = captured["hidden"], captured["hidden"].shape[0]
    per_series = captured["position_ids"].expand(batch, -1).contiguous()  # [B, T] instead of [1, T]
    kwargs = {"attention_mask": captured["attention_mask"], "group_time_mask": captured["group_time_mask"]}
    chunked = TaskChunkedBlock(view.encoder.block[0], n_variates=2, tasks_per_chunk=1)
    with torch.inference_mode():
        whole = view.encoder.block[0](hidden, position_ids=captured["position_ids"], **kwargs)[0]
        got = chunked(hidden, position_ids=per_series, **kwargs)[0]
    torch.testing.assert_close(got, whole, rtol=1e-5, atol=1e-5)


def test_a_chunked_block_rejects_partial_tasks(model: torch.nn.Module) -> None:
    block = TaskChunkedBlock(model.encoder.block[0], n_variates=4, tasks_per_chunk=1)
    hidden = torch.zeros(6, 3, 32)
    with pytest.raises(ValueError, match="whole tasks"):
        block(
            hidden,
            position_ids=torch.arange(3)[None],
            attention_mask=torch.zeros(6, 1, 1, 3),
            group_time_mask=torch.zeros(3, 1, 1, 1, 4),
        )
    with pytest.raises(ValueError, match=">= 1"):
        TaskChunkedBlock(model.encoder.block[0], n_variates=4, tasks_per_chunk=0)


def test_cpu_tasks_per_chunk_is_whole_tasks_below_the_batch() -> None:
    assert cpu_sizing.cpu_tasks_per_chunk(series=16, n_variates=4, tasks_per_batch=64) == 4
    assert cpu_sizing.cpu_tasks_per_chunk(series=3, n_variates=4, tasks_per_batch=64) == 1
    assert cpu_sizing.cpu_tasks_per_chunk(series=16, n_variates=4, tasks_per_batch=4) is None


@pytest.fixture()
def small_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """A cache budget of 8 series for the tiny model at context 304 (22 tokens x 32): chunks of 2 tasks."""
    monkeypatch.setattr(cpu_sizing, "CPU_ACTIVATION_BUDGET", 8 * 22 * 32)


@pytest.fixture(scope="module")
def contexts() -> np.ndarray:
    return random_walk_contexts([300, 37, 120, 16, 250, 300, 90], n_time=300, seed=5)


def _engine(model_dir: Path, *, chunks: bool, batch_size: int = 28) -> Chronos2Engine:
    engine = Chronos2Engine(
        EngineConfig(model=str(model_dir), device="cpu", compile="off", native=False, batch_size=batch_size)
    )
    engine.views.task_chunk_layout = chunks
    return engine


# 16: two batches side by side, which share the cache budget (8 series): chunks of one task each
@pytest.mark.parametrize(("batch_size", "workers", "per_chunk"), [(28, 1, 2), (16, 2, 1)])
def test_cpu_engine_chunks_large_batches_after_checking_and_matches_whole_batches(
    tiny_model_dir: Path,
    contexts: np.ndarray,
    small_budget: None,
    batch_size: int,
    workers: int,
    per_chunk: int,
) -> None:
    whole = _engine(tiny_model_dir, chunks=False, batch_size=batch_size)
    expected = whole.predict(contexts, 24)
    assert whole.record()["task_chunks"] is None and whole.plan(contexts, 24).tasks_per_chunk is None
    engine = _engine(tiny_model_dir, chunks=True, batch_size=batch_size)
    plan = engine.plan(contexts, 24)
    assert (plan.tasks_per_batch, plan.tasks_per_chunk, plan.workers) == (batch_size // 4, per_chunk, workers)
    np.testing.assert_allclose(engine.predict(contexts, 24), expected, rtol=1e-5, atol=1e-5)
    record = engine.record()
    assert record["task_chunks"] == per_chunk and record["block_diagonal_groups"] is True
    check = record["task_chunk_check"]
    assert check["passed"] and check["max_abs_diff"] <= check["tolerance"]
    engine.predict(contexts[:1], 24)  # one task: no chunks, no second check
    assert engine.record()["task_chunks"] == per_chunk and len(engine.views.chunk_checks) == 1
    assert engine.views.chunk_key is None


def test_when_chunked_blocks_differ_the_engine_runs_whole_batches_and_says_why(
    tiny_model_dir: Path,
    contexts: np.ndarray,
    small_budget: None,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    expected = _engine(tiny_model_dir, chunks=False).predict(contexts, 24)
    real = TaskChunkedBlock.forward

    def perturbed(self, hidden_states, **kwargs):
        out = real(self, hidden_states, **kwargs)
        return (out[0] + 1.0,)

    monkeypatch.setattr(TaskChunkedBlock, "forward", perturbed)
    engine = _engine(tiny_model_dir, chunks=True)
    with caplog.at_level(logging.INFO, logger="chronobt"):
        np.testing.assert_allclose(engine.predict(contexts, 24), expected, rtol=1e-5, atol=1e-5)
    record = engine.record()
    assert record["task_chunks"] is None and record["block_diagonal_groups"] is True
    assert "differs from the full forward" in record["task_chunk_check"]["reason"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "whole batches" in warnings[0]


def test_without_block_diagonal_attention_nothing_is_chunked(
    tiny_model_dir: Path, contexts: np.ndarray, small_budget: None
) -> None:
    engine = _engine(tiny_model_dir, chunks=True)
    engine.views.block_diagonal_layout = False
    assert engine.plan(contexts, 24).tasks_per_chunk is None
    engine.predict(contexts, 24)
    assert engine.record()["task_chunks"] is None and engine.record()["task_chunk_check"] is None


def test_a_long_horizon_call_after_a_chunked_one_runs_chronos_unrolling(
    tmp_path: Path, contexts: np.ndarray, small_budget: None
) -> None:
    spec = ArchSpec(
        d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=4, context_length=256, max_output_patches=2
    )
    model_dir = save_random_checkpoint(tmp_path / "two-patches", spec, seed=1)
    engine = _engine(model_dir, chunks=True)
    engine.predict(contexts, 24)
    assert engine.record()["task_chunks"] == 2
    horizon = 3 * engine.output_patch_size + 5  # 4 patches > max_output_patches = 2: unrolled
    assert engine.plan(contexts[:3], horizon).tasks_per_chunk is None
    got = engine.predict(contexts[:3], horizon)
    assert engine.views.chunk_key is None and engine.record()["long_horizon_unrolling"] is True
    expected = _engine(model_dir, chunks=False).predict(contexts[:3], horizon)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
