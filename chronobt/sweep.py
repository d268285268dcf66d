"""Choose the best pre-augmentation per symbol with nested (validation -> test) selection.

For each symbol the latest ``validation_windows + test_windows`` rolling windows are cut once
(:func:`chronobt.backtest.prepare_symbol`). The earlier ``validation`` windows choose the augmentation;
the later ``test`` windows only *report* the chosen one next to ``none`` and the naive baseline, so the
reported score was never used to pick the winner. Validation windows whose futures reach past the first
test origin (possible only with ``stride < horizon``) are dropped, so the choice could have been made at
the first test origin.

Every (symbol, augmentation) pair is a *cell*. Cells are forecast a symbol at a time, all of that
symbol's augmentations in one batched engine call (:func:`chronobt.backtest.forecast_jobs`), and each
cell's scores are stored atomically under ``<output-dir>/sweep/cells/`` as soon as its chunk is done. The
file name carries a hash of everything the scores depend on (data checksum, windows, model checksum,
options), so a rerun skips finished cells, an interrupted sweep loses at most the chunk in flight, and new
data or a new model recomputes.

Outputs under ``<output-dir>/sweep/``: ``leaderboard.csv`` / ``leaderboard.parquet`` (one row per symbol,
augmentation and split), ``best/<SYMBOL>.json`` (read by ``--preaug auto``) and ``manifest.json``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import math
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from chronobt._version import __version__
from chronobt.augment import AVAILABLE_AUGMENTATIONS, parse_augmentation
from chronobt.backtest import (
    BacktestConfig,
    EvaluationOptions,
    Job,
    Progress,
    Reference,
    SymbolWindows,
    evaluate_job,
    forecast_jobs,
    invert_job,
    library_versions,
    make_job,
    preaug_slug,
    prepare_symbol,
    score_baselines,
)
from chronobt.data import list_symbols
from chronobt.engine import Chronos2Engine, EngineConfig
from chronobt.errors import ChronobtError, ConfigError, DataError
from chronobt.metrics import METRIC_NAMES
from chronobt.results import write_json_atomic, write_parquet_atomic, write_text_atomic

logger = logging.getLogger(__name__)

#: Selection metrics and whether a higher value is better.
SELECTION_METRICS: dict[str, bool] = {
    "mase": False,
    "wql": False,
    "mae": False,
    "rmse": False,
    "smape": False,
    "directional_accuracy": True,
}
SPLITS = ("validation", "test")
#: Bumped when the stored cell format or the scoring changes, so old cells are recomputed.
CELL_FORMAT = 1
LEADERBOARD_COLUMNS = (
    "symbol",
    "preaug",
    "split",
    "target",
    "windows",
    *METRIC_NAMES,
    "skill",
    "rank",
    "selected",
)


@dataclass(frozen=True, kw_only=True)
class SweepConfig(EvaluationOptions):
    """What a sweep evaluates (engine options live in :class:`~chronobt.engine.EngineConfig`).

    ``symbols`` empty means every symbol in ``data_dir``; ``preaugs`` empty means every registered
    augmentation with default parameters. ``preaugs`` items may be grids (``rolling_norm:window=20|48``);
    see :func:`expand_preaugs`. ``none`` is always swept: it is the reference a choice must beat.
    """

    symbols: tuple[str, ...] = ()
    preaugs: tuple[str, ...] = ()
    metric: str = "mase"
    target: str = "close"
    validation_windows: int = 60
    test_windows: int = 40
    force: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.metric not in SELECTION_METRICS:
            raise ConfigError(f"--metric {self.metric!r} is not one of {', '.join(SELECTION_METRICS)}")
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

    def backtest_config(self, symbols: Sequence[str]) -> BacktestConfig:
        """The backtest settings of this sweep for ``symbols`` (windows = validation + test)."""
        shared = {f.name: getattr(self, f.name) for f in fields(EvaluationOptions)}
        return BacktestConfig(
            symbols=tuple(symbols), windows=self.validation_windows + self.test_windows, **shared
        )

    @property
    def higher_is_better(self) -> bool:
        return SELECTION_METRICS[self.metric]


def expand_preaugs(items: str | Sequence[str]) -> tuple[str, ...]:
    """Canonical augmentation specs from a comma-separated list with optional ``|`` grids.

    ``"none,rolling_norm:window=20|48"`` -> ``("none", "rolling_norm:window=20", "rolling_norm:window=48")``.
    A comma-separated piece without ``:`` but with ``=`` continues the previous spec's parameters
    (``rolling_norm:window=20,min_periods=5``); several gridded parameters expand to their product.
    Order is kept and duplicates dropped.

    Raises
    ------
    ConfigError
        An unknown name or parameter (from :func:`~chronobt.augment.parse_augmentation`), or ``auto``.
    """
    pieces = [items] if isinstance(items, str) else list(items)
    tokens: list[str] = []
    for piece in pieces:
        for part in (p.strip() for p in piece.split(",")):
            if not part:
                continue
            if "=" in part and ":" not in part and tokens:
                tokens[-1] += "," + part
            else:
                tokens.append(part)
    specs: list[str] = []
    for token in tokens:
        if token == "auto":
            raise ConfigError("--preaug auto is what a sweep produces; list augmentations to sweep instead")
        for spec in _expand_grid(token):
            canonical = str(parse_augmentation(spec))
            if canonical not in specs:
                specs.append(canonical)
    return tuple(specs)


def _expand_grid(token: str) -> list[str]:
    name, _, params = token.partition(":")
    if not params:
        return [name]
    keys: list[str] = []
    choices: list[list[str]] = []
    for item in params.split(","):
        key, eq, values = item.partition("=")
        if not eq:
            return [token]  # not k=v: let parse_augmentation explain the problem
        keys.append(key.strip())
        choices.append([v.strip() for v in values.split("|")])
    return [
        f"{name}:" + ",".join(f"{k}={v}" for k, v in zip(keys, combo, strict=True))
        for combo in itertools.product(*choices)
    ]


def candidate_specs(preaugs: Sequence[str]) -> tuple[str, ...]:
    """The augmentations a sweep tries, in tie-break order: ``none`` first, then the given ones
    (or every registered augmentation with default parameters, in registry order)."""
    specs = (
        expand_preaugs(preaugs)
        if preaugs
        else tuple(str(parse_augmentation(n)) for n in AVAILABLE_AUGMENTATIONS)
    )
    none = str(parse_augmentation("none"))
    return (none, *(s for s in specs if s != none))


def discover_symbols(data_dir: Path) -> tuple[str, ...]:
    """Every symbol with a parquet file in ``data_dir`` (unreadable files included, so they are reported)."""
    symbols = tuple(info.symbol for info in list_symbols(data_dir))
    if not symbols:
        raise ConfigError(
            f"{data_dir}: no <SYMBOL>.parquet files to sweep; pass --data-dir or import data with "
            "`chronobt data import`"
        )
    return symbols


@dataclass
class SymbolSweep:
    """One symbol's windows, split, and cells (scores per augmentation spec)."""

    windows: SymbolWindows
    split: dict[str, np.ndarray]  # split name -> window indices, ascending
    keys: dict[str, str]  # spec -> cell hash
    cells: dict[str, dict[str, Any]] = field(default_factory=dict)
    cached: set[str] = field(default_factory=set)
    failed: dict[str, str] = field(default_factory=dict)
    references: dict[str, Reference] = field(default_factory=dict)  # split -> baselines, scored once

    @property
    def symbol(self) -> str:
        return self.windows.symbol


@dataclass
class SweepReport:
    """What :func:`run_sweep` returns.

    Attributes
    ----------
    best : symbol -> the payload written to ``best/<SYMBOL>.json``.
    leaderboard : the rows of ``leaderboard.parquet``.
    failures : symbol -> why it has no result.
    cells_cached, cells_computed : how many cells came from the cache / went through the model.
    """

    folder: Path
    best: dict[str, dict[str, Any]] = field(default_factory=dict)
    leaderboard: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(LEADERBOARD_COLUMNS)))
    failures: dict[str, str] = field(default_factory=dict)
    cells_cached: int = 0
    cells_computed: int = 0
    engine_record: dict[str, Any] = field(default_factory=dict)


def split_windows(
    origins: np.ndarray, *, validation: int, test: int, horizon: int, label: str
) -> dict[str, np.ndarray]:
    """Split ascending ``origins`` [windows] into validation (earlier) and test (later) window indices.

    The test split is the latest ``test`` windows; validation is up to ``validation`` windows before
    them whose futures end at or before the first test origin. When fewer windows exist than asked
    for, both shrink in proportion (at least one each).

    Raises
    ------
    DataError
        Fewer than two windows, or no validation window ends before the first test origin.
    """
    n = len(origins)
    if n < 2:
        raise DataError(
            f"{label}: only {n} window fits; a sweep needs at least 2 (one validation, one test); "
            "lower --horizon/--context or use a longer series"
        )
    if n < validation + test:
        n_test = min(max(1, round(n * test / (validation + test))), n - 1)
        logger.warning(
            "%s: %d windows fit, fewer than %d validation + %d test; using %d + %d",
            label, n, validation, test, n - n_test, n_test,
        )  # fmt: skip
    else:
        n_test = test
    test_idx = np.arange(n - n_test, n)
    first_test = origins[test_idx[0]]
    usable = np.flatnonzero(origins[: n - n_test] + horizon <= first_test)
    if not usable.size:
        raise DataError(
            f"{label}: no validation window ends before the first test origin; use --stride >= --horizon"
        )
    return {"validation": usable[-validation:], "test": test_idx}


def cell_key(sw: SymbolWindows, spec: str, config: SweepConfig, model: dict[str, Any]) -> str:
    """A 16-hex hash of everything a cell's scores depend on."""
    payload = {
        "format": CELL_FORMAT,
        "chronobt": __version__,
        "symbol": sw.symbol,
        "data_sha256": sw.ohlc.sha256,
        "preaug": spec,
        "origins": [int(sw.origins[0]), int(sw.origins[-1]), len(sw.origins)],
        "horizon": config.horizon,
        "context": config.context,
        "stride": config.stride,
        "validation_windows": config.validation_windows,
        "test_windows": config.test_windows,
        "targets": list(config.targets),
        "quantiles": list(config.quantiles),
        "fee_bps": config.fee_bps,
        "allow_short": config.allow_short,
        "seed": config.seed,
        "max_gap": config.max_gap,
        "dependence": config.dependence,
        "n_paths": config.n_paths,
        "model": model,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def cell_path(output_dir: Path, symbol: str, spec: str, key: str) -> Path:
    return output_dir / "sweep" / "cells" / symbol / f"{preaug_slug(spec)}__{key}.json"


def _read_cell(path: Path, key: str) -> dict[str, Any] | None:
    try:
        cell = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        logger.debug("unreadable cell %s; recomputing", path, exc_info=True)
        return None
    if (
        not isinstance(cell, dict)
        or cell.get("key") != key
        or not all(s in cell.get("splits", {}) for s in SPLITS)
    ):
        return None
    return cell


def _model_identity(engine: Chronos2Engine) -> dict[str, Any]:
    info = engine.model_info
    record = engine.record()
    return {"id": info.get("id"), "checksum": info.get("checksum"), "dtype": str(record.get("dtype"))}


def run_sweep(
    config: SweepConfig,
    engine_config: EngineConfig | None = None,
    *,
    engine: Chronos2Engine | None = None,
    progress: Progress | None = None,
    command: Sequence[str] | None = None,
) -> SweepReport:
    """Sweep every augmentation of ``config`` on every symbol and write ``<output-dir>/sweep/``.

    Progress stages: ``prepare`` (symbols), ``cached`` (cells served from the cache), ``forecast``
    (windows through the model), ``evaluate`` (cells scored and stored).

    A symbol whose data fails is recorded in ``report.failures`` and the others go on; an augmentation
    that cannot be applied to a symbol is left out of that symbol's candidates with a warning.
    """
    symbols = config.symbols or discover_symbols(config.data_dir)
    specs = candidate_specs(config.preaugs)
    bt = config.backtest_config(symbols)
    report = SweepReport(folder=config.output_dir / "sweep")
    if engine is None:
        engine = Chronos2Engine(engine_config or EngineConfig())
    model = _model_identity(engine)

    plans: list[SymbolSweep] = []
    for i, symbol in enumerate(symbols):
        try:
            sw = prepare_symbol(symbol, bt)
            for note in sw.notes:
                logger.warning("%s", note)
            split = split_windows(
                sw.origins,
                validation=config.validation_windows,
                test=config.test_windows,
                horizon=config.horizon,
                label=sw.symbol,
            )
            plans.append(SymbolSweep(sw, split, {s: cell_key(sw, s, config, model) for s in specs}))
        except (ChronobtError, OSError) as exc:
            report.failures[symbol.upper()] = str(exc)
            logger.debug("symbol %s failed", symbol, exc_info=True)
        if progress:
            progress("prepare", i + 1, len(symbols))

    n_cells = len(plans) * len(specs)
    for plan in plans:
        if config.force:
            break
        for spec in specs:
            cell = _read_cell(
                cell_path(config.output_dir, plan.symbol, spec, plan.keys[spec]), plan.keys[spec]
            )
            if cell is not None:
                plan.cells[spec] = cell
                plan.cached.add(spec)
    report.cells_cached = sum(len(p.cached) for p in plans)
    if progress and report.cells_cached:
        progress("cached", report.cells_cached, n_cells)

    _forecast_pending(plans, specs, config, engine, report, progress)
    report.engine_record = engine.record()
    _publish(plans, specs, config, model, engine, report, command)
    return report


def _forecast_pending(
    plans: Sequence[SymbolSweep],
    specs: Sequence[str],
    config: SweepConfig,
    engine: Chronos2Engine,
    report: SweepReport,
    progress: Progress | None,
) -> None:
    """Forecast the uncached cells one symbol (chunk) at a time, storing each chunk's cells when done."""
    pending = {p.symbol: [s for s in specs if s not in p.cells] for p in plans}
    total_windows = sum(len(p.windows.origins) * len(pending[p.symbol]) for p in plans)
    total_cells = sum(len(v) for v in pending.values())
    done_windows = 0
    for plan in plans:
        jobs: list[tuple[str, Job]] = []
        for spec in pending[plan.symbol]:
            try:
                jobs.append((spec, make_job(plan.windows, spec)))
            except (ChronobtError, ValueError) as exc:
                plan.failed[spec] = str(exc)
                logger.warning("%s: %s skipped: %s", plan.symbol, spec, exc)
        if not jobs:
            continue
        chunk = sum(len(job.model_input) for _, job in jobs)

        def on_batch(done: int, total: int, offset: int = done_windows, chunk: int = chunk) -> None:
            if progress:
                progress("forecast", offset + round(chunk * done / max(total, 1)), total_windows)

        forecast_jobs(engine, [job for _, job in jobs], config.horizon, progress=on_batch)
        done_windows += chunk
        for spec, job in jobs:
            try:
                cell = _score_cell(plan, spec, job, config, engine)
            except (ChronobtError, ValueError) as exc:
                plan.failed[spec] = str(exc)
                logger.warning("%s: %s skipped: %s", plan.symbol, spec, exc)
                continue
            write_json_atomic(cell_path(config.output_dir, plan.symbol, spec, plan.keys[spec]), cell)
            plan.cells[spec] = cell
            report.cells_computed += 1
            if progress:
                progress("evaluate", report.cells_computed, total_cells)


def _score_cell(
    plan: SymbolSweep, spec: str, job: Job, config: SweepConfig, engine: Chronos2Engine
) -> dict[str, Any]:
    price_q = invert_job(
        job,
        engine.quantile_levels,
        config.quantiles,
        dependence=config.dependence,
        n_paths=config.n_paths,
        seed=config.seed,
    )
    splits: dict[str, Any] = {}
    for name, index in plan.split.items():
        sub = plan.windows.subset(index)
        if name not in plan.references:  # the same windows for every augmentation: score baselines once
            plan.references[name] = score_baselines(sub, config.quantiles, horizon=config.horizon)
        ev = evaluate_job(
            sub,
            price_q[index],
            config.quantiles,
            horizon=config.horizon,
            stride=config.effective_stride,
            fee_bps=config.fee_bps,
            allow_short=config.allow_short,
            reference=plan.references[name],
        )
        times = sub.origin_times
        splits[name] = {
            "windows": len(index),
            "first_origin": times[0].isoformat(),
            "last_origin": times[-1].isoformat(),
            "metrics": ev.metrics,
            "skill": ev.skill,
            "baselines": ev.baselines,
            "trading": ev.trading,
        }
    return {"key": plan.keys[spec], "symbol": plan.symbol, "preaug": spec, "splits": splits}


def _score(cell: dict[str, Any], split: str, config: SweepConfig) -> float:
    value = cell["splits"][split]["metrics"][config.target].get(config.metric)
    return math.nan if value is None else float(value)


def rank_specs(scores: Sequence[float], *, higher_is_better: bool) -> list[int]:
    """1-based ranks of ``scores`` (best first); NaN ranks last; ties keep the given order."""
    order = sorted(
        range(len(scores)),
        key=lambda i: (math.isnan(scores[i]), -scores[i] if higher_is_better else scores[i], i),
    )
    ranks = [0] * len(scores)
    for rank, i in enumerate(order, start=1):
        ranks[i] = rank
    return ranks


def _publish(
    plans: Sequence[SymbolSweep],
    specs: Sequence[str],
    config: SweepConfig,
    model: dict[str, Any],
    engine: Chronos2Engine,
    report: SweepReport,
    command: Sequence[str] | None,
) -> None:
    """Rank the cells, then write leaderboard.csv/.parquet, best/<SYMBOL>.json and manifest.json."""
    rows: list[dict[str, Any]] = []
    created = pd.Timestamp.now(tz="UTC").isoformat()
    for plan in plans:
        ok = [s for s in specs if s in plan.cells]
        if not ok:
            report.failures[plan.symbol] = "every augmentation failed: " + "; ".join(
                f"{s}: {m}" for s, m in plan.failed.items()
            )
            continue
        ranks = {
            split: dict(
                zip(
                    ok,
                    rank_specs(
                        [_score(plan.cells[s], split, config) for s in ok],
                        higher_is_better=config.higher_is_better,
                    ),
                    strict=True,
                )
            )
            for split in SPLITS
        }
        best = next(s for s in ok if ranks["validation"][s] == 1)
        for split in SPLITS:
            for spec in ok:
                part = plan.cells[spec]["splits"][split]
                rows.append(
                    {
                        "symbol": plan.symbol,
                        "preaug": spec,
                        "split": split,
                        "target": config.target,
                        "windows": part["windows"],
                        **{m: part["metrics"][config.target].get(m) for m in METRIC_NAMES},
                        "skill": part["skill"].get(config.target),
                        "rank": ranks[split][spec],
                        "selected": spec == best,
                    }
                )
        report.best[plan.symbol] = _best_payload(plan, ok, best, config, model, created)

    columns = list(LEADERBOARD_COLUMNS)
    board = pd.DataFrame(rows, columns=columns)
    for name in (*METRIC_NAMES, "skill"):
        board[name] = pd.to_numeric(board[name], errors="coerce").astype("float64")
    board = board.astype({"windows": "int64", "rank": "int64", "selected": "bool"})
    report.leaderboard = board
    folder = report.folder
    if rows:
        write_parquet_atomic(folder / "leaderboard.parquet", board)
        write_text_atomic(folder / "leaderboard.csv", board.to_csv(index=False))
    for symbol, payload in report.best.items():
        write_json_atomic(folder / "best" / f"{symbol}.json", payload)
    write_json_atomic(
        folder / "manifest.json",
        {
            "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
            "symbols": [p.symbol for p in plans],
            "candidates": list(specs),
            "cells": {"cached": report.cells_cached, "computed": report.cells_computed},
            "failures": report.failures,
            "model": dict(engine.model_info),
            "engine": report.engine_record,
            "versions": library_versions(),
            "command": list(command) if command is not None else ["chronobt", *sys.argv[1:]],
            "created_at": created,
        },
    )


def _best_payload(
    plan: SymbolSweep,
    ok: Sequence[str],
    best: str,
    config: SweepConfig,
    model: dict[str, Any],
    created: str,
) -> dict[str, Any]:
    none = str(parse_augmentation("none"))

    def test_scores(spec: str) -> dict[str, Any] | None:
        if spec not in plan.cells:
            return None
        part = plan.cells[spec]["splits"]["test"]
        return {**part["metrics"][config.target], "skill": part["skill"].get(config.target)}

    test_part = plan.cells[best]["splits"]["test"]
    sw = plan.windows
    return {
        "symbol": plan.symbol,
        "best_preaug": best,
        "best_params": dict(parse_augmentation(best).params),
        "selection_metric": config.metric,
        "selection_target": config.target,
        "higher_is_better": config.higher_is_better,
        "validation": {s: _json_float(_score(plan.cells[s], "validation", config)) for s in ok},
        "test": {
            "best": test_scores(best),
            "none": test_scores(none),
            "naive": {**test_part["baselines"]["naive"][config.target], "skill": 0.0},
        },
        "splits": {
            name: {k: plan.cells[best]["splits"][name][k] for k in ("windows", "first_origin", "last_origin")}
            for name in SPLITS
        },
        "failed": dict(plan.failed),
        "config": {
            "horizon": config.horizon,
            "context": config.context,
            "stride": config.stride,
            "validation_windows": config.validation_windows,
            "test_windows": config.test_windows,
            "targets": list(config.targets),
            "quantiles": list(config.quantiles),
            "seed": config.seed,
            "candidates": list(ok),
        },
        "model": {"id": model.get("id"), "checksum": model.get("checksum")},
        "data": {
            "path": str(sw.ohlc.path),
            "sha256": sw.ohlc.sha256,
            "last": sw.ohlc.frame.index[-1].isoformat(),
        },
        "created_at": created,
    }


def _json_float(x: float) -> float | None:
    return x if math.isfinite(x) else None
