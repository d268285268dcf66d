"""Model resolution: local folders, the bundled checkpoint, hub ids and ``auto`` without network."""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

import pytest

import chronobt.engine.models as models
from chronobt.engine.models import resolve_model, weights_checksum
from chronobt.errors import ModelError

REAL_PROBE = models._probe_hub


@pytest.fixture(autouse=True)
def no_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An empty Hugging Face cache, and any network probe fails the test."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    def probe_must_not_run(repo_id: str, timeout: float = 3.0) -> str | None:
        raise AssertionError(f"network probe for {repo_id} was not expected")

    monkeypatch.setattr(models, "_probe_hub", probe_must_not_run)


def test_local_folder_resolves_with_its_path_and_weights_checksum(tiny_model_dir: Path) -> None:
    resolved = resolve_model(str(tiny_model_dir))
    assert (resolved.id, resolved.source, resolved.path) == (str(tiny_model_dir), "local", tiny_model_dir)
    assert resolved.checksum == weights_checksum([tiny_model_dir / "model.safetensors"])
    assert resolved.warning is None
    assert resolved.info()["path"] == str(tiny_model_dir)


def test_checksum_is_stable_and_changes_with_the_weights(tiny_model_dir: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(tiny_model_dir, tmp_path / "copy"))
    assert resolve_model(str(copy)).checksum == resolve_model(str(tiny_model_dir)).checksum
    with (copy / "model.safetensors").open("ab") as handle:
        handle.write(b"\0")
    assert resolve_model(str(copy)).checksum != resolve_model(str(tiny_model_dir)).checksum


def test_folder_without_chronos_config_is_a_model_error(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "t5"}))
    (tmp_path / "model.safetensors").write_bytes(b"x")
    with pytest.raises(ModelError, match="no chronos_config"):
        resolve_model(str(tmp_path))


def test_chronos_bolt_folder_is_a_model_error(tmp_path: Path) -> None:
    config = {"chronos_config": {}, "architectures": ["ChronosBoltModelForForecasting"]}
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="not Chronos-2"):
        resolve_model(str(tmp_path))


def test_folder_without_weights_is_a_model_error(tiny_model_dir: Path, tmp_path: Path) -> None:
    shutil.copy(tiny_model_dir / "config.json", tmp_path / "config.json")
    with pytest.raises(ModelError, match="no weights"):
        resolve_model(str(tmp_path))


def test_missing_folder_is_a_model_error_naming_the_alternatives(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"does not exist.*amazon/chronos-2"):
        resolve_model(str(tmp_path / "nope"))


def test_name_that_is_neither_folder_nor_hub_id_is_a_model_error() -> None:
    with pytest.raises(ModelError, match="neither a folder nor a hub id"):
        resolve_model("chronos-2")


def test_hub_id_offline_and_not_cached_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    with pytest.raises(ModelError, match="not in the local Hugging Face cache and HF_HUB_OFFLINE"):
        resolve_model("autogluon/chronos-2-small")
    assert time.perf_counter() - started < 2.0


def test_hub_id_unreachable_and_not_cached_is_a_model_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        models, "_probe_hub", lambda repo_id, timeout=3.0: "the hub is unreachable (URLError)"
    )
    with pytest.raises(ModelError, match=r"unreachable.*--model bundled"):
        resolve_model("autogluon/chronos-2-small")


def test_cached_hub_model_resolves_without_network(tiny_model_dir: Path, tmp_path: Path) -> None:
    snapshot = tmp_path / "hf-cache" / "models--amazon--chronos-2" / "snapshots" / ("a" * 40)
    shutil.copytree(tiny_model_dir, snapshot)
    refs = snapshot.parents[1] / "refs"
    refs.mkdir()
    (refs / "main").write_text("a" * 40)
    resolved = resolve_model("auto")
    assert (resolved.id, resolved.source, resolved.revision) == ("amazon/chronos-2", "hub", "a" * 40)
    assert resolved.warning is None


def test_auto_with_hub_unreachable_uses_bundled_with_one_warning(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(models, "BUNDLED_MODEL_DIR", tiny_model_dir)
    monkeypatch.setattr(
        models, "_probe_hub", lambda repo_id, timeout=3.0: "the hub did not answer within 3 s"
    )
    with caplog.at_level(logging.WARNING, logger="chronobt"):
        resolved = resolve_model("auto")
    assert (resolved.id, resolved.source, resolved.path) == ("chronos2-mini", "bundled", tiny_model_dir)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and warnings[0] == resolved.warning
    assert "chronos2-mini" in warnings[0] and "--model amazon/chronos-2" in warnings[0]
    assert "did not answer" in warnings[0]


def test_auto_offline_skips_the_probe(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models, "BUNDLED_MODEL_DIR", tiny_model_dir)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    resolved = resolve_model("auto")  # the autouse probe would fail the test if called
    assert resolved.source == "bundled" and "HF_HUB_OFFLINE" in (resolved.warning or "")


@pytest.mark.parametrize("spec", ["bundled", "chronos2-mini"])
def test_bundled_resolves_to_the_package_folder(
    spec: str, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(models, "BUNDLED_MODEL_DIR", tiny_model_dir)
    resolved = resolve_model(spec)
    assert (resolved.id, resolved.source, resolved.path) == ("chronos2-mini", "bundled", tiny_model_dir)


def test_missing_bundled_model_is_a_model_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models, "BUNDLED_MODEL_DIR", tmp_path / "chronos2-mini")
    with pytest.raises(ModelError, match="bundled model missing"):
        resolve_model("bundled")


def test_probe_returns_within_its_timeout_when_the_endpoint_does_not_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)  # accepts the connection but never answers
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    try:
        started = time.perf_counter()
        reason = REAL_PROBE("amazon/chronos-2", timeout=0.3)
        assert time.perf_counter() - started < 1.5
        assert reason is not None and ("unreachable" in reason or "did not answer" in reason)
    finally:
        server.close()
