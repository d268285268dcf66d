"""View checks paid once per machine: verdicts stored in the cache folder, reused only under the same key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from chronobt.engine.core import Chronos2Engine, EngineConfig
from chronobt.engine.views import check as view_check
from chronobt.engine.views.verdicts import FOLDER, VerdictCache
from tests.synthetic import random_walk_contexts


def _engine(model_dir: Path, cache: Path | None) -> Chronos2Engine:
    return Chronos2Engine(
        EngineConfig(model=str(model_dir), device="cpu", compile="off", native=False, cache_dir=cache)
    )


def _run(engine: Chronos2Engine) -> np.ndarray:
    contexts = random_walk_contexts([128, 100, 128, 90, 128], n_time=128, n_variates=2, seed=1)
    return engine.predict(contexts, 12)


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The view checks that compared with the full forward (one entry per comparison)."""
    calls: list[str] = []
    real = view_check.check_view

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append("compared")
        return real(*args, **kwargs)

    monkeypatch.setattr(view_check, "check_view", spy)
    return calls


def _verdicts(cache: Path) -> list[Path]:
    return sorted((cache / FOLDER).glob("*.json"))


def test_a_second_run_with_the_same_key_reuses_the_verdicts_and_records_it(
    tiny_model_dir: Path, tmp_path: Path, counted: list[str]
) -> None:
    first = _engine(tiny_model_dir, tmp_path)
    out_first = _run(first)
    compared = len(counted)
    assert compared >= 2 and len(_verdicts(tmp_path)) == compared
    record = first.record()
    assert record["view_checks"] == {"cache": str(tmp_path / FOLDER), "reused": 0, "checked": compared}
    assert record["output_only_check"]["reused"] is False

    second = _engine(tiny_model_dir, tmp_path)
    out_second = _run(second)
    assert len(counted) == compared  # nothing compared again
    record = second.record()
    assert record["view_checks"]["reused"] == compared and record["view_checks"]["checked"] == 0
    assert record["output_only_check"]["reused"] is True and record["output_only_check"]["passed"]
    assert record["block_diagonal_check"]["reused"] is True
    np.testing.assert_array_equal(out_first, out_second)


def test_without_a_cache_folder_every_run_compares(tiny_model_dir: Path, counted: list[str]) -> None:
    _run(_engine(tiny_model_dir, None))
    compared = len(counted)
    engine = _engine(tiny_model_dir, None)
    _run(engine)
    assert len(counted) == 2 * compared
    assert engine.record()["view_checks"] == {"cache": None, "reused": 0, "checked": compared}


@pytest.mark.parametrize("changed", ["torch", "chronos", "chronobt", "code"])
def test_a_changed_version_checks_again(
    tiny_model_dir: Path, tmp_path: Path, counted: list[str], changed: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _run(_engine(tiny_model_dir, tmp_path))
    compared = len(counted)
    real = VerdictCache.__init__

    def bumped(self: VerdictCache, *args: Any, **kwargs: Any) -> None:
        kwargs["versions"] = {**kwargs["versions"], changed: "99.0"}
        real(self, *args, **kwargs)

    monkeypatch.setattr(VerdictCache, "__init__", bumped)
    engine = _engine(tiny_model_dir, tmp_path)
    _run(engine)
    assert len(counted) == 2 * compared
    assert engine.record()["view_checks"]["reused"] == 0
    assert len(_verdicts(tmp_path)) == 2 * compared  # the old verdicts stay, under their own key


def test_other_weights_check_again(tiny_model_dir: Path, tmp_path: Path, counted: list[str]) -> None:
    from chronobt.engine.checkpoints import save_random_checkpoint

    _run(_engine(tiny_model_dir, tmp_path))
    compared = len(counted)
    other = save_random_checkpoint(tmp_path / "other", "tiny", seed=1)
    engine = _engine(other, tmp_path)
    _run(engine)
    assert len(counted) == 2 * compared and engine.record()["view_checks"]["reused"] == 0


def test_a_verdict_stored_for_another_dtype_or_device_is_not_reused(tmp_path: Path) -> None:
    def cache(**changes: str) -> VerdictCache:
        base = {"device": "cpu:x86_64:AVX2", "dtype": "float32"} | changes
        return VerdictCache(tmp_path, model_checksum="abc", versions={"torch": "1"}, **base)

    check = view_check.ViewCheck(2, True, 0.0, 1e-4, "equal", 4)
    stored = cache()
    stored.save(stored.key("v", n_out=2), check)
    reused = view_check.ViewCheck(2, True, 0.0, 1e-4, "equal", 4, reused=True)
    assert cache().load(cache().key("v", n_out=2)) == reused
    assert cache(dtype="bfloat16").load(cache(dtype="bfloat16").key("v", n_out=2)) is None
    assert cache(device="cpu:x86_64:AVX512").load(cache(device="cpu:x86_64:AVX512").key("v", n_out=2)) is None
    assert cache().load(cache().key("v", n_out=3)) is None  # another view parameter


@pytest.mark.parametrize(
    "damage",
    ["truncated", "not-json", "passed-flipped", "other-key", "list"],
)
def test_a_corrupt_or_edited_verdict_is_ignored_and_checked_again(
    tiny_model_dir: Path, tmp_path: Path, counted: list[str], damage: str
) -> None:
    _run(_engine(tiny_model_dir, tmp_path))
    compared = len(counted)
    for path in _verdicts(tmp_path):
        text = path.read_text()
        payload = json.loads(text)
        if damage == "truncated":
            text = text[: len(text) // 2]
        elif damage == "not-json":
            text = "\x00garbage"
        elif damage == "passed-flipped":  # an edit that does not match the digest
            payload["check"]["passed"] = not payload["check"]["passed"]
            text = json.dumps(payload)
        elif damage == "other-key":
            payload["key"]["versions"]["torch"] = "0.0"
            text = json.dumps(payload)
        else:
            text = json.dumps([payload])
        path.write_text(text)
    engine = _engine(tiny_model_dir, tmp_path)
    _run(engine)
    assert len(counted) == 2 * compared
    record = engine.record()
    assert record["view_checks"]["reused"] == 0 and record["output_only_check"]["passed"]
    for path in _verdicts(tmp_path):  # checked again and stored whole
        assert set(json.loads(path.read_text())) == {"key", "check", "digest"}


def test_a_verdict_path_that_is_a_symlink_is_neither_read_nor_written_through(
    tiny_model_dir: Path, tmp_path: Path, counted: list[str]
) -> None:
    cache = tmp_path / "cache"
    _run(_engine(tiny_model_dir, cache))
    compared = len(counted)
    target = tmp_path / "elsewhere.json"
    for path in _verdicts(cache):
        target.write_text(path.read_text())  # a valid verdict, reached only through the link
        path.unlink()
        path.symlink_to(target)
    engine = _engine(tiny_model_dir, cache)
    _run(engine)
    assert len(counted) == 2 * compared and engine.record()["view_checks"]["reused"] == 0
    for path in _verdicts(cache):
        assert path.is_symlink()  # left alone, never written through
    assert json.loads(target.read_text())["check"]["passed"] is True


def test_verdicts_are_written_atomically_through_the_atomic_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import chronobt.atomic as atomic

    seen: list[tuple[Path, Any]] = []
    real = atomic.write_json_atomic

    def spy(path: Path, payload: Any, **kwargs: Any) -> Path:
        seen.append((Path(path), kwargs.get("root")))
        return real(path, payload, **kwargs)

    monkeypatch.setattr(atomic, "write_json_atomic", spy)
    cache = VerdictCache(tmp_path, model_checksum="abc", versions={}, device="cpu", dtype="float32")
    key = cache.key("v", n_out=1)
    cache.save(key, view_check.ViewCheck(1, False, None, None, "raised", None))
    assert seen == [(cache.path(key), tmp_path)]
    assert [p.name for p in (tmp_path / FOLDER).iterdir()] == [cache.path(key).name]  # no temporaries left
    assert cache.load(key) == view_check.ViewCheck(1, False, None, None, "raised", None, True)


def test_a_failed_verdict_is_reused_too_and_the_full_forward_runs(
    tiny_model_dir: Path, tmp_path: Path, counted: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from chronobt.engine.views import lastblock

    def broken(model: Any, n_out: int) -> Any:
        raise RuntimeError("layout changed")

    monkeypatch.setattr(lastblock, "output_only_view", broken)
    first = _engine(tiny_model_dir, tmp_path)
    _run(first)
    assert first.record()["output_only_check"]["passed"] is False
    compared = len(counted)
    second = _engine(tiny_model_dir, tmp_path)
    _run(second)
    assert len(counted) == compared
    record = second.record()
    assert record["output_only_check"] == first.record()["output_only_check"] | {"reused": True}
    assert record["output_only_last_block"] is False


def test_a_cache_folder_that_cannot_be_written_logs_and_the_run_goes_on(
    tiny_model_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder should be")
    engine = _engine(tiny_model_dir, blocked)
    with caplog.at_level("WARNING", logger="chronobt.engine.views.verdicts"):
        out = _run(engine)
    assert np.isfinite(out).all()
    record = engine.record()
    assert record["view_checks"]["reused"] == 0 and record["view_checks"]["checked"] >= 2
    assert any("cannot store the view check verdict" in r.getMessage() for r in caplog.records)
