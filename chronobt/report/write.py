"""Find output folders, render each one's report and write ``report.html`` atomically beside its files.

A folder's kind is told by its files: ``metrics.json`` + ``forecasts.parquet`` (backtest),
``leaderboard.parquet`` / ``leaderboard.csv`` (sweep), ``latest.json`` (forecast). Any other folder is
searched below for output folders (hidden folders, such as the temporary ones of an atomic write, and a
sweep's ``cells/`` are skipped); each gets its own report and the searched folder gets an index page,
``report.html``, linking them.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from chronobt.atomic import write_text_atomic
from chronobt.errors import ConfigError
from chronobt.report.backtest import render_backtest
from chronobt.report.charts import require_matplotlib
from chronobt.report.forecast import render_forecast
from chronobt.report.page import Page, esc, table
from chronobt.report.portfolio import render_portfolio
from chronobt.report.sweep import render_sweep
from chronobt.report.track import render_track

logger = logging.getLogger(__name__)

Kind = Literal["backtest", "sweep", "forecast", "track", "portfolio"]
REPORT_NAME = "report.html"
_RENDER: dict[str, Callable[[Path], str]] = {
    "backtest": render_backtest,
    "sweep": render_sweep,
    "forecast": render_forecast,
    "track": render_track,
    "portfolio": render_portfolio,
}


@dataclass(frozen=True)
class Output:
    """One output folder and its kind."""

    folder: Path
    kind: Kind


@dataclass(frozen=True)
class WrittenReport:
    """A report written: where, for which folder, its size and how long it took to render and write."""

    path: Path
    folder: Path
    kind: Kind | Literal["index"]
    bytes: int
    seconds: float


@dataclass
class ReportSet:
    """What :func:`write_reports` returns: one report per output folder, plus an index for a search."""

    reports: list[WrittenReport] = field(default_factory=list)
    index: WrittenReport | None = None

    @property
    def main(self) -> Path:
        """The page to open: the index when several folders were reported, else the one report."""
        return self.index.path if self.index is not None else self.reports[0].path


def kind_of(folder: Path) -> Kind | None:
    """The kind of output ``folder`` holds, or ``None`` when it holds none."""
    if (folder / "metrics.json").is_file() and (folder / "forecasts.parquet").is_file():
        return "backtest"
    if (folder / "leaderboard.parquet").is_file() or (folder / "leaderboard.csv").is_file():
        return "sweep"
    if (folder / "latest.json").is_file():
        return "forecast"
    if (folder / "ledger.parquet").is_file() and (folder / "metrics.json").is_file():
        return "track"
    if (folder / "equity.parquet").is_file() and (folder / "metrics.json").is_file():
        return "portfolio"  # backtest/_portfolio/<label>/: an account's equity without forecasts
    return None


def find_outputs(path: Path) -> list[Output]:
    """``path`` itself when it is an output folder, else every output folder below it (sorted).

    Raises :class:`~chronobt.errors.ConfigError` when ``path`` is not a folder or holds no output.
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such folder; give a backtest, sweep or forecast output folder")
    if not path.is_dir():
        raise ConfigError(f"{path}: not a folder; give a backtest, sweep or forecast output folder")
    kind = kind_of(path)
    if kind is not None:
        return [Output(path, kind)]
    found: list[Output] = []
    for root, dirs, _ in os.walk(path):
        here = Path(root)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if here != path and (k := kind_of(here)) is not None:
            found.append(Output(here, k))
            dirs[:] = []  # an output folder holds no other output folder (a sweep's cells/ and best/)
    if not found:
        raise ConfigError(
            f"{path}: no backtest, sweep or forecast outputs in it or below it (looked for metrics.json + "
            "forecasts.parquet, leaderboard.parquet, latest.json); run `chronobt backtest`, `sweep` or "
            "`forecast` first"
        )
    return found


def render(output: Output) -> str:
    """The report HTML of one output folder."""
    return _RENDER[output.kind](output.folder)


def write_report(path: Path) -> Path:
    """Write the report(s) of ``path`` and return the page to open.

    ``path`` is one backtest, sweep or forecast output folder (-> ``path/report.html``) or a folder
    holding several (-> one report in each and the index ``path/report.html``, which is returned).
    Commands call this after writing their outputs (``--report``). No symbolic link below ``path`` (which
    may itself be one) is written through.
    """
    return write_reports(path).main


def write_reports(path: Path) -> ReportSet:
    """Like :func:`write_report`, returning every report written with its size and render time."""
    require_matplotlib()
    path = Path(path)
    outputs = find_outputs(path)
    result = ReportSet()
    for output in outputs:
        t0 = time.perf_counter()
        target = write_text_atomic(output.folder / REPORT_NAME, render(output), root=path)
        seconds = time.perf_counter() - t0
        logger.debug("report %s: %.3f s", target, seconds)
        result.reports.append(
            WrittenReport(target, output.folder, output.kind, target.stat().st_size, seconds)
        )
    if len(outputs) > 1 or outputs[0].folder != path:
        t0 = time.perf_counter()
        target = write_text_atomic(path / REPORT_NAME, render_index(path, result.reports), root=path)
        result.index = WrittenReport(target, path, "index", target.stat().st_size, time.perf_counter() - t0)
    return result


def render_index(path: Path, reports: list[WrittenReport]) -> str:
    """An index page linking each report (relative links, so the folder can be moved or copied whole)."""
    rows = []
    for r in reports:
        rel = r.path.relative_to(path).as_posix()
        rows.append([esc(r.kind), f'<a href="{esc(rel)}">{esc(r.folder.relative_to(path).as_posix())}</a>'])
    page = Page(title=f"chronobt reports · {path.name or path}", subtitle=esc(f"{len(reports)} reports"))
    page.add("reports", "Reports", table(["kind", "folder"], rows, left=2))
    return page.html()
