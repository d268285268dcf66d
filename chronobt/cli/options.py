"""The options backtest, sweep and forecast share, as ``Annotated`` aliases, and one config builder.

The configs (:mod:`chronobt.config`, :class:`~chronobt.engine.config.EngineConfig`) declare every default,
choice and check; a command's signature lists each option with its alias and the config's default::

    def backtest(symbols: SymbolsArg, horizon: HorizonOpt = RunOptions.horizon, ...) -> None:
        options = locals()
        with command_context(**ui_options(options)) as ui:
            config = build_config(BacktestConfig, options, covariates=...)

so ``--help`` shows the config's defaults (``[default: 24]``) and choices (``[auto|independent|...]``,
matched case-insensitively), and a bad value is the config's one-line usage error (exit code 2).
This module imports no torch: ``chronobt <command> --help`` starts fast.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_args, get_origin, get_type_hints

import typer
from typer.core import TyperArgument, TyperCommand

from chronobt.augment import AVAILABLE_AUGMENTATIONS, DEFAULT_N_PATHS
from chronobt.config import (
    CALIBRATE_CHOICES,
    DEPENDENCE_CHOICES,
    ENTRY_CHOICES,
    EXECUTOR_CHOICES,
    FINETUNE_CHOICES,
    EvaluationOptions,
    FinetuneSettings,
    RunOptions,
)
from chronobt.errors import ConfigError
from chronobt.pipeline.covariates import covariates_label

C = TypeVar("C")

#: ``-h`` works like ``--help`` on every command.
CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}
ALL_TARGETS = ",".join(RunOptions.targets)
ALL_QUANTILES = ",".join(str(level) for level in RunOptions.quantiles)
#: ``--covariates``' spelling of the config's default (``none``: no covariates)
NO_COVARIATES = covariates_label(RunOptions.covariates)


class _PlainArgument(TyperArgument):
    """An argument shown as its metavar alone: ``SYMBOL...`` (``[SYMBOL]...`` when optional), never
    Typer's ``{symbols}...`` usage or ``<list[str]>`` type label."""

    def _metavar(self) -> str:
        name = self.metavar or (self.name or "").upper()
        return name if self.nargs == 1 or name.endswith("...") else f"{name}..."

    def _usage_display_name(self) -> str:
        return self._metavar() if self.required else f"[{self._metavar()}]"

    def _rich_display_name(self) -> str:
        return self._metavar()

    def display_type_rich(self, ctx: Any) -> str | None:
        return None


class PlainCommand(TyperCommand):
    """A command whose arguments show clean metavars (:class:`_PlainArgument`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if type(param) is TyperArgument:
                param.__class__ = _PlainArgument  # same fields; only the help rendering differs


class _Typer(typer.Typer):
    """A Typer app whose commands are :class:`PlainCommand` unless another ``cls`` is given."""

    def command(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("cls", PlainCommand)
        return super().command(*args, **kwargs)


def command_app(**settings: Any) -> typer.Typer:
    """The Typer app of one command module (the root lists it lazily: :mod:`chronobt.cli`)."""
    return _Typer(
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        context_settings=CONTEXT_SETTINGS,
        **settings,
    )


def choices(names: Sequence[str]) -> str:
    """The metavar of a choice option: ``[auto|independent|comonotonic]``."""
    return f"[{'|'.join(names)}]"


def _augmentations() -> str:
    """``none, differencing, ..., rolling_norm[:window=20]``: the registry with each one's parameters."""
    items = []
    for name, cls in AVAILABLE_AUGMENTATIONS.items():
        params = list(inspect.signature(cls.__init__).parameters.values())[1:]
        given = ",".join(f"{p.name}={p.default}" for p in params if p.default is not p.empty)
        items.append(f"{name}[:{given}]" if given else name)
    return ", ".join(items)


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
        help=f"Pre-augmentation NAME[:k=v] ({_augmentations()}) or 'auto' for the sweep's choice.",
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
        metavar=choices(DEPENDENCE_CHOICES),
        help="How forecast steps are coupled when inverting quantiles of path-dependent augmentations "
        "(differencing, rolling_norm): auto (a copula learned from resolved windows), independent "
        "(independent sample paths) or comonotonic (per-quantile inversion).",
    ),
]
CalibrateOpt = Annotated[
    str,
    typer.Option(
        "--calibrate",
        metavar=choices(CALIBRATE_CHOICES),
        help="Interval calibration: conformal adjusts each quantile level per step by adaptive conformal "
        "inference on resolved windows; auto does so when at least 20 windows were resolved by the last "
        "origin, else keeps the raw intervals and says so in one line; none: the raw model's intervals. "
        "The raw scores and quantiles are always kept beside the calibrated ones. A sweep ranks raw "
        "forecasts (its default is none).",
    ),
]
PathsOpt = Annotated[
    int | None,
    typer.Option("--paths", help=f"Sample paths for path-dependent inversion (default {DEFAULT_N_PATHS})."),
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
        "only). In a sweep each comma-separated item is one set to try, + joins "
        "(none,volume,calendar,volume+calendar).",
    ),
]
StrideOpt = Annotated[
    int | None, typer.Option("--stride", help="Bars between origins (default: the horizon).")
]
FeeOpt = Annotated[float, typer.Option("--fee-bps", help="Trading fee per side, basis points.")]
AllowShortOpt = Annotated[bool, typer.Option("--allow-short", help="Let the trading view go short.")]
StrategyOpt = Annotated[
    str,
    typer.Option(
        "--strategy",
        help="Comma-separated trading strategies with name:k=v parameters: sign, band[:level=0.2], "
        "kelly[:fraction=0.5,cap=1.0], range[:entry=0.2,target=0.8,stop=0.05] (see README, Trading).",
    ),
]
EntryOpt = Annotated[
    str,
    typer.Option(
        "--entry",
        metavar=choices(ENTRY_CHOICES),
        help="Market entries at the next bar's open, or at the origin's close (optimistic).",
    ),
]
SlippageOpt = Annotated[
    float, typer.Option("--slippage-bps", help="Slippage per fill, basis points (beside --fee-bps).")
]
BorrowRateOpt = Annotated[
    float,
    typer.Option(
        "--borrow-rate", help="Annual borrow rate charged per bar held on shorts and leverage above 1."
    ),
]
PortfolioOpt = Annotated[
    bool, typer.Option("--portfolio", help="Also trade the symbols as one account (backtest/_portfolio/).")
]
MaxGrossOpt = Annotated[
    float, typer.Option("--max-gross", help="With --portfolio: largest gross exposure, sum of |weights|.")
]
MaxWeightOpt = Annotated[
    float, typer.Option("--max-weight", help="With --portfolio: largest |weight| of one symbol.")
]
WindowsOpt = Annotated[int, typer.Option("--windows", help="Number of rolling windows (the latest ones).")]
StartOpt = Annotated[str | None, typer.Option("--start", help="Earliest origin date (UTC), e.g. 2021-05-19.")]
EndOpt = Annotated[str | None, typer.Option("--end", help="Latest origin date (UTC).")]
ExecutorOpt = Annotated[
    str,
    typer.Option(
        "--executor",
        envvar="CHRONOBT_EXECUTOR",
        metavar=choices(EXECUTOR_CHOICES),
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
        metavar=choices(FINETUNE_CHOICES),
        help="Walk-forward fine-tuning on the symbols' own history before each refit point: off, lora "
        "(needs chronobt[finetune]) or full. Backtests write fine-tuned results beside zero-shot ones.",
    ),
]
FinetuneStepsOpt = Annotated[
    int | None,
    typer.Option(
        "--finetune-steps",
        help=f"Training steps per refit (default {FinetuneSettings.steps}, chronos' fit default; slow on "
        "a CPU: see the finetune.py section of benchmarks/RESULTS.md).",
    ),
]
FinetuneLrOpt = Annotated[
    float | None,
    typer.Option(
        "--finetune-lr",
        help="Learning rate (default: "
        + ", ".join(
            f"{lr:.0e} {mode}".replace("e-0", "e-") for mode, lr in FinetuneSettings.LEARNING_RATES.items()
        )
        + ", as chronos advises).",
    ),
]
FinetuneContextOpt = Annotated[
    int | None,
    typer.Option("--finetune-context", help="Context length of training windows (default: the model's)."),
]
FinetuneBatchOpt = Annotated[
    int | None,
    typer.Option(
        "--finetune-batch",
        help=f"Series per training batch (default {FinetuneSettings.batch_size}; halved on CUDA OOM).",
    ),
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
    list[str],
    typer.Argument(metavar="SYMBOL", help="Symbols (files <data-dir>/<SYMBOL>.parquet) or paths."),
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


#: Config fields whose option has another name.
_OPTION_OF_FIELD = {"n_paths": "paths", "strategies": "strategy"}
#: Config fields a command parses itself (backtest, forecast: one covariate set; sweep: sets to try).
_COMMAND_PARSED = frozenset({"covariates"})
#: Config fields given as text on the command line.
_PARSERS: dict[str, Callable[[Any], Any]] = {
    "targets": lambda text: parse_name_list(text, option="--targets"),
    "quantiles": lambda text: parse_float_list(text, option="--quantiles"),
    "strategies": lambda text: _strategy_labels(text),
}


def _strategy_labels(text: str | None) -> tuple[str, ...]:
    """``--strategy`` as canonical strategy labels (``()`` when not given: forecast's no orders)."""
    if text is None:
        return ()
    from chronobt.evaluation.strategies import parse_strategies

    return tuple(s.label for s in parse_strategies(text))


def _is_choice(hint: Any) -> bool:
    """True for ``Literal[...]`` (or ``Literal[...] | None``): an option matched case-insensitively."""
    return get_origin(hint) is Literal or any(get_origin(arg) is Literal for arg in get_args(hint))


def build_config(config_type: type[C], options: Mapping[str, Any], **given: Any) -> C:
    """``config_type`` from a command's options (its ``locals()``): the one way a command builds a config.

    Each field takes the option of its name (``n_paths`` from ``--paths``), lists become tuples,
    ``--targets``/``--quantiles`` are parsed and choice fields (``Literal``) lower-cased; ``given``
    sets the fields a command computes itself. The config's own checks raise the usage errors.
    """
    hints = get_type_hints(config_type)
    values: dict[str, Any] = {}
    for field in fields(config_type):  # type: ignore[arg-type]
        option = _OPTION_OF_FIELD.get(field.name, field.name)
        if field.name in given or field.name in _COMMAND_PARSED or option not in options:
            continue
        value = options[option]
        if field.name in _PARSERS:
            value = _PARSERS[field.name](value)
        elif isinstance(value, list | tuple):
            value = tuple(value)
        elif isinstance(value, str) and _is_choice(hints[field.name]):
            value = value.strip().lower()
        values[field.name] = value
    return config_type(**values, **given)


def ui_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The options of :func:`~chronobt.cli.common.command_context` (``--quiet``, ``--debug``, ...)."""
    return {name: options[name] for name in ("quiet", "debug", "json_out", "log_file")}


def check_extras(config: EvaluationOptions) -> None:
    """A missing optional dependency is a usage error before any model or data is loaded."""
    if config.executor == "ray":
        from chronobt.runs.executors import import_ray

        import_ray()
