"""Chronos2Engine: reference equivalence with chronos' predict_df, compile + fallback, OOM halving."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import chronobt.engine.compilation as compilation
import chronobt.engine.cpu_sizing as cpu_sizing
from chronobt.engine.checkpoints import ArchSpec, save_random_checkpoint
from chronobt.engine.core import Chronos2Engine, EngineConfig, Plan
from chronobt.errors import ConfigError, ModelError
from tests.synthetic import random_walk_contexts

HORIZON = 24
CPU = torch.device("cpu")


def engine_for(model_dir: Path, wrap_forward=None, **overrides: object) -> Chronos2Engine:
    options: dict = {"model": str(model_dir), "device": "cpu", "compile": "off", "batch_size": 8}
    options.update(overrides)
    return Chronos2Engine(EngineConfig(**options), wrap_forward=wrap_forward)


@pytest.fixture(scope="module")
def eager(tiny_model_dir: Path) -> Chronos2Engine:
    return engine_for(tiny_model_dir)


@pytest.fixture(scope="module")
def contexts() -> np.ndarray:
    # 5 tasks, 2 per batch at batch size 8 -> 3 batches, the last one padded with a dummy task
    return random_walk_contexts([300, 37, 120, 16, 250], n_time=300)


@pytest.fixture(scope="module")
def eager_forecast(eager: Chronos2Engine, contexts: np.ndarray) -> np.ndarray:
    return eager.predict(contexts, HORIZON)


@pytest.fixture(scope="module")
def custom_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny checkpoint with 5 quantiles and at most 2 output patches (long horizons unroll)."""
    spec = ArchSpec(
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=1,
        num_heads=4,
        context_length=256,
        max_output_patches=2,
        quantiles=(0.1, 0.25, 0.5, 0.75, 0.9),
    )
    return save_random_checkpoint(tmp_path_factory.mktemp("models") / "custom", spec, seed=1)


def predict_df_one_window(pipeline, context: np.ndarray, horizon: int) -> pd.DataFrame:
    """chronos' own slow path on one window: context [variates, time] without NaN."""
    n_variates, n_time = context.shape
    frame = pd.DataFrame(
        {
            "item_id": "w",
            "timestamp": pd.date_range("2024-01-01", periods=n_time, freq="h"),
            **{f"v{j}": context[j] for j in range(n_variates)},
        }
    )
    targets = [f"v{j}" for j in range(n_variates)]
    return pipeline.predict_df(frame, target=targets, prediction_length=horizon, freq="h")


def test_batched_forecast_equals_predict_df_called_per_window(tiny_model_dir: Path) -> None:
    # lengths beyond the model's 512 context are truncated by both paths; 7 tasks > one batch of 2
    lengths = [600, 37, 512, 16, 130, 1, 333]
    windows = random_walk_contexts(lengths, n_time=600, seed=3)
    engine = engine_for(tiny_model_dir)
    forecast = engine.predict(windows, HORIZON)
    assert forecast.dtype == np.float32
    assert forecast.shape == (len(lengths), 4, len(engine.quantile_levels), HORIZON)
    for task, length in enumerate(lengths):
        reference = predict_df_one_window(engine.pipeline, windows[task, :, -length:], HORIZON)
        levels = [q for q in engine.quantile_levels if str(q) in reference.columns]
        assert len(levels) == 9
        for variate in range(4):
            rows = reference[reference["target_name"] == f"v{variate}"]
            expected = rows[[str(q) for q in levels]].to_numpy().T  # [levels, horizon]
            got = forecast[task, variate, [engine.quantile_levels.index(q) for q in levels]]
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
            median = forecast[task, variate, engine.median_index]
            np.testing.assert_allclose(median, rows["predictions"].to_numpy(), rtol=1e-5, atol=1e-5)


def test_tasks_do_not_influence_each_other(eager: Chronos2Engine, contexts: np.ndarray) -> None:
    alone = eager.predict(contexts[2:3], HORIZON)
    together = eager.predict(contexts, HORIZON)
    np.testing.assert_allclose(together[2:3], alone, rtol=1e-5, atol=1e-5)


def test_quantile_levels_patch_and_context_are_read_from_the_model(custom_model_dir: Path) -> None:
    engine = engine_for(custom_model_dir)
    assert engine.quantile_levels == (0.1, 0.25, 0.5, 0.75, 0.9)
    assert engine.median_index == 2
    assert (engine.patch_size, engine.max_context) == (16, 256)
    forecast = engine.predict(random_walk_contexts([100], n_time=100), HORIZON)
    assert forecast.shape == (1, 4, 5, HORIZON)


def test_horizon_beyond_max_output_patches_matches_chronos_unrolling(custom_model_dir: Path) -> None:
    engine = engine_for(custom_model_dir)
    windows = random_walk_contexts([200, 90, 150], n_time=200, seed=5)
    horizon = 3 * engine.output_patch_size + 5  # 4 patches > max_output_patches = 2
    forecast = engine.predict(windows, horizon)
    assert engine.record()["long_horizon_unrolling"] is True
    for task in range(len(windows)):
        context = windows[task][:, ~np.isnan(windows[task]).all(axis=0)]
        with pytest.warns(UserWarning, match="prediction length"):  # chronos' own long-horizon warning
            (expected,) = engine.pipeline.predict(
                [context], prediction_length=horizon, unrolled_quantiles=[0.1, 0.5, 0.9]
            )
        np.testing.assert_allclose(forecast[task], expected.numpy(), rtol=1e-5, atol=1e-5)


def test_progress_is_called_after_each_batch(eager: Chronos2Engine, contexts: np.ndarray) -> None:
    calls: list[tuple[int, int]] = []
    eager.predict(contexts, HORIZON, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(2, 5), (4, 5), (5, 5)]


def failing_compiler(fail_at_call: int, *, nonfinite: bool = False):
    """A stand-in for torch.compile whose module misbehaves from its ``fail_at_call``-th call on."""

    class InductorError(RuntimeError):
        """Looks like torch._inductor.exc.InductorError."""

    calls = {"n": 0}

    def compile_(fn, backend, mode):
        def compiled(*args):
            calls["n"] += 1
            if calls["n"] < fail_at_call:
                return fn(*args)
            if nonfinite:
                return fn(*args) * torch.nan
            raise InductorError("C++ compile error\nlong traceback")

        return compiled

    return compile_, calls


@pytest.mark.parametrize("fail_at_call", [1, 2])
def test_when_compiled_forward_raises_then_engine_falls_back_to_eager_once(
    tiny_model_dir: Path,
    contexts: np.ndarray,
    eager_forecast: np.ndarray,
    fail_at_call: int,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    compile_, calls = failing_compiler(fail_at_call)
    monkeypatch.setattr(compilation, "_compile", compile_)
    engine = engine_for(tiny_model_dir, compile="on")
    with caplog.at_level(logging.WARNING, logger="chronobt"):
        forecast = engine.predict(contexts, HORIZON)
        again = engine.predict(contexts, HORIZON)
    np.testing.assert_array_equal(forecast, eager_forecast)
    np.testing.assert_array_equal(again, eager_forecast)
    assert calls["n"] == fail_at_call  # never retried after the failure
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "InductorError" in warnings[0].getMessage()
    compile_record = engine.record()["compile"]
    assert compile_record["fallback_reason"] == "InductorError: C++ compile error"
    assert compile_record["used"] is (fail_at_call > 1)


def test_when_compiled_forward_returns_nonfinite_then_engine_falls_back_to_eager(
    tiny_model_dir: Path,
    contexts: np.ndarray,
    eager_forecast: np.ndarray,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    compile_, _ = failing_compiler(2, nonfinite=True)
    monkeypatch.setattr(compilation, "_compile", compile_)
    engine = engine_for(tiny_model_dir, compile="on")
    with caplog.at_level(logging.WARNING, logger="chronobt"):
        forecast = engine.predict(contexts, HORIZON)
    np.testing.assert_array_equal(forecast, eager_forecast)
    assert "non-finite" in engine.record()["compile"]["fallback_reason"]
    assert sum(r.levelno == logging.WARNING for r in caplog.records) == 1


@pytest.fixture(scope="module")
def counting_backend() -> dict[str, int]:
    """A registered torch.compile backend that runs the captured graph eagerly and counts compilations."""
    from torch._dynamo.backends.registry import register_backend

    counter = {"compilations": 0}

    def backend(graph_module, example_inputs):
        counter["compilations"] += 1
        return graph_module.forward

    register_backend(backend, name="chronobt_test_counting")
    return counter


def test_run_with_varying_batch_sizes_and_lengths_compiles_exactly_once(
    tiny_model_dir: Path, counting_backend: dict[str, int], eager: Chronos2Engine
) -> None:
    torch._dynamo.reset()
    before = counting_backend["compilations"]
    engine = engine_for(tiny_model_dir, compile="on", compile_backend="chronobt_test_counting")
    first = random_walk_contexts([300, 37, 120, 16, 250], n_time=300, seed=1)  # 3 batches, last padded
    second = random_walk_contexts([40, 200, 7], n_time=200, seed=2)  # fewer tasks, shorter windows
    forecasts = [engine.predict(first, HORIZON), engine.predict(second, HORIZON)]
    assert counting_backend["compilations"] - before == 1
    record = engine.record()["compile"]
    assert (record["compilations"], record["used"], record["fallback_reason"]) == (1, True, None)
    for forecast, windows in zip(forecasts, (first, second), strict=True):
        np.testing.assert_allclose(forecast, eager.predict(windows, HORIZON), rtol=1e-5, atol=1e-5)


def test_real_torch_compile_with_aot_eager_gives_eager_numbers(
    tiny_model_dir: Path, contexts: np.ndarray, eager_forecast: np.ndarray
) -> None:
    torch._dynamo.reset()
    engine = engine_for(tiny_model_dir, compile="on", compile_backend="aot_eager")
    forecast = engine.predict(contexts, HORIZON)
    np.testing.assert_allclose(forecast, eager_forecast, rtol=1e-5, atol=1e-5)
    record = engine.record()["compile"]
    assert record["used"] is True and record["fallback_reason"] is None and record["compilations"] >= 1


def test_cuda_out_of_memory_halves_the_batch_and_retries(
    tiny_model_dir: Path, contexts: np.ndarray, eager_forecast: np.ndarray
) -> None:
    def fits_eight_series(real_forward):
        def forward_that_fits_eight_series(context, group_ids, num_output_patches):
            if context.shape[0] > 8:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return real_forward(context, group_ids, num_output_patches)

        return forward_that_fits_eight_series

    # 4 tasks of 4 variates per forward
    engine = engine_for(tiny_model_dir, wrap_forward=fits_eight_series, batch_size=16)
    np.testing.assert_allclose(engine.predict(contexts, HORIZON), eager_forecast, rtol=1e-5, atol=1e-5)
    record = engine.record()
    assert (record["oom_retries"], record["tasks_per_batch"]) == (1, 2)


def test_out_of_memory_at_one_task_per_forward_is_a_model_error(
    tiny_model_dir: Path, contexts: np.ndarray
) -> None:
    def always_oom(*args):
        raise torch.OutOfMemoryError("CUDA out of memory")

    engine = engine_for(tiny_model_dir, wrap_forward=lambda real: always_oom, batch_size=4)
    with pytest.raises(ModelError, match="one task per forward"):
        engine.predict(contexts, HORIZON)


def test_bfloat16_on_cpu_warns_and_runs_float32(
    tiny_model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="chronobt"):
        engine = engine_for(tiny_model_dir, dtype="bfloat16")
    assert engine.record()["dtype"] == "float32"
    assert any("bfloat16 is CUDA-only" in r.getMessage() for r in caplog.records)


def test_model_info_names_the_local_folder_and_its_checksum(
    tiny_model_dir: Path, eager: Chronos2Engine
) -> None:
    assert eager.model_info["id"] == str(tiny_model_dir)
    assert eager.model_info["source"] == "local"
    assert len(eager.model_info["checksum"]) == 64


@pytest.mark.parametrize(
    ("contexts_shape", "horizon"), [((4, 10), HORIZON), ((1, 4, 10), 0), ((1, 4, 10), 2.5)]
)
def test_bad_predict_arguments_are_config_errors(
    eager: Chronos2Engine, contexts_shape: tuple[int, ...], horizon: object
) -> None:
    with pytest.raises(ConfigError):
        eager.predict(np.ones(contexts_shape), horizon)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("option", "device", "enabled"),
    [("auto", "cpu", False), ("auto", "cuda", True), ("auto", "mps", False), ("on", "cpu", True)],
)
def test_compile_auto_is_on_for_cuda_only(option: str, device: str, enabled: bool) -> None:
    config = EngineConfig(compile=option, compile_source="env TORCH_COMPILED")
    state = compilation.CompileState.resolve(config, torch.device(device))
    assert (state.requested, state.source, state.enabled) == (option, "env TORCH_COMPILED", enabled)
    assert (state.backend, state.mode) == ("inductor", None)


def test_compile_backend_and_mode_come_from_the_config() -> None:
    state = compilation.CompileState.resolve(
        EngineConfig(compile_backend="aot_eager", compile_mode="reduce-overhead"), CPU
    )
    assert (state.backend, state.mode) == ("aot_eager", "reduce-overhead")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("device", "gpu", "auto, cpu, cuda, cuda:N, mps"),
        ("dtype", "float16", "auto, float32, bfloat16"),
        ("compile", "yes", "auto, on, off"),
        ("compile", None, "auto, on, off"),
        ("compile_backend", " ", "inductor"),
        ("compile_mode", "fast", "reduce-overhead"),
        ("batch_size", 0, "positive integer"),
        ("batch_size", True, "positive integer"),
        ("model", " ", "auto, bundled"),
    ],
)
def test_engine_config_rejects_bad_values_naming_the_allowed_ones(
    field: str, value: object, message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        EngineConfig(**{field: value})  # type: ignore[arg-type]
    assert repr(value) in str(info.value)


def test_cuda_device_without_cuda_is_a_config_error(tiny_model_dir: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(ConfigError, match="CUDA is not available"):
        engine_for(tiny_model_dir, device="cuda")


def test_default_batch_size_on_cpu_is_16_before_any_call(tiny_model_dir: Path) -> None:
    assert engine_for(tiny_model_dir, batch_size=None).batch_size == 16


def test_cpu_default_batch_keeps_activation_size_near_the_measured_optimum(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    from chronobt.engine.checkpoints import ARCHITECTURES, save_random_checkpoint

    # the 7M-parameter architecture at context 2048, horizon 24 is where 16 series per forward was best
    small = engine_for(save_random_checkpoint(tmp_path / "small", ARCHITECTURES["small"]), batch_size=None)
    assert small.plan(np.ones((40, 4, 2048)), 24).series_per_forward == 16
    # a shorter context leaves room for more series; a tiny model (d_model 32) is overhead-bound: with
    # per-task group attention up to the most series per forward, with dense attention up to its d_ff (64)
    assert small.plan(np.ones((40, 4, 512)), 24).series_per_forward > 16
    tiny = engine_for(tiny_model_dir, batch_size=None)
    assert tiny.plan(np.ones((40, 4, 512)), 24).series_per_forward == cpu_sizing.CPU_BATCH_RANGE[1]
    tiny.predict(np.ones((3, 4, 100)), 8)
    assert tiny.record()["batch_size"] == cpu_sizing.CPU_BATCH_RANGE[1]
    dense = engine_for(tiny_model_dir, batch_size=None, native=False)  # chronos' model and its views
    dense.views.block_diagonal_layout = False
    assert dense.plan(np.ones((40, 4, 512)), 24).series_per_forward == 64
    # an explicit --batch-size always wins
    explicit = engine_for(tiny_model_dir, batch_size=8)
    explicit.predict(np.ones((3, 4, 100)), 8)
    assert explicit.record()["batch_size"] == 8


def test_small_models_forecast_cpu_batches_on_parallel_threads_with_the_sequential_result(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    rng = np.random.default_rng(3)
    contexts = 50 + rng.normal(size=(9, 4, 96)).cumsum(axis=-1)
    contexts[2, :, :30] = np.nan  # a shorter window
    threads_before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        ran_on: list[str] = []

        def recording(real):
            def forward(*args: object) -> torch.Tensor:
                ran_on.append(threading.current_thread().name)
                return real(*args)

            return forward

        # 2 tasks per forward: 5 batches
        engine = engine_for(tiny_model_dir, wrap_forward=recording, batch_size=8)
        seen: list[tuple[int, int]] = []
        parallel = engine.predict(contexts, 12, progress=lambda done, total: seen.append((done, total)))
        assert len(ran_on) == 5 and all(name.startswith("chronobt-cpu") for name in ran_on)
        assert [d for d, _ in seen] == sorted(d for d, _ in seen) and seen[-1] == (9, 9)
        assert torch.get_num_threads() == 2  # restored after the workers' one thread each

        monkeypatch.setattr(cpu_sizing, "CPU_PARALLEL_MAX_D_MODEL", 0)  # every model in turn
        ran_on.clear()
        sequential = engine.predict(contexts, 12)
        assert ran_on == [threading.main_thread().name] * 5
        np.testing.assert_allclose(parallel, sequential, rtol=0, atol=1e-5)
        assert np.isfinite(parallel).all()
    finally:
        torch.set_num_threads(threads_before)


def test_an_error_in_a_parallel_cpu_batch_stops_the_run_and_restores_the_threads(
    tiny_model_dir: Path,
) -> None:
    rng = np.random.default_rng(4)
    contexts = 50 + rng.normal(size=(40, 4, 64)).cumsum(axis=-1)
    threads_before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        calls: list[int] = []

        def failing(real):
            def forward(*args: object) -> torch.Tensor:
                calls.append(1)
                if len(calls) == 3:
                    raise RuntimeError("boom in batch 3")
                return real(*args)

            return forward

        # one task per forward: 40 batches
        engine = engine_for(tiny_model_dir, wrap_forward=failing, batch_size=4)
        with pytest.raises(RuntimeError, match="boom in batch 3"):
            engine.predict(contexts, 8)
        assert len(calls) < 40  # the queued batches were dropped, not all run
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads_before)


def test_plan_fixes_the_shapes_of_a_call_and_runs_nothing(tiny_model_dir: Path, contexts: np.ndarray) -> None:
    import dataclasses

    engine = engine_for(tiny_model_dir)  # 8 series per forward, 4 variates: 2 tasks per batch
    plan = engine.plan(contexts, HORIZON)
    assert plan == Plan(
        n_tasks=5,
        n_variates=4,
        horizon=HORIZON,
        context_length=304,  # 300 observed steps rounded up to the 16-step patch
        output_patches=2,
        series_per_forward=8,
        tasks_per_batch=2,
        workers=min(torch.get_num_threads(), 3),
        long_horizon=False,
        compile=False,
        compile_reason="off: requested",
        native=True,  # the native forward's check passed (planning runs it once per shape)
    )
    assert plan.n_batches == 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.workers = 1  # type: ignore[misc]
    assert engine.plan(contexts, 3 * 16 * 64).long_horizon  # beyond the model's max output patches
    record = engine.record()
    assert (record["calls"], record["batches"], record["output_only_check"]) == (0, 0, None)


def test_record_describes_every_call_of_the_engine(tiny_model_dir: Path, contexts: np.ndarray) -> None:
    engine = engine_for(tiny_model_dir)
    engine.predict(contexts, HORIZON)  # 5 tasks: 3 batches of 2
    engine.predict(contexts[:1], 8)  # 1 task: one batch of 1
    record = engine.record()
    assert {
        k: record[k] for k in ("calls", "tasks", "batches", "tasks_per_batch", "tasks_per_batch_min")
    } == {
        "calls": 2,
        "tasks": 6,
        "batches": 4,
        "tasks_per_batch": 1,
        "tasks_per_batch_min": 1,
    }
    assert record["long_horizon_unrolling"] is False and record["long_horizon_calls"] == 0
    assert record["forward_seconds"] > 0 and record["oom_retries"] == 0
    assert record["native_forward"] is True and record["native_check"]["passed"] is True
    assert record["output_only_last_block"] is None  # chronos' views: never built, chronos never ran
    assert {"device", "dtype", "batch_size", "compile", "cpu_workers"} <= set(record)


def test_failing_chronos_unrolling_is_a_model_error_naming_it_not_a_compile_failure(
    custom_model_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    compiled: list[int] = []

    def identity_compile(fn, backend, mode):
        compiled.append(1)
        return fn

    monkeypatch.setattr(compilation, "_compile", identity_compile)
    engine = engine_for(custom_model_dir, compile="on")

    def changed_signature(**kwargs: object) -> None:
        raise TypeError("_predict_batch() got an unexpected keyword argument 'target_idx_ranges'")

    monkeypatch.setattr(engine.pipeline, "_predict_batch", changed_signature)
    with caplog.at_level(logging.WARNING, logger="chronobt"), pytest.raises(ModelError) as info:
        engine.predict(random_walk_contexts([100], n_time=100), 3 * engine.output_patch_size + 5)
    message = str(info.value)
    assert "Chronos2Pipeline._predict_batch failed (TypeError" in message
    assert "--horizon 32 or less" in message and "torch.compile" not in message
    assert engine.record()["compile"]["fallback_reason"] is None and not compiled
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_unreadable_dynamo_counters_mark_the_compile_count_unknown_not_failed(
    tiny_model_dir: Path,
    contexts: np.ndarray,
    eager_forecast: np.ndarray,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Unreadable:
        def __getitem__(self, key: str) -> None:
            raise KeyError(key)

    monkeypatch.setattr(compilation, "_compile", lambda fn, backend, mode: fn)
    monkeypatch.setattr(torch._dynamo.utils, "counters", Unreadable())
    engine = engine_for(tiny_model_dir, compile="on")
    with caplog.at_level(logging.WARNING, logger="chronobt"):
        np.testing.assert_array_equal(engine.predict(contexts, HORIZON), eager_forecast)
    record = engine.record()["compile"]
    assert (record["used"], record["fallback_reason"]) == (True, None)
    assert (record["compilations"], record["compile_seconds"]) == (None, None)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_out_of_memory_in_parallel_cpu_batches_runs_them_in_turn_and_restores_the_threads(
    tiny_model_dir: Path,
) -> None:
    import threading

    rng = np.random.default_rng(5)
    contexts = 50 + rng.normal(size=(6, 4, 64)).cumsum(axis=-1)
    threads_before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:

        def oom_on_workers(real):
            def forward(*args: object) -> torch.Tensor:
                if threading.current_thread().name.startswith("chronobt-cpu"):
                    raise torch.OutOfMemoryError("out of memory")
                return real(*args)

            return forward

        # 3 batches, 2 side by side
        engine = engine_for(tiny_model_dir, wrap_forward=oom_on_workers, batch_size=8)
        expected = engine_for(tiny_model_dir, batch_size=8, compile="off").predict(contexts[:1], 8)
        forecast = engine.predict(contexts, 8)
        assert torch.get_num_threads() == 2
        np.testing.assert_allclose(forecast[:1], expected, rtol=1e-5, atol=1e-5)
        record = engine.record()
        assert (record["batches"], record["tasks"], record["cpu_workers"]) == (3, 6, 1)
    finally:
        torch.set_num_threads(threads_before)
