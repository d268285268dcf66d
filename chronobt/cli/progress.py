"""A rich progress bar on stderr driven by the library's ``progress(stage, done, total)`` callbacks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from chronobt.cli.common import Ui

STAGE_LABELS = {
    "prepare": "preparing windows",
    "forecast": "forecasting",
    "evaluate": "inverting + scoring",
    "cached": "cached cells",
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
        if stage not in tasks:
            tasks[stage] = bar.add_task(STAGE_LABELS.get(stage, stage), total=total, rate="")
        task = tasks[stage]
        bar.update(task, completed=done, total=total)
        elapsed = bar.tasks[task].elapsed or 0.0
        if elapsed > 0 and done:
            bar.update(task, rate=f"{done / elapsed:,.1f}/s")

    with bar:
        yield update
