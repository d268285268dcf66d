"""When ``--compile auto`` compiles, and where inductor's cache goes (no real compile needed)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

import chronobt.engine.compilation as compilation
from chronobt.cli.engine_options import (
    CacheDirOpt,
    default_cache_dir,
    engine_config,
    engine_config_from_options,
)
from chronobt.engine.checkpoints import ARCHITECTURES
from chronobt.engine.compilation import CompileState, batch_flops, compile_decision, inductor_cache_dir
from chronobt.engine.core import Chronos2Engine, EngineConfig
from chronobt.errors import ConfigError
from tests.synthetic import random_walk_contexts

FULL = ARCHITECTURES["full"]
CUDA = torch.device("cuda")


def _full_batch_flops(series: int = 256) -> float:
    return batch_flops(
        series=series, tokens=131, d_model=FULL.d_model, d_ff=FULL.d_ff, num_layers=FULL.num_layers
    )


def test_an_hourly_forecast_stays_eager_and_a_long_backtest_compiles() -> None:
    one, reason = compile_decision(n_batches=1, flops_per_batch=_full_batch_flops(4), cache_warm=False)
    assert not one and reason.startswith("auto: eager") and "cold cache" in reason
    many, reason = compile_decision(n_batches=5000, flops_per_batch=_full_batch_flops(), cache_warm=False)
    assert many and reason.startswith("auto: compile")


def test_the_rule_is_saved_seconds_against_compile_seconds_and_a_warm_cache_lowers_the_bar() -> None:
    flops = _full_batch_flops()
    eager_s = flops / compilation.EAGER_FLOPS_PER_S
    cold = compilation.COMPILE_SECONDS_COLD / (eager_s * compilation.COMPILE_SAVING)
    warm = compilation.COMPILE_SECONDS_WARM / (eager_s * compilation.COMPILE_SAVING)
    assert warm < cold
    assert not compile_decision(n_batches=int(cold) - 1, flops_per_batch=flops, cache_warm=False)[0]
    assert compile_decision(n_batches=int(cold) + 1, flops_per_batch=flops, cache_warm=False)[0]
    assert compile_decision(n_batches=int(warm) + 1, flops_per_batch=flops, cache_warm=True)[0]


@pytest.mark.parametrize(
    ("requested", "device", "decided", "decision"),
    [
        ("on", "cpu", True, "on: requested"),
        ("off", "cuda", False, "off: requested"),
        ("auto", "cpu", False, "auto: eager on cpu"),
    ],
)
def test_on_off_and_auto_off_cuda_need_no_estimate(
    requested: str, device: str, decided: bool, decision: str
) -> None:
    state = CompileState.resolve(EngineConfig(compile=requested), torch.device(device))
    assert (state.decided, state.decision) == (decided, decision)
    assert state.preview(n_batches=1, flops_per_batch=1.0)[0] is decided


def test_auto_on_cuda_decides_per_call_and_stays_compiled_once_it_compiled() -> None:
    state = CompileState.resolve(EngineConfig(compile="auto"), CUDA)
    assert state.enabled and not state.active and state.decision == "auto: pending the first call"
    small = state.preview(n_batches=1, flops_per_batch=_full_batch_flops())
    state.settle(*small)
    assert not state.active and state.record()["decision"].startswith("auto: eager")
    big = state.preview(n_batches=100_000, flops_per_batch=_full_batch_flops())
    state.settle(*big)
    assert state.active
    state.settle(*small)  # a later small call keeps the compiled forward
    assert state.active and state.record()["decision"].startswith("auto: compile")


def test_the_engine_records_the_decision(tiny_model_dir: Path) -> None:
    engine = Chronos2Engine(EngineConfig(model=str(tiny_model_dir), device="cpu", compile="off"))
    plan = engine.plan(random_walk_contexts([50, 40], n_time=50), 24)
    assert plan.compile is False and plan.compile_reason == "off: requested"
    engine.predict(random_walk_contexts([50, 40], n_time=50), 24)
    assert engine.record()["compile"]["decision"] == "off: requested"


def test_inductor_cache_dir_is_set_only_inside_the_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(compilation.CACHE_ENV, "/elsewhere")
    with inductor_cache_dir(tmp_path):
        assert os.environ[compilation.CACHE_ENV] == str(tmp_path / "inductor")
        assert (tmp_path / "inductor").is_dir()
    assert os.environ[compilation.CACHE_ENV] == "/elsewhere"
    monkeypatch.delenv(compilation.CACHE_ENV)
    with pytest.raises(RuntimeError), inductor_cache_dir(tmp_path):
        raise RuntimeError("compile failed")
    assert compilation.CACHE_ENV not in os.environ
    with inductor_cache_dir(None):
        assert compilation.CACHE_ENV not in os.environ
    assert not compilation.cache_is_warm(tmp_path)
    (tmp_path / "inductor" / "fxgraph").mkdir()
    assert compilation.cache_is_warm(tmp_path) and not compilation.cache_is_warm(None)


def test_compiled_calls_run_with_the_cache_dir_and_record_it(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str | None] = []

    def fake_compile(fn, backend, mode):
        def compiled(*args):
            seen.append(os.environ.get(compilation.CACHE_ENV))
            return fn(*args)

        return compiled

    monkeypatch.setattr(compilation, "_compile", fake_compile)
    monkeypatch.delenv(compilation.CACHE_ENV, raising=False)
    config = EngineConfig(
        model=str(tiny_model_dir), device="cpu", compile="on", batch_size=8, cache_dir=tmp_path
    )
    engine = Chronos2Engine(config)
    forecast = engine.predict(random_walk_contexts([60, 30, 45], n_time=60), 24)
    assert np.isfinite(forecast).all()
    assert seen and set(seen) == {str(tmp_path / "inductor")}
    assert compilation.CACHE_ENV not in os.environ
    record = engine.record()["compile"]
    assert record["cache_dir"] == str(tmp_path) and record["decision"] == "on: requested"
    assert record["cache_hits"] == 0 and record["cache_misses"] == 0  # nothing compiled by inductor


def test_cli_maps_the_cache_dir_option_and_defaults_under_the_user_cache(tmp_path: Path) -> None:
    assert engine_config_from_options(cache_dir=tmp_path, environ={}).cache_dir == tmp_path
    assert engine_config_from_options(environ={}).cache_dir is None  # torch's own folder
    default = default_cache_dir()
    assert default.name == "chronobt"
    seen: list[EngineConfig] = []
    app = typer.Typer()

    @app.command()
    def run(cache_dir: CacheDirOpt = None) -> None:
        seen.append(engine_config({"cache_dir": cache_dir}))

    runner = CliRunner()
    assert runner.invoke(app, [], env={"CHRONOBT_CACHE_DIR": str(tmp_path / "c")}).exit_code == 0
    assert runner.invoke(app, ["--cache-dir", str(tmp_path / "d")]).exit_code == 0
    assert runner.invoke(app, [], env={"CHRONOBT_CACHE_DIR": None}).exit_code == 0
    assert [c.cache_dir for c in seen] == [tmp_path / "c", tmp_path / "d", default_cache_dir()]
    with pytest.raises(ConfigError, match="cache dir"):
        EngineConfig(cache_dir="not-a-path")  # type: ignore[arg-type]
