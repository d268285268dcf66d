"""Self-contained HTML reports of backtest, sweep and forecast output folders.

``write_report(path)`` writes ``report.html`` beside a folder's outputs (see :mod:`chronobt.report.write`
for how a folder of several outputs is handled); ``render_backtest`` / ``render_sweep`` /
``render_forecast`` return the HTML text of one folder.

The page is one file that works offline: every chart is inline SVG drawn by matplotlib, the CSS is
inline, there is no script and no reference to any URL. Window selection is plain HTML/CSS
(radio-button tabs).

Why matplotlib, rendering static SVG:

- offline by construction: no JavaScript library to embed (plotly's is ~3.5 MB per page, most of the
  5 MB budget) and nothing to load from a CDN;
- small files: a 100-window backtest report is a few hundred kB, dominated by the charts' paths;
- well kept and ubiquitous (the scientific Python default), pure-wheel install on every platform;
- speed: without pyplot and with fixed layouts a chart renders in a fraction of a second, so a full
  report takes seconds at most; the price is static charts (no hover or zoom), which a report to
  read or archive does not need.

matplotlib is an optional dependency (the ``report`` extra, part of ``dev``): without it the functions
raise :class:`~chronobt.errors.ConfigError` naming the extra.
"""

from __future__ import annotations

from chronobt.report.backtest import render_backtest
from chronobt.report.forecast import render_forecast
from chronobt.report.sweep import render_sweep
from chronobt.report.write import (
    REPORT_NAME,
    Output,
    ReportSet,
    WrittenReport,
    find_outputs,
    kind_of,
    render_index,
    write_report,
    write_reports,
)

__all__ = [
    "REPORT_NAME",
    "Output",
    "ReportSet",
    "WrittenReport",
    "find_outputs",
    "kind_of",
    "render_backtest",
    "render_forecast",
    "render_index",
    "render_sweep",
    "write_report",
    "write_reports",
]
