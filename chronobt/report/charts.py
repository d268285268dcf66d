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
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from chronobt.errors import ConfigError
from chronobt.report.axes import BarAxis, YWindow, bar_axis, bar_positions, calendar_ticks, utc, y_window

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: The colours of the report (matplotlib's tab10, named by role).
MODEL = "#1f77b4"
ACTUAL = "#111111"
CONTEXT = "#7f7f7f"
BASELINE_COLOURS = {"naive": "#ff7f0e", "seasonal_naive": "#2ca02c", "drift": "#9467bd"}
CUT = "#d62728"
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


def use_bar_axis(ax: Axes, axis: BarAxis) -> None:
    """Label ``ax``'s x axis with ``axis``'s session ticks and mark each cut-out gap with a faint line."""
    ax.set_xticks(axis.ticks, axis.labels)
    if axis.breaks:
        ax.grid(False, axis="x")  # the dotted gap lines mark the days; a grid beside them reads as doubled
    for x in axis.breaks:
        ax.axvline(x, color=CONTEXT, lw=0.6, ls=(0, (1, 3)), alpha=0.7)
    ax.set_xlim(axis.x[0] - 0.5, axis.x[-1] + 0.5)
    label = "bars (closed hours left out; dotted: a gap)" if axis.breaks else "bars (closed hours left out)"
    ax.set_xlabel(label, fontsize=8, color=CONTEXT)


def mark_cut(ax: Axes, x: npt.NDArray[Any], window: YWindow, band: str = "the widest") -> None:
    """Draw ``window``'s limits on ``ax`` with a red triangle at each step whose band leaves the axis and a
    label saying how far it goes."""
    ax.set_ylim(window.lo, window.hi)
    for mask, y, marker, value, va, offset in (
        (window.above, window.hi, "^", window.top, "top", -4),
        (window.below, window.lo, "v", window.bottom, "bottom", 4),
    ):
        if not mask.any():
            continue
        xs = np.asarray(x)[mask]
        ax.plot(xs, np.full(len(xs), y), ls="none", marker=marker, ms=6, color=CUT, clip_on=False, zorder=5)
        reach = f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
        ax.annotate(
            f"{band} band beyond the axis ({'up' if marker == '^' else 'down'} to {reach})",
            (xs[0], y),
            xytext=(-6, offset),
            textcoords="offset points",
            ha="right",
            va=va,
            fontsize=8,
            color=CUT,
        )


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
    closed_hours: bool | None = None,
    outline: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]] | None = None,
    outline_label: str = "raw 10–90%",
) -> tuple[YWindow, BarAxis | None]:
    """A fan chart: the history line, shaded central intervals, the median and (optionally) the actuals.

    ``quantiles`` maps a level to its ``[horizon]`` forecast; the widest band is the lightest.
    ``outline``: an optional second band ``(lower [horizon], upper [horizon])`` drawn faintly as two dashed
    lines (the raw model's band beside calibrated ones), labelled ``outline_label``; it does not set the
    y axis.
    ``legend``: ``"outside"`` (right of the axes), ``"inside"`` (upper left) or ``"none"``.
    The y axis follows :func:`y_window` (an exploding band is cut and marked, :func:`mark_cut`); series
    with closed hours are drawn on a bar-index axis (:func:`bar_axis`; ``closed_hours`` as there), 24/7
    ones on a time axis.
    Returns the y window and the bar axis (``None``: time axis), for tests and callers.
    """
    n = len(history_t)
    figure = ax.get_figure(root=True)
    width = ax.get_position().width * (figure.get_figwidth() if figure else 11.0)  # inches; a label needs ~1
    axis = bar_axis(
        np.concatenate([utc(history_t), utc(future_t)]),
        closed_hours=closed_hours,
        max_ticks=max(2, int(width)),
    )
    hx: npt.NDArray[Any] = history_t if axis is None else axis.x[:n]
    fx: npt.NDArray[Any] = future_t if axis is None else axis.x[n:]
    ax.plot(hx, history_y, color=CONTEXT, lw=1.2, label="history")
    bands = bands_of(list(quantiles))[:max_bands]
    for k, (lo, hi) in enumerate(bands):
        alpha = 0.14 + 0.12 * k
        ax.fill_between(fx, quantiles[lo], quantiles[hi], color=MODEL, alpha=alpha, lw=0, label=_pct(lo, hi))
    median = quantiles.get(0.5)
    if median is not None:
        ax.plot(fx, median, color=MODEL, lw=1.6, label="median")
    if outline is not None:
        for k, edge in enumerate(outline):
            label = outline_label if k == 0 else "_nolegend_"
            ax.plot(fx, edge, color=MODEL, lw=0.9, ls="--", alpha=0.6, label=label)
    if actual is not None:
        t = np.concatenate([hx[-1:], fx]) if n else fx
        y = np.concatenate([history_y[-1:], actual]) if n else actual
        ax.plot(t, y, color=ACTUAL, lw=1.3, label="actual")
    if n:
        ax.axvline(hx[-1], color=CONTEXT, lw=0.8, ls=":")
    nan = np.full(len(fx), np.nan)
    widest = bands[0] if bands else None
    window = y_window(
        core=[history_y, nan if actual is None else actual, nan if median is None else median],
        upper=quantiles[widest[1]] if widest else nan,
        lower=quantiles[widest[0]] if widest else nan,
    )
    mark_cut(ax, fx, window, _pct(*widest) if widest else "")
    if axis is None:
        date_axis(ax)
    else:
        use_bar_axis(ax, axis)
    if legend == "outside":
        ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0))
    elif legend == "inside":
        ax.legend(loc="upper left", ncols=3)
    return window, axis


def steps_against_baselines(
    ax: Axes,
    *,
    model: npt.ArrayLike,
    baselines: Mapping[str, npt.ArrayLike | float],
    title: str,
    ylabel: str = "",
    model_label: str = "model",
    others: Mapping[str, npt.ArrayLike] | None = None,
) -> None:
    """A per-step line of the model against each baseline (steps 1..h on x).

    A baseline given per step (an ``[h]`` array) is a dashed line with small markers; one given as a
    single pooled number (older outputs) is a flat dotted line labelled ``(pooled)``. ``others``: more
    ``[h]`` lines of the model (its raw scores beside calibrated ones), drawn faintly in the model's colour.
    """
    values = np.asarray(model, dtype=np.float64)
    steps = np.arange(1, len(values) + 1)
    ax.plot(steps, values, color=MODEL, marker="o", ms=3, label=model_label)
    for name, line in (others or {}).items():
        y = np.asarray(line, dtype=np.float64)
        ax.plot(steps, y, color=MODEL, ls="--", lw=1.1, alpha=0.55, marker="o", ms=3, mfc="none", label=name)
    for name, line in baselines.items():
        colour = BASELINE_COLOURS.get(name, CONTEXT)
        if np.ndim(line) == 0:
            ax.axhline(float(line), color=colour, ls=":", lw=1.1, label=f"{name} (pooled)")  # type: ignore[arg-type]
        else:
            ax.plot(
                steps,
                np.asarray(line, dtype=np.float64),
                color=colour,
                ls="--",
                lw=1.1,
                marker=".",
                ms=3,
                label=name,
            )
    ax.set_title(title)
    ax.set_xlabel("step")
    if ylabel:
        ax.set_ylabel(ylabel)


def equity_drawdown(
    chart: Chart,
    *,
    times: Any,
    equity: npt.ArrayLike,
    title: str,
    label: str = "strategy",
    benchmark: tuple[Any, npt.ArrayLike] | None = None,
    benchmark_label: str = "buy and hold",
    step: bool = True,
    closed_hours: bool | None = False,
) -> tuple[Axes, Axes]:
    """An equity curve (from 1) over its drawdown in percent, on a shared time axis.

    ``times`` ``[n]`` and ``equity`` ``[n]``; ``benchmark`` an optional ``(times [m], values [m])`` drawn
    beside it (also from 1). ``step``: hold each value until the next time (trade exits) instead of a
    line. The equity axis turns logarithmic when the values span more than 20x. Returns the two axes.
    ``closed_hours`` as in :func:`bar_axis` (default ``False``: a time axis): with closed hours both curves
    go on one bar-index axis over all their timestamps, so nights and weekends draw no jumps.
    Reusable by any page with an equity curve (strategies, a live track record).
    """
    values = np.asarray(equity, dtype=np.float64)
    stamps = [times] if benchmark is None else [times, benchmark[0]]
    axis, x = shared_x(stamps, closed_hours=closed_hours)
    bottom = 0.08 if axis is None else 0.11  # room for the bar axis's label
    ax, ax_dd = chart.grid(2, 1, sharex=True, height_ratios=(3, 1.3), margins=(0.07, 0.87, bottom, 0.93))
    t = x(times)
    if step:
        ax.step(t, values, where="post", color=MODEL, lw=1.6, label=label)
    else:
        ax.plot(t, values, color=MODEL, lw=1.6, label=label)
    every = [values]
    bt, bv = (
        (utc([]), np.empty(0))
        if benchmark is None
        else (x(benchmark[0]), np.asarray(benchmark[1], dtype=np.float64))
    )
    if bv.size:
        ax.plot(bt, bv, color=ACTUAL, lw=1.0, alpha=0.8, label=benchmark_label)
        every.append(bv)
    pooled = np.concatenate(every)
    pooled = pooled[np.isfinite(pooled)]
    if pooled.size and pooled.min() > 0 and pooled.max() / pooled.min() > 20:
        plain_log_y(ax)
    ax.axhline(1.0, color=CONTEXT, lw=0.8, ls=":")
    ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0))
    ax_dd.fill_between(
        t,
        drawdown(values) * 100,
        0,
        step="post" if step else None,
        color=MODEL,
        alpha=0.35,
        lw=0,
        label=label,
    )
    if bv.size:
        ax_dd.plot(bt, drawdown(bv) * 100, color=ACTUAL, lw=0.9, label=benchmark_label)
    ax_dd.set_ylabel("drawdown %")
    ax_dd.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0))
    label_x(ax_dd, axis)
    return ax, ax_dd


def shared_x(
    every: Sequence[Any], *, closed_hours: bool | None
) -> tuple[BarAxis | None, Callable[[Any], npt.NDArray[Any]]]:
    """The x axis of curves over a long span (equity): ``(axis, x)`` with ``x(times)`` each curve's x.

    ``every``: each curve's timestamps. ``closed_hours`` as in :func:`bar_axis` (``False``: a time
    axis); with closed hours all curves go on one bar-index axis over their pooled timestamps, labelled
    by calendar (:func:`calendar_ticks`), so nights and weekends draw no jumps. Finish with :func:`label_x`.
    """
    axis = None
    if closed_hours is not False:
        pooled = np.unique(np.concatenate([utc(t) for t in every])) if every else utc([])
        axis = bar_axis(pooled, closed_hours=closed_hours)
        axis = None if axis is None else calendar_ticks(axis)

    def x(when: Any) -> npt.NDArray[Any]:
        return utc(when) if axis is None else bar_positions(axis, when)

    return axis, x


def label_x(ax: Axes, axis: BarAxis | None) -> None:
    """Date ticks on ``ax`` (``axis`` ``None``), else ``axis``'s bar-index ticks (:func:`shared_x`)."""
    if axis is None:
        date_axis(ax)
    else:
        use_bar_axis(ax, axis)


def drawdown(values: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """``values / running peak - 1`` ``[n]`` (0 at a peak, -0.25 for a 25% fall)."""
    x = np.asarray(values, dtype=np.float64)
    return np.asarray(x / np.maximum.accumulate(x) - 1.0, dtype=np.float64)


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
