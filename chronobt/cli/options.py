"""Options declared once, in sets, with one builder each; :func:`command` puts them on a command.

A set is a function whose parameters are Typer options and whose body turns them into a piece of a
config (e.g. :func:`run_settings` -> the :class:`~chronobt.config.RunOptions` fields). :func:`command`
appends the sets' parameters to a command's own, opens the command context (consoles, log file, error
handling: :func:`chronobt.cli.common.command_context`), builds each set inside it, so a bad value is a
one-line usage error, and calls the command with ``ui`` and one argument per set::

    @command(app, "backtest", run=run_settings, engine=engine_settings)
    def backtest(symbols: ..., windows: WindowsOpt = 100, *, ui: Ui, run: dict, engine: EngineConfig): ...

Backtest, sweep and forecast share the same declarations, so an option can no longer drift between them.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from chronobt.cli import engine_options as eo
from chronobt.cli.common import command_context
from chronobt.config import DEFAULT_QUANTILES, DEPENDENCE_CHOICES, check_executor
from chronobt.data import TARGETS
from chronobt.engine.core import EngineConfig
from chronobt.errors import ConfigError
from chronobt.runs.executors import import_ray

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_DATA_DIR = Path("data")
DEFAULT_OUTPUT_DIR = Path("results")
ALL_TARGETS = ",".join(TARGETS)
ALL_QUANTILES = ",".join(str(level) for level in DEFAULT_QUANTILES)
#: ``-h`` works like ``--help`` on every command.
CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}

DataDirOpt = Annotated[
    Path,
    typer.Option("--data-dir", envvar="CHRONOBT_DATA_DIR", help="Folder holding <SYMBOL>.parquet files."),
]
OutputDirOpt = Annotated[
    Path, typer.Option("--output-dir", envvar="CHRONOBT_OUTPUT_DIR", help="Folder results are written under.")
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress or messages; errors still print.")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable results on stdout.")]
LogFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--log-file", help="Also append a log of the run (start, warnings, errors, finish) to this file."
    ),
]
WaitOpt = Annotated[
    float, typer.Option("--wait", help="Seconds to wait for another run holding the output dir's lock.")
]
PreaugOpt = Annotated[
    str,
    typer.Option(
        "--preaug",
        help="Pre-augmentation NAME[:k=v] (none, differencing, detrending, robust_scaling, log_returns, "
        "percent_change, rolling_norm[:window=20]) or 'auto' for the sweep's choice.",
    ),
]
StrictAutoOpt = Annotated[
    bool,
    typer.Option(
        "--strict-auto",
        help="With --preaug auto: fail (exit 1) instead of warning when the sweep's choice was made on "
        "other data (replaced or truncated; appended bars are fine) or another horizon, context, "
        "targets or model.",
    ),
]
HorizonOpt = Annotated[int, typer.Option("--horizon", help="Bars to forecast after each origin.")]
ContextOpt = Annotated[
    int,
    typer.Option("--context", help="Bars of history per window (at most; capped at the model's maximum)."),
]
TargetsOpt = Annotated[str, typer.Option("--targets", help="Comma-separated variates forecast jointly.")]
QuantilesOpt = Annotated[
    str, typer.Option("--quantiles", help="Comma-separated quantile levels to write and score (with 0.5).")
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed for sampling-based quantile inversion.")]
DependenceOpt = Annotated[
    str,
    typer.Option(
        "--dependence",
        help="How forecast steps are coupled when inverting quantiles of path-dependent augmentations "
        "(differencing, rolling_norm): auto (a copula learned from resolved windows), independent "
        "(independent sample paths) or comonotonic (per-quantile inversion).",
    ),
]
CalibrateOpt = Annotated[
    str,
    typer.Option(
        "--calibrate",
        help="none, or conformal: adjust each quantile level per step by adaptive conformal inference "
        "on resolved windows (metrics.json reports raw and calibrated scores).",
    ),
]
PathsOpt = Annotated[
    int | None, typer.Option("--paths", help="Sample paths for path-dependent inversion (default 4096).")
]
MaxGapOpt = Annotated[
    int | None,
    typer.Option("--max-gap", help="Largest gap (bars) in 24/7 data to fill; a larger one is an error."),
]
CalendarOpt = Annotated[
    str | None,
    typer.Option(
        "--calendar",
        help="Exchange calendar the bars follow (XNYS, XLON, ...; 'none' for no holidays). "
        "Default: XNYS when the sessions match it, else none.",
    ),
]
CovariatesOpt = Annotated[
    str,
    typer.Option(
        "--covariates",
        help="Comma-separated covariates beside the targets: volume (log1p, past only), calendar (hour of "
        "day and day of week as sin/cos, known ahead), or a SYMBOL of the data folder (its close, past "
        "only). Default: none. In a sweep each comma-separated item is one set to try, + joins "
        "(none,volume,calendar,volume+calendar).",
    ),
]
StrideOpt = Annotated[
    int | None, typer.Option("--stride", help="Bars between origins (default: the horizon).")
]
FeeOpt = Annotated[float, typer.Option("--fee-bps", help="Trading fee per side, basis points.")]
AllowShortOpt = Annotated[bool, typer.Option("--allow-short", help="Let the trading view go short.")]
WindowsOpt = Annotated[int, typer.Option("--windows", help="Number of rolling windows (the latest ones).")]
StartOpt = Annotated[str | None, typer.Option("--start", help="Earliest origin date (UTC), e.g. 2021-05-19.")]
EndOpt = Annotated[str | None, typer.Option("--end", help="Latest origin date (UTC).")]
ExecutorOpt = Annotated[
    str,
    typer.Option(
        "--executor",
        envvar="CHRONOBT_EXECUTOR",
        help="Where symbols are forecast: local (this process) or ray (a pool of Ray actors, one model "
        "each; needs pip install 'chronobt[ray]').",
    ),
]
RayAddressOpt = Annotated[
    str | None,
    typer.Option(
        "--ray-address",
        envvar="CHRONOBT_RAY_ADDRESS",
        help="With --executor ray: auto joins a running cluster, ray://HOST:PORT a remote one; "
        "default: start a local Ray instance.",
    ),
]
ReportOpt = Annotated[
    bool, typer.Option("--report", help="Also write report.html (charts, offline) beside the outputs.")
]
FinetuneOpt = Annotated[
    str,
    typer.Option(
        "--finetune",
        help="Walk-forward fine-tuning on the symbols' own history before each refit point: off, lora "
        "(needs chronobt[finetune]) or full. Backtests write fine-tuned results beside zero-shot ones.",
    ),
]
FinetuneStepsOpt = Annotated[
    int | None,
    typer.Option(
        "--finetune-steps",
        help="Training steps per refit (default 1000, chronos' fit default; slow on a CPU, e.g. ~1 s per "
        "step for the bundled model at batch 32).",
    ),
]
FinetuneLrOpt = Annotated[
    float | None,
    typer.Option("--finetune-lr", help="Learning rate (default: 1e-6 full, 1e-5 lora, as chronos advises)."),
]
FinetuneContextOpt = Annotated[
    int | None,
    typer.Option("--finetune-context", help="Context length of training windows (default: the model's)."),
]
FinetuneBatchOpt = Annotated[
    int | None,
    typer.Option("--finetune-batch", help="Series per training batch (default 256; halved on CUDA OOM)."),
]
RefitEveryOpt = Annotated[
    int | None,
    typer.Option(
        "--refit-every", help="Fine-tune again every N windows (default: once, before the first origin)."
    ),
]
FinetunePerSymbolOpt = Annotated[
    bool,
    typer.Option("--finetune-per-symbol", help="One fine-tuned model per symbol instead of one for all."),
]
SymbolsArg = Annotated[
    list[str], typer.Argument(help="Symbols (files <data-dir>/<SYMBOL>.parquet) or paths.")
]


def parse_float_list(text: str, *, option: str) -> tuple[float, ...]:
    """Parse "0.1,0.5,0.9" -> (0.1, 0.5, 0.9); a bad item is a usage error naming the option."""
    items = [p.strip() for p in text.split(",") if p.strip()]
    try:
        return tuple(float(p) for p in items)
    except ValueError:
        raise ConfigError(f"{option} {text!r}: expected comma-separated numbers like 0.1,0.5,0.9") from None


def parse_name_list(text: str, *, option: str) -> tuple[str, ...]:
    """Parse "open, Close" -> ("open", "close")."""
    names = tuple(p.strip().lower() for p in text.split(",") if p.strip())
    if not names:
        raise ConfigError(f"{option} is empty; give comma-separated names")
    return names


def run_settings(
    horizon: HorizonOpt = 24,
    context: ContextOpt = 2048,
    targets: TargetsOpt = ALL_TARGETS,
    quantiles: QuantilesOpt = ALL_QUANTILES,
    seed: SeedOpt = 0,
    dependence: DependenceOpt = "auto",
    calibrate: CalibrateOpt = "none",
    paths: PathsOpt = None,
    max_gap: MaxGapOpt = None,
    calendar: CalendarOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    output_dir: OutputDirOpt = DEFAULT_OUTPUT_DIR,
) -> dict[str, Any]:
    """The :class:`~chronobt.config.RunOptions` fields (backtest, sweep, forecast)."""
    if dependence.strip().lower() not in DEPENDENCE_CHOICES:
        raise ConfigError(f"--dependence must be one of {', '.join(DEPENDENCE_CHOICES)}, got {dependence!r}")
    return {
        "horizon": horizon,
        "context": context,
        "targets": parse_name_list(targets, option="--targets"),
        "quantiles": parse_float_list(quantiles, option="--quantiles"),
        "seed": seed,
        "dependence": dependence.strip().lower(),
        "calibrate": calibrate.strip().lower(),
        "n_paths": paths,
        "max_gap": max_gap,
        "calendar": calendar,
        "data_dir": data_dir,
        "output_dir": output_dir,
    }


def covariate_settings(covariates: CovariatesOpt = "none") -> str:
    """``--covariates`` as given: one set for backtest and forecast (:func:`parse_covariates`), one set per
    comma-separated item for sweep (:func:`~chronobt.pipeline.covariates.parse_covariate_sets`)."""
    return covariates


def evaluation_settings(
    stride: StrideOpt = None, fee_bps: FeeOpt = 10.0, allow_short: AllowShortOpt = False
) -> dict[str, Any]:
    """The :class:`~chronobt.config.EvaluationOptions` fields past :func:`run_settings` (backtest, sweep)."""
    return {"stride": stride, "fee_bps": fee_bps, "allow_short": allow_short}


def executor_settings(executor: ExecutorOpt = "local", ray_address: RayAddressOpt = None) -> dict[str, Any]:
    """The executor fields of :class:`~chronobt.config.EvaluationOptions` (backtest, sweep)."""
    kind = executor.strip().lower()
    check_executor(kind, ray_address)
    if kind == "ray":
        import_ray()  # a missing extra is a usage error before any model or data is loaded
    return {"executor": kind, "ray_address": ray_address}


def engine_settings(
    model: eo.ModelOpt = "auto",
    device: eo.DeviceOpt = "auto",
    dtype: eo.DtypeOpt = "auto",
    compile: eo.CompileOpt = None,
    compile_backend: eo.CompileBackendOpt = None,
    compile_mode: eo.CompileModeOpt = None,
    batch_size: eo.BatchSizeOpt = None,
    cache_dir: eo.CacheDirOpt = None,
) -> EngineConfig:
    """The :class:`~chronobt.engine.core.EngineConfig` (environment variables mapped here, in the CLI)."""
    return eo.engine_config_from_options(
        model=model,
        device=device,
        dtype=dtype,
        compile=compile,
        compile_backend=compile_backend,
        compile_mode=compile_mode,
        batch_size=batch_size,
        cache_dir=cache_dir if cache_dir is not None else eo.default_cache_dir(),
    )


def finetune_settings(
    finetune: FinetuneOpt = "off",
    finetune_steps: FinetuneStepsOpt = None,
    finetune_lr: FinetuneLrOpt = None,
    finetune_context: FinetuneContextOpt = None,
    finetune_batch: FinetuneBatchOpt = None,
    refit_every: RefitEveryOpt = None,
    finetune_per_symbol: FinetunePerSymbolOpt = False,
) -> dict[str, Any]:
    """The fine-tuning fields of :class:`~chronobt.config.RunOptions` (backtest, sweep, forecast)."""
    return {
        "finetune": finetune.strip().lower(),
        "finetune_steps": finetune_steps,
        "finetune_lr": finetune_lr,
        "finetune_context": finetune_context,
        "finetune_batch": finetune_batch,
        "refit_every": refit_every,
        "finetune_per_symbol": finetune_per_symbol,
    }


def lock_settings(wait: WaitOpt = 0.0) -> float:
    """Seconds to wait for the output dir's lock."""
    if wait < 0:
        raise ConfigError(f"--wait {wait:g}: expected 0 or a positive number of seconds")
    return wait


def _ui_settings(
    quiet: QuietOpt = False, debug: DebugOpt = False, json_out: JsonOpt = False, log_file: LogFileOpt = None
) -> dict[str, Any]:
    return {"quiet": quiet, "debug": debug, "json_out": json_out, "log_file": log_file}


def _parameters(fn: Callable[..., Any]) -> list[inspect.Parameter]:
    return list(inspect.signature(fn, eval_str=True).parameters.values())


def command(app: typer.Typer, name: str, **sets: Callable[..., Any]) -> Callable[[F], F]:
    """Register ``fn`` as command ``name`` with the option ``sets`` (and the UI options) appended.

    ``fn`` receives ``ui`` (a :class:`~chronobt.cli.common.Ui`) and, for every set, the set's result
    under the set's keyword; errors raised while building them or running ``fn`` become one line.
    """
    every = {"_ui": _ui_settings, **sets}
    owned = {key: [p.name for p in _parameters(fn)] for key, fn in every.items()}

    def decorate(fn: F) -> F:
        own = [p for p in _parameters(fn) if p.name not in every and p.name != "ui"]

        @functools.wraps(fn)
        def wrapper(**kwargs: Any) -> Any:
            groups = {key: {n: kwargs.pop(n) for n in names} for key, names in owned.items()}
            with command_context(**_ui_settings(**groups.pop("_ui"))) as ui:
                built = {key: every[key](**values) for key, values in groups.items()}
                return fn(ui=ui, **kwargs, **built)

        params = own + [p for key, fn_ in every.items() for p in _parameters(fn_)]
        wrapper.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in params]
        )
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        app.command(name, context_settings=CONTEXT_SETTINGS)(wrapper)
        return fn

    return decorate
