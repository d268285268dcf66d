"""A rich progress bar on stderr driven by the library's ``progress(stage, done, total)`` callbacks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from chronobt.cli.common import Ui, command_line
from chronobt.cli.engine_options import quiet_transformers
from chronobt.config import RunOptions
from chronobt.engine.config import EngineConfig
from chronobt.locking import output_lock

R = TypeVar("R")

STAGE_LABELS = {
    "prepare": "preparing windows",
    "forecast": "forecasting",
    "evaluate": "inverting + scoring",
    "cached": "cached cells",
    "write": "writing",
}


@contextmanager
def stage_progress(ui: Ui) -> Iterator[Callable[[str, int, int], None]]:
    """Yield a ``progress(stage, done, total)`` callable that renders one bar per stage."""
    bar = Progress(
        TextColumn("{task.description:<22}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        console=ui.err,
        transient=False,
        disable=ui.quiet,
    )
    tasks: dict[str, TaskID] = {}

    def update(stage: str, done: int, total: int) -> None:
        if not tasks:
            bar.start()  # on the first stage: a run that fails before any leaves no empty line
        if stage not in tasks:
            tasks[stage] = bar.add_task(STAGE_LABELS.get(stage, stage), total=total, rate="")
        task = tasks[stage]
        bar.update(task, completed=done, total=total)
        bar.update(task, rate=rate_text(done, bar.tasks[task].elapsed or 0.0))

    try:
        yield update
    finally:
        if tasks:
            bar.stop()


#: A rate is shown once a stage has run this long: before, one fast item reads as thousands per second.
MIN_RATE_SECONDS = 0.5


def rate_text(done: int, elapsed: float) -> str:
    """``"12.3/s"`` (three significant digits), or ``""`` while too little has happened to say."""
    if done < 1 or elapsed < MIN_RATE_SECONDS:
        return ""
    rate = done / elapsed
    return f"{rate:,.0f}/s" if rate >= 100 else f"{rate:.3g}/s"


def run_locked(
    ui: Ui,
    run: Callable[..., R],
    config: RunOptions,
    engine_config: EngineConfig,
    *,
    wait: float,
) -> R:
    """``run(config, engine_config, ...)`` under ``config.output_dir``'s lock, with progress on stderr.

    The command line is passed on for the manifest. Shared by backtest, sweep and forecast.
    """
    line = command_line()
    with (
        output_lock(config.output_dir, wait=wait, command=line),
        quiet_transformers(load=getattr(config, "finetune", "off") != "off"),  # training prints bars
        stage_progress(ui) as progress,
    ):
        return run(config, engine_config, progress=progress, command=line)
