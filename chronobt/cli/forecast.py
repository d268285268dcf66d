"""`chronobt forecast SYMBOL ...`: forecast the bars after the latest one, in prices."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from chronobt.cli import engine_options as eo
from chronobt.cli.common import Ui, command_context, model_label, raise_for_failures
from chronobt.cli.options import (
    ALL_QUANTILES,
    ALL_TARGETS,
    NO_COVARIATES,
    AllowShortOpt,
    CalendarOpt,
    CalibrateOpt,
    ContextOpt,
    CovariatesOpt,
    DataDirOpt,
    DebugOpt,
    DependenceOpt,
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
    PreaugOpt,
    QuantilesOpt,
    QuietOpt,
    RefitEveryOpt,
    ReportOpt,
    SeedOpt,
    SlippageOpt,
    StrictAutoOpt,
    SymbolsArg,
    TargetsOpt,
    WaitOpt,
    build_config,
    command_app,
    ui_options,
)
from chronobt.cli.progress import run_locked
from chronobt.config import ForecastConfig as F
from chronobt.config import LockOptions
from chronobt.engine.config import EngineConfig as E

if TYPE_CHECKING:
    from chronobt.runs.forecast import ForecastReport

app = command_app()

OrdersOpt = Annotated[
    str | None,
    typer.Option(
        "--strategy",
        help="Comma-separated trading strategies (as backtest's --strategy): write each one's order "
        "for the next bar to latest.json 'orders' and print it.",
    ),
]


@app.command("forecast")
def forecast(
    symbols: SymbolsArg,
    preaug: PreaugOpt = F.preaug,
    report_html: ReportOpt = False,
    strict_auto: StrictAutoOpt = F.strict_auto,
    horizon: HorizonOpt = F.horizon,
    context: ContextOpt = F.context,
    targets: TargetsOpt = ALL_TARGETS,
    quantiles: QuantilesOpt = ALL_QUANTILES,
    seed: SeedOpt = F.seed,
    dependence: DependenceOpt = F.dependence,
    calibrate: CalibrateOpt = F.calibrate,
    paths: PathsOpt = F.n_paths,
    max_gap: MaxGapOpt = F.max_gap,
    calendar: CalendarOpt = F.calendar,
    data_dir: DataDirOpt = F.data_dir,
    output_dir: OutputDirOpt = F.output_dir,
    covariates: CovariatesOpt = NO_COVARIATES,
    strategy: OrdersOpt = None,
    fee_bps: FeeOpt = F.fee_bps,
    slippage_bps: SlippageOpt = F.slippage_bps,
    allow_short: AllowShortOpt = F.allow_short,
    model: eo.ModelOpt = E.model,
    device: eo.DeviceOpt = E.device,
    dtype: eo.DtypeOpt = E.dtype,
    compile: eo.CompileOpt = None,
    compile_backend: eo.CompileBackendOpt = None,
    compile_mode: eo.CompileModeOpt = None,
    batch_size: eo.BatchSizeOpt = None,
    cache_dir: eo.CacheDirOpt = None,
    finetune: FinetuneOpt = F.finetune,
    finetune_steps: FinetuneStepsOpt = F.finetune_steps,
    finetune_lr: FinetuneLrOpt = F.finetune_lr,
    finetune_context: FinetuneContextOpt = F.finetune_context,
    finetune_batch: FinetuneBatchOpt = F.finetune_batch,
    refit_every: RefitEveryOpt = F.refit_every,
    finetune_per_symbol: FinetunePerSymbolOpt = F.finetune_per_symbol,
    wait: WaitOpt = LockOptions.wait,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
    json_out: JsonOpt = False,
    log_file: LogFileOpt = None,
) -> None:
    """Forecast the next --horizon bars of SYMBOL(s) from the latest --context bars.

    Writes <output-dir>/forecast/<SYMBOL>/<last-bar>.parquet, latest.parquet and latest.json.
    """
    options = locals()  # every option above, by name
    with command_context(**ui_options(options)) as ui:
        from chronobt.pipeline.covariates import parse_covariates
        from chronobt.runs.forecast import check_forecast, run_forecast

        config = build_config(F, options, covariates=parse_covariates(covariates))
        engine, lock = eo.engine_config(options), build_config(LockOptions, options)
        check_forecast(config)  # unknown symbols, paths beyond memory: usage errors before the lock
        report = run_locked(ui, run_forecast, config, engine, wait=lock.wait)
        if report_html:
            from chronobt.cli.report import write_reports

            write_reports(ui, [r.folder for r in report.results])
        render(ui, report)
        raise_for_failures(report.failures, succeeded=len(report.results))


def render(ui: Ui, report: ForecastReport) -> None:
    """--json: the forecasts on stdout; otherwise a table of the close forecast and its 80% band
    (nothing with --quiet)."""
    if ui.json:
        ui.print_json(
            {
                "results": [
                    {
                        **{
                            k: r.payload[k]
                            for k in ("symbol", "preaug", "horizon", "last_bar", "file", "forecast", "orders")
                            if k in r.payload
                        },
                        "model": r.payload["model"].get("id"),
                        "model_checksum": r.payload["model"].get("checksum"),
                        "folder": str(r.folder),
                    }
                    for r in report.results
                ],
                "failures": report.failures,
            }
        )
        return
    if ui.quiet:
        return
    for r in report.results:
        frame = r.frame
        target = "close" if "close" in set(frame["target"]) else str(frame["target"].iloc[-1])
        rows = frame[frame["target"] == target]
        levels = [c for c in frame.columns if _is_level(c)]
        lower, upper = ("0.1", "0.9") if {"0.1", "0.9"} <= set(levels) else (levels[0], levels[-1])
        last = r.payload["last_bar"]
        model = model_label(r.payload["model"].get("id"), r.payload["model"].get("checksum"))
        table = Table(
            title=f"{r.symbol} {target} · preaug {r.preaug} · model {model} · "
            f"after {last['timestamp']} ({target} {last.get(target, float('nan')):.6g})",
            title_justify="left",
        )
        for name in ("step", "timestamp", f"q{lower}", "median", f"q{upper}"):
            table.add_column(name, justify="left" if name == "timestamp" else "right")
        for step, stamp, lo, med, hi in zip(
            rows["step"], rows["timestamp"], rows[lower], rows["median"], rows[upper], strict=True
        ):
            table.add_row(str(step), stamp.isoformat(), f"{lo:.6g}", f"{med:.6g}", f"{hi:.6g}")
        ui.out.print(table)
        for line in order_lines(r.payload.get("orders") or ()):
            ui.out.print(line)
        ui.out.print(f"written: {r.folder / r.payload['file']}")


def order_lines(orders: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per strategy's order for the next bar: side, size and its limit, target and stop."""

    def price(x: Any) -> str:
        return "-" if x is None else f"{x:.6g}"

    return [
        f"order {o['strategy']}: {o['side']} size {o['size']:.4g} ({o['entry']}), limit "
        f"{price(o.get('limit'))}, target {price(o.get('target'))}, stop {price(o.get('stop'))}"
        for o in orders
    ]


def _is_level(name: object) -> bool:
    try:
        return 0.0 < float(str(name)) < 1.0
    except ValueError:
        return False
