"""The inversion's C loops (chronobt.augment.loops) give the numba loops' numbers bit for bit, check what C
would not, and step aside for numba where they were not built."""

from __future__ import annotations

import ctypes
import hashlib
import logging
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chronobt.augment import kernels, loops, sampling
from tests.test_augment import _hard_rows

needs_c = pytest.mark.skipif(loops.library() is None, reason="the C loops were not built (no C compiler)")
LEVELS = np.linspace(0.05, 0.95, 19)


def _read_args(n: int, targets: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    lo, hi, _ = sampling.hazen_positions(targets, n)
    return np.unique(np.concatenate([lo, hi])).astype(np.int64), sampling.read_plan(n, targets)


def _both(name: str) -> Iterator[object]:
    yield getattr(kernels, name)
    yield loops.function(name)


def assert_same_bits(a: np.ndarray, b: np.ndarray) -> None:
    """Bit for bit, up to the sign of a zero (where a row holds both, either may be read)."""
    np.testing.assert_array_equal(a, b)
    zero = a == 0
    np.testing.assert_array_equal(a.view(np.uint64)[~zero], b.view(np.uint64)[~zero])


@needs_c
@pytest.mark.parametrize("n_paths", [2, 8, 100, 512, 4096])
def test_order_statistics_in_c_equal_numbas_on_hard_rows(n_paths: int) -> None:
    paths = _hard_rows(n_paths)
    for targets in (np.array([0.1, 0.25, 0.5, 0.75, 0.9]), np.array([0.001, 0.5, 0.999])):
        ranks, plan = _read_args(n_paths, targets)
        stats = [np.empty((paths.shape[0], ranks.size)) for _ in range(2)]
        whole = [f(paths, ranks, *plan, out) for f, out in zip(_both("order_statistics"), stats, strict=True)]
        assert whole[0] == whole[1]
        assert_same_bits(stats[0], stats[1])
        np.testing.assert_array_equal(stats[1], np.sort(paths, axis=1)[:, ranks])


@needs_c
@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(2, 3000),
    h=st.integers(1, 5),
    scale=st.sampled_from([1e-9, 1.0, 1e6]),
    copula=st.booleans(),
    seed=st.integers(0, 2**16),
    pilot=st.sampled_from([4, 32, 128]),
    bins=st.integers(1, 3000),
)
def test_running_sums_and_draws_in_c_equal_numbas_bit_for_bit(
    n: int, h: int, scale: float, copula: bool, seed: int, pilot: int, bins: int
) -> None:
    rng = np.random.default_rng(seed)
    q = np.ascontiguousarray(np.sort(rng.standard_t(3.0, (h, 3, LEVELS.size)) * scale, axis=-1))
    corr = 0.5 ** np.abs(np.subtract.outer(range(h), range(h)))
    if copula:
        seg, frac = sampling.copula_draws(LEVELS, n, corr, seed)
    else:
        seg, frac = sampling.stratified_draws(LEVELS, n, h, seed)
    seg, frac = np.ascontiguousarray(seg, dtype=np.int64), np.ascontiguousarray(frac)
    first = rng.normal(1e4, 10.0, 3) * scale
    targets = np.sort(rng.uniform(0.001, 0.999, 5))
    ranks, _ = _read_args(n, targets)
    plan = (*sampling.pilot_ranks(n, targets, pilot), bins)  # any plan reads the same values
    outs = [np.empty((h, 3, ranks.size)) for _ in range(2)]
    for f, out in zip(_both("running_sum_statistics"), outs, strict=True):
        f(q, seg, frac, first, ranks, *plan, np.empty((3, n)), out)
    assert_same_bits(outs[0], outs[1])
    drawn = [np.empty((h, 3, n)) for _ in range(2)]
    for f, out in zip(_both("draw_steps"), drawn, strict=True):
        f(q, seg, frac, out)
    assert_same_bits(drawn[0], drawn[1])


@needs_c
def test_compiled_hands_out_the_c_loops_where_built_and_numbas_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("draw_steps", "order_statistics", "running_sum_statistics"):
        assert sampling.compiled(name) is getattr(loops, name)
    monkeypatch.setattr(loops, "library", lambda: None)  # as without a C compiler at install time
    for name in ("draw_steps", "order_statistics", "running_sum_statistics"):
        assert loops.function(name) is None
        assert sampling.compiled(name) is getattr(kernels, name)


def test_a_library_of_another_version_or_source_or_none_at_all_is_not_used(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    digest = hashlib.sha256(Path(loops.__file__).with_name("_loops.c").read_bytes()).hexdigest().encode()
    assert loops._stale(loops.VERSION, digest) is None
    assert "version" in (loops._stale(loops.VERSION + 1, digest) or "")
    assert "another _loops.c" in (loops._stale(loops.VERSION, b"0" * 64) or "")  # edited, not rebuilt

    class Stale:
        def __init__(self, path: str) -> None:
            self.chronobt_loops_version = lambda: loops.VERSION
            self.chronobt_loops_source = lambda: b"0" * 64

    loops.library.cache_clear()
    monkeypatch.setattr(ctypes, "CDLL", Stale)
    monkeypatch.setattr(loops.importlib.util, "find_spec", lambda name: SimpleNamespace(origin="x.so"))
    try:
        with caplog.at_level(logging.INFO, logger="chronobt.augment.loops"):
            assert loops.library() is None
        assert "numba loops" in caplog.text and "pip install -e ." in caplog.text
        loops.library.cache_clear()
        monkeypatch.setattr(loops.importlib.util, "find_spec", lambda name: None)  # never built
        assert loops.library() is None
    finally:
        monkeypatch.undo()
        loops.library.cache_clear()


@needs_c
def test_the_c_loops_refuse_what_would_read_or_write_out_of_bounds() -> None:
    q = np.zeros((2, 3, 5))
    seg, frac = np.zeros((2, 8), dtype=np.int64), np.zeros((2, 8))
    with pytest.raises(ValueError, match="C-contiguous float64"):
        loops.draw_steps(np.asfortranarray(q), seg, frac, np.empty((2, 3, 8)))
    with pytest.raises(ValueError, match="C-contiguous int64"):
        loops.draw_steps(q, seg.astype(np.int32), frac, np.empty((2, 3, 8)))
    with pytest.raises(ValueError, match="out"):
        loops.draw_steps(q, seg, frac, np.empty((2, 3, 7)))
    frozen = np.empty((2, 3, 8))
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="out"):
        loops.draw_steps(q, seg, frac, frozen)
    paths, ranks = np.zeros((4, 8)), np.array([0, 9], dtype=np.int64)
    with pytest.raises(ValueError, match="ranks must ascend"):
        loops.order_statistics(paths, ranks, 1, 0, 7, 8, np.empty((4, 2)))
    with pytest.raises(ValueError, match="pilot ranks"):
        loops.order_statistics(paths, ranks[:1], 1, 0, 8, 8, np.empty((4, 1)))
    with pytest.raises(ValueError, match="bins"):
        loops.order_statistics(paths, ranks[:1], 1, 0, 7, loops.MAX_BINS + 1, np.empty((4, 1)))
    with pytest.raises(ValueError, match=r"segments must lie in 0\.\.3"):  # checked in C before any read
        loops.draw_steps(q, seg + 4, frac, np.empty((2, 3, 8)))
    with pytest.raises(ValueError, match="segments must lie"):
        loops.running_sum_statistics(q, seg - 1, frac, np.zeros(3), ranks[:1], 1, 0, 7, 8, np.empty((3, 8)),
                                     np.empty((2, 3, 1)))  # fmt: skip
    with pytest.raises(ValueError, match="stride"):  # a stride past the row would read before it in C
        loops.order_statistics(paths, ranks[:1], 2**64 - 1, 0, 0, 8, np.empty((4, 1)))
    unaligned = np.frombuffer(bytearray(8 * 32 + 1), offset=1, count=32).reshape(4, 8)
    with pytest.raises(ValueError, match="aligned"):
        loops.order_statistics(unaligned, ranks[:1], 1, 0, 7, 8, np.empty((4, 1)))
    with pytest.raises(ValueError, match="running_sum_statistics"):
        loops.running_sum_statistics(q, seg, frac, np.zeros(2), ranks[:1], 1, 0, 7, 8, np.empty((3, 8)),
                                     np.empty((2, 3, 1)))  # fmt: skip
