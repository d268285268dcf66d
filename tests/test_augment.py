"""Pre-augmentations: exact inverses, leakage-free fitting, quantile inversion, errors."""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import chronobt.augment.base as augment_base
from chronobt.augment import (
    AVAILABLE_AUGMENTATIONS,
    DEFAULT_N_PATHS,
    AugmentationSpec,
    get_augmentation,
    inverse_quantiles,
    kernels,
    parse_augmentation,
    sampling,
)
from chronobt.engine.checkpoints import STANDARD_QUANTILES
from chronobt.errors import AugmentationError, ConfigError

SPECS = [*sorted(set(AVAILABLE_AUGMENTATIONS) - {"rolling_norm"}), "rolling_norm:window=5", "rolling_norm"]
POINTWISE = ["none", "detrending", "robust_scaling", "log_returns", "percent_change"]
LEVELS = np.array(STANDARD_QUANTILES)
Z = np.array([NormalDist().inv_cdf(p) for p in LEVELS])


def price_paths(seed: int, shape: tuple[int, ...], *, level: float = 100.0, vol: float = 0.01) -> np.ndarray:
    """Random positive geometric random walks along the last axis."""
    rng = np.random.default_rng(seed)
    return level * np.exp(np.cumsum(rng.normal(0.0, vol, shape), axis=-1))


@st.composite
def windows(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """(context [w, v, t] with optional NaN left padding, future [w, v, h]) of positive prices."""
    n_w, n_v = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    length, horizon = draw(st.integers(30, 60)), draw(st.integers(1, 8))
    level = draw(st.floats(1e-3, 1e5))
    vol = draw(st.floats(1e-4, 0.1))
    series = price_paths(draw(st.integers(0, 2**31)), (n_w, n_v, length + horizon), level=level, vol=vol)
    context = series[..., :length].copy()
    for w, pad in enumerate(draw(st.lists(st.integers(0, 7), min_size=n_w, max_size=n_w))):
        context[w, :, :pad] = np.nan
    return context, series[..., length:]


@pytest.mark.parametrize("spec", SPECS)
@settings(max_examples=25, deadline=None)
@given(data=windows())
def test_inverse_of_transformed_future_reproduces_future_prices(spec: str, data) -> None:
    context, future = data
    aug = get_augmentation(spec)
    state = aug.fit(context)
    np.testing.assert_allclose(aug.inverse(aug.transform_future(future, state), state), future, rtol=1e-9)


@pytest.mark.parametrize("spec", SPECS)
@settings(max_examples=10, deadline=None)
@given(data=windows(), seed=st.integers(0, 2**31))
def test_inverse_of_transformed_sample_paths_reproduces_each_path(spec: str, data, seed: int) -> None:
    context, future = data
    aug = get_augmentation(spec)
    state = aug.fit(context)
    paths = future[:, :, None, :] * price_paths(seed, (*future.shape[:2], 5, future.shape[-1]), level=1.0)
    transformed = np.stack([aug.transform_future(paths[:, :, p], state) for p in range(5)], axis=2)
    np.testing.assert_allclose(aug.inverse(transformed, state), paths, rtol=1e-9)


def slow_reference(spec: str, x: np.ndarray) -> np.ndarray:
    """The documented formula of ``spec`` on one valid 1-D context, written as a plain loop."""
    aug = get_augmentation(spec)
    t = np.arange(x.size, dtype=float)
    if aug.name == "none":
        return x.copy()
    if aug.name == "differencing":
        return np.concatenate([[np.nan], np.diff(x)])
    if aug.name == "detrending":
        slope, intercept = np.polyfit(t, x, 1) if x.size > 1 else (0.0, x[0])
        return x - (intercept + slope * t)
    if aug.name == "robust_scaling":
        q25, q50, q75 = np.quantile(x, [0.25, 0.5, 0.75])
        return (x - q50) / (q75 - q25)
    if aug.name == "log_returns":
        return np.log(x / x[0])
    if aug.name == "percent_change":
        return (x / x[0] - 1) * 100
    n = aug.window
    out = np.full(x.size, np.nan)
    for i in range(n, x.size):
        out[i] = (x[i] - x[i - n : i].mean()) / x[i - n : i].std()
    return out


@pytest.mark.parametrize("spec", SPECS)
def test_transform_matches_the_documented_formula_on_each_windows_valid_part(spec: str) -> None:
    context = price_paths(3, (4, 2, 50))
    pads = [0, 3, 11, 20]
    for w, pad in enumerate(pads):
        context[w, :, :pad] = np.nan
    aug = get_augmentation(spec)
    y = aug.transform(context, aug.fit(context))
    for w, pad in enumerate(pads):
        assert np.isnan(y[w, :, :pad]).all()
        for v in range(2):
            np.testing.assert_allclose(
                y[w, v, pad:], slow_reference(spec, context[w, v, pad:]), rtol=1e-7, atol=1e-9
            )


@pytest.mark.parametrize("spec", ["differencing", "rolling_norm:window=5"])
def test_transform_future_continues_the_context_transform(spec: str) -> None:
    series = price_paths(4, (3, 2, 40))
    aug = get_augmentation(spec)
    state = aug.fit(series[..., :32])
    whole = aug.transform(series, aug.fit(series))
    np.testing.assert_allclose(aug.transform_future(series[..., 32:], state), whole[..., 32:], rtol=1e-8)


@pytest.mark.parametrize("spec", SPECS)
def test_fitted_state_ignores_values_after_each_windows_last_context_bar(spec: str) -> None:
    series = price_paths(5, (2, 200))
    origins = np.array([60, 90, 120, 150])
    length = 50

    def states(values: np.ndarray):
        contexts = np.stack([values[:, o - length + 1 : o + 1] for o in origins])
        aug = get_augmentation(spec)
        return aug.fit(contexts), aug.transform(contexts, aug.fit(contexts))

    base_state, base_y = states(series)
    perturbed = series.copy()
    perturbed[:, origins[1] + 1 :] *= 1.7  # everything after window 1's last context bar
    state, y = states(perturbed)
    for field in [f for f in vars(base_state) if f not in ("spec", "length")]:
        np.testing.assert_array_equal(getattr(state, field)[:2], getattr(base_state, field)[:2])
    assert not np.array_equal(state.last[2:], base_state.last[2:])  # the later windows did change
    np.testing.assert_array_equal(y[:2], base_y[:2])


def iid_normal_quantiles(n_w: int, horizon: int, scale: float) -> np.ndarray:
    """Exact per-step quantiles [w, 1, 21, h] of N(0, scale) increments."""
    return np.broadcast_to((scale * Z)[None, None, :, None], (n_w, 1, Z.size, horizon)).copy()


def test_independent_differencing_quantiles_grow_like_sqrt_of_the_horizon() -> None:
    context = price_paths(6, (2, 1, 30))
    aug = get_augmentation("differencing")
    state = aug.fit(context)
    out_levels = np.array([0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95])
    z = np.array([NormalDist().inv_cdf(p) for p in out_levels])
    got = inverse_quantiles(
        aug, iid_normal_quantiles(2, 24, 2.0), levels=LEVELS, state=state, out_levels=out_levels
    )
    k = np.arange(1, 25)
    expected = context[:, :, -1, None, None] + 2.0 * np.sqrt(k) * z[:, None]
    sigma = 2.0 * np.sqrt(k)
    plain_mc_se = (
        np.sqrt(out_levels * (1 - out_levels) / DEFAULT_N_PATHS) / np.exp(-(z**2) / 2) * np.sqrt(2 * np.pi)
    )
    width = 2 * 1.2816 * sigma
    # 4 standard errors of plain Monte Carlo (Latin hypercube does better) + 1% for interpolating 21 levels
    assert np.all(np.abs(got - expected) <= 4 * plain_mc_se[:, None] * sigma + 0.01 * width)
    comonotone = context[:, :, -1, None, None] + 2.0 * k * z[:, None]
    assert np.abs(got - comonotone)[..., -1].max() > 0.5 * width[-1]  # independence really is used


def test_comonotonic_differencing_quantiles_equal_summed_step_quantiles() -> None:
    context = price_paths(7, (3, 1, 30))
    aug = get_augmentation("differencing")
    state = aug.fit(context)
    got = inverse_quantiles(
        aug,
        iid_normal_quantiles(3, 12, 0.5),
        levels=LEVELS,
        state=state,
        out_levels=LEVELS,
        dependence="comonotonic",
    )
    k = np.arange(1, 13)
    expected = context[:, :, -1, None, None] + 0.5 * k * Z[:, None]
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_default_n_paths_gives_quantiles_stable_to_one_percent_of_interval() -> None:
    aug = get_augmentation("differencing")
    state = aug.fit(np.full((1, 1, 5), 100.0))
    q = iid_normal_quantiles(1, 24, 1.0)
    out_levels = [0.1, 0.5, 0.9]
    runs = np.array(
        [
            inverse_quantiles(aug, q, levels=LEVELS, state=state, out_levels=out_levels, seed=s)[0, 0]
            for s in range(40)
        ]
    )
    width = 2 * 1.2816 * np.sqrt(np.arange(1, 25))
    spread = runs.std(axis=0) / width  # [3 levels, 24 steps], Monte Carlo error / 80% width
    assert DEFAULT_N_PATHS == 4096
    assert spread.mean() < 0.01 and spread.max() < 0.015


def test_sampled_quantiles_are_seeded_and_independent_of_chunking(monkeypatch: pytest.MonkeyPatch) -> None:
    context = price_paths(8, (6, 2, 40))
    q = np.sort(np.random.default_rng(0).normal(0, 0.5, (6, 2, 21, 5)), axis=2)
    aug = get_augmentation("rolling_norm:window=5")
    state = aug.fit(context)
    kwargs = {"levels": LEVELS, "state": state, "out_levels": [0.1, 0.5, 0.9], "n_paths": 256}
    first = inverse_quantiles(aug, q, seed=3, **kwargs)
    np.testing.assert_array_equal(inverse_quantiles(aug, q, seed=3, **kwargs), first)
    assert not np.array_equal(inverse_quantiles(aug, q, seed=4, **kwargs), first)
    monkeypatch.setattr(augment_base, "CHUNK_ELEMENTS", 1)
    np.testing.assert_array_equal(inverse_quantiles(aug, q, seed=3, **kwargs), first)
    np.testing.assert_array_equal(
        inverse_quantiles(aug, q[2:4], seed=3, **{**kwargs, "state": state.take(slice(2, 4))}), first[2:4]
    )


@pytest.mark.parametrize("spec", POINTWISE)
def test_pointwise_augmentations_map_each_quantile_exactly(spec: str) -> None:
    context = price_paths(9, (3, 2, 40))
    aug = get_augmentation(spec)
    state = aug.fit(context)
    q = np.sort(np.random.default_rng(1).normal(0, 0.2, (3, 2, 21, 6)), axis=2)
    got = inverse_quantiles(aug, q, levels=LEVELS, state=state, out_levels=LEVELS)
    np.testing.assert_allclose(got, aug.inverse(q, state), rtol=1e-12)
    between = inverse_quantiles(aug, q, levels=LEVELS, state=state, out_levels=[0.125])
    midpoint = aug.inverse((q[:, :, 2:3] + q[:, :, 3:4]) / 2, state)  # 0.125 halfway between 0.1 and 0.15
    np.testing.assert_allclose(between, midpoint, rtol=1e-12)


def test_tails_beyond_the_outermost_levels_follow_a_normal_matched_to_them() -> None:
    aug = get_augmentation("none")
    state = aug.fit(np.ones((1, 1, 3)))
    got = inverse_quantiles(
        aug, iid_normal_quantiles(1, 1, 1.0), levels=LEVELS, state=state, out_levels=[0.001, 0.999]
    )
    np.testing.assert_allclose(
        got[0, 0, :, 0], [NormalDist().inv_cdf(0.001), NormalDist().inv_cdf(0.999)], rtol=1e-9
    )


@pytest.mark.parametrize("spec", SPECS)
def test_small_and_negative_augmented_values_pass_through_unclamped(spec: str) -> None:
    context = price_paths(10, (2, 1, 40))
    aug = get_augmentation(spec)
    state = aug.fit(context)
    y = aug.transform(context, state)
    assert spec == "none" or (y[np.isfinite(y)] < 0).any()
    tiny = np.array([-3e-6, 2e-7, -1e-9, 0.0])[None, None, :].repeat(2, axis=0)
    back = aug.inverse(tiny, state)
    assert np.all(np.diff(back, axis=-1)[..., :2] != 0)  # no tiny step collapses onto its neighbour
    np.testing.assert_allclose(aug.transform_future(back, state), tiny, rtol=1e-4, atol=1e-13)


def test_zero_iqr_uses_the_same_fallback_scale_in_both_directions() -> None:
    context = np.full((1, 1, 40), 50.0)
    context[0, 0, 5] = 60.0  # IQR 0, std > 0
    aug = get_augmentation("robust_scaling")
    state = aug.fit(context)
    np.testing.assert_allclose(state.scale, context.std(axis=-1))
    future = np.array([[[50.0, 49.0, 55.0]]])
    np.testing.assert_allclose(
        aug.transform_future(future, state), (future - 50.0) / context.std(), rtol=1e-12
    )
    np.testing.assert_allclose(aug.inverse(aug.transform_future(future, state), state), future, rtol=1e-12)


def test_rolling_norm_round_trips_through_constant_windows() -> None:
    context = np.concatenate([price_paths(11, (1, 1, 30)), np.full((1, 1, 10), 101.25)], axis=-1)
    future = np.array([[[101.25, 101.25, 101.5, 101.5, 101.5, 101.5, 101.5, 101.5]]])
    aug = get_augmentation("rolling_norm:window=5")
    state = aug.fit(context)
    y = aug.transform_future(future, state)
    assert np.isfinite(aug.transform(context, state)[..., 5:]).all() and np.isfinite(y).all()
    assert np.abs(y).max() < 10  # the jump after a flat window is scaled by the fallback, not by 0
    np.testing.assert_allclose(aug.inverse(y, state), future, rtol=1e-12)


def label(window: int, step: int) -> str:
    return f"ETHUSD bar {window}/{step}"


@pytest.mark.parametrize("spec", ["log_returns", "percent_change"])
def test_non_positive_prices_raise_naming_variate_count_and_first_row(spec: str) -> None:
    context = price_paths(12, (3, 2, 30))
    context[1, 1, 7] = 0.0
    context[2, 1, 4] = -2.0
    with pytest.raises(AugmentationError) as err:
        get_augmentation(spec).fit(context, variates=["open", "close"], label=label)
    message = str(err.value)
    for part in ("'close'", "2 non-positive values", "2 of 3 windows", "ETHUSD bar 1/7", "--preaug"):
        assert part in message


def test_nan_after_the_first_valid_value_raises_with_its_label() -> None:
    context = price_paths(13, (2, 2, 30))
    context[0, :, :4] = np.nan  # padding is fine
    context[1, 1, 12] = np.nan
    with pytest.raises(
        AugmentationError, match=r"NaN in context of variate 'close' at ETHUSD bar 1/12; fill or drop"
    ):
        get_augmentation("none").fit(context, variates=["open", "close"], label=label)


def test_rolling_norm_context_shorter_than_window_plus_two_raises() -> None:
    context = price_paths(14, (2, 1, 30))
    context[1, :, :9] = np.nan  # 21 valid values
    with pytest.raises(AugmentationError, match=r"has 21 values; rolling_norm needs at least window\+2 = 22"):
        get_augmentation("rolling_norm").fit(context, variates=["close"], label=label)
    get_augmentation("rolling_norm:window=19").fit(context)


def test_unknown_name_and_bad_parameters_raise_config_errors_listing_valid_choices() -> None:
    with pytest.raises(ConfigError, match="valid: none, differencing, detrending"):
        parse_augmentation("fourier")
    with pytest.raises(ConfigError, match="valid parameters: window"):
        parse_augmentation("rolling_norm:win=5")
    with pytest.raises(ConfigError, match="window must be an integer >= 2, got 'abc'"):
        parse_augmentation("rolling_norm:window=abc")
    with pytest.raises(ConfigError, match="window must be an integer >= 2, got 1"):
        parse_augmentation("rolling_norm:window=1")
    with pytest.raises(ConfigError, match="valid parameters: none"):
        parse_augmentation("differencing:order=2")


def test_specs_fill_defaults_and_round_trip_through_their_string() -> None:
    assert str(parse_augmentation("rolling_norm")) == "rolling_norm:window=20"
    assert parse_augmentation(" Rolling_Norm:window=48 ") == AugmentationSpec(
        "rolling_norm", (("window", 48),)
    )
    for name in AVAILABLE_AUGMENTATIONS:
        spec = parse_augmentation(name)
        assert parse_augmentation(str(spec)) == spec == get_augmentation(spec).spec


def test_inverse_needs_the_state_of_a_matching_fit() -> None:
    aug = get_augmentation("differencing")
    with pytest.raises(AugmentationError, match="needs the state returned by this augmentation's fit"):
        aug.inverse(np.zeros((1, 1, 3)), None)  # type: ignore[arg-type]
    other = get_augmentation("log_returns").fit(np.ones((1, 1, 5)))
    with pytest.raises(AugmentationError, match="needs the state"):
        aug.inverse(np.zeros((1, 1, 3)), other)
    with pytest.raises(AugmentationError, match="state is for"):
        aug.inverse(np.zeros((2, 1, 3)), aug.fit(np.ones((1, 1, 5))))


def test_interpolating_to_levels_the_forecast_has_copies_them_exactly_in_the_asked_order() -> None:
    from chronobt.augment.sampling import interpolate_quantiles

    levels = np.array([0.1, 0.25, 0.5, 0.75, 0.9])
    rng = np.random.default_rng(0)
    q = np.sort(rng.normal(size=(3, 2, 5, 4)), axis=2)
    q[0, 0, 4, 0] = np.inf  # an infinite upper quantile must not leak into the other levels (0 * inf)
    picked = interpolate_quantiles(q, levels, np.array([0.9, 0.1, 0.5]))
    np.testing.assert_array_equal(picked, q[:, :, [4, 0, 2], :])
    between = interpolate_quantiles(q, levels, np.array([0.3, 0.5]))  # 0.3: a fifth of 0.25 -> 0.5
    np.testing.assert_allclose(between[1:, :, 0], 0.8 * q[1:, :, 1] + 0.2 * q[1:, :, 2])
    np.testing.assert_array_equal(between[:, :, 1], q[:, :, 2])


def _hard_rows(n: int, seed: int = 4) -> np.ndarray:
    """Rows a histogram read can get wrong: levels, tails, outliers, ties, constants, NaN and infinities."""
    rng = np.random.default_rng(seed)
    rows = [
        rng.normal(1e5, 300.0, n),  # a price level far from zero
        rng.standard_t(2.0, n),  # heavy tails
        1e15 + rng.normal(size=n),  # the bin arithmetic near the values' own resolution
        np.round(rng.normal(size=n), 1),  # many ties, a few per bin or many in one
        np.full(n, 7.5),  # a constant row: an empty bracket
        np.where(np.arange(n) % 4 == 0, 10.0 + np.linspace(0.0, 1.0, n), np.linspace(0.0, 1.0, n)),
    ]
    exploding = rng.normal(size=(4, n))
    exploding[0, ::97] = 1e12  # exploding paths (rolling_norm under strong dependence)
    exploding[1, 5::97] = -1e12
    exploding[2, :: max(1, n // sampling.PILOT_PATHS)][:6] = 1e12  # six pilot paths explode
    exploding[3, ::3] = -np.inf  # a third at -inf: the low ranks fall below the bracket
    special = rng.normal(size=(2, n))
    special[0, 7 % n] = np.nan
    special[1, 9 % n] = np.inf
    return np.concatenate([np.stack(rows), exploding, special])


@pytest.mark.parametrize("n_paths", [2, 8, 100, 512, 4096])
@pytest.mark.parametrize("targets", [(0.1, 0.25, 0.5, 0.75, 0.9), (0.001, 0.5, 0.999), (0.3,)])
def test_read_quantiles_equal_the_full_sort_bit_for_bit(n_paths: int, targets: tuple) -> None:
    paths = _hard_rows(n_paths)
    t = np.asarray(targets)
    with np.errstate(invalid="ignore"):  # an infinite order statistic at weight 0 is NaN in both
        read = sampling.read_quantiles(paths.reshape(3, -1, n_paths), t)  # leading axes kept
        exact = sampling.path_quantiles(paths, t)
    assert read.shape == (3, paths.shape[0] // 3, t.size)
    np.testing.assert_array_equal(read.reshape(paths.shape[0], -1), exact)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(2, 700),
    scale=st.sampled_from([1e-9, 1.0, 1e6]),
    ties=st.booleans(),
    targets=st.lists(st.floats(0.001, 0.999), min_size=1, max_size=9, unique=True),
    seed=st.integers(0, 2**16),
)
def test_read_quantiles_equal_the_full_sort_on_random_rows(
    n: int, scale: float, ties: bool, targets: list, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    paths = rng.standard_t(3.0, (4, n)) * scale + rng.normal(size=(4, 1)) * 10 * scale
    if ties:
        paths = np.round(paths / scale, 0) * scale
    t = np.sort(np.asarray(targets))
    np.testing.assert_array_equal(sampling.read_quantiles(paths, t), sampling.path_quantiles(paths, t))


def test_read_quantiles_sort_whole_only_the_rows_the_histogram_cannot_read() -> None:
    paths = _hard_rows(4096)
    targets = np.array([0.1, 0.25, 0.5, 0.75, 0.9])
    lo, hi, _frac = sampling.hazen_positions(targets, 4096)
    ranks = np.unique(np.concatenate([lo, hi])).astype(np.int64)
    stats = np.empty((paths.shape[0], ranks.size))
    pilot = sampling.pilot_ranks(4096, targets)
    whole = kernels.order_statistics(paths, ranks, *pilot, sampling.READ_BINS, stats)
    # the constant row, the pilot that saw only the upper quarter, the -inf third, the NaN row
    assert whole == 4
    np.testing.assert_array_equal(stats, np.sort(paths, axis=1)[:, ranks])


def test_sample_steps_equal_numpys_gather_bit_for_bit() -> None:
    rng = np.random.default_rng(8)
    levels = np.linspace(0.05, 0.95, 19)
    q_tf = np.sort(rng.normal(size=(6, 5, levels.size)) * 1e3, axis=-1)  # [h, rows, Q]
    seg, frac = sampling.stratified_draws(levels, 300, 6, seed=2)  # [h, P]
    steps = np.arange(6)[:, None, None]
    rows = np.arange(5)[None, :, None]
    lo, hi = q_tf[steps, rows, seg[:, None, :]], q_tf[steps, rows, seg[:, None, :] + 1]
    np.testing.assert_array_equal(sampling.sample_steps(q_tf, seg, frac), lo + (hi - lo) * frac[:, None, :])


@pytest.mark.parametrize("prefer_c", [True, False])
def test_the_compiled_loops_take_any_layout_with_one_signature_each(
    prefer_c: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sampling, "PREFER_C", prefer_c)
    rng = np.random.default_rng(9)
    levels = np.linspace(0.05, 0.95, 19)
    seg, frac = sampling.stratified_draws(levels, 64, 3, seed=1)
    q = np.sort(rng.normal(size=(5, 3, levels.size)), axis=-1).transpose(1, 0, 2)  # not contiguous
    frozen = q.copy()
    frozen.flags.writeable = False
    paths = rng.normal(size=(300, 6)).T  # [6, 300], not contiguous
    for q_tf in (q, frozen):
        np.testing.assert_array_equal(
            sampling.sample_steps(q_tf, seg, frac), sampling.sample_steps(q.copy(), seg, frac)
        )
    for rows in (paths, np.ascontiguousarray(paths)):
        np.testing.assert_array_equal(
            sampling.read_quantiles(rows, np.array([0.1, 0.9])),
            sampling.path_quantiles(paths, np.array([0.1, 0.9])),
        )
    if not prefer_c:
        assert len(kernels.draw_steps.signatures) == 1
        assert len(kernels.order_statistics.signatures) == 1


def test_the_wrappers_check_shapes_numba_would_not() -> None:
    levels = np.linspace(0.05, 0.95, 19)
    seg, frac = sampling.stratified_draws(levels, 64, 3, seed=1)
    q = np.sort(np.random.default_rng(0).normal(size=(3, 2, levels.size)), axis=-1)
    with pytest.raises(ValueError, match="seg and frac"):
        sampling.sample_steps(q, seg[:2], frac[:2])
    with pytest.raises(ValueError, match="segments must lie"):
        sampling.sample_steps(q[..., :5], seg, frac)
    with pytest.raises(ValueError, match="out must be"):
        sampling.sample_steps(q, seg, frac, out=np.empty((3, 2, 63)))
    with pytest.raises(ValueError, match="at least one path"):
        sampling.read_quantiles(np.empty((2, 0)), np.array([0.5]))


def test_the_loops_compile_uncached_where_no_cache_folder_is_writable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = kernels.numba.njit

    def njit(**options: object) -> object:
        if options.get("cache"):
            raise RuntimeError("cannot cache function 'f': no locator available for file 'f.py'")
        return real(**options)

    monkeypatch.setattr(kernels.numba, "njit", njit)
    assert kernels._compiled(lambda x: x + 1)(41) == 42


@pytest.mark.parametrize("n_paths", [8, 100, 512, 4096])
def test_running_sum_quantiles_equal_drawing_summing_and_reading_bit_for_bit(n_paths: int) -> None:
    rng = np.random.default_rng(11)
    levels = np.linspace(0.05, 0.95, 19)
    q_tf = np.sort(rng.standard_t(3.0, size=(6, 5, levels.size)) * 1e3, axis=-1)  # [h, rows, Q]
    q_tf[2, 1] = 4.0  # a constant step: ties everywhere
    q_tf[3, 2, -1] = np.inf  # an infinite upper quantile: infinite paths from there on
    first = rng.normal(1e5, 300.0, 5)
    targets = np.array([0.001, 0.1, 0.25, 0.5, 0.75, 0.9, 0.999])
    for seg, frac in (
        sampling.stratified_draws(levels, n_paths, 6, seed=2),
        sampling.copula_draws(levels, n_paths, 0.6 ** np.abs(np.subtract.outer(range(6), range(6))), seed=3),
    ):
        with np.errstate(invalid="ignore"):
            paths = sampling.sample_steps(q_tf, seg, frac)
            paths[0] += first[:, None]
            for k in range(1, 6):
                paths[k] += paths[k - 1]
            expected = sampling.path_quantiles(paths, targets)
            sums = np.empty((5, n_paths))
            read = sampling.running_sum_quantiles(q_tf, seg, frac, first, targets, sums=sums)
        np.testing.assert_array_equal(read, expected)


def test_differencing_inverts_by_its_running_sum_and_others_do_not() -> None:
    rng = np.random.default_rng(12)
    contexts = 100.0 + np.cumsum(rng.normal(size=(3, 2, 40)), axis=-1)
    for spec in SPECS:
        aug = get_augmentation(spec)
        state = aug.fit(contexts)
        start = aug.running_sum_from(state)
        if spec != "differencing":
            assert start is None
            continue
        assert start is not None
        steps = rng.normal(size=(4, 3, 2))  # [h, w, v]
        np.testing.assert_array_equal(
            aug.inverse_tf_owned(steps.copy(), state),
            np.cumsum(np.concatenate([start[None], steps]), axis=0)[1:],
        )


def test_differencing_sample_paths_equal_the_generic_inversion_bit_for_bit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(13)
    aug = get_augmentation("differencing")
    state = aug.fit(100.0 + np.cumsum(rng.normal(size=(7, 2, 60)), axis=-1))
    q = np.sort(rng.normal(size=(7, 2, LEVELS.size, 5)), axis=2)
    correlation = np.stack([np.eye(5)] * 3 + [0.5 ** np.abs(np.subtract.outer(range(5), range(5)))] * 4)
    runs = [
        {"dependence": "independent"},
        {"dependence": "copula", "correlation": correlation},
    ]
    fused = [
        inverse_quantiles(aug, q, levels=LEVELS, state=state, out_levels=LEVELS, n_paths=300, **kw)
        for kw in runs
    ]
    monkeypatch.setattr(type(aug), "running_sum_from", lambda self, state: None)
    for kw, got in zip(runs, fused, strict=True):
        generic = inverse_quantiles(aug, q, levels=LEVELS, state=state, out_levels=LEVELS, n_paths=300, **kw)
        np.testing.assert_array_equal(got, generic)


def test_each_compiled_loop_loads_once_with_the_collector_paused_then_restored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import gc

    paused: list[bool] = []
    real = sampling._first_call
    monkeypatch.setattr(sampling, "PREFER_C", False)  # numba's loops (the C ones need no loading)
    monkeypatch.setattr(sampling, "_LOADED", set())
    monkeypatch.setattr(
        sampling, "_first_call", lambda k, name: (paused.append(not gc.isenabled()), real(k, name))
    )
    names = ("draw_steps", "order_statistics", "running_sum_statistics")
    for name in names * 2:
        assert sampling.compiled(name) is getattr(kernels, name)
    assert paused == [True] * 3 and gc.isenabled()
    gc.disable()  # a caller's own setting is kept
    try:
        monkeypatch.setattr(sampling, "_LOADED", set())
        sampling.compiled("draw_steps")
        assert not gc.isenabled()
    finally:
        gc.enable()
    assert len(kernels.running_sum_statistics.signatures) == 1


def test_the_copula_ranks_sort_equals_a_stable_argsort_with_ties_and_nan() -> None:
    rng = np.random.default_rng(14)
    plain = rng.standard_normal((24, 4096))
    ties = np.round(rng.standard_normal((5, 300)), 1)
    nan = np.where(rng.random((3, 50)) < 0.1, np.nan, rng.standard_normal((3, 50)))
    for x in (plain, ties, nan):
        np.testing.assert_array_equal(sampling._stable_argsort_rows(x), np.argsort(x, axis=1, kind="stable"))
