"""Whole-process timing for the benchmarks that compare commands: interleaved pairs, medians, load.

Each contender is a command line run as its own process (process start, imports, model load and the
work all count). :func:`interleaved` runs them in turn, ``pairs`` rounds, optionally beside CPU hog
processes (:func:`hogs`), and :func:`report` prints the medians, the ratios against the first contender
and the load average before and after, so a table says whether the machine was idle. A contender may
print one line ``RESULT {json}`` on stdout (its own stage timings, its output's checksum); the last one
is kept per run.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Runs:
    """One contender's runs: wall seconds, and the ``RESULT`` JSON each printed (``{}`` if none)."""

    name: str
    command: list[str]
    wall: list[float] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.wall) if self.wall else float("nan")

    def median_of(self, key: str) -> float | None:
        values = [r[key] for r in self.results if isinstance(r.get(key), (int, float))]
        return statistics.median(values) if values else None


def run_once(
    command: Sequence[str], *, env: dict[str, str] | None = None, timeout: float = 1800
) -> tuple[float, dict[str, Any]]:
    """Wall seconds of one process and its last ``RESULT`` JSON; raises with its stderr when it fails."""
    started = time.perf_counter()
    proc = subprocess.run(list(command), capture_output=True, text=True, env=env, timeout=timeout)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = {}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line.removeprefix("RESULT "))
    return wall, result


@contextlib.contextmanager
def hogs(count: int) -> Iterator[None]:
    """``count`` busy-looping processes beside the runs (other users of the cores); stopped after."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait()


def interleaved(
    contenders: Sequence[Runs], *, pairs: int, env: dict[str, str] | None = None, warmup: int = 0
) -> None:
    """Run every contender once per round, in turn (alternating which goes first), ``pairs`` rounds, after
    ``warmup`` untimed rounds (once-per-machine work such as stored checks, and the page cache)."""
    for k in range(warmup):
        for runs in contenders:
            wall, _ = run_once(runs.command, env=env)
            print(f"  warm-up {k + 1}: {runs.name} {wall:.2f} s (not counted)", file=sys.stderr, flush=True)
    for k in range(pairs):
        order = list(contenders) if k % 2 == 0 else list(reversed(contenders))
        for runs in order:
            wall, result = run_once(runs.command, env=env)
            runs.wall.append(wall)
            runs.results.append(result)
            print(f"  round {k + 1}: {runs.name} {wall:.2f} s", file=sys.stderr, flush=True)


def load() -> str:
    """The 1-, 5- and 15-minute load averages and the usable cores, one line."""
    try:
        one, five, fifteen = os.getloadavg()
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return "load average unknown"
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} on {cores} cores"


def header(title: str) -> str:
    """A result table's first line: what, when, where."""
    return (
        f"{title} - {time.strftime('%Y-%m-%d %H:%M')} - {platform.node()} ({platform.processor() or 'cpu'})"
    )


def report(contenders: Sequence[Runs], *, before: str, extra: Sequence[str] = ()) -> None:
    """Medians of every contender, the ratio of each to the first, the load before and after."""
    base = contenders[0]
    print("| run | median s | ratio to first | all s |")
    print("|---|---|---|---|")
    for runs in contenders:
        all_s = ", ".join(f"{t:.2f}" for t in runs.wall)
        print(f"| {runs.name} | {runs.median:.2f} | {runs.median / base.median:.2f} | {all_s} |")
    for line in extra:
        print(line)
    print(f"before: {before}; after: {load()}")
