"""`chronobt backtest SYMBOL ...`: rolling-origin evaluation of Chronos-2 with a pre-augmentation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

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
    EndOpt,
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
    MaxGrossOpt,
    MaxWeightOpt,
    OutputDirOpt,
    PathsOpt,
    PortfolioOpt,
    PreaugOpt,
    QuantilesOpt,
    QuietOpt,
    RayAddressOpt,
    RefitEveryOpt,
    ReportOpt,
    SeedOpt,
    SlippageOpt,
    StartOpt,
    StrategyOpt,
    StrictAutoOpt,
    StrideOpt,
    SymbolsArg,
    TargetsOpt,
    WaitOpt,
    WindowsOpt,
    build_config,
    check_extras,
    command_app,
    ui_options,
)
from chronobt.cli.progress import run_locked
from chronobt.config import BacktestConfig as B
from chronobt.config import LockOptions
from chronobt.engine.config import EngineConfig as E

if TYPE_CHECKING:
    from chronobt.runs.backtest import BacktestReport, BacktestSummary

app = command_app()


@app.command("backtest")
def backtest(
    symbols: SymbolsArg,
    preaug: PreaugOpt = B.preaug,
    strict_auto: StrictAutoOpt = B.strict_auto,
    windows: WindowsOpt = B.windows,
    start: StartOpt = B.start,
    end: EndOpt = B.end,
    report_html: ReportOpt = False,
    horizon: HorizonOpt = B.horizon,
    context: ContextOpt = B.context,
    targets: TargetsOpt = ALL_TARGETS,
    quantiles: QuantilesOpt = ALL_QUANTILES,
    seed: SeedOpt = B.seed,
    dependence: DependenceOpt = B.dependence,
    calibrate: CalibrateOpt = B.calibrate,
    paths: PathsOpt = B.n_paths,
    max_gap: MaxGapOpt = B.max_gap,
    calendar: CalendarOpt = B.calendar,
    data_dir: DataDirOpt = B.data_dir,
    output_dir: OutputDirOpt = B.output_dir,
    covariates: CovariatesOpt = NO_COVARIATES,
    stride: StrideOpt = B.stride,
    fee_bps: FeeOpt = B.fee_bps,
    allow_short: AllowShortOpt = B.allow_short,
    strategy: StrategyOpt = ",".join(B.strategies),
    entry: EntryOpt = B.entry,
    slippage_bps: SlippageOpt = B.slippage_bps,
    borrow_rate: BorrowRateOpt = B.borrow_rate,
    portfolio: PortfolioOpt = B.portfolio,
    max_gross: MaxGrossOpt = B.max_gross,
    max_weight: MaxWeightOpt = B.max_weight,
    executor: ExecutorOpt = B.executor,
    ray_address: RayAddressOpt = B.ray_address,
    model: eo.ModelOpt = E.model,
    device: eo.DeviceOpt = E.device,
    dtype: eo.DtypeOpt = E.dtype,
    compile: eo.CompileOpt = None,
    compile_backend: eo.CompileBackendOpt = None,
    compile_mode: eo.CompileModeOpt = None,
    batch_size: eo.BatchSizeOpt = None,
    cache_dir: eo.CacheDirOpt = None,
    finetune: FinetuneOpt = B.finetune,
    finetune_steps: FinetuneStepsOpt = B.finetune_steps,
    finetune_lr: FinetuneLrOpt = B.finetune_lr,
    finetune_context: FinetuneContextOpt = B.finetune_context,
    finetune_batch: FinetuneBatchOpt = B.finetune_batch,
    refit_every: RefitEveryOpt = B.refit_every,
    finetune_per_symbol: FinetunePerSymbolOpt = B.finetune_per_symbol,
    wait: WaitOpt = LockOptions.wait,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
    json_out: JsonOpt = False,
    log_file: LogFileOpt = None,
) -> None:
    """Backtest Chronos-2 on SYMBOL(s) over rolling origins.

    Writes <output-dir>/backtest/<SYMBOL>/<preaug>/ (forecasts, metrics, trades, manifest); with
    --finetune lora|full also <preaug>+finetune-<mode>/ on the same windows, tested against zero-shot.
    With --preaug auto the origins start after the sweep's validation windows unless --start is given.
    """
    options = locals()  # every option above, by name
    with command_context(**ui_options(options)) as ui:
        from chronobt.pipeline.covariates import parse_covariates
        from chronobt.runs.backtest import check_backtest, run_backtest

        config = build_config(B, options, covariates=parse_covariates(covariates))
        check_extras(config)
        engine, lock = eo.engine_config(options), build_config(LockOptions, options)
        check_backtest(config)  # unknown symbols, paths beyond memory: usage errors before the lock
        report = run_locked(ui, run_backtest, config, engine, wait=lock.wait)
        if report_html:
            from chronobt.cli.report import write_reports

            write_reports(ui, [r.folder for r in report.results])
            if report.portfolio:
                write_reports(ui, [report.portfolio.folder])
        render(ui, report)
        raise_for_failures(report.failures, succeeded=len(report.results))


def render(ui: Ui, report: BacktestReport) -> None:
    if ui.json:
        ui.print_json(_json_payload(report))
        return
    if ui.quiet:
        return
    for r in report.results:
        s = r.summary
        table = Table(
            title=f"{r.symbol} · preaug {r.preaug}{_variant(r.finetune)} · {s.windows} windows · "
            f"horizon {s.horizon} · "
            f"model {model_label(s.model, s.model_checksum)}",
            title_justify="left",
        )
        table.add_column("target")
        table.add_column("model MASE", justify="right")
        for name in s.baselines:
            table.add_column(f"{name} MASE", justify="right")
        table.add_column("skill", justify="right")
        table.add_column("p (DM)", justify="right")
        table.add_column("WQL", justify="right")
        table.add_column("naive WQL", justify="right")
        calibrated = bool(s.calibrated)
        table.add_column("cov80 calibrated" if calibrated else "cov80 raw", justify="right")
        table.add_column("dir. acc", justify="right")
        for target, m in s.metrics.items():
            table.add_row(
                target,
                _fmt(m["mase"]),
                *[_fmt(b[target]["mase"]) for b in s.baselines.values()],
                _fmt(s.skill[target]),
                p_value_text(s.significance[target]["naive"]["mae"]["p_value"]),
                _fmt(m["wql"]),
                _fmt(s.baselines["naive"][target]["wql"]),
                _fmt(s.coverage_80(target)),
                _fmt(m["directional_accuracy"]),
            )
        ui.out.print(table)
        ui.out.print(
            "skill = 1 - MASE / naive MASE; p (DM) = Diebold-Mariano p-value of the windows' MASE against "
            f"naive's, * below {SIGNIFICANT}"
        )
        ui.out.print(_coverage_note(s))
        for line in trading_lines(s.trading):
            ui.out.print(line)
        versus = s.versus_zero_shot
        if versus:
            ui.out.print(
                "fine-tuned vs zero-shot (DM p on per-window MAE; skill > 0: fine-tuning helped): "
                + ", ".join(
                    f"{t} skill {_fmt(v['mae']['skill'], 3)} p {p_value_text(v['mae']['p_value'])}"
                    for t, v in versus.items()
                )
            )
        ui.out.print(f"written: {r.folder}")
    for line in _portfolio_lines(report.portfolio) if report.portfolio else ():
        ui.out.print(line)


#: Below this many trades a Sharpe ratio is marked as too few to judge.
FEW_TRADES = 10


def trading_lines(trading: Mapping[str, Any] | None) -> list[str]:
    """One console line per strategy: returns, the Sharpe with the trade count beside it (marked ``!``
    below :data:`FEW_TRADES` trades), the drawdown and the costs paid."""
    lines = []
    for name, t in (trading or {}).items():
        if not isinstance(t, Mapping) or "total_return" not in t:
            continue
        n = t.get("n_trades") or 0
        mark = f" ! fewer than {FEW_TRADES} trades" if n < FEW_TRADES else ""
        drawdown = t.get("max_drawdown")
        costs = (t.get("costs") or {}).get("total")
        lines.append(
            f"trading {name}: total {_pct(t.get('total_return'))} vs buy-and-hold "
            f"{_pct(t.get('buy_and_hold'))}, sharpe {_fmt(t.get('sharpe'), 2)} "
            f"({n} trade{'' if n == 1 else 's'}{mark}), "
            f"max drawdown {_fmt(drawdown and 100 * drawdown, 2)}%, costs {_pct(costs)}"
        )
    return lines


def _json_payload(report: BacktestReport) -> dict[str, Any]:
    """``--json``: each symbol's results (raw metrics, calibrated scores, what --calibrate did), failures."""
    return {
        "results": [
            {
                "symbol": r.symbol,
                "preaug": r.preaug,
                "finetune": r.finetune,
                "folder": str(r.folder),
                "model": r.summary.model,
                "model_checksum": r.summary.model_checksum,
                "windows": r.summary.windows,
                "metrics": r.summary.metrics,
                "skill": r.summary.skill,
                "baselines": r.summary.baselines,
                "significance": r.summary.significance,
                "trading": r.summary.trading,
                "calibrated": r.summary.calibrated,
                "interval_calibration": r.summary.interval_calibration,
                **({"finetune_record": r.summary.finetune} if r.finetune else {}),
            }
            for r in report.results
        ],
        "failures": report.failures,
        **({"portfolio": _portfolio_json(report.portfolio)} if report.portfolio else {}),
    }


def _coverage_note(s: BacktestSummary) -> str:
    """Which 80% coverage the table shows: the calibrated intervals' (with the raw model's beside) or raw."""
    if s.calibrated:
        raw = ", ".join(f"{t} {_fmt(m['coverage_80'], 3)}" for t, m in s.metrics.items())
        return f"cov80: conformally calibrated intervals (metrics.json `calibrated`); raw model: {raw}"
    record = s.interval_calibration or {}
    why = f" ({record['reason']})" if record.get("reason") else ""
    return f"cov80: the raw model's intervals, not calibrated{why}"


def _portfolio_json(portfolio: Any) -> dict[str, Any]:
    return {"folder": str(portfolio.folder), "symbols": list(portfolio.symbols), "trading": portfolio.trading}


def _portfolio_lines(portfolio: Any) -> list[str]:
    """``--portfolio``: the account's line per strategy, then where it was written."""
    lines = [f"portfolio of {', '.join(portfolio.symbols)}:"]
    lines += [line.replace("trading ", "  ", 1) for line in trading_lines(portfolio.trading)]
    return [*lines, f"written: {portfolio.folder}"]


def _variant(finetune: str | None) -> str:
    return "" if finetune is None else f" · finetune {finetune}"


def _fmt(x: float | None, digits: int = 4) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:+.2%}"
