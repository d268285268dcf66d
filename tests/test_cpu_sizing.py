"""CPU sizing rules: pure functions of the model's dimensions, the context and the threads."""

from __future__ import annotations

import pytest

from chronobt.engine.cpu_sizing import (
    CPU_ACTIVATION_BUDGET,
    CPU_BATCH_RANGE,
    CPU_PARALLEL_MAX_D_MODEL,
    cpu_series_per_forward,
    cpu_workers,
    tokens_per_series,
)


def test_tokens_are_context_patches_plus_register_plus_output_patches() -> None:
    assert tokens_per_series(context_length=2048, patch_size=16, n_output_patches=2) == 131
    assert (
        tokens_per_series(context_length=100, patch_size=16, n_output_patches=1) == 9
    )  # 7 patches, rounded up


def test_the_measured_optimum_gives_16_series_and_a_shorter_context_more() -> None:
    small = {"patch_size": 16, "n_output_patches": 2, "d_model": 256, "d_ff": 1024}
    assert cpu_series_per_forward(context_length=2048, **small) == 16
    assert CPU_ACTIVATION_BUDGET == 16 * 131 * 256
    assert cpu_series_per_forward(context_length=512, **small) == CPU_ACTIVATION_BUDGET // (35 * 256)


@pytest.mark.parametrize(
    ("context_length", "d_model", "d_ff", "expected"),
    [
        (512, 32, 64, 64),  # overhead-bound tiny model: capped at its d_ff
        (16, 32, 4096, CPU_BATCH_RANGE[1]),  # never above the range
        (8192, 4096, 16384, CPU_BATCH_RANGE[0]),  # never below it
        (8192, 4096, 2, 2),  # ... unless d_ff is smaller still
    ],
)
def test_series_per_forward_stays_in_range_and_under_d_ff(
    context_length: int, d_model: int, d_ff: int, expected: int
) -> None:
    got = cpu_series_per_forward(
        context_length=context_length, patch_size=16, n_output_patches=2, d_model=d_model, d_ff=d_ff
    )
    assert got == expected


@pytest.mark.parametrize(
    ("n_batches", "d_model", "threads", "expected"),
    [
        (5, 32, 2, 2),
        (5, 32, 16, 5),  # no more workers than batches
        (1, 32, 2, 1),  # one batch: nothing to run side by side
        (5, CPU_PARALLEL_MAX_D_MODEL, 2, 1),  # wide models use every core in their matrix products
        (5, 32, 1, 1),
    ],
)
def test_workers_run_small_models_batches_side_by_side(
    n_batches: int, d_model: int, threads: int, expected: int
) -> None:
    assert cpu_workers(n_batches=n_batches, d_model=d_model, threads=threads) == expected


def test_per_task_group_attention_lifts_the_d_ff_cap() -> None:
    tiny = {"context_length": 512, "patch_size": 16, "n_output_patches": 2, "d_model": 32, "d_ff": 64}
    assert cpu_series_per_forward(**tiny) == 64
    assert cpu_series_per_forward(**tiny, dense_groups=False) == CPU_BATCH_RANGE[1]


def test_wide_models_run_batches_side_by_side_only_when_other_processes_hold_cores() -> None:
    from chronobt.engine.cpu_sizing import CPU_PARALLEL_MAX_D_MODEL, cpu_workers

    wide = CPU_PARALLEL_MAX_D_MODEL
    assert cpu_workers(n_batches=8, d_model=wide, threads=2) == 1  # unknown load: as if idle
    assert cpu_workers(n_batches=8, d_model=wide, threads=2, free_cores=2.0) == 1  # idle
    assert cpu_workers(n_batches=8, d_model=wide, threads=2, free_cores=0.4) == 2  # busy: one thread each
    assert cpu_workers(n_batches=1, d_model=wide, threads=2, free_cores=0.0) == 1  # one batch
    assert cpu_workers(n_batches=8, d_model=128, threads=2, free_cores=2.0) == 2  # small models always


def test_the_command_line_reads_free_cores_from_affinity_and_load(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from chronobt.cli.engine_options import free_cpu_cores

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(os, "getloadavg", lambda: (1.25, 0.0, 0.0))
    assert free_cpu_cores() == 0.75
    monkeypatch.setattr(os, "getloadavg", lambda: (9.0, 0.0, 0.0))
    assert free_cpu_cores() == 0.0

    def unreadable() -> tuple[float, float, float]:
        raise OSError("no load average")

    monkeypatch.setattr(os, "getloadavg", unreadable)
    assert free_cpu_cores() is None


def test_batches_side_by_side_share_the_activation_budget() -> None:
    from chronobt.engine import cpu_sizing as sizing

    args = {"context_length": 512, "patch_size": 16, "n_output_patches": 2, "d_model": 128, "d_ff": 512}
    alone = sizing.cpu_series_per_forward(**args, dense_groups=False)
    assert alone == 119  # the bundled model at context 512: the whole budget
    assert sizing.cpu_series_per_forward(**args, dense_groups=False, workers=2) == 59
