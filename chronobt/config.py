"""What a run is asked to do: the options of backtest, sweep and forecast, each declared and checked once.

Engine options (model, device, dtype, compile, batch size) live in
:class:`chronobt.engine.config.EngineConfig`.
The configs are frozen keyword-only dataclasses that validate themselves in ``__post_init__`` and raise
:class:`~chronobt.errors.ConfigError` (exit code 2) naming the option, the bad value and what is allowed:

- :class:`RunOptions`: what every forecasting command shares (horizon, context, targets, quantiles, seed,
  folders, gap limit, step dependence, sample paths, covariates: :mod:`chronobt.pipeline.covariates`);
- :class:`EvaluationOptions`: plus what scoring past windows needs (stride, fee, shorting): backtest, sweep;
- :class:`BacktestConfig`, :class:`SweepConfig`, :class:`ForecastConfig`: one per command;
- :class:`FinetuneSettings`: fine-tuning's defaults and checks (the configs hold the options as given);
- :class:`LockOptions`: how long a run waits for its output folder's lock.
- :class:`TrackConfig`: what `chronobt track` scores and when live drift fails the run.

Choice fields are ``Literal`` types (their ``*_CHOICES`` tuples derive from them); the command line takes
its defaults and choices from these classes (:mod:`chronobt.cli.options`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal, TypeVar, get_args

from chronobt.augment import candidate_specs, parse_augmentation
from chronobt.augment.inversion import MAX_PATHS
from chronobt.data import TARGETS
from chronobt.data.sessions import NO_CALENDAR, check_calendar_name
from chronobt.data.twins import COLUMN_SETS as COLUMN_SETS
from chronobt.data.twins import ColumnSet as ColumnSet
from chronobt.data.twins import check_column_set as check_column_set
from chronobt.data.validate import check_max_gap
from chronobt.data.windows import MIN_CONTEXT
from chronobt.errors import ConfigError
from chronobt.option_checks import check_finite as check_finite
from chronobt.option_checks import check_time_zone as check_time_zone
from chronobt.option_checks import check_trading_costs as check_trading_costs
from chronobt.option_checks import parse_date as parse_date
from chronobt.option_checks import ray_host_port as ray_host_port

_T = TypeVar("_T")

DEFAULT_QUANTILES: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
#: The choice options; the command line shows these and matches them case-insensitively.
Dependence = Literal["auto", "independent", "comonotonic"]
#: ``auto``: conformal where enough resolved windows exist, else raw with one line; ``none``: raw
Calibrate = Literal["auto", "none", "conformal"]
ExecutorKind = Literal["local", "ray"]
#: when a market order of the trading view fills: the next bar's open, or the origin's close (optimistic)
Entry = Literal["next-open", "close"]
#: the modes that train (:class:`FinetuneSettings`); ``off`` runs zero-shot
TrainingMode = Literal["lora", "full"]
FinetuneMode = Literal["off", TrainingMode]
#: a sweep's selection metrics from each strategy's trading results (higher is better)
TradingMetric = Literal["sharpe", "sortino", "calmar", "total_return"]
#: a sweep's selection metrics (columns of its leaderboard)
SelectionMetric = Literal["mase", "wql", "mae", "rmse", "smape", "directional_accuracy", TradingMetric]
DEPENDENCE_CHOICES: tuple[str, ...] = get_args(Dependence)
CALIBRATE_CHOICES: tuple[str, ...] = get_args(Calibrate)
EXECUTOR_CHOICES: tuple[str, ...] = get_args(ExecutorKind)
ENTRY_CHOICES: tuple[str, ...] = get_args(Entry)
FINETUNE_CHOICES: tuple[str, ...] = get_args(FinetuneMode)
METRIC_CHOICES: tuple[str, ...] = get_args(SelectionMetric)
#: Selection metrics of a sweep and whether a higher value is better (the losses: lower).
TRADING_METRICS: tuple[str, ...] = get_args(TradingMetric)
SELECTION_METRICS: dict[str, bool] = {
    name: name == "directional_accuracy" or name in TRADING_METRICS for name in METRIC_CHOICES
}


@dataclass(frozen=True)
class FinetuneSettings:
    """How to fine-tune (``--finetune lora|full``): the one home of fine-tuning's defaults and checks.

    The defaults follow chronos' ``Chronos2Pipeline.fit``: 1000 steps, batch 256, learning rate 1e-6 for
    ``full``; for ``lora`` its docstring recommends a higher rate, 1e-5 (:attr:`LEARNING_RATES`).
    ``context`` ``None``: the model's context length; ``refit_every`` ``None``: once, before the first
    origin. Messages name the command-line options.
    """

    #: the default learning rate per mode
    LEARNING_RATES: ClassVar[dict[TrainingMode, float]] = {"full": 1e-6, "lora": 1e-5}

    mode: TrainingMode
    steps: int = 1000
    learning_rate: float = LEARNING_RATES["full"]
    context: int | None = None
    refit_every: int | None = None
    per_symbol: bool = False
    batch_size: int = 256
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ConfigError(f"--finetune-steps must be >= 1, got {self.steps}")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ConfigError(f"--finetune-lr must be > 0 and finite, got {self.learning_rate}")
        if self.context is not None and self.context < MIN_CONTEXT:
            raise ConfigError(f"--finetune-context must be >= {MIN_CONTEXT} bars, got {self.context}")
        if self.batch_size < 1:
            raise ConfigError(f"--finetune-batch must be >= 1 series, got {self.batch_size}")
        if self.refit_every is not None and self.refit_every < 1:
            raise ConfigError(f"--refit-every must be >= 1 windows, got {self.refit_every}")

    @classmethod
    def from_config(cls, config: RunOptions) -> FinetuneSettings | None:
        """The settings of ``config``, its unset options at their defaults (``None`` with ``--finetune
        off``; then setting any other fine-tuning option is a ConfigError). ``config.finetune`` is one
        of :data:`FINETUNE_CHOICES`: :class:`RunOptions` checks it."""
        given = {
            "--finetune-steps": config.finetune_steps,
            "--finetune-lr": config.finetune_lr,
            "--finetune-context": config.finetune_context,
            "--finetune-batch": config.finetune_batch,
            "--refit-every": config.refit_every,
            "--finetune-per-symbol": config.finetune_per_symbol or None,
        }
        if config.finetune == "off":
            named = [name for name, value in given.items() if value is not None]
            if named:
                raise ConfigError(f"{', '.join(named)} need --finetune lora or --finetune full")
            return None
        return cls(
            mode=config.finetune,
            steps=_or(config.finetune_steps, cls.steps),
            learning_rate=_or(config.finetune_lr, cls.LEARNING_RATES[config.finetune]),
            context=config.finetune_context,
            refit_every=config.refit_every,
            per_symbol=config.finetune_per_symbol,
            batch_size=_or(config.finetune_batch, cls.batch_size),
            seed=config.seed,
        )

    def record(self) -> dict[str, object]:
        return {
            "mode": self.mode,
            "steps": self.steps,
            "learning_rate": self.learning_rate,
            "context": self.context,
            "refit_every": self.refit_every,
            "per_symbol": self.per_symbol,
            "batch_size": self.batch_size,
            "seed": self.seed,
        }


def _or(value: _T | None, default: _T) -> _T:
    return default if value is None else value


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """Options every forecasting command shares (backtest, sweep, forecast)."""

    horizon: int = 24
    context: int = 2048
    targets: tuple[str, ...] = TARGETS
    quantiles: tuple[float, ...] = DEFAULT_QUANTILES
    seed: int = 0
    data_dir: Path = Path("data")
    output_dir: Path = Path("results")
    max_gap: int | None = None
    calendar: str | None = None
    dependence: Dependence = "auto"
    n_paths: int | None = None
    #: interval calibration (:func:`chronobt.pipeline.uncertainty.calibrate_as_requested`)
    calibrate: Calibrate = "auto"
    covariates: tuple[str, ...] = ()
    #: walk-forward fine-tuning: the options as given, ``None`` for :class:`FinetuneSettings`' defaults
    finetune: FinetuneMode = "off"
    finetune_steps: int | None = None
    finetune_lr: float | None = None
    finetune_context: int | None = None
    finetune_batch: int | None = None
    refit_every: int | None = None
    finetune_per_symbol: bool = False

    def __post_init__(self) -> None:
        if self.horizon < 1:
            raise ConfigError(f"--horizon must be >= 1, got {self.horizon}")
        if self.context < MIN_CONTEXT:
            raise ConfigError(f"--context must be >= {MIN_CONTEXT} bars, got {self.context}")
        bad = [t for t in self.targets if t not in TARGETS]
        if bad or not self.targets or len(set(self.targets)) != len(self.targets):
            raise ConfigError(
                f"--targets {','.join(self.targets)} is invalid; "
                f"choose distinct names from {','.join(TARGETS)}"
            )
        q = self.quantiles
        if not q or any(not 0.0 < x < 1.0 for x in q) or list(q) != sorted(set(q)):
            raise ConfigError(f"--quantiles must be ascending distinct levels in (0, 1), got {q}")
        if 0.5 not in q or q[0] > 0.1 or q[-1] < 0.9:
            raise ConfigError(
                f"--quantiles must include 0.5 (the median) and reach 0.1 and 0.9 (the 80% interval), got {q}"
            )
        if self.seed < 0:
            raise ConfigError(f"--seed must be >= 0, got {self.seed}")
        _check_choice("--dependence", self.dependence, DEPENDENCE_CHOICES)
        _check_choice("--calibrate", self.calibrate, CALIBRATE_CHOICES)
        _check_choice("--finetune", self.finetune, FINETUNE_CHOICES)
        check_max_gap(self.max_gap)
        if self.calendar is not None and self.calendar.strip().lower() not in NO_CALENDAR:
            check_calendar_name(self.calendar)
        if self.n_paths is not None and not 2 <= self.n_paths <= MAX_PATHS:
            raise ConfigError(f"--paths must be between 2 and {MAX_PATHS:,}, got {self.n_paths}")
        if len(set(self.covariates)) != len(self.covariates):
            raise ConfigError(
                f"--covariates {','.join(self.covariates)} names a covariate twice; list each once"
            )
        FinetuneSettings.from_config(self)


def _check_choice(option: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ConfigError(f"{option} must be one of {', '.join(choices)}, got {value!r}")


@dataclass(frozen=True)
class LockOptions:
    """How a run takes its output folder's lock: ``wait`` seconds for another run holding it."""

    wait: float = 0.0

    def __post_init__(self) -> None:
        check_finite("--wait", self.wait)
        if self.wait < 0:
            raise ConfigError(f"--wait {self.wait:g}: expected 0 or a positive number of seconds")


@dataclass(frozen=True, kw_only=True)
class EvaluationOptions(RunOptions):
    """:class:`RunOptions` plus what scoring past windows needs (backtest and sweep)."""

    stride: int | None = None
    fee_bps: float = 10.0
    allow_short: bool = False
    #: the trading view: ``--strategy`` items (checked by :mod:`chronobt.evaluation.strategies`), market
    #: entries, slippage per side (bps) and the annual borrow rate on shorts and leverage
    strategies: tuple[str, ...] = ("sign",)
    entry: Entry = "next-open"
    slippage_bps: float = 0.0
    borrow_rate: float = 0.0
    #: where the symbols' chunks run: ``local`` (this process) or ``ray`` (:mod:`chronobt.runs.executors`)
    executor: ExecutorKind = "local"
    #: with ``ray``: ``None`` starts a local Ray instance, ``auto`` joins a running cluster,
    #: ``ray://host:port`` connects to a remote one
    ray_address: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.stride is not None and self.stride < 1:
            raise ConfigError(f"--stride must be >= 1, got {self.stride}")
        check_finite("--fee-bps", self.fee_bps)
        if self.fee_bps < 0:
            raise ConfigError(f"--fee-bps must be >= 0, got {self.fee_bps}")
        check_trading_costs(self.slippage_bps, self.borrow_rate)
        _check_choice("--entry", self.entry, ENTRY_CHOICES)
        check_executor(self.executor, self.ray_address)

    @property
    def effective_stride(self) -> int:
        return self.stride if self.stride is not None else self.horizon


def check_executor(executor: str, ray_address: str | None) -> None:
    """ConfigError unless ``executor`` is a known one and ``ray_address`` is usable with it."""
    if executor not in EXECUTOR_CHOICES:
        raise ConfigError(f"--executor {executor!r} is not one of {', '.join(EXECUTOR_CHOICES)}")
    if ray_address is None:
        return
    if executor != "ray":
        raise ConfigError(f"--ray-address {ray_address} needs --executor ray; add it or drop the address")
    if ray_address != "auto" and ray_host_port(ray_address) is None:
        raise ConfigError(
            f"--ray-address {ray_address!r}: expected auto, ray://HOST:PORT or HOST:PORT (a head's GCS port)"
        )


def _check_symbols_and_preaug(symbols: tuple[str, ...], preaug: str) -> None:
    """The checks backtest and forecast share: at least one symbol, a valid spec (or ``auto``)."""
    if not symbols:
        raise ConfigError("no symbols given; pass at least one SYMBOL (see `chronobt data list`)")
    if preaug != "auto":
        parse_augmentation(preaug)  # a bad spec is a usage error for the whole run


@dataclass(frozen=True, kw_only=True)
class BacktestConfig(EvaluationOptions):
    """Everything that defines a backtest run.

    ``preaug`` is an augmentation spec or ``auto`` (the sweep's choice per symbol); with ``auto`` the
    origins start after the sweep's validation span unless ``start`` is given, and ``strict_auto`` makes a
    choice made on other data or another setup an error instead of a warning.
    """

    symbols: tuple[str, ...]
    preaug: str = "none"
    strict_auto: bool = False
    windows: int = 100
    start: str | None = None
    end: str | None = None
    portfolio: bool = False  # --portfolio: one account over the symbols, within the two caps below
    max_gross: float = 1.0
    max_weight: float = 1.0

    def __post_init__(self) -> None:
        _check_symbols_and_preaug(self.symbols, self.preaug)
        super().__post_init__()
        if self.windows < 1:
            raise ConfigError(f"--windows must be >= 1, got {self.windows}")
        if not all(math.isfinite(c) and c > 0 for c in (self.max_gross, self.max_weight)):
            raise ConfigError(
                f"--max-gross and --max-weight must be > 0, got {self.max_gross}, {self.max_weight}"
            )
        start, end = parse_date(self.start, option="--start"), parse_date(self.end, option="--end")
        if start is not None and end is not None and end < start:
            raise ConfigError(f"--end {self.end} is before --start {self.start}; swap them")


@dataclass(frozen=True, kw_only=True)
class SweepConfig(EvaluationOptions):
    """What a sweep evaluates.

    ``symbols`` empty means every symbol in ``data_dir``; ``preaugs`` empty means every registered
    augmentation with default parameters. ``preaugs`` items may be grids (``rolling_norm:window=20|48``);
    see :func:`chronobt.augment.expand_specs`. ``none`` is always swept: it is the reference a choice
    must beat.
    """

    symbols: tuple[str, ...] = ()
    preaugs: tuple[str, ...] = ()
    #: a sweep ranks the model's raw forecasts: calibration is the backtest's and forecast's default
    calibrate: Calibrate = "none"
    metric: SelectionMetric = "mase"
    target: str = "close"
    validation_windows: int = 60
    test_windows: int = 40
    force: bool = False
    covariate_sets: tuple[tuple[str, ...], ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_choice("--metric", self.metric, METRIC_CHOICES)
        if self.validation_windows < 1 or self.test_windows < 1:
            raise ConfigError(
                f"--validation-windows and --test-windows must be >= 1, got "
                f"{self.validation_windows} and {self.test_windows}"
            )
        if self.target not in self.targets:
            raise ConfigError(
                f"selection target {self.target!r} is not among --targets {','.join(self.targets)}; add it"
            )
        candidate_specs(self.preaugs)
        if self.metric in TRADING_METRICS and "close" not in self.targets:
            raise ConfigError(
                f"--metric {self.metric} selects on the trading of close; add close to --targets"
            )

    @property
    def candidate_covariates(self) -> tuple[tuple[str, ...], ...]:
        """The covariate sets swept, no covariates first (the reference; ``covariate_sets`` or, when
        empty, ``covariates`` as the one other set)."""
        sets = [(), *(self.covariate_sets or (self.covariates,))]
        return tuple(dict.fromkeys(tuple(s) for s in sets))

    @property
    def windows(self) -> int:
        """Windows cut per symbol: validation + test."""
        return self.validation_windows + self.test_windows

    @property
    def higher_is_better(self) -> bool:
        return SELECTION_METRICS[self.metric]


@dataclass(frozen=True, kw_only=True)
class ForecastConfig(RunOptions):
    """What to forecast: the bars after each symbol's last bar.

    ``preaug`` is an augmentation spec or ``auto`` (the sweep's choice per symbol, ``none`` if there is none);
    ``strict_auto`` makes a choice made on other data or another setup an error instead of a warning.
    """

    symbols: tuple[str, ...]
    preaug: str = "none"
    strict_auto: bool = False
    #: ``--strategy``: each strategy's order for the next bar (none: no orders), with its costs
    strategies: tuple[str, ...] = ()
    fee_bps: float = 10.0
    slippage_bps: float = 0.0
    allow_short: bool = False

    def __post_init__(self) -> None:
        _check_symbols_and_preaug(self.symbols, self.preaug)
        super().__post_init__()
        check_finite("--fee-bps", self.fee_bps)
        if self.fee_bps < 0:
            raise ConfigError(f"--fee-bps must be >= 0, got {self.fee_bps}")
        check_trading_costs(self.slippage_bps, 0.0)
        if self.refit_every is not None:
            raise ConfigError("--refit-every applies to backtests; a forecast fine-tunes once, on every bar")


def config_record(config: RunOptions) -> dict[str, object]:
    """The config as JSON-ready values (paths as strings), for manifests."""
    from dataclasses import asdict

    return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}


@dataclass(frozen=True, kw_only=True)
class TrackConfig:
    """``chronobt track``: the archives of ``symbols`` (``()``: all) scored against the data files now;
    ``drift_alpha``: the live-vs-backtest test's level (``fail_on_drift``: exit code 4)."""

    symbols: tuple[str, ...] = ()
    data_dir: Path = Path("data")
    output_dir: Path = Path("results")
    max_gap: int | None = None
    calendar: str | None = None
    fee_bps: float = 10.0
    allow_short: bool = False
    seed: int = 0
    drift_alpha: float = 0.01
    fail_on_drift: bool = False

    def __post_init__(self) -> None:
        check_finite("--drift-alpha", self.drift_alpha)
        if not 0.0 < self.drift_alpha < 1.0:
            raise ConfigError(f"--drift-alpha must be in (0, 1), got {self.drift_alpha:g}")
        EvaluationOptions(fee_bps=self.fee_bps, seed=self.seed, max_gap=self.max_gap, calendar=self.calendar)
