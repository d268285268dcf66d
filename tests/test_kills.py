"""A run killed at any write leaves the previous complete results or the new complete ones, never a mix.

Two ways to kill: in process, :data:`chronobt.atomic.FAULT_HOOK` copies the output folder at every named
write point (the copy is what ``kill -9`` at that instant leaves on disk), and every copy is checked and
then recovered by a next run; in a subprocess, the hook calls ``os._exit(137)`` at one point, and the
next command line run must clean up and succeed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from chronobt import atomic
from chronobt.config import BacktestConfig, ForecastConfig, SweepConfig
from chronobt.engine.core import Chronos2Engine, EngineConfig
from chronobt.locking import output_lock
from chronobt.publish import finish_interrupted, publish, published_names, read_published
from chronobt.runs.backtest import run_backtest
from chronobt.runs.forecast import run_forecast
from chronobt.runs.sweep import run_sweep
from tests.synthetic import write_symbol

REPO = Path(__file__).resolve().parents[1]
SWEPT = ("leaderboard.parquet", "leaderboard.csv", "best/AAA.json", "best/BBB.json", "manifest.json")
LATEST = ("latest.parquet", "latest.json")
View = dict[str, bytes | None]


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> Chronos2Engine:
    return Chronos2Engine(EngineConfig(model=str(tiny_model_dir), device="cpu", compile="off"))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("data")
    write_symbol(folder, "AAA", 300, seed=1)
    write_symbol(folder, "BBB", 300, seed=2)
    return folder


def leftovers(out: Path) -> list[str]:
    """Temporaries a writer leaves when killed: ``*.tmp``, ``.old-``, a publish's staging or journal."""
    return sorted(
        str(p.relative_to(out))
        for p in out.rglob("*")
        if p.name.endswith(".tmp") or ".old-" in p.name or p.name.startswith(".publish")
    )


def published(folder: Path, names: tuple[str, ...]) -> View:
    """What a reader sees of ``names`` in ``folder`` (through a publish's journal)."""

    def read(rel: str) -> bytes | None:
        try:
            return read_published(folder, rel, Path.read_bytes)
        except FileNotFoundError:
            return None

    return {rel: read(rel) for rel in names}


def plain(folder: Path) -> View:
    """The files of a backtest result folder, or ``{}`` when it is missing."""
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*"))} if folder.is_dir() else {}


def snapshots_during(
    run: Callable[[], Any], out: Path, snaps: Path, monkeypatch: pytest.MonkeyPatch
) -> list[Path]:
    """Run ``run`` and copy ``out`` at every write point, as a kill there would leave it."""
    taken: list[Path] = []

    def hook(name: str, path: Path) -> None:
        dest = snaps / f"{len(taken):03d}-{name}"
        shutil.copytree(out, dest, symlinks=True)
        taken.append(dest)

    monkeypatch.setattr(atomic, "FAULT_HOOK", hook)
    run()
    monkeypatch.setattr(atomic, "FAULT_HOOK", None)
    return taken


def _backtest(data_dir: Path, out: Path, *, windows: int) -> BacktestConfig:
    return BacktestConfig(
        symbols=("AAA",),
        preaug="differencing",
        horizon=8,
        context=128,
        windows=windows,
        data_dir=data_dir,
        output_dir=out,
    )


def _forecast(data_dir: Path, out: Path, preaug: str) -> ForecastConfig:
    return ForecastConfig(
        symbols=("AAA",), preaug=preaug, horizon=8, context=128, data_dir=data_dir, output_dir=out
    )


def _names(snaps: list[Path]) -> set[str]:
    return {s.name.split("-", 1)[1] for s in snaps}


def test_a_backtest_killed_at_any_write_keeps_the_old_results_or_the_new_ones(
    tmp_path: Path, engine: Chronos2Engine, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    run_backtest(_backtest(data_dir, out, windows=6), engine=engine)
    folder = Path("backtest/AAA/differencing")
    old = plain(out / folder)
    snaps = snapshots_during(
        lambda: run_backtest(_backtest(data_dir, out, windows=5), engine=engine),
        out,
        tmp_path / "snaps",
        monkeypatch,
    )
    new = plain(out / folder)
    assert old != new and {"dir.filled", "dir.moved-aside", "dir.swapped", "file.written"} <= _names(snaps)
    for snap in snaps:
        seen = plain(snap / folder)
        if not seen:  # killed between the swap's two renames: the old results wait beside it
            assert [p.name for p in (snap / folder.parent).glob(".differencing.old-*")], snap.name
        else:
            assert seen in (old, new), snap.name
        with output_lock(snap):  # the next run clears what the killed one left, then writes
            assert plain(snap / folder) in (old, new), snap.name
            assert leftovers(snap) == [], snap.name
            report = run_backtest(_backtest(data_dir, snap, windows=5), engine=engine)
        assert not report.failures and leftovers(snap) == []
        again = plain(snap / folder)
        assert {k: v for k, v in again.items() if k != "manifest.json"} == {
            k: v for k, v in new.items() if k != "manifest.json"
        }


def _sweep_config(data_dir: Path, out: Path, preaugs: str) -> SweepConfig:
    return SweepConfig(
        symbols=("AAA", "BBB"),
        preaugs=(preaugs,),
        horizon=8,
        context=128,
        validation_windows=4,
        test_windows=3,
        data_dir=data_dir,
        output_dir=out,
    )


def test_a_sweep_killed_at_any_write_publishes_leaderboards_and_choices_all_old_or_all_new(
    tmp_path: Path, engine: Chronos2Engine, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    run_sweep(_sweep_config(data_dir, out, "none,differencing"), engine=engine)
    old = published(out / "sweep", SWEPT)
    bigger = "none,differencing,robust_scaling"
    snaps = snapshots_during(
        lambda: run_sweep(_sweep_config(data_dir, out, bigger), engine=engine),
        out,
        tmp_path / "snaps",
        monkeypatch,
    )
    new = published(out / "sweep", SWEPT)
    assert all(old[k] != new[k] for k in SWEPT)
    assert {"publish.staged", "publish.committed", "publish.moved", "publish.done"} <= _names(snaps)
    stable = SWEPT[:-1]  # manifest.json has the run's wall-clock stamp
    for snap in snaps:
        assert published(snap / "sweep", SWEPT) in (old, new), snap.name  # a reader, before any recovery
        with output_lock(snap):
            finish_interrupted(snap / "sweep", root=snap)
            assert {k: (snap / "sweep" / k).read_bytes() for k in SWEPT} in (old, new), snap.name
            assert leftovers(snap) == [], snap.name
            run_sweep(_sweep_config(data_dir, snap, bigger), engine=engine)  # cached cells: no model call
        again = published(snap / "sweep", SWEPT)
        assert {k: again[k] for k in stable} == {k: new[k] for k in stable}, snap.name
        assert leftovers(snap) == []


def test_a_forecast_killed_at_any_write_keeps_latest_parquet_and_json_together(
    tmp_path: Path, engine: Chronos2Engine, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    run_forecast(_forecast(data_dir, out, "none"), engine=engine)
    folder = out / "forecast" / "AAA"
    old = published(folder, LATEST)
    snaps = snapshots_during(
        lambda: run_forecast(_forecast(data_dir, out, "differencing"), engine=engine),
        out,
        tmp_path / "snaps",
        monkeypatch,
    )
    new = published(folder, LATEST)
    assert old["latest.parquet"] != new["latest.parquet"] and "publish.moved" in _names(snaps)
    for snap in snaps:
        assert published(snap / "forecast/AAA", LATEST) in (old, new), snap.name
        with output_lock(snap):
            report = run_forecast(_forecast(data_dir, snap, "differencing"), engine=engine)
        assert not report.failures and leftovers(snap) == [], snap.name
        again = published(snap / "forecast/AAA", LATEST)
        assert again["latest.parquet"] == new["latest.parquet"], snap.name


# ------------------------------------------------------------------------------ real kills (os._exit)

#: Runs the command line with the write point ``argv[1]`` (its ``argv[2]``-th call) ending the process.
KILLER = """
import os, sys
from chronobt import atomic
point, nth, seen = sys.argv[1], int(sys.argv[2]), [0]
def hook(name, path):
    if name == point:
        seen[0] += 1
        if seen[0] == nth:
            os._exit(137)
atomic.FAULT_HOOK = hook
sys.argv = ["chronobt", *sys.argv[3:]]
from chronobt.cli import main
main()
"""


def _chronobt(args: list[str], kill: tuple[str, int] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    code = KILLER if kill else "import sys; sys.argv[0] = 'chronobt'; from chronobt.cli import main; main()"
    point = [kill[0], str(kill[1])] if kill else []
    return subprocess.run(
        [sys.executable, "-c", code, *point, *args], env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture()
def cli_args(tiny_model_dir: Path, data_dir: Path) -> Iterator[list[str]]:
    yield ["--model", str(tiny_model_dir), "--device", "cpu", "--compile", "off", "--data-dir", str(data_dir)]


def test_a_sweep_killed_by_the_os_mid_publish_is_finished_by_the_next_run(
    tmp_path: Path, cli_args: list[str]
) -> None:
    out = tmp_path / "out"
    sweep = ["sweep", "AAA", "BBB", "--horizon", "8", "--context", "128", "--validation-windows", "4"]
    sweep += ["--test-windows", "3", *cli_args, "--output-dir", str(out), "--quiet"]
    first = _chronobt([*sweep, "--preaug", "none,differencing"])
    assert first.returncode == 0, first.stderr
    old = published(out / "sweep", SWEPT)
    # moved in order best/AAA.json, best/BBB.json, leaderboard.csv, leaderboard.parquet, manifest.json
    killed = _chronobt([*sweep, "--preaug", "none,differencing,robust_scaling"], kill=("publish.moved", 3))
    assert killed.returncode == 137, killed.stderr
    seen = published(out / "sweep", SWEPT)
    assert all(seen[k] != old[k] for k in SWEPT) and (out / "sweep/.publish.json").exists()
    # on disk the two leaderboards disagree (csv new, parquet old); a reader sees the new set whole
    assert (out / "sweep/leaderboard.csv").read_bytes() == seen["leaderboard.csv"]
    assert (out / "sweep/leaderboard.parquet").read_bytes() == old["leaderboard.parquet"]
    again = _chronobt([*sweep, "--preaug", "none,differencing,robust_scaling"])
    assert again.returncode == 0, again.stderr
    assert published(out / "sweep", SWEPT[:-1]) == {k: seen[k] for k in SWEPT[:-1]}
    assert leftovers(out) == []


def test_a_backtest_killed_by_the_os_between_its_renames_is_restored_by_the_next_run(
    tmp_path: Path, cli_args: list[str]
) -> None:
    out = tmp_path / "out"
    backtest = ["backtest", "AAA", "--preaug", "differencing", "--horizon", "8", "--context", "128"]
    backtest += [*cli_args, "--output-dir", str(out), "--quiet"]
    assert _chronobt([*backtest, "--windows", "6"]).returncode == 0
    folder = out / "backtest/AAA/differencing"
    old = plain(folder)
    killed = _chronobt([*backtest, "--windows", "5"], kill=("dir.moved-aside", 1))
    assert killed.returncode == 137, killed.stderr
    assert not folder.exists() and leftovers(out)  # the old results moved aside, the new ones staged
    again = _chronobt([*backtest, "--windows", "5"])
    assert again.returncode == 0, again.stderr
    assert plain(folder) != old and set(plain(folder)) == set(old) and leftovers(out) == []


def test_a_forecast_killed_by_the_os_after_its_commit_reads_whole_and_is_finished_by_the_next_run(
    tmp_path: Path, cli_args: list[str]
) -> None:
    out = tmp_path / "out"
    forecast = ["forecast", "AAA", "--horizon", "8", "--context", "128", *cli_args, "--output-dir", str(out)]
    forecast += ["--quiet"]
    assert _chronobt([*forecast, "--preaug", "none"]).returncode == 0
    folder = out / "forecast/AAA"
    old = published(folder, LATEST)
    killed = _chronobt([*forecast, "--preaug", "differencing"], kill=("publish.committed", 1))
    assert killed.returncode == 137, killed.stderr
    seen = published(folder, LATEST)
    assert seen["latest.parquet"] != old["latest.parquet"] and seen["latest.json"] != old["latest.json"]
    assert (folder / "latest.parquet").read_bytes() == old["latest.parquet"]  # not yet moved
    again = _chronobt([*forecast, "--preaug", "differencing"])
    assert again.returncode == 0, again.stderr
    assert published(folder, LATEST)["latest.parquet"] == seen["latest.parquet"] and leftovers(out) == []


class _Killed(BaseException):
    """Stands for the process dying: no handler in chronobt catches it."""


def test_readers_see_the_whole_new_set_while_a_committed_publish_is_unfinished(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "sweep"
    with publish(folder, root=tmp_path) as stage:
        atomic.write_text_atomic(stage / "best/AAA.json", "old", root=tmp_path)

    def die(name: str, path: Path) -> None:
        if name == "publish.committed":
            raise _Killed

    monkeypatch.setattr(atomic, "FAULT_HOOK", die)
    with pytest.raises(_Killed), publish(folder, root=tmp_path) as stage:
        atomic.write_text_atomic(stage / "best/AAA.json", "new", root=tmp_path)
        atomic.write_text_atomic(stage / "best/BBB.json", "new", root=tmp_path)
    monkeypatch.setattr(atomic, "FAULT_HOOK", None)
    assert (folder / "best/AAA.json").read_text() == "old"  # on disk: not moved yet
    assert published_names(folder, "best", "*.json") == ["best/AAA.json", "best/BBB.json"]
    assert [read_published(folder, f"best/{s}.json", Path.read_text) for s in ("AAA", "BBB")] == ["new"] * 2
    finish_interrupted(folder, root=tmp_path)
    assert (folder / "best/AAA.json").read_text() == (folder / "best/BBB.json").read_text() == "new"
    assert leftovers(tmp_path) == []
