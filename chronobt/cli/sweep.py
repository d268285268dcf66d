"""`chronobt sweep [SYMBOL ...]`: pick the best pre-augmentation per symbol (nested validation -> test)."""

from __future__ import annotations

import math
from typing import Annotated, Any

import typer
from rich.table import Table

from chronobt.cli.common import SIGNIFICANT, Ui, model_label, p_value_text, raise_for_failures
from chronobt.cli.options import (
    ReportOpt,
    command,
    covariate_settings,
    engine_settings,
    evaluation_settings,
    executor_settings,
    finetune_settings,
    lock_settings,
    run_settings,
)
from chronobt.cli.progress import run_locked
from chronobt.cli.report import write_reports
from chronobt.config import SELECTION_METRICS, SweepConfig
from chronobt.engine.core import EngineConfig
from chronobt.pipeline.covariates import parse_covariate_sets
from chronobt.runs.sweep import SweepReport, run_sweep


def register(app: typer.Typer) -> None:
    @command(
        app,
        "sweep",
        run=run_settings,
        covariates=covariate_settings,
        evaluation=evaluation_settings,
        executor=executor_settings,
        engine=engine_settings,
        finetune=finetune_settings,
        wait=lock_settings,
    )
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
        report_html: ReportOpt = False,
        *,
        ui: Ui,
        run: dict[str, Any],
        covariates: str,
        evaluation: dict[str, Any],
        executor: dict[str, Any],
        engine: EngineConfig,
        finetune: dict[str, Any],
        wait: float,
    ) -> None:
        """Try every pre-augmentation on every symbol; earlier windows choose, later windows report.

        Writes <output-dir>/sweep/ (leaderboard.csv/.parquet, best/<SYMBOL>.json read by --preaug auto).
        Finished cells are cached: a rerun skips them, --force recomputes. With --finetune lora|full each
        candidate also runs fine-tuned (<preaug>+finetune-<mode>) on bars before the first validation
        origin, ranked with the zero-shot ones; the weights are cached under <output-dir>/finetune/.
        """
        config = SweepConfig(
            symbols=tuple(symbols or ()),
            # sweep: each comma-separated item is one covariate set (volume+calendar: both together)
            covariate_sets=parse_covariate_sets(covariates),
            preaugs=(preaug,) if preaug else (),
            metric=metric,
            validation_windows=validation_windows,
            test_windows=test_windows,
            force=force,
            **run,
            **evaluation,
            **executor,
            **finetune,
        )
        report = run_locked(ui, run_sweep, config, engine, wait=wait)
        if report_html and report.best:
            write_reports(ui, [report.folder])
        render(ui, report)
        raise_for_failures(report.failures, succeeded=len(report.best))


def render(ui: Ui, report: SweepReport) -> None:
    """The leaderboard table on stdout (nothing with --quiet), or the best choices with --json."""
    if ui.json:
        ui.print_json(
            {
                "best": {
                    s: {
                        k: b[k]
                        for k in (
                            "best",
                            "best_preaug",
                            "best_finetune",
                            "best_params",
                            "selection_metric",
                            "validation",
                            "test",
                        )
                    }
                    for s, b in report.best.items()
                },
                "folder": str(report.folder),
                "cells": {
                    "cached": report.cells_cached,
                    "computed": report.cells_computed,
                    "derived": report.cells_derived,
                },
                "failures": report.failures,
                **({"finetune": report.finetune} if report.finetune is not None else {}),
            }
        )
        return
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
        names = (
            "preaug",
            "val rank",
            f"val {metric}",
            f"test {metric}",
            "test skill",
            "p vs naive",
            "p vs none",
        )
        tuned = report.finetune is not None
        for name in (*names, *(("p vs zero-shot",) if tuned else ()), "test cov80"):
            table.add_column(name, justify="left" if name == "preaug" else "right")
        equivalent = best.get("equivalent_to", {})
        for spec in val.sort_values("rank").index:
            chosen = spec == best["best_preaug"]
            label = f"{spec} (= {equivalent[spec]})" if spec in equivalent else spec
            table.add_row(
                f"{label} *" if chosen else label,
                str(int(val.loc[spec, "rank"])),
                _fmt(val.loc[spec, metric]),
                _fmt(test.loc[spec, metric]),
                _fmt(test.loc[spec, "skill"]),
                p_value_text(test.loc[spec, "p_value_naive"]),
                p_value_text(test.loc[spec, "p_value_none"]),
                *((p_value_text(test.loc[spec, "p_value_zero_shot"]),) if tuned else ()),
                _fmt(test.loc[spec, "coverage_80"]),
                style="bold green" if chosen else None,
            )
        naive = best["test"]["naive"]
        table.add_row(
            "naive (baseline)",
            "-",
            "-",
            _fmt(naive.get(metric)),
            "-",
            "-",
            "-",
            *(("-",) if tuned else ()),
            _fmt(naive.get("coverage_80")),
        )
        ui.out.print(table)
    twin = " / its zero-shot twin" if report.finetune is not None else ""
    ui.out.print(
        "* chosen on validation; p = Diebold-Mariano p-value of the test windows' MASE against naive / none"
        f"{twin} (* below {SIGNIFICANT})"
    )
    derived = f", {report.cells_derived} equal to none's (affine)" if report.cells_derived else ""
    ui.out.print(
        f"{report.cells_computed} cells computed, {report.cells_cached} cached{derived}; "
        f"written: {report.folder}"
    )
    if report.finetune is not None:
        mode = report.finetune["settings"]["mode"]
        ui.out.print(
            f"fine-tuned models ({mode}): {report.models_trained} trained, {report.models_cached} cached "
            f"(under {report.folder.parent / 'finetune'})"
        )


def _fmt(x: Any) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{float(x):.4f}"
