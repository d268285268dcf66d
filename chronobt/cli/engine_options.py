"""Options that choose and run the Chronos-2 model, shared by backtest, sweep and forecast.

The command line owns the environment: the ``CHRONOBT_*`` variables (Typer ``envvar=``) and the legacy
compile switches (``TORCH_COMPILED``, ``CHRONOS_COMPILE``, ``CHRONOS_COMPILE_BACKEND``,
``CHRONOS_COMPILE_MODE``) are read here and nowhere in the library. Use the options as parameter
annotations, with :class:`~chronobt.engine.config.EngineConfig`'s defaults, and turn them into one::

    def _cmd(model: ModelOpt = EngineConfig.model, device: DeviceOpt = EngineConfig.device, ...,
             batch_size: BatchSizeOpt = None, cache_dir: CacheDirOpt = None) -> None:
        config = engine_config(locals())
        with quiet_transformers():
            ...  # load and run

The cache folder (``--cache-dir`` / ``CHRONOBT_CACHE_DIR``; inductor's compile cache goes under it)
defaults to ``chronobt`` in the user's cache directory, ``platformdirs.user_cache_dir`` (on Linux
``$XDG_CACHE_HOME/chronobt``, else ``~/.cache/chronobt``; :func:`default_cache_dir`).

Precedence of the compile choice: ``--compile`` / ``CHRONOBT_COMPILE``; when unset, the first of
``TORCH_COMPILED``, ``CHRONOS_COMPILE`` that is set (0/1/true/false) turns it off or on; else ``auto``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from chronobt.engine.config import (
    COMPILE_CHOICES,
    COMPILE_MODES,
    DEFAULT_BATCH_SIZE,
    DTYPE_CHOICES,
    EngineConfig,
)
from chronobt.errors import ConfigError

#: Legacy on/off switches read when ``--compile`` is unset, the first one set wins.
LEGACY_COMPILE_ENV = ("TORCH_COMPILED", "CHRONOS_COMPILE")
_ENV_BOOL = {"1": True, "true": True, "0": False, "false": False}

ModelOpt = Annotated[
    str,
    typer.Option(
        "--model",
        envvar="CHRONOBT_MODEL",
        help=(
            "Chronos-2 model: auto (amazon/chronos-2 if cached or reachable, else the bundled "
            "chronos2-mini), bundled, a Hugging Face id such as amazon/chronos-2, "
            "or a folder saved with save_pretrained."
        ),
        show_default=True,
    ),
]
DeviceOpt = Annotated[
    str,
    typer.Option(
        "--device",
        envvar="CHRONOBT_DEVICE",
        help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps.",
        show_default=True,
    ),
]
DtypeOpt = Annotated[
    str,
    typer.Option(
        "--dtype",
        envvar="CHRONOBT_DTYPE",
        metavar=f"[{'|'.join(DTYPE_CHOICES)}]",
        help="auto (float32), float32 or bfloat16 (CUDA only; faster, slightly less accurate).",
        show_default=True,
    ),
]
CompileOpt = Annotated[
    str | None,
    typer.Option(
        "--compile",
        envvar="CHRONOBT_COMPILE",
        metavar=f"[{'|'.join(COMPILE_CHOICES)}]",
        help=(
            "torch.compile: auto (CUDA only, and only when the run's batches earn the compile time back: "
            "an hourly forecast stays eager; the manifest's engine.compile.decision says why), on, off. "
            "Unset: the legacy TORCH_COMPILED / CHRONOS_COMPILE switches (0/1/true/false), else "
            f"{EngineConfig.compile}."
        ),
        show_default=False,
    ),
]
CompileBackendOpt = Annotated[
    str | None,
    typer.Option(
        "--compile-backend",
        envvar=["CHRONOBT_COMPILE_BACKEND", "CHRONOS_COMPILE_BACKEND"],
        help=f"torch.compile backend (default {EngineConfig.compile_backend}).",
        show_default=False,
    ),
]
CompileModeOpt = Annotated[
    str | None,
    typer.Option(
        "--compile-mode",
        envvar=["CHRONOBT_COMPILE_MODE", "CHRONOS_COMPILE_MODE"],
        metavar=f"[{'|'.join(COMPILE_MODES)}]",
        help="torch.compile mode (default: torch's).",
        show_default=False,
    ),
]
BatchSizeOpt = Annotated[
    int | None,
    typer.Option(
        "--batch-size",
        envvar="CHRONOBT_BATCH_SIZE",
        help=f"Series per forward pass (default {DEFAULT_BATCH_SIZE['cuda']} on CUDA; on CPU sized to the "
        "model and context, up to the model's d_ff); a task's variates stay together.",
        show_default=False,
    ),
]
CacheDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--cache-dir",
        envvar="CHRONOBT_CACHE_DIR",
        help="chronobt's cache folder (torch.compile's inductor cache goes under it; default: chronobt "
        "in the user's cache directory, e.g. ~/.cache/chronobt).",
        show_default=False,
    ),
]


def default_cache_dir() -> Path:
    """``chronobt`` in the user's cache directory by platformdirs (a declared dependency: one rule on every
    install): ``$XDG_CACHE_HOME/chronobt`` else ``~/.cache/chronobt`` on Linux, ``~/Library/Caches/chronobt``
    on macOS, the local app-data cache on Windows."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("chronobt"))


def engine_config(options: Mapping[str, Any]) -> EngineConfig:
    """The :class:`EngineConfig` of a command's options (its ``locals()``; absent ones at their defaults),
    ``--cache-dir`` unset: the :func:`default_cache_dir`."""
    cache_dir = options.get("cache_dir")
    config = engine_config_from_options(
        **{name: options[name] for name in ENGINE_OPTIONS if name in options},
        cache_dir=cache_dir if cache_dir is not None else default_cache_dir(),
    )
    return dataclasses.replace(config, cpu_free_cores=free_cpu_cores())


def free_cpu_cores() -> float | None:
    """Cores this process may use (``os.sched_getaffinity``) less the 1-minute load average (other
    processes' demand), at least 0; ``None`` where the load cannot be read. The engine runs CPU batches
    side by side below its thread count (:func:`chronobt.engine.cpu_sizing.cpu_workers`)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return None
    return round(max(0.0, cores - load), 2)


#: The options :func:`engine_config_from_options` maps (``--cache-dir`` aside).
ENGINE_OPTIONS = ("model", "device", "dtype", "compile", "compile_backend", "compile_mode", "batch_size")


def engine_config_from_options(
    *,
    model: str = EngineConfig.model,
    device: str = EngineConfig.device,
    dtype: str = EngineConfig.dtype,
    compile: str | None = None,
    compile_backend: str | None = None,
    compile_mode: str | None = None,
    batch_size: int | None = None,
    cache_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> EngineConfig:
    """An :class:`EngineConfig` from the parsed options and, for the legacy compile switches, ``environ``.

    Parameters
    ----------
    compile : ``--compile`` (or ``CHRONOBT_COMPILE``); ``None`` lets ``TORCH_COMPILED`` then
        ``CHRONOS_COMPILE`` decide (0/1/true/false), else ``auto``.
    compile_backend, compile_mode : ``None`` for inductor and torch's default mode.
    cache_dir : ``--cache-dir`` (or ``CHRONOBT_CACHE_DIR``); commands pass ``--cache-dir`` or
        :func:`default_cache_dir` (``None`` here: torch's own cache folder).
    environ : the environment to read the legacy switches from (default ``os.environ``).

    Raises
    ------
    ConfigError
        On a bad option value or a legacy switch that is not 0, 1, true or false (exit code 2).
    """
    env = os.environ if environ is None else environ
    if compile is not None:
        requested = compile.strip().lower()
        source = _compile_option_source(requested, env)
    else:
        requested, source = _legacy_compile(env)
    default = EngineConfig.compile_backend
    return EngineConfig(
        model=model,
        device=device.strip().lower(),
        dtype=dtype.strip().lower(),  # type: ignore[arg-type]  # checked by EngineConfig
        compile=requested,  # type: ignore[arg-type]
        compile_backend=compile_backend.strip() if compile_backend is not None else default,
        compile_mode=compile_mode.strip().lower() if compile_mode is not None else None,  # type: ignore[arg-type]
        compile_source=source,
        batch_size=batch_size,
        cache_dir=Path(cache_dir).expanduser() if cache_dir is not None else None,
    )


def _legacy_compile(env: Mapping[str, str]) -> tuple[str, str]:
    """(choice, source) from the first legacy switch set in ``env``, else ``("auto", "default")``."""
    for name in LEGACY_COMPILE_ENV:
        raw = env.get(name)
        if raw is None or not raw.strip():
            continue
        value = _ENV_BOOL.get(raw.strip().lower())
        if value is None:
            raise ConfigError(
                f"environment {name}={raw!r} is not one of 0, 1, true, false; "
                f"fix or unset it, or pass --compile auto|on|off"
            )
        return ("on" if value else "off"), f"env {name}"
    return EngineConfig.compile, "default"


def _compile_option_source(value: str, env: Mapping[str, str]) -> str:
    """``"env CHRONOBT_COMPILE"`` when the value is that variable's (Typer read it), else ``"option"``."""
    from_env = env.get("CHRONOBT_COMPILE", "").strip().lower() == value
    return "env CHRONOBT_COMPILE" if from_env else "option"


@contextmanager
def quiet_transformers(*, verbosity: int | None = logging.WARNING, load: bool = True) -> Iterator[None]:
    """No transformers progress bars (e.g. "Loading weights") for the block; its state restored after.

    The command line owns stderr (its own progress bars, ``--quiet``). ``verbosity`` sets transformers'
    log level for the block (``None`` leaves it); the previous level and bar state come back afterwards,
    also when the block raises. ``load=False``: when transformers is not imported yet, leave it so (it
    costs seconds; a run on the native forward may never need it, and a model chronos loads later is
    quieted by the engine, :func:`chronobt.engine.models.quiet_loading`).
    """
    if not load and "transformers" not in sys.modules:
        yield
        return
    from transformers.utils import logging as hf_logging

    bar_enabled, level = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    if verbosity is not None:
        hf_logging.set_verbosity(verbosity)
    try:
        yield
    finally:
        if bar_enabled:
            hf_logging.enable_progress_bar()
        else:
            hf_logging.disable_progress_bar()
        hf_logging.set_verbosity(level)
