"""Bad input through the real command line: one line, no traceback, the README's exit code, nothing written.

Usage errors (exit 2) are found before any model loads (the engine's constructor fails the test if
called) and before the output folder's lock, so the output folder is never created. Data errors keep
their codes: 1 when every symbol failed, 3 when some were written.
"""

from __future__ import annotations

import json
import os
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from chronobt.augment import get_augmentation
from chronobt.augment import memory as inversion_memory
from chronobt.augment.inversion import MAX_INVERSION_THREADS, MAX_PATHS, inverse_quantiles
from chronobt.augment.memory import InversionMemory, check_inversion_memory
from chronobt.cli import app
from chronobt.engine.core import Chronos2Engine
from chronobt.errors import ConfigError
from tests.data_cases import bad_input_cases, good_frame
from tests.synthetic import write_symbol

SMALL = ["--horizon", "8", "--windows", "4", "--compile", "off"]
#: A memory limit small enough that a million sample paths of 8 steps never fit (deterministic on any host).
TINY_LIMIT = 50_000_000

#: (command and arguments, exit code, fragment of the one error line); AAA exists in the data dir.
USAGE_CASES: list[tuple[list[str], int, str]] = [
    (["backtest", "NOSUCH"], 2, "no data for symbol 'NOSUCH' in"),
    (["backtest", "AAA", "NOSUCH"], 2, "no data for symbol 'NOSUCH'"),
    (["backtest", "nosuch", "AAA", "OTHER"], 2, "'nosuch', 'OTHER'"),
    (["backtest", ""], 2, "an empty symbol was given"),
    (["backtest", "  "], 2, "an empty symbol was given"),
    (["backtest", "a b"], 2, "not a usable symbol"),
    (["backtest", "../AAA"], 2, "file not found"),
    (["backtest", "absent.parquet"], 2, "absent.parquet: file not found"),
    (["backtest", "AAA", "--covariates", "volume,NOPE"], 2, "no data for symbol 'NOPE'"),
    (["backtest", "AAA", "--paths", "1000000000"], 2, f"--paths must be between 2 and {MAX_PATHS:,}"),
    (["backtest", "AAA", "--paths", "1"], 2, "--paths must be between 2"),
    (["backtest", "AAA", "--preaug", "differencing", "--paths", "1000000"], 2, "would need"),
    (["backtest", "AAA", "--preaug", "auto", "--paths", "1000000"], 2, "but may use 50 MB"),
    (["backtest", "AAA", "--seed", "-1"], 2, "--seed must be >= 0"),
    (["backtest", "AAA", "--wait", "nan"], 2, "--wait must be a finite number"),
    (["backtest", "AAA", "--wait", "inf"], 2, "--wait must be a finite number"),
    (["backtest", "AAA", "--fee-bps", "nan"], 2, "--fee-bps must be a finite number"),
    (["backtest", "AAA", "--fee-bps", "inf"], 2, "--fee-bps must be a finite number"),
    (["backtest", "AAA", "--fee-bps", "1e400"], 2, "--fee-bps must be a finite number"),
    (["backtest", "AAA", "--calendar", "BOGUS"], 2, "--calendar 'BOGUS'"),
    (["sweep", "NOSUCH"], 2, "no data for symbol 'NOSUCH'"),
    (["sweep", ""], 2, "an empty symbol was given"),
    (["sweep", "AAA", "--covariates", "none,volume+NOPE"], 2, "no data for symbol 'NOPE'"),
    (["sweep", "AAA", "--preaug", "rolling_norm", "--paths", "1000000"], 2, "would need"),
    (["sweep", "AAA", "--fee-bps", "nan"], 2, "--fee-bps must be a finite number"),
    (["sweep", "AAA", "--wait", "nan"], 2, "--wait must be a finite number"),
    (["forecast", "NOSUCH"], 2, "no data for symbol 'NOSUCH'"),
    (["forecast", "AAA", "NOSUCH"], 2, "no data for symbol 'NOSUCH'"),
    (["forecast", ""], 2, "an empty symbol was given"),
    (["forecast", "AAA", "--seed", "-5"], 2, "--seed must be >= 0"),
    (["forecast", "AAA", "--preaug", "differencing", "--paths", "1000000"], 2, "would need"),
    (["forecast", "AAA", "--calendar", "BOGUS"], 2, "--calendar 'BOGUS'"),
    (["forecast", "AAA", "--wait", "nan"], 2, "--wait must be a finite number"),
]


def _id(case: tuple[list[str], int, str]) -> str:
    return " ".join(arg or "''" for arg in case[0])


@pytest.fixture
def no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if any engine is built; a tiny memory limit for the sample paths."""

    def refuse(self: object, *args: object, **kwargs: object) -> None:
        pytest.fail("the model was loaded before the usage error")

    monkeypatch.setattr(Chronos2Engine, "__init__", refuse)
    monkeypatch.setattr(inversion_memory, "memory_limit", lambda: TINY_LIMIT)


def _one_error_line(result: object) -> str:
    stderr = result.stderr  # type: ignore[attr-defined]
    output = result.output  # type: ignore[attr-defined]
    assert "Traceback" not in output and "internal error" not in stderr, output
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


@pytest.mark.parametrize("case", USAGE_CASES, ids=_id)
def test_each_usage_error_is_one_line_exit_2_before_the_model_and_writes_nothing(
    tmp_path: Path, no_model: None, case: tuple[list[str], int, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    args, code, fragment = case
    data, out = tmp_path / "data", tmp_path / "out"
    write_symbol(data, "AAA", 300)
    monkeypatch.chdir(tmp_path)  # relative paths (../AAA, absent.parquet) resolve here
    result = CliRunner().invoke(app, [*args, *SMALL[:2], "--data-dir", str(data), "--output-dir", str(out)])
    assert result.exit_code == code, result.output
    assert fragment in _one_error_line(result)
    assert not out.exists()
    assert sorted(p.name for p in data.iterdir()) == ["AAA.parquet"]


def test_an_unknown_symbol_names_the_data_dir_what_it_holds_and_data_list(
    tmp_path: Path, no_model: None
) -> None:
    write_symbol(tmp_path / "data", "AAA", 300)
    args = ["backtest", "NOSUCH", "--data-dir", str(tmp_path / "data"), "--output-dir", str(tmp_path / "o")]
    line = _one_error_line(CliRunner().invoke(app, args))
    assert f"in {tmp_path / 'data'}/ (available: AAA)" in line
    assert "`chronobt data list --data-dir" in line and "--symbol NOSUCH" in line


def test_a_missing_data_dir_is_named_before_the_model(tmp_path: Path, no_model: None) -> None:
    args = ["forecast", "AAA", "--data-dir", str(tmp_path / "nodata"), "--output-dir", str(tmp_path / "o")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert f"{tmp_path / 'nodata'} does not exist" in _one_error_line(result)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--tz", "Bogus/Zone"], "--tz 'Bogus/Zone': unknown time zone"),
        (["--tz", ""], "--tz '': unknown time zone"),
        (["--symbol", ""], "--symbol ''"),
        (["--symbol", ".."], "--symbol '..'"),
        (["--max-gap", "-1"], "--max-gap"),
    ],
)
def test_data_import_usage_errors_exit_2_and_write_nothing(
    tmp_path: Path, args: list[str], fragment: str
) -> None:
    csv, data = tmp_path / "x.csv", tmp_path / "data"
    good_frame(48).to_csv(csv, index=False)
    base = ["data", "import", str(csv), "--data-dir", str(data)]
    result = CliRunner().invoke(app, [*base, *(["--symbol", "X"] if "--symbol" not in args else []), *args])
    assert result.exit_code == 2, result.output
    assert fragment in result.output
    assert not data.exists() or list(data.iterdir()) == []


def test_files_that_exist_but_fail_keep_the_partial_success_rule(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    write_symbol(data, "AAA", 300)
    (tmp_path / "bad").mkdir()
    cases = {name: path for name, path, _ in bad_input_cases(tmp_path / "bad")}
    args = ["backtest", "AAA", str(cases["timestamp_past_2262"]), str(cases["corrupt_parquet"])]
    args += ["--model", str(tiny_model_dir), *SMALL, "--data-dir", str(data), "--output-dir", str(out), "-q"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 3, result.output
    line = _one_error_line(result)
    assert "2 of 3 symbols failed" in line and "outside 1677-09-22 .. 2262-04-11" in line
    assert (out / "backtest" / "AAA" / "none" / "metrics.json").exists()


def test_data_list_lists_a_past_2262_file_with_its_error_beside_the_good_ones(tmp_path: Path) -> None:
    write_symbol(tmp_path, "AAA", 100)
    (tmp_path / "bad").mkdir()
    cases = {name: path for name, path, _ in bad_input_cases(tmp_path / "bad")}
    cases["timestamp_past_2262"].rename(tmp_path / "FUTURE.parquet")
    result = CliRunner().invoke(app, ["data", "list", "--data-dir", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    listed = {row["symbol"]: row for row in json.loads(result.stdout)}
    assert listed["AAA"]["error"] is None and "2262-04-11" in listed["FUTURE"]["error"]


# --- the sample paths' memory --------------------------------------------------------------------------


def test_paths_beyond_memory_are_refused_with_the_estimate_and_the_limit() -> None:
    need = InversionMemory.of(
        get_augmentation("differencing"), windows=100, variates=4, horizon=24, n_paths=MAX_PATHS
    )
    assert need.chunk_bytes == 24 * 4 * MAX_PATHS * 8  # one window per chunk, inverted in place
    assert need.draw_bytes == 24 * MAX_PATHS * (16 + 40) + 96 * MAX_PATHS  # segments, fractions, setup
    with pytest.raises(ConfigError) as refused:
        check_inversion_memory(need, limit=10**9)
    message = str(refused.value)
    assert "would need 2.2 GB" in message and "may use 1.0 GB" in message and "\n" not in message
    fits = int(message.split("pass --paths ")[1].split()[0])
    smaller = InversionMemory.of(
        get_augmentation("differencing"), windows=100, variates=4, horizon=24, n_paths=fits
    )
    assert smaller.total(1) <= 10**9 < need.total(1)


def test_the_inversion_runs_fewer_workers_where_their_chunks_would_not_fit() -> None:
    need = InversionMemory.of(
        get_augmentation("differencing"), windows=50, variates=1, horizon=8, n_paths=2**18
    )
    limit = need.total(3) + 1
    assert need.workers_within(limit) == 3 and need.workers_within(0) == 1


@pytest.mark.parametrize(
    ("spec", "dependence"),
    [("differencing", "independent"), ("differencing", "copula"), ("rolling_norm:window=20", "independent")],
)
def test_the_memory_estimate_bounds_the_measured_peak(spec: str, dependence: str) -> None:
    """tracemalloc sees numpy's allocations: the estimate must not be below what the inversion holds."""
    rng = np.random.default_rng(0)
    aug = get_augmentation(spec)
    w, v, h, paths = 3, 1, 16, 60_000
    levels = np.round(np.arange(0.1, 1.0, 0.1), 2)
    state = aug.fit(100 + np.cumsum(rng.normal(size=(w, v, 64)), axis=-1))
    q = np.sort(rng.normal(size=(w, v, levels.size, h)), axis=2)
    corr = None
    if dependence == "copula":
        corr = np.stack([np.eye(h) if i % 2 else np.full((h, h), 0.5) + 0.5 * np.eye(h) for i in range(w)])
    kwargs = {"levels": levels, "out_levels": levels, "dependence": dependence, "correlation": corr}
    inverse_quantiles(aug, q, state=state, n_paths=16, **kwargs)  # compile the loops first
    tracemalloc.start()
    try:
        inverse_quantiles(aug, q, state=state, n_paths=paths, **kwargs)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    sets = 2 if corr is not None else 1
    need = InversionMemory.of(aug, windows=w, variates=v, horizon=h, n_paths=paths, draw_sets=sets)
    workers = min(w * sets, os.cpu_count() or 1, MAX_INVERSION_THREADS)
    assert peak <= need.total(workers) <= 2.5 * peak, (peak, need)


def test_the_memory_limit_is_half_the_machines_memory_at_most() -> None:
    physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert 0 < inversion_memory.memory_limit() <= physical * inversion_memory.MEMORY_FRACTION
