"""`chronobt sweep [SYMBOL ...]`: pick the best pre-augmentation per symbol (nested validation -> test)."""

from __future__ import annotations

import math
from typing import Annotated, Any

import typer
from rich.table import Table

from chronobt.backtest import DEFAULT_QUANTILES
from chronobt.cli import engine_options as eo
from chronobt.cli.backtest import (
    ContextOpt,
    DependenceOpt,
    HorizonOpt,
    MaxGapOpt,
    PathsOpt,
    SeedOpt,
    WaitOpt,
)
from chronobt.cli.common import (
    DEFAULT_DATA_DIR,
    DEFAULT_OUTPUT_DIR,
    DataDirOpt,
    DebugOpt,
    JsonOpt,
    LogFileOpt,
    OutputDirOpt,
    QuietOpt,
    Ui,
    command_context,
    model_label,
    parse_float_list,
    parse_name_list,
    raise_for_failures,
)
from chronobt.cli.progress import run_locked
from chronobt.data import TARGETS
from chronobt.sweep import SELECTION_METRICS, SweepConfig, SweepReport, run_sweep

ALL_TARGETS = ",".join(TARGETS)
ALL_QUANTILES = ",".join(str(q) for q in DEFAULT_QUANTILES)


def register(app: typer.Typer) -> None:
    @app.command("sweep")
    def sweep(
        symbols: Annotated[
            list[str] | None,
            typer.Argument(help="Symbols to sweep (default: every <SYMBOL>.parquet in the data dir)."),
        ] = None,
        preaug: Annotated[
            str | None,
            typer.Option(
                "--preaug",
                help="Comma-separated augmentations to try, grids with '|' (e.g. "
                "none,differencing,rolling_norm:window=20|48); default: every registered one. "
                "'none' is always included.",
            ),
        ] = None,
        metric: Annotated[
            str,
            typer.Option(
                "--metric",
                help=f"Selection metric on the selection target (close): {'|'.join(SELECTION_METRICS)}.",
            ),
        ] = "mase",
        validation_windows: Annotated[
            int, typer.Option("--validation-windows", help="Earlier windows that choose the augmentation.")
        ] = 60,
        test_windows: Annotated[
            int, typer.Option("--test-windows", help="Later windows that report the choice.")
        ] = 40,
        force: Annotated[bool, typer.Option("--force", help="Recompute cells already in the cache.")] = False,
        horizon: HorizonOpt = 24,
        context: ContextOpt = 2048,
        stride: Annotated[
            int | None, typer.Option("--stride", help="Bars between origins (default: the horizon).")
        ] = None,
        targets: Annotated[str, typer.Option("--targets", help="Comma-separated variates.")] = ALL_TARGETS,
        quantiles: Annotated[
            str, typer.Option("--quantiles", help="Comma-separated quantile levels to score.")
        ] = ALL_QUANTILES,
        fee_bps: Annotated[
            float, typer.Option("--fee-bps", help="Trading fee per side, basis points.")
        ] = 10.0,
        allow_short: Annotated[
            bool, typer.Option("--allow-short", help="Let the trading view go short.")
        ] = False,
        seed: SeedOpt = 0,
        dependence: DependenceOpt = "independent",
        paths: PathsOpt = None,
        max_gap: MaxGapOpt = None,
        model: eo.ModelOpt = "auto",
        device: eo.DeviceOpt = "auto",
        dtype: eo.DtypeOpt = "auto",
        compile: eo.CompileOpt = None,
        compile_backend: eo.CompileBackendOpt = None,
        compile_mode: eo.CompileModeOpt = None,
        batch_size: eo.BatchSizeOpt = None,
        data_dir: DataDirOpt = DEFAULT_DATA_DIR,
        output_dir: OutputDirOpt = DEFAULT_OUTPUT_DIR,
        wait: WaitOpt = 0.0,
        json_out: JsonOpt = False,
        quiet: QuietOpt = False,
        debug: DebugOpt = False,
        log_file: LogFileOpt = None,
    ) -> None:
        """Try every pre-augmentation on every symbol; earlier windows choose, later windows report.

        Writes <output-dir>/sweep/ (leaderboard.csv/.parquet, best/<SYMBOL>.json read by --preaug auto).
        Finished cells are cached: a rerun skips them, --force recomputes.
        """
        with command_context(quiet=quiet, debug=debug, json_out=json_out, log_file=log_file) as ui:
            config = SweepConfig(
                symbols=tuple(symbols or ()),
                preaugs=(preaug,) if preaug else (),
                metric=metric,
                validation_windows=validation_windows,
                test_windows=test_windows,
                horizon=horizon,
                context=context,
                stride=stride,
                targets=parse_name_list(targets, option="--targets"),
                quantiles=parse_float_list(quantiles, option="--quantiles"),
                fee_bps=fee_bps,
                allow_short=allow_short,
                seed=seed,
                dependence=dependence,
                n_paths=paths,
                data_dir=data_dir,
                output_dir=output_dir,
                max_gap=max_gap,
                force=force,
            )
            engine_config = eo.engine_config_from_options(
                model=model,
                device=device,
                dtype=dtype,
                compile=compile,
                compile_backend=compile_backend,
                compile_mode=compile_mode,
                batch_size=batch_size,
            )
            with eo.quiet_transformers():
                report = run_locked(ui, run_sweep, config, engine_config, wait=wait)
            render(ui, report)
            raise_for_failures(report.failures, succeeded=len(report.best))


def render(ui: Ui, report: SweepReport) -> None:
    """The leaderboard on stderr (silent with --quiet); the best choices on stdout with --json."""
    if ui.json:
        ui.print_json(
            {
                "best": {
                    s: {
                        k: b[k]
                        for k in ("best_preaug", "best_params", "selection_metric", "validation", "test")
                    }
                    for s, b in report.best.items()
                },
                "folder": str(report.folder),
                "cells": {"cached": report.cells_cached, "computed": report.cells_computed},
                "failures": report.failures,
            }
        )
    if ui.quiet or report.leaderboard.empty:
        return
    for symbol, best in report.best.items():
        metric = best["selection_metric"]
        board = report.leaderboard[report.leaderboard["symbol"] == symbol]
        val = board[board["split"] == "validation"].set_index("preaug")
        test = board[board["split"] == "test"].set_index("preaug")
        splits = best["splits"]
        table = Table(
            title=f"{symbol} · {metric} on {best['selection_target']} · "
            f"validation {splits['validation']['windows']} windows, "
            f"test {splits['test']['windows']} windows · "
            f"model {model_label(best['model'].get('id'), best['model'].get('checksum'))}",
            title_justify="left",
        )
        for name in ("preaug", "val rank", f"val {metric}", f"test {metric}", "test skill", "test cov80"):
            table.add_column(name, justify="left" if name == "preaug" else "right")
        for spec in val.sort_values("rank").index:
            chosen = spec == best["best_preaug"]
            table.add_row(
                f"{spec} *" if chosen else spec,
                str(int(val.loc[spec, "rank"])),
                _fmt(val.loc[spec, metric]),
                _fmt(test.loc[spec, metric]),
                _fmt(test.loc[spec, "skill"]),
                _fmt(test.loc[spec, "coverage_80"]),
                style="bold green" if chosen else None,
            )
        naive = best["test"]["naive"]
        table.add_row(
            "naive (baseline)", "-", "-", _fmt(naive.get(metric)), "-", _fmt(naive.get("coverage_80"))
        )
        ui.err.print(table)
    ui.err.print(
        f"{report.cells_computed} cells computed, {report.cells_cached} cached; written: {report.folder}"
    )


def _fmt(x: Any) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{float(x):.4f}"
