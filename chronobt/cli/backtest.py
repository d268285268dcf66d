"""`chronobt backtest SYMBOL ...`: rolling-origin evaluation of Chronos-2 with a pre-augmentation."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from chronobt.cli.common import SIGNIFICANT, Ui, model_label, p_value_text, raise_for_failures
from chronobt.cli.options import (
    EndOpt,
    PreaugOpt,
    ReportOpt,
    StartOpt,
    StrictAutoOpt,
    SymbolsArg,
    WindowsOpt,
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
from chronobt.config import BacktestConfig
from chronobt.engine.core import EngineConfig
from chronobt.pipeline.covariates import parse_covariates
from chronobt.runs.backtest import BacktestReport, run_backtest


def register(app: typer.Typer) -> None:
    @command(
        app,
        "backtest",
        run=run_settings,
        covariates=covariate_settings,
        evaluation=evaluation_settings,
        executor=executor_settings,
        engine=engine_settings,
        finetune=finetune_settings,
        wait=lock_settings,
    )
    def backtest(
        symbols: SymbolsArg,
        preaug: PreaugOpt = "none",
        strict_auto: StrictAutoOpt = False,
        windows: WindowsOpt = 100,
        start: StartOpt = None,
        end: EndOpt = None,
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
        """Backtest Chronos-2 on SYMBOL(s) over rolling origins.

        Writes <output-dir>/backtest/<SYMBOL>/<preaug>/ (forecasts, metrics, trades, manifest); with
        --finetune lora|full also <preaug>+finetune-<mode>/ on the same windows, tested against zero-shot.
        With --preaug auto the origins start after the sweep's validation windows unless --start is given.
        """
        config = BacktestConfig(
            symbols=tuple(symbols),
            preaug=preaug,
            strict_auto=strict_auto,
            windows=windows,
            start=start,
            end=end,
            covariates=parse_covariates(covariates),
            **run,
            **evaluation,
            **executor,
            **finetune,
        )
        report = run_locked(ui, run_backtest, config, engine, wait=wait)
        if report_html:
            write_reports(ui, [r.folder for r in report.results])
        render(ui, report)
        raise_for_failures(report.failures, succeeded=len(report.results))


def render(ui: Ui, report: BacktestReport) -> None:
    if ui.json:
        ui.print_json(
            {
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
                        **({"finetune_record": r.summary.finetune} if r.finetune else {}),
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
        table.add_column("cov80", justify="right")
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
                _fmt(m["coverage_80"]),
                _fmt(m["directional_accuracy"]),
            )
        ui.out.print(table)
        ui.out.print(
            "skill = 1 - MASE / naive MASE; p (DM) = Diebold-Mariano p-value of the windows' MASE against "
            f"naive's, * below {SIGNIFICANT}"
        )
        if s.trading:
            t = s.trading
            ui.out.print(
                f"trading: total {_pct(t['total_return'])} vs buy-and-hold {_pct(t['buy_and_hold'])}, "
                f"sharpe {_fmt(t['sharpe'], 2)}, {t['n_trades']} trades, "
                f"max drawdown {_fmt(t['max_drawdown'] and 100 * t['max_drawdown'], 2)}%"
            )
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


def _variant(finetune: str | None) -> str:
    return "" if finetune is None else f" · finetune {finetune}"


def _fmt(x: float | None, digits: int = 4) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:+.2%}"
