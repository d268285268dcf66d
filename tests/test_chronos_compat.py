"""chronos' private internals behind one guard: a missing or renamed name, or changed maths, gives the
recorded fallback and chronos' own forecast, never an ImportError or a wrong number."""

from __future__ import annotations

import logging
import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from chronobt.engine import chronos_compat
from chronobt.engine.core import Chronos2Engine, EngineConfig
from chronobt.errors import ModelError
from tests.synthetic import random_walk_contexts

HORIZON = 24
PACKAGE_ROOT = Path(chronos_compat.__file__).parents[1]


@pytest.fixture(scope="module")
def contexts() -> np.ndarray:
    return random_walk_contexts([300, 37, 120, 16, 250], n_time=300, seed=7)


def _engine(model_dir: Path) -> Chronos2Engine:
    return Chronos2Engine(
        EngineConfig(model=str(model_dir), device="cpu", compile="off", native=False, batch_size=8)
    )


def chronos_predict(pipeline: object, contexts: np.ndarray, horizon: int) -> np.ndarray:
    """chronos' own ``predict``, one task at a time on its observed steps -> ``[tasks, V, Q, horizon]``."""
    out = []
    for task in contexts:
        observed = task[:, ~np.isnan(task).all(axis=0)]
        (forecast,) = pipeline.predict([torch.as_tensor(observed)], prediction_length=horizon)  # type: ignore[attr-defined]
        out.append(forecast.numpy())
    return np.stack(out)


@pytest.fixture(scope="module")
def reference(tiny_model_dir: Path, contexts: np.ndarray) -> np.ndarray:
    engine = _engine(tiny_model_dir)
    expected = chronos_predict(engine.pipeline, contexts, HORIZON)
    np.testing.assert_allclose(engine.predict(contexts, HORIZON), expected, rtol=1e-5, atol=1e-5)
    record = engine.record()
    assert record["output_only_last_block"] is True and record["block_diagonal_groups"] is True
    return expected


def _without(module: str, *names: str) -> types.ModuleType:
    """A stand-in for ``module`` as a chronos release without ``names`` would have it."""
    real = sys.modules[module]
    fake = types.ModuleType(f"{module}_without")
    fake.__dict__.update({k: v for k, v in vars(real).items() if k not in names})
    return fake


def _assert_views_off_with_reason(engine: Chronos2Engine, *words: str) -> None:
    record = engine.record()
    assert record["output_only_last_block"] is False and record["block_diagonal_groups"] is False
    for key in ("output_only_check", "block_diagonal_check"):
        check = record[key]
        assert check["passed"] is False and check["max_abs_diff"] is None, check
        assert "chronos internals changed" in check["reason"], check
        assert all(word in check["reason"] for word in words), check
    assert engine.views.compat_problem is not None


@pytest.mark.parametrize(
    ("setting", "module", "names"),
    [
        ("LAYERS_MODULE", "chronos.chronos2.layers", ("MHA",)),
        ("LAYERS_MODULE", "chronos.chronos2.layers", ("TimeSelfAttention",)),
        ("LAYERS_MODULE", "chronos.chronos2.layers", ("GroupSelfAttention",)),
        ("LAYERS_MODULE", "chronos.chronos2.layers", ("FeedForward",)),
        ("LAYERS_MODULE", "chronos.chronos2.layers", ("AttentionOutput",)),
        ("LAYERS_MODULE", "chronos.chronos2.layers", chronos_compat.ROTARY_NAMES),
        ("MODEL_MODULE", "chronos.chronos2.model", ("Chronos2EncoderBlock",)),
        ("MODEL_MODULE", "chronos.chronos2.model", ("Chronos2EncoderBlockOutput",)),
    ],
)
def test_a_missing_private_chronos_class_turns_the_views_off_with_its_name_and_keeps_chronos_numbers(
    tiny_model_dir: Path,
    contexts: np.ndarray,
    reference: np.ndarray,
    setting: str,
    module: str,
    names: tuple[str, ...],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = _without(module, *names)
    monkeypatch.setitem(sys.modules, fake.__name__, fake)
    monkeypatch.setattr(chronos_compat, setting, fake.__name__)
    engine = _engine(tiny_model_dir)  # no ImportError
    np.testing.assert_allclose(engine.predict(contexts, HORIZON), reference, rtol=1e-5, atol=1e-5)
    _assert_views_off_with_reason(engine, names[-1])


def test_an_unimportable_chronos_layers_module_is_a_recorded_fallback(
    tiny_model_dir: Path, contexts: np.ndarray, reference: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chronos_compat, "LAYERS_MODULE", "chronos.chronos2.no_such_layers")
    engine = _engine(tiny_model_dir)
    np.testing.assert_allclose(engine.predict(contexts, HORIZON), reference, rtol=1e-5, atol=1e-5)
    _assert_views_off_with_reason(engine, "cannot import chronos.chronos2.no_such_layers")


def test_the_rotary_class_is_found_under_its_upstream_name_rope(
    tiny_model_dir: Path, contexts: np.ndarray, reference: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = _without("chronos.chronos2.layers", "Chronos2RotaryEmbedding")
    fake.RoPE = sys.modules["chronos.chronos2.layers"].Chronos2RotaryEmbedding  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, fake.__name__, fake)
    monkeypatch.setattr(chronos_compat, "LAYERS_MODULE", fake.__name__)
    assert chronos_compat.load().rotary.__name__ == "Chronos2RotaryEmbedding"
    engine = _engine(tiny_model_dir)
    np.testing.assert_allclose(engine.predict(contexts, HORIZON), reference, rtol=1e-5, atol=1e-5)
    record = engine.record()
    assert record["output_only_last_block"] is True and record["block_diagonal_groups"] is True


def test_a_rotary_class_without_rotate_half_turns_the_views_off(
    tiny_model_dir: Path, contexts: np.ndarray, reference: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = _without("chronos.chronos2.layers", *chronos_compat.ROTARY_NAMES)
    fake.RoPE = type("RoPE", (torch.nn.Module,), {})  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, fake.__name__, fake)
    monkeypatch.setattr(chronos_compat, "LAYERS_MODULE", fake.__name__)
    engine = _engine(tiny_model_dir)
    np.testing.assert_allclose(engine.predict(contexts, HORIZON), reference, rtol=1e-5, atol=1e-5)
    _assert_views_off_with_reason(engine, "rotate_half")


def test_missing_private_attention_methods_turn_the_output_only_block_off(
    tiny_model_dir: Path, contexts: np.ndarray, reference: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chronos_compat, "has_attention_methods", lambda mha: False)
    engine = _engine(tiny_model_dir)
    np.testing.assert_allclose(engine.predict(contexts, HORIZON), reference, rtol=1e-5, atol=1e-5)
    record = engine.record()
    assert record["output_only_last_block"] is False and "layout" in record["output_only_check"]["reason"]
    assert record["block_diagonal_groups"] is True  # it does not use them


@pytest.mark.parametrize(
    "error",
    [
        AttributeError("'MHA' object has no attribute '_sdpa_attention'"),
        AttributeError("'Chronos2CoreConfig' object has no attribute '_attn_implementation'"),
    ],
)
def test_a_private_attention_attribute_gone_at_run_time_fails_the_check_not_the_run(
    tiny_model_dir: Path,
    contexts: np.ndarray,
    reference: np.ndarray,
    error: Exception,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def attention(*args: object) -> torch.Tensor:
        raise error

    monkeypatch.setattr(chronos_compat, "attention", attention)
    engine = _engine(tiny_model_dir)
    np.testing.assert_allclose(engine.predict(contexts, HORIZON), reference, rtol=1e-5, atol=1e-5)
    record = engine.record()
    assert record["output_only_last_block"] is False
    assert "the view raised AttributeError" in record["output_only_check"]["reason"]
    assert str(error).split("'")[-2] in record["output_only_check"]["reason"]


def test_changed_maths_inside_the_view_is_rejected_by_the_check(
    tiny_model_dir: Path,
    contexts: np.ndarray,
    reference: np.ndarray,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    real_attention = chronos_compat.attention  # time attention doubled, in the view's last block only
    monkeypatch.setattr(chronos_compat, "attention", lambda *args: 2.0 * real_attention(*args))
    engine = _engine(tiny_model_dir)
    with caplog.at_level(logging.WARNING, logger="chronobt"):
        forecast = engine.predict(contexts, HORIZON)
    np.testing.assert_allclose(forecast, reference, rtol=1e-5, atol=1e-5)
    record = engine.record()
    check = record["output_only_check"]
    assert record["output_only_last_block"] is False and check["passed"] is False
    assert "differs from the full forward" in check["reason"] and check["max_abs_diff"] > check["tolerance"]
    assert not engine.views.views
    assert any("output-only last block" in r.getMessage() for r in caplog.records)


@pytest.fixture(scope="module")
def two_patch_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random checkpoint forecasting at most two output patches per forward (longer horizons unroll)."""
    from chronobt.engine.checkpoints import ArchSpec, save_random_checkpoint

    spec = ArchSpec(
        d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=4, context_length=256, max_output_patches=2
    )
    return save_random_checkpoint(tmp_path_factory.mktemp("two-patches") / "model", spec, seed=1)


def test_a_failing_private_unrolling_is_a_model_error_not_a_wrong_forecast(
    two_patch_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = _engine(two_patch_model_dir)

    def failing(**kwargs: object) -> None:  # the private method is there, and fails inside chronos
        raise RuntimeError("shape mismatch in the unrolled context")

    monkeypatch.setattr(engine.pipeline, chronos_compat.PREDICT_BATCH_METHOD, failing)
    with pytest.raises(ModelError, match="_predict_batch failed"):
        engine.predict(random_walk_contexts([100], n_time=100), 3 * engine.output_patch_size + 5)


def _unrolling_reference(engine: Chronos2Engine, windows: np.ndarray, horizon: int) -> np.ndarray:
    """chronos' own predict per task (every row a target, its whole left-padded context) ->
    ``[tasks, V, Q, horizon]``, with the engine's unrolled quantiles."""
    levels = [q for q in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9) if q in engine.quantile_levels]
    out = []
    with pytest.warns(UserWarning, match="prediction length"):
        for task in windows:
            observed = task[:, ~np.isnan(task).all(axis=0)]
            (forecast,) = engine.pipeline.predict(
                [torch.as_tensor(observed)], prediction_length=horizon, unrolled_quantiles=levels
            )
            out.append(forecast.numpy())
    return np.stack(out)


@pytest.mark.parametrize(
    ("lookup", "reason"),
    [
        ("_no_such_predict_batch", "has no _no_such_predict_batch"),  # renamed
        ("predict", "takes other arguments"),  # a name with another signature
    ],
)
def test_a_missing_private_unrolling_falls_back_to_chronos_predict_with_its_reason(
    two_patch_model_dir: Path,
    lookup: str,
    reason: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = _engine(two_patch_model_dir)
    windows = random_walk_contexts([200, 90, 150], n_time=200, seed=5)
    horizon = 3 * engine.output_patch_size + 5  # 4 patches > max_output_patches = 2
    private = engine.predict(windows, horizon)
    assert engine.record()["long_horizon_fallback"] is None
    monkeypatch.setattr(chronos_compat, "PREDICT_BATCH_METHOD", lookup)
    engine = _engine(two_patch_model_dir)
    with caplog.at_level(logging.WARNING, logger="chronobt"):
        forecast = engine.predict(windows, horizon)  # no ModelError
    np.testing.assert_array_equal(forecast, private)  # chronos 2.3.2's predict runs the same unrolling
    np.testing.assert_allclose(forecast, _unrolling_reference(engine, windows, horizon), rtol=1e-5, atol=1e-5)
    record = engine.record()
    assert record["long_horizon_unrolling"] is True
    fallback = record["long_horizon_fallback"]
    assert (
        "chronos internals changed" in fallback
        and reason in fallback
        and "Chronos2Pipeline.predict" in fallback
    )
    assert [r for r in caplog.records if "long-horizon unrolling" in r.getMessage()]


def test_the_public_unrolling_fallback_keeps_known_futures(
    two_patch_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = _engine(two_patch_model_dir)
    windows = random_walk_contexts([120, 120], n_time=120, n_variates=3, seed=3)
    horizon = 3 * engine.output_patch_size + 5
    future = np.full((2, 3, horizon), np.nan, dtype=np.float32)
    future[:, 2] = np.linspace(90.0, 110.0, horizon, dtype=np.float32)  # one covariate known ahead
    private = engine.predict(windows, horizon, future=future)
    monkeypatch.setattr(chronos_compat, "PREDICT_BATCH_METHOD", "_gone")
    fallback = _engine(two_patch_model_dir)
    np.testing.assert_array_equal(fallback.predict(windows, horizon, future=future), private)
    assert fallback.record()["long_horizon_fallback"] is not None


def test_unreadable_dynamo_counters_read_as_unknown() -> None:
    assert chronos_compat.dynamo_counter("no such group", "no such counter") in (0, None)
    real = sys.modules["torch._dynamo.utils"].counters
    try:
        sys.modules["torch._dynamo.utils"].counters = None  # type: ignore[attr-defined]
        assert chronos_compat.dynamo_counter("stats", "unique_graphs") is None
    finally:
        sys.modules["torch._dynamo.utils"].counters = real  # type: ignore[attr-defined]


#: Private names that only chronos_compat may touch.
PRIVATE = re.compile(
    r"chronos\.chronos2\.(layers|model)\b|torch\._dynamo|\._predict_batch|\._attn_implementation"
    r"|\._sdpa_attention|\._eager_attention|\._modules\b|_construct_and_invert_group_time_mask|GROUP_MASK_METHOD"
    r"|Chronos2RotaryEmbedding|Chronos2EncoderBlockOutput|AttentionOutput"
)


def _code_lines(path: Path) -> list[str]:
    """``path``'s lines outside docstrings, comments and string literals (enough for these modules' plain
    style: messages may name the internals, code may not)."""
    lines, in_doc = [], False
    for line in path.read_text().splitlines():
        quotes = line.count('"""')
        if in_doc or quotes:
            in_doc = in_doc != (quotes % 2 == 1)
            continue
        lines.append(re.sub(r'"[^"]*"|\'[^\']*\'', '""', line).split("#")[0])
    return lines


def test_only_chronos_compat_touches_chronos_or_torch_internals() -> None:
    assert (PACKAGE_ROOT / "__init__.py").is_file() and PACKAGE_ROOT.name == "chronobt"  # the whole package
    offenders = [
        f"{path.relative_to(PACKAGE_ROOT)}: {line.strip()}"
        for path in sorted(PACKAGE_ROOT.rglob("*.py"))
        if path.name != "chronos_compat.py"
        for line in _code_lines(path)
        if PRIVATE.search(line)
    ]
    assert offenders == []
