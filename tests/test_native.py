"""The native forward: chronos' numbers from plain torch, checked before use, chronos loaded when needed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from chronobt.engine import Chronos2Engine, EngineConfig
from chronobt.engine.checkpoints import ArchSpec, save_random_checkpoint
from chronobt.engine.native.loading import NativeUnavailable, load_native, read_config
from tests.synthetic import random_walk_contexts

CPU = torch.device("cpu")


def engine_for(model_dir: Path, **overrides: object) -> Chronos2Engine:
    options: dict = {"model": str(model_dir), "device": "cpu", "compile": "off", "batch_size": 8}
    options.update(overrides)
    return Chronos2Engine(EngineConfig(**options))


@pytest.fixture(scope="module")
def deep_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three layers and gelu: every block, the last one output-only, and another activation."""
    spec = ArchSpec(d_model=32, d_kv=8, d_ff=64, num_layers=3, num_heads=4, context_length=256)
    folder = save_random_checkpoint(tmp_path_factory.mktemp("models") / "deep", spec, seed=3)
    config = json.loads((folder / "config.json").read_text())
    config["feed_forward_proj"] = config["dense_act_fn"] = "gelu"
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.mark.parametrize(
    ("n_variates", "tasks", "length", "n_out", "per_chunk"),
    [(1, 3, 300, 1, None), (4, 3, 200, 2, None), (4, 3, 37, 1, 1), (2, 5, 256, 4, 2), (3, 2, 600, 3, None)],
)
def test_the_native_forward_equals_chronos_full_forward(
    deep_model_dir: Path, n_variates: int, tasks: int, length: int, n_out: int, per_chunk: int | None
) -> None:
    from chronos import Chronos2Pipeline

    full = Chronos2Pipeline.from_pretrained(str(deep_model_dir)).model.eval()
    native = load_native(deep_model_dir, device=CPU, dtype=torch.float32)
    gen = torch.Generator().manual_seed(n_variates * 100 + length)
    context = 100.0 + torch.randn(tasks * n_variates, length, generator=gen).cumsum(-1)
    context[:n_variates, : length // 3] = torch.nan  # a shorter first task
    context[-1, 5] = torch.nan  # a gap
    group_ids = torch.arange(tasks).repeat_interleave(n_variates)
    future = torch.full((tasks * n_variates, n_out * 16 - 5), torch.nan)
    future[::n_variates] = 100.0 + torch.randn(tasks, n_out * 16 - 5, generator=gen)  # a known covariate
    with torch.inference_mode():
        for known in (None, future):
            kwargs = {} if known is None else {"future_covariates": known}
            want = full(
                context=context, group_ids=group_ids, num_output_patches=n_out, **kwargs
            ).quantile_preds
            got = native(
                context, group_ids, n_out, known, n_variates=n_variates, tasks_per_chunk=per_chunk
            ).quantile_preds
            assert got.shape == want.shape == (tasks * n_variates, 21, n_out * 16)
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-4 * float(want.abs().max()))


def test_group_ids_that_are_not_whole_tasks_in_order_are_refused(tiny_model_dir: Path) -> None:
    native = load_native(tiny_model_dir, device=CPU, dtype=torch.float32)
    context = torch.ones(4, 64)
    with pytest.raises(ValueError, match="repeat_interleave"):
        native(context, torch.tensor([0, 1, 0, 1]), 1, n_variates=2)
    with pytest.raises(ValueError, match="whole tasks"):
        native(context, torch.zeros(4, dtype=torch.long), 1, n_variates=3)


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda c: c.update(feed_forward_proj="gated-gelu"), "feed_forward_proj"),
        (lambda c: c["chronos_config"].update(output_patch_size=8), "output_patch_size"),
        (lambda c: c.update(architectures=["T5Model"]), "architectures"),
        (lambda c: c.pop("chronos_config"), "config.json"),
        (lambda c: c.update(chronos_config=[]), "config.json"),  # malformed: a reason, not a traceback
        (lambda c: c.update(dense_act_fn="tanh"), "dense_act_fn"),  # chronos reads dense_act_fn first
    ],
)
def test_a_model_the_native_forward_does_not_compute_is_named_and_chronos_runs(
    tiny_model_dir: Path, tmp_path: Path, edit, reason: str
) -> None:
    folder = tmp_path / "edited"
    folder.mkdir()
    config = json.loads((tiny_model_dir / "config.json").read_text())
    edit(config)
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "model.safetensors").symlink_to(tiny_model_dir / "model.safetensors")
    with pytest.raises(NativeUnavailable, match=reason):
        read_config(folder)


def test_weights_of_another_layout_are_refused_and_the_engine_loads_chronos(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "renamed"
    folder.mkdir()
    (folder / "config.json").write_text((tiny_model_dir / "config.json").read_text())
    state = load_file(str(tiny_model_dir / "model.safetensors"))
    state["extra.weight"] = torch.zeros(2)
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(NativeUnavailable, match="layout"):
        load_native(folder, device=CPU, dtype=torch.float32)
    del state["extra.weight"]
    save_file(state, str(folder / "model.safetensors"))
    assert load_native(folder, device=CPU, dtype=torch.float32) is not None

    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(b"")  # not a file the native loader reads
    with pytest.raises(NativeUnavailable, match=r"model\.safetensors"):
        load_native(folder, device=CPU, dtype=torch.float32)


def test_the_engine_runs_the_native_forward_once_checked_with_chronos_numbers(tiny_model_dir: Path) -> None:
    contexts = random_walk_contexts([300, 37, 120, 16, 250], n_time=300, seed=5)
    native = engine_for(tiny_model_dir)
    chronos = engine_for(tiny_model_dir, native=False)
    got, want = native.predict(contexts, 24), chronos.predict(contexts, 24)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4 * float(np.abs(want).max()))
    record = native.record()
    assert record["native_forward"] is True and record["native_problem"] is None
    assert record["native_check"]["passed"] is True and record["native_check"]["n_variates"] == 4
    assert record["output_only_last_block"] is None  # chronos' views were never built
    off = chronos.record()
    assert off["native_forward"] is False and "turned off" in off["native_problem"]
    assert off["output_only_last_block"] is True and off["chronos_loaded"] is True


def test_a_native_forward_that_differs_fails_its_check_and_chronos_forward_runs(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    contexts = random_walk_contexts([120, 80], n_time=120, seed=6)
    want = engine_for(tiny_model_dir, native=False).predict(contexts, 16)
    engine = engine_for(tiny_model_dir)
    assert engine.stack.native is not None
    with torch.no_grad():
        engine.stack.native.output_patch_embedding.residual_layer.bias.add_(0.5)  # changed maths
    got = engine.predict(contexts, 16)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4 * float(np.abs(want).max()))
    record = engine.record()
    assert record["native_forward"] is False and record["chronos_loaded"] is True
    assert record["native_check"]["passed"] is False
    assert "differs from the full forward" in record["native_check"]["reason"]
    assert record["block_diagonal_groups"] is True  # chronos' own checked views run instead


def test_a_stored_verdict_is_reused_without_loading_chronos(tiny_model_dir: Path, tmp_path: Path) -> None:
    contexts = random_walk_contexts([200, 90], n_time=200, seed=7)
    first = engine_for(tiny_model_dir, cache_dir=tmp_path)
    a = first.predict(contexts, 8)
    assert first.record()["chronos_loaded"] is True and first.record()["view_checks"]["checked"] == 1
    second = engine_for(tiny_model_dir, cache_dir=tmp_path)
    b = second.predict(contexts, 8)
    record = second.record()
    assert record["chronos_loaded"] is False and record["native_check"]["reused"] is True
    assert record["view_checks"] == {"cache": str(tmp_path / "view-checks"), "reused": 1, "checked": 0}
    np.testing.assert_array_equal(a, b)
    # another shape (variates) is another key: checked again, chronos loaded for it
    third = engine_for(tiny_model_dir, cache_dir=tmp_path)
    third.predict(contexts[:, :2], 8)
    assert third.record()["chronos_loaded"] is True and third.record()["view_checks"]["checked"] == 1


def test_the_verdict_key_holds_the_versions_that_can_change_the_answer(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    engine = engine_for(tiny_model_dir, cache_dir=tmp_path)
    key = engine._verdicts.key("native forward", n_out=1)
    assert {"chronos", "transformers", "torch", "chronobt", "code"} <= set(key["versions"])
    assert key["versions"]["torch"] == torch.__version__ and len(key["versions"]["code"]) == 64


def test_a_stored_dense_act_fn_wins_over_feed_forward_proj_as_in_chronos(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "gelu"
    folder.mkdir()
    config = json.loads((tiny_model_dir / "config.json").read_text())
    config["feed_forward_proj"], config["dense_act_fn"] = "relu", "gelu"
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "model.safetensors").symlink_to(tiny_model_dir / "model.safetensors")
    assert read_config(folder).dense_act_fn == "gelu"


def test_an_edited_config_is_another_verdict_key(tiny_model_dir: Path, tmp_path: Path) -> None:
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    contexts = random_walk_contexts([120, 80], n_time=120, seed=8)
    engine_for(folder, cache_dir=tmp_path / "cache").predict(contexts, 8)
    config = json.loads((folder / "config.json").read_text())
    config["dense_act_fn"] = "gelu"  # the same weights, other maths
    (folder / "config.json").write_text(json.dumps(config))
    edited = engine_for(folder, cache_dir=tmp_path / "cache")
    got = edited.predict(contexts, 8)
    record = edited.record()
    assert record["view_checks"]["reused"] == 0 and record["chronos_loaded"] is True
    want = engine_for(folder, native=False).predict(contexts, 8)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4 * float(np.abs(want).max()))


def test_future_covariates_longer_than_the_output_patches_are_refused(tiny_model_dir: Path) -> None:
    native = load_native(tiny_model_dir, device=CPU, dtype=torch.float32)
    with pytest.raises(ValueError, match="more than 16"):
        native(torch.ones(2, 64), torch.arange(2), 1, torch.ones(2, 17), n_variates=1)


def test_weights_are_rounded_to_the_configs_dtype_as_transformers_loads_them(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "bf16"
    folder.mkdir()
    config = json.loads((tiny_model_dir / "config.json").read_text())
    config["dtype"] = "bfloat16"
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "model.safetensors").symlink_to(tiny_model_dir / "model.safetensors")
    stored = load_native(tiny_model_dir, device=CPU, dtype=torch.float32).shared.weight
    rounded = load_native(folder, device=CPU, dtype=torch.float32).shared.weight
    assert rounded.dtype == torch.float32
    assert torch.equal(rounded, stored.to(torch.bfloat16).float()) and not torch.equal(rounded, stored)
