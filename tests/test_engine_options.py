"""The CLI owns the environment: env vars and legacy compile switches map onto EngineConfig here only."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import torch
import typer
from transformers.utils import logging as hf_logging
from typer.testing import CliRunner

import chronobt.engine.stack as engine_mod
from chronobt.cli import app
from chronobt.cli import backtest as backtest_cli
from chronobt.cli import forecast as forecast_cli
from chronobt.cli import sweep as sweep_cli
from chronobt.cli.engine_options import (
    BatchSizeOpt,
    CompileBackendOpt,
    CompileModeOpt,
    CompileOpt,
    DeviceOpt,
    DtypeOpt,
    ModelOpt,
    default_cache_dir,
    engine_config_from_options,
    quiet_transformers,
)
from chronobt.engine.compilation import CompileState
from chronobt.engine.core import EngineConfig
from chronobt.errors import ChronobtError, ConfigError
from tests.synthetic import write_symbol

ENV_NAMES = (
    "TORCH_COMPILED",
    "CHRONOS_COMPILE",
    "CHRONOS_COMPILE_BACKEND",
    "CHRONOS_COMPILE_MODE",
    "CHRONOBT_COMPILE",
    "CHRONOBT_COMPILE_BACKEND",
    "CHRONOBT_COMPILE_MODE",
    "CHRONOBT_MODEL",
    "CHRONOBT_DEVICE",
    "CHRONOBT_DTYPE",
    "CHRONOBT_BATCH_SIZE",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)


def test_engine_config_ignores_every_compile_variable_in_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TORCH_COMPILED", "1")
    monkeypatch.setenv("CHRONOS_COMPILE", "1")
    monkeypatch.setenv("CHRONOS_COMPILE_BACKEND", "aot_eager")
    monkeypatch.setenv("CHRONOS_COMPILE_MODE", "reduce-overhead")
    config = EngineConfig()
    assert (config.compile, config.compile_backend, config.compile_mode) == ("auto", "inductor", None)
    state = CompileState.resolve(config, torch.device("cpu"))
    assert (state.requested, state.enabled, state.backend, state.mode) == ("auto", False, "inductor", None)


@pytest.mark.parametrize(
    ("environ", "option", "expected"),
    [
        ({}, None, ("auto", "default")),
        ({"TORCH_COMPILED": "1"}, None, ("on", "env TORCH_COMPILED")),
        ({"TORCH_COMPILED": " "}, None, ("auto", "default")),
        ({"CHRONOS_COMPILE": "true"}, None, ("on", "env CHRONOS_COMPILE")),
        ({"CHRONOS_COMPILE": "FALSE"}, None, ("off", "env CHRONOS_COMPILE")),
        ({"TORCH_COMPILED": "0", "CHRONOS_COMPILE": "1"}, None, ("off", "env TORCH_COMPILED")),
        ({"TORCH_COMPILED": "", "CHRONOS_COMPILE": "1"}, None, ("on", "env CHRONOS_COMPILE")),
        ({"TORCH_COMPILED": "1"}, "off", ("off", "option")),
        ({"TORCH_COMPILED": "maybe"}, "On", ("on", "option")),  # the option wins, the switch is not read
        ({}, "auto", ("auto", "option")),
    ],
)
def test_builder_applies_legacy_switches_only_without_the_compile_option(
    environ: dict[str, str], option: str | None, expected: tuple[str, str]
) -> None:
    config = engine_config_from_options(compile=option, environ=environ)
    assert (config.compile, config.compile_source) == expected
    assert (config.compile_backend, config.compile_mode) == ("inductor", None)


def test_builder_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHRONOS_COMPILE", "1")
    assert engine_config_from_options().compile == "on"
    assert engine_config_from_options(environ={}).compile == "auto"


def test_bad_legacy_switch_is_a_config_error_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"TORCH_COMPILED='maybe' is not one of 0, 1, true, false"):
        engine_config_from_options(environ={"TORCH_COMPILED": "maybe"})


def _probe_app(seen: list[EngineConfig]) -> typer.Typer:
    probe = typer.Typer()

    @probe.command()
    def run(
        model: ModelOpt = "auto",
        device: DeviceOpt = "auto",
        dtype: DtypeOpt = "auto",
        compile: CompileOpt = None,
        compile_backend: CompileBackendOpt = None,
        compile_mode: CompileModeOpt = None,
        batch_size: BatchSizeOpt = None,
    ) -> None:
        seen.append(
            engine_config_from_options(
                model=model,
                device=device,
                dtype=dtype,
                compile=compile,
                compile_backend=compile_backend,
                compile_mode=compile_mode,
                batch_size=batch_size,
            )
        )

    return probe


def test_cli_options_and_chronobt_variables_build_the_engine_config() -> None:
    seen: list[EngineConfig] = []
    probe, runner = _probe_app(seen), CliRunner()
    env = {"CHRONOBT_MODEL": "bundled", "CHRONOBT_DEVICE": "CPU", "CHRONOBT_BATCH_SIZE": "32"}
    assert runner.invoke(probe, ["--dtype", "bfloat16"], env=env).exit_code == 0
    assert runner.invoke(probe, ["--compile", "OFF", "--model", "org/name"], env=env).exit_code == 0
    assert runner.invoke(probe, [], env={"CHRONOBT_COMPILE": "on", "TORCH_COMPILED": "0"}).exit_code == 0
    assert seen == [
        EngineConfig(
            model="bundled", device="cpu", dtype="bfloat16", batch_size=32, compile_source="default"
        ),
        EngineConfig(model="org/name", device="cpu", compile="off", batch_size=32),
        EngineConfig(compile="on", compile_source="env CHRONOBT_COMPILE"),
    ]
    result = runner.invoke(probe, ["--compile", "maybe"])
    assert isinstance(result.exception, ConfigError) and "auto, on, off" in str(result.exception)


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (
            ["--compile-backend", "aot_eager", "--compile-mode", "Max-Autotune"],
            {},
            ("aot_eager", "max-autotune"),
        ),
        (
            [],
            {"CHRONOS_COMPILE_BACKEND": "eager", "CHRONOS_COMPILE_MODE": "reduce-overhead"},
            ("eager", "reduce-overhead"),
        ),
        (
            [],
            {"CHRONOBT_COMPILE_BACKEND": "aot_eager", "CHRONOS_COMPILE_BACKEND": "eager"},
            ("aot_eager", None),
        ),
        (["--compile-backend", "inductor"], {"CHRONOBT_COMPILE_BACKEND": "eager"}, ("inductor", None)),
    ],
)
def test_compile_backend_and_mode_come_from_options_then_variables(
    args: list[str], env: dict[str, str], expected: tuple[str, str | None]
) -> None:
    seen: list[EngineConfig] = []
    result = CliRunner().invoke(_probe_app(seen), args, env=env)
    assert result.exit_code == 0, result.output
    assert (seen[0].compile_backend, seen[0].compile_mode) == expected


@pytest.mark.parametrize(
    ("name", "module", "args"),
    [
        ("backtest", backtest_cli, ["backtest", "AAA"]),
        ("sweep", sweep_cli, ["sweep", "AAA"]),
        ("forecast", forecast_cli, ["forecast", "AAA"]),
    ],
)
def test_every_command_passes_compile_backend_and_mode_to_the_engine_config(
    name: str, module: Any, args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[EngineConfig] = []

    def fake_run_locked(ui: Any, run: Any, config: Any, engine_config: EngineConfig, *, wait: float) -> Any:
        seen.append(engine_config)
        raise ChronobtError("stopped before running")

    monkeypatch.setattr(module, "run_locked", fake_run_locked)
    monkeypatch.setattr("chronobt.cli.engine_options.free_cpu_cores", lambda: 1.5)
    options = ["--compile-backend", "aot_eager", "--compile-mode", "reduce-overhead", "--device", "cpu"]
    folders = ["--data-dir", str(tmp_path / "data"), "--output-dir", str(tmp_path / "out")]
    write_symbol(tmp_path / "data", "AAA", 300)  # unknown symbols are refused before run_locked
    result = CliRunner().invoke(app, [*args, *options, *folders], env={"TORCH_COMPILED": "0"})
    assert result.exit_code == 1 and "stopped before running" in result.stderr, (name, result.output)
    assert seen == [
        EngineConfig(
            device="cpu",
            compile="off",
            compile_source="env TORCH_COMPILED",
            compile_backend="aot_eager",
            compile_mode="reduce-overhead",
            cache_dir=default_cache_dir(),  # the CLI's default cache folder
            cpu_free_cores=1.5,  # the cores other processes leave, read by the command line
        )
    ]


def test_bad_legacy_switch_exits_2_with_one_line_naming_the_variable(tmp_path: Path) -> None:
    write_symbol(tmp_path / "data", "AAA", 200)
    out = tmp_path / "out"
    args = ["forecast", "AAA", "--data-dir", str(tmp_path / "data"), "--output-dir", str(out)]
    result = CliRunner().invoke(app, args, env={"TORCH_COMPILED": "maybe"})
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "TORCH_COMPILED='maybe'" in lines[0]
    assert "Traceback" not in result.output and not out.exists()


def test_quiet_transformers_restores_the_bar_and_level_also_after_an_error() -> None:
    bar, level = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    try:
        hf_logging.enable_progress_bar()
        hf_logging.set_verbosity(logging.INFO)
        with pytest.raises(RuntimeError), quiet_transformers():
            assert not hf_logging.is_progress_bar_enabled()
            assert hf_logging.get_verbosity() == logging.WARNING
            raise RuntimeError("boom")
        assert hf_logging.is_progress_bar_enabled() and hf_logging.get_verbosity() == logging.INFO
        hf_logging.disable_progress_bar()
        with quiet_transformers(verbosity=None):
            assert hf_logging.get_verbosity() == logging.INFO
        assert not hf_logging.is_progress_bar_enabled()
    finally:
        (hf_logging.enable_progress_bar if bar else hf_logging.disable_progress_bar)()
        hf_logging.set_verbosity(level)


def test_command_loads_the_model_without_transformers_bar_and_restores_it_after(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bar_while_loading: list[bool] = []
    load = engine_mod.load_pipeline

    def recording_load(path: Any) -> Any:
        bar_while_loading.append(hf_logging.is_progress_bar_enabled())
        return load(path)

    monkeypatch.setattr(engine_mod, "load_pipeline", recording_load)
    write_symbol(tmp_path / "data", "AAA", 300)

    def forecast(model: Path, out: str) -> Any:
        args = ["forecast", "AAA", "--horizon", "8", "--context", "128", "--model", str(model)]
        args += ["--device", "cpu", "--compile", "off", "--data-dir", str(tmp_path / "data")]
        args += ["--cache-dir", str(tmp_path / "cache")]  # a new cache: chronos loads once, to check
        return CliRunner().invoke(app, [*args, "--output-dir", str(tmp_path / out)])

    before = hf_logging.is_progress_bar_enabled()
    hf_logging.enable_progress_bar()
    try:
        result = forecast(tiny_model_dir, "out")
        assert result.exit_code == 0, result.output
        assert bar_while_loading == [False]
        assert hf_logging.is_progress_bar_enabled()
        failed = forecast(tmp_path / "no-such-model", "out2")
        assert failed.exit_code != 0
        assert hf_logging.is_progress_bar_enabled()
    finally:
        (hf_logging.enable_progress_bar if before else hf_logging.disable_progress_bar)()
