"""`chronobt sweep [SYMBOL ...]`: pick the best pre-augmentation per symbol (nested validation -> test)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from chronobt.cli import engine_options as eo
from chronobt.cli.common import (
    SIGNIFICANT,
    Ui,
    command_context,
    model_label,
    p_value_text,
    raise_for_failures,
)
from chronobt.cli.options import (
    ALL_QUANTILES,
    ALL_TARGETS,
    NO_COVARIATES,
    AllowShortOpt,
    BorrowRateOpt,
    CalendarOpt,
    CalibrateOpt,
    ContextOpt,
    CovariatesOpt,
    DataDirOpt,
    DebugOpt,
    DependenceOpt,
    EntryOpt,
    ExecutorOpt,
    FeeOpt,
    FinetuneBatchOpt,
    FinetuneContextOpt,
    FinetuneLrOpt,
    FinetuneOpt,
    FinetunePerSymbolOpt,
    FinetuneStepsOpt,
    HorizonOpt,
    JsonOpt,
    LogFileOpt,
    MaxGapOpt,
    OutputDirOpt,
    PathsOpt,
    QuantilesOpt,
    QuietOpt,
    RayAddressOpt,
    RefitEveryOpt,
    ReportOpt,
    SeedOpt,
    SlippageOpt,
    StrategyOpt,
    StrideOpt,
    TargetsOpt,
    WaitOpt,
    build_config,
    check_extras,
    choices,
    command_app,
    ui_options,
)
from chronobt.cli.progress import run_locked
from chronobt.config import METRIC_CHOICES, LockOptions
from chronobt.config import SweepConfig as S
from chronobt.engine.config import EngineConfig as E

if TYPE_CHECKING:
    from chronobt.runs.sweep import SweepReport

app = command_app()


@app.command("sweep")
def sweep(
    symbols: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="SYMBOL", help="Symbols to sweep (default: every <SYMBOL>.parquet in the data dir)."
        ),
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
            metavar=choices(METRIC_CHOICES),
            help=f"Selection metric on the selection target ({S.target}).",
        ),
    ] = S.metric,
    validation_windows: Annotated[
        int, typer.Option("--validation-windows", help="Earlier windows that choose the augmentation.")
    ] = S.validation_windows,
    test_windows: Annotated[
        int, typer.Option("--test-windows", help="Later windows that report the choice.")
    ] = S.test_windows,
    force: Annotated[bool, typer.Option("--force", help="Recompute cells already in the cache.")] = S.force,
    report_html: ReportOpt = False,
    horizon: HorizonOpt = S.horizon,
    context: ContextOpt = S.context,
    targets: TargetsOpt = ALL_TARGETS,
    quantiles: QuantilesOpt = ALL_QUANTILES,
    seed: SeedOpt = S.seed,
    dependence: DependenceOpt = S.dependence,
    calibrate: CalibrateOpt = S.calibrate,
    paths: PathsOpt = S.n_paths,
    max_gap: MaxGapOpt = S.max_gap,
    calendar: CalendarOpt = S.calendar,
    data_dir: DataDirOpt = S.data_dir,
    output_dir: OutputDirOpt = S.output_dir,
    covariates: CovariatesOpt = NO_COVARIATES,
    stride: StrideOpt = S.stride,
    fee_bps: FeeOpt = S.fee_bps,
    allow_short: AllowShortOpt = S.allow_short,
    strategy: StrategyOpt = ",".join(S.strategies),
    entry: EntryOpt = S.entry,
    slippage_bps: SlippageOpt = S.slippage_bps,
    borrow_rate: BorrowRateOpt = S.borrow_rate,
    executor: ExecutorOpt = S.executor,
    ray_address: RayAddressOpt = S.ray_address,
    model: eo.ModelOpt = E.model,
    device: eo.DeviceOpt = E.device,
    dtype: eo.DtypeOpt = E.dtype,
    compile: eo.CompileOpt = None,
    compile_backend: eo.CompileBackendOpt = None,
    compile_mode: eo.CompileModeOpt = None,
    batch_size: eo.BatchSizeOpt = None,
    cache_dir: eo.CacheDirOpt = None,
    finetune: FinetuneOpt = S.finetune,
    finetune_steps: FinetuneStepsOpt = S.finetune_steps,
    finetune_lr: FinetuneLrOpt = S.finetune_lr,
    finetune_context: FinetuneContextOpt = S.finetune_context,
    finetune_batch: FinetuneBatchOpt = S.finetune_batch,
    refit_every: RefitEveryOpt = S.refit_every,
    finetune_per_symbol: FinetunePerSymbolOpt = S.finetune_per_symbol,
    wait: WaitOpt = LockOptions.wait,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
    json_out: JsonOpt = False,
    log_file: LogFileOpt = None,
) -> None:
    """Try every pre-augmentation on every symbol; earlier windows choose, later windows report.

    Writes <output-dir>/sweep/ (leaderboard.csv/.parquet, best/<SYMBOL>.json read by --preaug auto).
    Finished cells are cached: a rerun skips them, --force recomputes. With --finetune lora|full each
    candidate also runs fine-tuned (<preaug>+finetune-<mode>) on bars before the first validation
    origin, ranked with the zero-shot ones; the weights are cached under <output-dir>/finetune/.
    """
    options = locals()  # every option above, by name
    with command_context(**ui_options(options)) as ui:
        from chronobt.pipeline.covariates import parse_covariate_sets
        from chronobt.runs.sweep import check_sweep, run_sweep

        config = build_config(
            S,
            options,
            symbols=tuple(symbols or ()),
            preaugs=(preaug,) if preaug else (),
            # sweep: each comma-separated item is one covariate set (volume+calendar: both together)
            covariate_sets=parse_covariate_sets(covariates),
        )
        check_extras(config)
        engine, lock = eo.engine_config(options), build_config(LockOptions, options)
        check_sweep(config)  # unknown symbols, paths beyond memory: usage errors before the lock
        report = run_locked(ui, run_sweep, config, engine, wait=lock.wait)
        if report_html and report.best:
            from chronobt.cli.report import write_reports

            write_reports(ui, [report.folder])
        render(ui, report)
        raise_for_failures(report.failures, succeeded=len(report.best))


def render(ui: Ui, report: SweepReport) -> None:
    """The leaderboard table on stdout (nothing with --quiet), or the best choices with --json."""
    if ui.json:
        ui.print_json(_json_payload(report))
        return
    if ui.quiet or report.leaderboard.empty:
        return
    for symbol, best in report.best.items():
        ui.out.print(_symbol_table(report, symbol, best))
        ui.out.print(_deflated_line(best))
    _print_footer(ui, report)


def _json_payload(report: SweepReport) -> dict[str, Any]:
    """The best choices, the folder, cell counts and failures (``--json``)."""
    return {
        "best": {
            s: {
                k: b[k]
                for k in (
                    "best",
                    "best_preaug",
                    "best_finetune",
                    "best_params",
                    "best_strategy",
                    "deflated_sharpe",
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


def _symbol_table(report: SweepReport, symbol: str, best: dict[str, Any]) -> Table:
    """One symbol's leaderboard: every candidate on validation and test, the chosen one marked."""
    metric = best["selection_metric"]
    board = report.leaderboard[report.leaderboard["symbol"] == symbol]
    val = board[board["split"] == "validation"].set_index(["preaug", "strategy"])
    test = board[board["split"] == "test"].set_index(["preaug", "strategy"])
    several = len(best.get("strategies") or ()) > 1  # name each row's strategy beside its label
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
    for key in val.sort_values("rank", kind="stable").index:
        spec = key[0]
        chosen = bool(val.loc[key, "selected"])
        label = f"{spec} (= {equivalent[spec]})" if spec in equivalent else spec
        label = f"{label} · {key[1]}" if several else label
        table.add_row(
            f"{label} *" if chosen else label,
            str(int(val.loc[key, "rank"])),
            _fmt(val.loc[key, metric]),
            _fmt(test.loc[key, metric]),
            _fmt(test.loc[key, "skill"]),
            p_value_text(test.loc[key, "p_value_naive"]),
            p_value_text(test.loc[key, "p_value_none"]),
            *((p_value_text(test.loc[key, "p_value_zero_shot"]),) if tuned else ()),
            _fmt(test.loc[key, "coverage_80"]),
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
    return table


def _deflated_line(best: dict[str, Any]) -> str:
    """The chosen strategy's test Sharpe with its PSR and Deflated Sharpe Ratio (or why it has none)."""
    d = best.get("deflated_sharpe") or {}
    why = f" ({d['reason']})" if d.get("reason") else ""
    return (
        f"strategy {d.get('strategy')}: test sharpe {_fmt(d.get('sharpe'))}, PSR {_fmt(d.get('psr'))}, "
        f"deflated {_fmt(d.get('dsr'))} over {d.get('n_trials', 0)} trials{why}"
    )


def _print_footer(ui: Ui, report: SweepReport) -> None:
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
