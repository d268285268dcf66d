"""Charts as inline SVG text, drawn with matplotlib (no pyplot, no global state left behind).

Every chart is one :class:`matplotlib.figure.Figure` rendered to SVG inside an ``rc_context``: text stays
text (``svg.fonttype = none``: smaller files, selectable labels), there is no date in the output and each
chart gets its own ``svg.hashsalt`` so the clip-path ids of several charts inlined in one page never collide.
Layouts use fixed margins instead of ``constrained`` / ``tight`` layout, which cost a second draw (about
half of a chart's render time).

Timestamps are drawn as UTC: tz-aware values are converted to naive UTC ``datetime64`` first.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from chronobt.errors import ConfigError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: The colours of the report (matplotlib's tab10, named by role).
MODEL = "#1f77b4"
ACTUAL = "#111111"
CONTEXT = "#7f7f7f"
BASELINE_COLOURS = {"naive": "#ff7f0e", "seasonal_naive": "#2ca02c", "drift": "#9467bd"}
TARGET_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")

_RC: dict[str, Any] = {
    "svg.fonttype": "none",
    "font.size": 9,
    "font.family": "sans-serif",
    "axes.titlesize": 10,
    "axes.titlelocation": "left",
    "axes.titley": 1.0,  # a fixed title position: the automatic one costs a layout pass per axes
    "axes.titlepad": 5.0,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "lines.linewidth": 1.4,
    "path.simplify": True,
}

_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.DOTALL)
MISSING_EXTRA = (
    "the HTML report needs matplotlib, which is not installed; "
    "install the report extra: pip install 'chronobt[report]'"
)


def _matplotlib() -> Any:
    try:
        import matplotlib
        import matplotlib.dates
        import matplotlib.figure
    except ImportError:
        raise ConfigError(MISSING_EXTRA) from None
    return matplotlib


def require_matplotlib() -> None:
    """Raise :class:`~chronobt.errors.ConfigError` naming the ``report`` extra when matplotlib is missing."""
    _matplotlib()


class Chart:
    """A figure being drawn; ``svg()`` renders it once and closes it.

    ``with Chart("fan-latest", (11, 3.4)) as chart: ax = chart.axes()`` draws inside the report's
    rc settings; ``chart.text`` is the SVG after the block.
    """

    def __init__(self, salt: str, size: tuple[float, float]) -> None:
        self._mpl = _matplotlib()
        self._rc = self._mpl.rc_context({**_RC, "svg.hashsalt": salt})
        self.size = size
        self.text = ""
        self.fig: Figure

    def __enter__(self) -> Chart:
        self._rc.__enter__()
        self.fig = self._mpl.figure.Figure(figsize=self.size)
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if exc_type is None:
                buffer = io.StringIO()
                self.fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
                text = buffer.getvalue()
                text = text[text.index("<svg") :]  # drop the XML declaration and DOCTYPE
                self.text = _METADATA.sub("", text, count=1)  # and the RDF block (namespace URLs only)
        finally:
            self._rc.__exit__(exc_type, exc, tb)

    def grid(
        self,
        nrows: int = 1,
        ncols: int = 1,
        *,
        sharex: bool = False,
        height_ratios: Sequence[float] | None = None,
        margins: tuple[float, float, float, float] = (0.07, 0.98, 0.14, 0.88),
        hspace: float = 0.35,
        wspace: float = 0.22,
    ) -> list[Axes]:
        """Axes on a grid with fixed margins ``(left, right, bottom, top)`` as fractions of the figure."""
        left, right, bottom, top = margins
        axes = self.fig.subplots(
            nrows,
            ncols,
            sharex=sharex,
            squeeze=False,
            gridspec_kw={"height_ratios": height_ratios} if height_ratios else None,
        )
        self.fig.subplots_adjust(left=left, right=right, bottom=bottom, top=top, hspace=hspace, wspace=wspace)
        from matplotlib.ticker import MaxNLocator

        for ax in axes.ravel():  # fewer ticks: each costs a Text and two Line2D to lay out and draw
            ax.yaxis.set_major_locator(MaxNLocator(nbins=5))
        return list(axes.ravel())


def utc(values: Any) -> npt.NDArray[Any]:
    """Timestamps as naive-UTC ``datetime64[ns]`` (what matplotlib draws without a timezone)."""
    index = pd.DatetimeIndex(values)
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    return index.to_numpy(dtype="datetime64[ns]")


def date_axis(ax: Axes) -> None:
    """Compact date ticks (``ConciseDateFormatter``) on the x axis."""
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator(minticks=3, maxticks=7)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def bands_of(levels: Sequence[float]) -> list[tuple[float, float]]:
    """Central intervals available among ``levels``, widest first: ``(0.1, 0.9), (0.2, 0.8), ...``."""
    present = {round(q, 6) for q in levels}
    return [(q, round(1 - q, 6)) for q in sorted(present) if q < 0.5 and round(1 - q, 6) in present]


def fan(
    ax: Axes,
    *,
    history_t: npt.NDArray[Any],
    history_y: npt.NDArray[np.float64],
    future_t: npt.NDArray[Any],
    quantiles: dict[float, npt.NDArray[np.float64]],
    actual: npt.NDArray[np.float64] | None = None,
    max_bands: int = 4,
    legend: str = "outside",
) -> None:
    """A fan chart: the history line, shaded central intervals, the median and (optionally) the actuals.

    ``quantiles`` maps a level to its ``[horizon]`` forecast; the widest band is the lightest.
    ``legend``: ``"outside"`` (right of the axes), ``"inside"`` (upper left) or ``"none"``.
    """
    ax.plot(history_t, history_y, color=CONTEXT, lw=1.2, label="history")
    bands = bands_of(list(quantiles))[:max_bands]
    for k, (lo, hi) in enumerate(bands):
        alpha = 0.14 + 0.12 * k
        ax.fill_between(
            future_t, quantiles[lo], quantiles[hi], color=MODEL, alpha=alpha, lw=0, label=_pct(lo, hi)
        )
    if 0.5 in quantiles:
        ax.plot(future_t, quantiles[0.5], color=MODEL, lw=1.6, label="median")
    if actual is not None:
        t = np.concatenate([history_t[-1:], future_t]) if len(history_t) else future_t
        y = np.concatenate([history_y[-1:], actual]) if len(history_y) else actual
        ax.plot(t, y, color=ACTUAL, lw=1.3, label="actual")
    if len(history_t):
        ax.axvline(history_t[-1], color=CONTEXT, lw=0.8, ls=":")
    date_axis(ax)
    if legend == "outside":
        ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0))
    elif legend == "inside":
        ax.legend(loc="upper left", ncols=3)


def plain_log_y(ax: Axes) -> None:
    """A log y axis labelled 1, 10, 100 rather than powers of ten."""
    from matplotlib.ticker import FuncFormatter

    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}"))


def _pct(lo: float, hi: float) -> str:
    return f"{lo * 100:g}–{hi * 100:g}%"


def heatmap(
    ax: Axes,
    values: npt.NDArray[np.float64],
    *,
    rows: Sequence[str],
    cols: Sequence[str],
    labels: Sequence[Sequence[str]],
    marked: npt.NDArray[np.bool_],
    colorbar_label: str,
) -> None:
    """Cells coloured by ``values`` (diverging around 0), each labelled; ``marked`` cells framed in black."""
    from matplotlib.patches import Rectangle

    finite = values[np.isfinite(values)]
    span = float(np.max(np.abs(finite))) if finite.size else 1.0
    span = span or 1.0
    mesh = ax.pcolormesh(
        np.ma.masked_invalid(values), cmap="RdBu", vmin=-span, vmax=span, edgecolors="white", linewidth=1
    )
    ax.set_xticks(np.arange(len(cols)) + 0.5, list(cols), rotation=30, ha="right")
    ax.set_yticks(np.arange(len(rows)) + 0.5, list(rows))
    ax.set_xlim(0, len(cols))
    ax.set_ylim(len(rows), 0)
    ax.grid(False)
    for (i, j), text in np.ndenumerate(np.asarray(labels, dtype=object)):
        dark = np.isfinite(values[i, j]) and abs(values[i, j]) > 0.6 * span
        ax.text(j + 0.5, i + 0.5, text, ha="center", va="center", color="white" if dark else "black")
    for i, j in zip(*np.nonzero(marked), strict=True):
        ax.add_patch(Rectangle((j + 0.04, i + 0.04), 0.92, 0.92, fill=False, lw=2.2, ec="black"))
    ax.figure.colorbar(mesh, ax=ax, label=colorbar_label, fraction=0.04, pad=0.02)
