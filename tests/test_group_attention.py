"""Block-diagonal group attention: same forecasts as chronos' dense masked attention, model untouched."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from chronobt.engine.checkpoints import ArchSpec, random_model
from chronobt.engine.core import Chronos2Engine, EngineConfig
from chronobt.engine.views import group_attention
from chronobt.engine.views.group_attention import (
    BlockDiagonalGroupAttention,
    block_diagonal_view,
    per_task_mask,
    supports_block_diagonal,
)
from chronobt.engine.views.lastblock import output_only_view
from tests.synthetic import random_walk_contexts

SPEC = ArchSpec(d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4, context_length=256)


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return random_model(SPEC, seed=3)


def _inputs(n_variates: int, tasks: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    rows = tasks * n_variates
    context = torch.randn(rows, 256, generator=gen).cumsum(-1) + 50
    context[:n_variates, :90] = torch.nan  # left padding of the first task
    context[rows - 1, 200:203] = torch.nan  # a gap inside one variate's context
    context[n_variates : 2 * n_variates, 100:140] = torch.nan  # a gap in every variate of the second task
    group_ids = torch.arange(tasks).repeat_interleave(n_variates)
    return context, group_ids


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize(
    ("n_variates", "n_out", "output_only"), [(4, 2, False), (4, 2, True), (1, 1, True), (3, 3, True)]
)
def test_view_equals_the_dense_forward(
    model: torch.nn.Module, attn: str, n_variates: int, n_out: int, output_only: bool
) -> None:
    context, group_ids = _inputs(n_variates)
    view = block_diagonal_view(model, n_variates)
    if output_only:
        view = output_only_view(view, n_out)
    model.config._attn_implementation = attn
    try:
        with torch.inference_mode():
            full = model(context=context, group_ids=group_ids, num_output_patches=n_out).quantile_preds
            fast = view(context=context, group_ids=group_ids, num_output_patches=n_out).quantile_preds
    finally:
        model.config._attn_implementation = "sdpa"
    assert fast.shape == full.shape and torch.isfinite(full).all()
    torch.testing.assert_close(fast, full, rtol=1e-5, atol=1e-5)


def test_tasks_stay_apart(model: torch.nn.Module) -> None:
    """Changing one task's context moves only that task's forecast."""
    context, group_ids = _inputs(4)
    view = output_only_view(block_diagonal_view(model, 4), 2)
    changed = context.clone()
    changed[4:8] *= 1.5
    with torch.inference_mode():
        a = view(context=context, group_ids=group_ids, num_output_patches=2).quantile_preds
        b = view(context=changed, group_ids=group_ids, num_output_patches=2).quantile_preds
    torch.testing.assert_close(a[:4], b[:4], rtol=0, atol=0)
    torch.testing.assert_close(a[8:], b[8:], rtol=0, atol=0)
    assert not torch.allclose(a[4:8], b[4:8])


def test_view_shares_parameters_and_leaves_the_model_alone(model: torch.nn.Module) -> None:
    before = [type(block.layer[1]) for block in model.encoder.block]
    view = block_diagonal_view(model, 4)
    assert {id(p) for p in view.parameters()} == {id(p) for p in model.parameters()}
    assert [type(block.layer[1]) for block in model.encoder.block] == before
    assert all(isinstance(block.layer[1], BlockDiagonalGroupAttention) for block in view.encoder.block)
    assert "_construct_and_invert_group_time_mask" not in vars(model.encoder)
    assert supports_block_diagonal(model) and not supports_block_diagonal(view)
    assert not supports_block_diagonal(torch.nn.Linear(2, 2))


def test_per_task_mask_is_time_first_and_rejects_partial_tasks() -> None:
    observed = torch.ones(6, 5)
    observed[1, 2] = 0
    mask = per_task_mask(torch.zeros(6), observed, torch.float32, n_variates=3)
    assert mask.shape == (5, 2, 1, 1, 3)
    assert mask[2, 0, 0, 0, 1] == torch.finfo(torch.float32).min and mask.sum() == mask[2, 0, 0, 0, 1]
    with pytest.raises(ValueError, match="whole tasks"):
        per_task_mask(torch.zeros(6), observed, torch.float32, n_variates=4)


@pytest.fixture(scope="module")
def engine_contexts() -> np.ndarray:
    return random_walk_contexts([300, 37, 120, 16, 250], n_time=300, seed=5)


@pytest.fixture(scope="module")
def dense_forecast(tiny_model_dir: Path, engine_contexts: np.ndarray) -> np.ndarray:
    dense = Chronos2Engine(
        EngineConfig(model=str(tiny_model_dir), device="cpu", compile="off", native=False, batch_size=8)
    )
    dense.views.block_diagonal_layout = False
    forecast = dense.predict(engine_contexts, 24)
    record = dense.record()
    assert record["block_diagonal_groups"] is False and "layout" in record["block_diagonal_check"]["reason"]
    return forecast


@pytest.mark.parametrize("batch_size", [4, 8, 20])
def test_engine_uses_the_view_after_checking_it_and_matches_dense_attention(
    tiny_model_dir: Path, engine_contexts: np.ndarray, dense_forecast: np.ndarray, batch_size: int
) -> None:
    engine = Chronos2Engine(
        EngineConfig(
            model=str(tiny_model_dir), device="cpu", compile="off", native=False, batch_size=batch_size
        )
    )
    np.testing.assert_allclose(engine.predict(engine_contexts, 24), dense_forecast, rtol=1e-5, atol=1e-5)
    engine.predict(engine_contexts[:2], 24)
    record = engine.record()
    assert record["block_diagonal_groups"] is True and record["output_only_last_block"] is True
    check = record["block_diagonal_check"]
    assert check["passed"] and (check["n_variates"], check["num_output_patches"]) == (4, 2)
    assert check["max_abs_diff"] <= check["tolerance"]
    assert list(engine.views.group_checks) == [(2, 4)]  # once per output patches and variates


def test_when_the_view_differs_the_engine_runs_dense_attention_and_records_why(
    tiny_model_dir: Path,
    engine_contexts: np.ndarray,
    dense_forecast: np.ndarray,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    real = BlockDiagonalGroupAttention.forward

    def perturbed(self, hidden_states, attention_mask, output_attentions=False):
        out = real(self, hidden_states, attention_mask, output_attentions)
        out.hidden_states = out.hidden_states + 1.0
        return out

    monkeypatch.setattr(BlockDiagonalGroupAttention, "forward", perturbed)
    engine = Chronos2Engine(
        EngineConfig(model=str(tiny_model_dir), device="cpu", compile="off", native=False, batch_size=8)
    )
    with caplog.at_level(logging.INFO, logger="chronobt"):
        forecast = engine.predict(engine_contexts, 24)
    np.testing.assert_allclose(forecast, dense_forecast, rtol=1e-5, atol=1e-5)
    record = engine.record()
    assert record["block_diagonal_groups"] is False and record["output_only_last_block"] is True
    assert "differs from the full forward" in record["block_diagonal_check"]["reason"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "dense group attention" in warnings[0]


def test_a_view_that_cannot_be_built_fails_the_check_not_the_run(
    tiny_model_dir: Path,
    engine_contexts: np.ndarray,
    dense_forecast: np.ndarray,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(model: object, n_variates: int) -> None:
        raise AttributeError("'Chronos2EncoderBlock' object has no attribute 'layer'")

    monkeypatch.setattr(group_attention, "block_diagonal_view", broken)
    engine = Chronos2Engine(
        EngineConfig(model=str(tiny_model_dir), device="cpu", compile="off", native=False, batch_size=8)
    )
    np.testing.assert_allclose(engine.predict(engine_contexts, 24), dense_forecast, rtol=1e-5, atol=1e-5)
    check = engine.record()["block_diagonal_check"]
    assert check["passed"] is False and "raised AttributeError" in check["reason"]
