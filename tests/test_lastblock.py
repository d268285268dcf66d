"""The output-only last block: same forecasts as the full forward, original model untouched."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from chronobt.engine.checkpoints import ArchSpec, random_model
from chronobt.engine.core import Chronos2Engine, EngineConfig
from chronobt.engine.views import check as view_check
from chronobt.engine.views import lastblock
from chronobt.engine.views.check import CHECK_RTOL, check_view
from chronobt.engine.views.lastblock import OutputOnlyBlock, output_only_view, supports_output_only
from tests.synthetic import random_walk_contexts

SPEC = ArchSpec(d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4, context_length=256)


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return random_model(SPEC, seed=3)


def _inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    context = torch.randn(12, 256, generator=gen).cumsum(-1) + 50
    context[:4, :90] = torch.nan  # left padding of the first group
    context[5, 200:203] = torch.nan  # a gap inside a context
    group_ids = torch.arange(3).repeat_interleave(4)  # three groups of four variates
    return context, group_ids


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("n_out", [1, 2, 3])
def test_view_equals_the_full_forward(model: torch.nn.Module, attn: str, n_out: int) -> None:
    context, group_ids = _inputs()
    view = output_only_view(model, n_out)
    model.config._attn_implementation = attn
    try:
        with torch.inference_mode():
            full = model(context=context, group_ids=group_ids, num_output_patches=n_out).quantile_preds
            fast = view(context=context, group_ids=group_ids, num_output_patches=n_out).quantile_preds
    finally:
        model.config._attn_implementation = "sdpa"
    assert fast.shape == full.shape == (12, len(SPEC.quantiles), n_out * SPEC.patch_size)
    assert torch.isfinite(full).all()
    torch.testing.assert_close(fast, full, rtol=1e-5, atol=1e-5)


def test_groups_stay_apart_in_the_last_block(model: torch.nn.Module) -> None:
    """Changing one group's context moves only that group's forecast (group mask kept in the tail)."""
    context, group_ids = _inputs(seed=1)
    view = output_only_view(model, 2)
    changed = context.clone()
    changed[4:8] *= 3.0
    with torch.inference_mode():
        before = view(context=context, group_ids=group_ids, num_output_patches=2).quantile_preds
        after = view(context=changed, group_ids=group_ids, num_output_patches=2).quantile_preds
    torch.testing.assert_close(after[:4], before[:4])
    torch.testing.assert_close(after[8:], before[8:])
    assert not torch.allclose(after[4:8], before[4:8])


def test_view_shares_parameters_and_leaves_the_model_alone(model: torch.nn.Module) -> None:
    blocks_before = list(model.encoder.block)
    view = output_only_view(model, 2)
    assert list(model.encoder.block) == blocks_before
    assert not any(isinstance(b, OutputOnlyBlock) for b in model.encoder.block)
    assert isinstance(view.encoder.block[-1], OutputOnlyBlock)
    model_params = {name: p.data_ptr() for name, p in model.named_parameters()}
    view_params = {
        re.sub(r"^(encoder\.block\.\d+)\.block\.", r"\1.", n): p.data_ptr()
        for n, p in view.named_parameters()
    }
    assert view_params == model_params


def test_attention_weights_requested_fall_through_to_the_whole_block(model: torch.nn.Module) -> None:
    context, group_ids = _inputs()
    view = output_only_view(model, 2)
    with torch.inference_mode():
        full = model(context=context, group_ids=group_ids, num_output_patches=2, output_attentions=True)
        fast = view(context=context, group_ids=group_ids, num_output_patches=2, output_attentions=True)
    torch.testing.assert_close(fast.quantile_preds, full.quantile_preds)
    assert fast.enc_time_self_attn_weights is not None
    torch.testing.assert_close(fast.enc_time_self_attn_weights[-1], full.enc_time_self_attn_weights[-1])


def test_other_layouts_are_not_supported(model: torch.nn.Module) -> None:
    assert supports_output_only(model)
    assert not supports_output_only(torch.nn.Linear(2, 2))
    odd = output_only_view(model, 1)  # its last block is no longer a plain Chronos-2 block
    assert not supports_output_only(odd)
    with pytest.raises(ValueError, match="n_out"):
        OutputOnlyBlock(model.encoder.block[-1], 0)


@pytest.fixture(scope="module")
def engine_contexts() -> np.ndarray:
    return random_walk_contexts([300, 37, 120, 16, 250], n_time=300, seed=4)


@pytest.fixture(scope="module")
def full_forecast(tiny_model_dir: Path, engine_contexts: np.ndarray) -> np.ndarray:
    full = Chronos2Engine(EngineConfig(model=str(tiny_model_dir), device="cpu", compile="off", native=False))
    full.views.output_only_layout = (
        False  # the plain chronos forward, as on a model without the expected layout
    )
    full.views.block_diagonal_layout = False  # dense group attention too
    forecast = full.predict(engine_contexts, 24)
    assert not full.views.views
    record = full.record()
    assert record["output_only_last_block"] is False
    assert "layout" in record["output_only_check"]["reason"]
    return forecast


def test_engine_uses_the_view_after_checking_it_and_matches_the_full_model(
    tiny_model_dir: Path, engine_contexts: np.ndarray, full_forecast: np.ndarray
) -> None:
    fast = Chronos2Engine(EngineConfig(model=str(tiny_model_dir), device="cpu", compile="off", native=False))
    assert fast.record()["output_only_last_block"] is True  # the layout; checked on the first call
    np.testing.assert_allclose(fast.predict(engine_contexts, 24), full_forecast, rtol=1e-5, atol=1e-5)
    assert set(fast.views.views) == {2}
    check = fast.record()["output_only_check"]
    assert check["passed"] is True and check["num_output_patches"] == 2
    assert check["max_abs_diff"] <= check["tolerance"]
    fast.predict(engine_contexts[:2], 24)
    assert len(fast.views.checks) == 1  # once per number of output patches


def _perturbed(self: OutputOnlyBlock, hidden_states: torch.Tensor, **kwargs: object):
    out = REAL_FORWARD(self, hidden_states, **kwargs)
    out.hidden_states = out.hidden_states + 1.0  # a layout change the names and types did not catch
    return out


def _raising(self: OutputOnlyBlock, hidden_states: torch.Tensor, **kwargs: object):
    raise RuntimeError("shape '[12, 2, 4, 8]' is invalid for input of size 2048")


REAL_FORWARD = OutputOnlyBlock.forward


@pytest.mark.parametrize(
    ("forward", "reason"), [(_perturbed, "differs from the full forward"), (_raising, "raised RuntimeError")]
)
def test_when_the_view_differs_or_raises_the_engine_runs_the_full_forward_and_records_why(
    tiny_model_dir: Path,
    engine_contexts: np.ndarray,
    full_forecast: np.ndarray,
    forward: object,
    reason: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(OutputOnlyBlock, "forward", forward)
    engine = Chronos2Engine(
        EngineConfig(model=str(tiny_model_dir), device="cpu", compile="off", native=False)
    )
    with caplog.at_level(logging.INFO, logger="chronobt"):
        forecast = engine.predict(engine_contexts, 24)
        engine.predict(engine_contexts, 24)
    np.testing.assert_allclose(forecast, full_forecast, rtol=1e-5, atol=1e-5)
    assert not engine.views.views
    record = engine.record()
    assert record["output_only_last_block"] is False
    check = record["output_only_check"]
    assert check["passed"] is False and reason in check["reason"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and reason in warnings[0] and "full forward" in warnings[0]


def test_a_view_that_cannot_be_built_fails_the_check_not_the_run(
    tiny_model_dir: Path,
    engine_contexts: np.ndarray,
    full_forecast: np.ndarray,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(model: object, n_out: int) -> None:
        raise AttributeError("'Chronos2Encoder' object has no attribute 'block'")

    monkeypatch.setattr(lastblock, "output_only_view", broken)
    engine = Chronos2Engine(
        EngineConfig(model=str(tiny_model_dir), device="cpu", compile="off", native=False)
    )
    np.testing.assert_allclose(engine.predict(engine_contexts, 24), full_forecast, rtol=1e-5, atol=1e-5)
    check = engine.record()["output_only_check"]
    assert check["passed"] is False and "raised AttributeError" in check["reason"]


def test_check_accepts_the_view_within_the_documented_tolerance(model: torch.nn.Module) -> None:
    check = check_view(model, output_only_view(model, 2), n_out=2, n_variates=4, context_length=512)
    assert check.passed and check.max_abs_diff is not None and check.tolerance is not None
    assert check.max_abs_diff <= check.tolerance
    with torch.inference_mode():
        context, group_ids = view_check.check_inputs(4, 512)
        full = model(context=context, group_ids=group_ids, num_output_patches=2).quantile_preds
    assert context.shape == (8, view_check.CHECK_MAX_CONTEXT) and torch.isnan(context[:4, 0]).all()
    assert check.tolerance == pytest.approx(CHECK_RTOL[torch.float32] * (1 + float(full.abs().max())))
