"""Options that choose and run the Chronos-2 model, shared by backtest, sweep and forecast.

Use them as parameter annotations and turn them into an :class:`~chronobt.engine.EngineConfig`::

    def _cmd(model: ModelOpt = "auto", device: DeviceOpt = "auto", dtype: DtypeOpt = "auto",
             compile: CompileOpt = None, batch_size: BatchSizeOpt = None) -> None:
        config = engine_config_from_options(model=model, device=device, dtype=dtype,
                                            compile=compile, batch_size=batch_size)
"""

from __future__ import annotations

from typing import Annotated

import typer

from chronobt.engine import EngineConfig

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
        help="auto (float32), float32 or bfloat16 (CUDA only; faster, slightly less accurate).",
        show_default=True,
    ),
]
CompileOpt = Annotated[
    str | None,
    typer.Option(
        "--compile",
        envvar="CHRONOBT_COMPILE",
        help=(
            "torch.compile: auto (on for CUDA), on, off. Unset: the legacy TORCH_COMPILED / CHRONOS_COMPILE "
            "switches, else auto. Backend and mode: CHRONOS_COMPILE_BACKEND, CHRONOS_COMPILE_MODE."
        ),
        show_default=False,
    ),
]
CompileBackendOpt = Annotated[
    str | None,
    typer.Option(
        "--compile-backend",
        envvar=["CHRONOBT_COMPILE_BACKEND", "CHRONOS_COMPILE_BACKEND"],
        help="torch.compile backend (default inductor).",
        show_default=False,
    ),
]
CompileModeOpt = Annotated[
    str | None,
    typer.Option(
        "--compile-mode",
        envvar=["CHRONOBT_COMPILE_MODE", "CHRONOS_COMPILE_MODE"],
        help="torch.compile mode: default, reduce-overhead, max-autotune, max-autotune-no-cudagraphs.",
        show_default=False,
    ),
]
BatchSizeOpt = Annotated[
    int | None,
    typer.Option(
        "--batch-size",
        envvar="CHRONOBT_BATCH_SIZE",
        help="Series per forward pass (default 256 on CUDA; on CPU sized to the model and context: 16 for "
        "a 7M-parameter model at context 2048, up to 256 for small ones); a task's variates stay together.",
        show_default=False,
    ),
]


def engine_config_from_options(
    *,
    model: str = "auto",
    device: str = "auto",
    dtype: str = "auto",
    compile: str | None = None,
    compile_backend: str | None = None,
    compile_mode: str | None = None,
    batch_size: int | None = None,
) -> EngineConfig:
    """An :class:`EngineConfig` from the parsed options (raises ``ConfigError`` on bad values)."""
    return EngineConfig(
        model=model,
        device=device.strip().lower(),
        dtype=dtype.strip().lower(),
        compile=compile.strip().lower() if compile is not None else None,
        compile_backend=compile_backend,
        compile_mode=compile_mode,
        batch_size=batch_size,
    )
