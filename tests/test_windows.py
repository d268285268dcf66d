"""Rolling origins and window cutting: placement, bounds, errors, loop equivalence, no look-ahead."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chronobt.data.windows import MIN_CONTEXT, cut_windows, plan_origins
from chronobt.errors import ConfigError, DataError


def test_origins_end_at_the_latest_bar_with_a_full_horizon_and_step_by_the_horizon() -> None:
    # 200 bars, horizon 10: the latest origin is bar 189 (bars 190..199 are its future).
    plan = plan_origins(200, horizon=10, context=100, windows=3)
    assert plan.origins.tolist() == [169, 179, 189]
    assert plan.context == 100
    assert plan.requested_windows == 3
    assert plan.notes == ()


def test_explicit_stride_spaces_origins_by_the_stride() -> None:
    plan = plan_origins(200, horizon=10, context=100, windows=3, stride=5)
    assert plan.origins.tolist() == [179, 184, 189]


def test_last_bound_caps_the_latest_origin() -> None:
    plan = plan_origins(200, horizon=10, context=64, windows=2, last=150)
    assert plan.origins.tolist() == [140, 150]


def test_first_bound_keeps_only_origins_at_or_after_it_and_notes_the_shortfall() -> None:
    # Origins 189, 179, 169, ... ; only 179 and 189 are >= 175.
    plan = plan_origins(200, horizon=10, context=64, windows=10, first=175, label="ETHUSD")
    assert plan.origins.tolist() == [179, 189]
    assert len(plan.notes) == 1
    assert plan.notes[0].startswith("ETHUSD: origins inside --start/--end hold 2 of 10 requested windows")


def test_a_shortfall_set_by_the_bounds_names_them_and_not_the_data() -> None:
    plan = plan_origins(200, horizon=10, context=64, windows=10, first=175, bounds="the sweep's span")
    assert plan.notes[0].startswith("series: origins inside the sweep's span hold 2 of 10 requested")
    # bounds that cut nothing the data could have held: the data is the limit
    plan = plan_origins(100, horizon=10, context=64, windows=5, first=0, label="ETHUSD")
    assert plan.notes[0].startswith("ETHUSD: data holds 3 of 5 requested windows")


def test_when_data_holds_fewer_windows_it_uses_as_many_as_fit_with_one_note() -> None:
    # 100 bars, horizon 10: origins 89, 79, 69 have >= 64 bars up to them (origin >= 63); 59 does not.
    plan = plan_origins(100, horizon=10, context=2048, windows=5, label="ETHUSD")
    assert plan.origins.tolist() == [69, 79, 89]
    assert plan.notes == (
        "ETHUSD: data holds 3 of 5 requested windows (horizon 10, stride 10, at least 64 context bars); "
        "using 3",
    )


def test_context_is_capped_at_the_bars_available_to_the_latest_origin() -> None:
    plan = plan_origins(100, horizon=10, context=2048, windows=3)
    assert plan.context == 90  # bars 0..89
    assert plan.short_contexts == 2  # origins 69 and 79 have 70 and 80 bars < 90


def test_too_short_series_raises_data_error_with_the_numbers() -> None:
    with pytest.raises(
        DataError, match=r"ETHUSD has 80 bars; need at least min_context 64 \+ horizon 24 = 88"
    ):
        plan_origins(80, horizon=24, context=512, windows=10, label="ETHUSD")


def test_bounds_that_exclude_every_origin_raise_data_error() -> None:
    with pytest.raises(DataError, match="widen --start/--end"):
        plan_origins(500, horizon=24, context=512, windows=10, last=30)


def test_context_below_the_minimum_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="--context 32 is below the minimum context of 64"):
        plan_origins(500, horizon=24, context=32, windows=10)


@pytest.mark.parametrize("field", ["horizon", "context", "windows", "stride"])
def test_non_positive_sizes_are_config_errors(field: str) -> None:
    kwargs = {"horizon": 10, "context": 100, "windows": 3, "stride": 5, field: 0}
    with pytest.raises(ConfigError, match=f"{field} must be a positive number of bars, got 0"):
        plan_origins(500, **kwargs)


def test_minimum_context_is_at_least_four_chronos2_patches() -> None:
    assert MIN_CONTEXT >= 4 * 16


@settings(max_examples=200, deadline=None)
@given(
    n_bars=st.integers(1, 400),
    horizon=st.integers(1, 50),
    stride=st.integers(1, 60),
    windows=st.integers(1, 30),
    first=st.one_of(st.none(), st.integers(0, 400)),
    last=st.one_of(st.none(), st.integers(0, 400)),
)
def test_every_planned_origin_has_min_context_history_and_a_full_future_inside_the_bounds(
    n_bars: int, horizon: int, stride: int, windows: int, first: int | None, last: int | None
) -> None:
    try:
        plan = plan_origins(
            n_bars, horizon=horizon, context=100, windows=windows, stride=stride, first=first, last=last
        )
    except DataError:
        return
    o = plan.origins
    assert 1 <= len(o) <= windows
    assert np.all(np.diff(o) == stride)
    assert o[0] + 1 >= MIN_CONTEXT and o[-1] + horizon <= n_bars - 1
    assert first is None or o[0] >= first
    assert last is None or o[-1] <= last
    assert o[-1] == min(n_bars - 1 - horizon, n_bars if last is None else last)
    assert (len(plan.notes) == 1) == (len(o) < windows)


def _loop_reference(values: np.ndarray, origins: np.ndarray, context: int, horizon: int):
    """One window at a time, the obvious way."""
    width = min(context, int(origins.max()) + 1)
    ctx = np.full((len(origins), values.shape[1], width), np.nan)
    fut = np.empty((len(origins), values.shape[1], horizon))
    for i, o in enumerate(origins):
        start = max(0, o - width + 1)
        bars = values[start : o + 1].T  # [variates, n]
        ctx[i, :, width - bars.shape[1] :] = bars
        fut[i] = values[o + 1 : o + 1 + horizon].T
    return ctx, fut


def test_cut_windows_equals_a_per_window_loop_including_left_padding() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(size=(300, 4)).cumsum(axis=0)
    origins = np.array([20, 70, 150, 275])
    contexts, futures = cut_windows(values, origins, context=100, horizon=24)
    ref_ctx, ref_fut = _loop_reference(values, origins, 100, 24)
    assert contexts.shape == (4, 4, 100)
    np.testing.assert_array_equal(contexts, ref_ctx)  # NaN == NaN for assert_array_equal
    np.testing.assert_array_equal(futures, ref_fut)
    assert np.isnan(contexts[0, :, :79]).all() and not np.isnan(contexts[0, :, 79:]).any()


def test_context_ends_at_the_origin_bar_and_future_starts_right_after_it() -> None:
    values = np.arange(50, dtype=float)[:, None] * np.array([1.0, 10.0])  # bar i -> (i, 10 i)
    contexts, futures = cut_windows(values, [30, 40], context=5, horizon=3)
    assert contexts[0, 0].tolist() == [26, 27, 28, 29, 30]
    assert contexts[1, 1].tolist() == [360, 370, 380, 390, 400]
    assert futures is not None
    assert futures[0, 0].tolist() == [31, 32, 33]


def test_changing_bars_after_an_origin_never_changes_that_windows_context() -> None:
    rng = np.random.default_rng(1)
    values = rng.normal(size=(400, 3))
    origins = np.array([99, 199, 299, 375])
    base, _ = cut_windows(values, origins, context=256, horizon=24)
    for i, origin in enumerate(origins):
        perturbed = values.copy()
        perturbed[origin + 1 :] = rng.normal(size=perturbed[origin + 1 :].shape) * 1e6
        contexts, _ = cut_windows(perturbed, origins, context=256, horizon=24)
        np.testing.assert_array_equal(contexts[i], base[i])


def test_without_future_an_origin_may_be_the_last_bar() -> None:
    values = np.arange(100, dtype=float)[:, None]
    contexts, futures = cut_windows(values, [99], context=64, horizon=24, with_future=False)
    assert futures is None
    assert contexts[0, 0, -1] == 99


def test_origins_without_a_full_future_are_rejected() -> None:
    values = np.zeros((100, 1))
    with pytest.raises(ValueError, match="origins must lie in"):
        cut_windows(values, [80], context=64, horizon=24)
