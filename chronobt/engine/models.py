"""Model resolution: turn a ``--model`` spec into a local Chronos-2 checkpoint folder and its identity.

Specs
-----
``auto`` (default)
    ``amazon/chronos-2`` when it is in the local Hugging Face cache or the hub answers within
    :data:`PROBE_TIMEOUT_S` seconds; otherwise the bundled ``chronos2-mini`` with one warning line naming the
    model that ran and how to get the full one. ``HF_HUB_OFFLINE=1`` skips the network attempt.
``bundled`` / ``chronos2-mini``
    The checkpoint shipped inside the package (:data:`BUNDLED_MODEL_DIR`).
``org/name``
    A Hugging Face hub id: used from the local cache, else downloaded when the hub is reachable.
a folder
    A checkpoint saved with ``save_pretrained`` (``config.json`` with a ``chronos_config`` + weights).

Nothing here imports torch; every failure is a :class:`~chronobt.errors.ModelError` that says what to pass
instead. The network probe runs in a daemon thread joined with a timeout, so resolution never hangs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from chronobt._version import __version__
from chronobt.atomic import sha256_file
from chronobt.errors import ModelError

logger = logging.getLogger(__name__)

#: The released model ``auto`` prefers.
DEFAULT_HUB_MODEL = "amazon/chronos-2"
#: Name of the checkpoint shipped inside the package.
BUNDLED_NAME = "chronos2-mini"
#: Folder of the bundled checkpoint (module attribute so tests can point it at a tiny checkpoint).
BUNDLED_MODEL_DIR = Path(__file__).resolve().parents[1] / "assets" / BUNDLED_NAME
#: Seconds the hub reachability probe may take before the hub counts as unreachable.
PROBE_TIMEOUT_S = 3.0

WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")
_TRUE = {"1", "true", "yes", "on"}

Source = Literal["hub", "bundled", "local"]


@dataclass(frozen=True)
class ResolvedModel:
    """A Chronos-2 checkpoint ready to load from ``path``.

    Attributes
    ----------
    id : what ran: a hub id (``amazon/chronos-2``), ``chronos2-mini`` or the folder path.
    source : ``"hub"``, ``"bundled"`` or ``"local"``.
    path : local folder holding ``config.json`` and the weights.
    checksum : sha256 of the weights file (or of the sorted per-file digests when sharded).
    revision : hub commit of the cached snapshot, the chronobt version for ``bundled``, else ``None``.
    warning : the one-line warning already logged when ``auto`` fell back to the bundled model.
    """

    id: str
    source: Source
    path: Path
    checksum: str
    revision: str | None = None
    warning: str | None = None

    def info(self) -> dict[str, str | None]:
        """``{"id", "source", "path", "checksum", "revision"}`` for records and manifests."""
        data = asdict(self)
        data.pop("warning")
        data["path"] = str(self.path)
        return data


def resolve_model(spec: str, *, offline: bool | None = None) -> ResolvedModel:
    """Resolve a ``--model`` spec to a local checkpoint folder.

    Parameters
    ----------
    spec : ``"auto"``, ``"bundled"``/``"chronos2-mini"``, a hub id ``org/name`` or a folder path.
    offline : skip every network attempt; ``None`` reads ``HF_HUB_OFFLINE``.

    Raises
    ------
    ModelError
        No such folder, not a Chronos-2 checkpoint, a hub model that is neither cached nor reachable,
        or the bundled checkpoint missing from the installation.
    """
    if offline is None:
        offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE
    spec = spec.strip()
    if spec == "auto":
        return _resolve_auto(offline=offline)
    if spec in ("bundled", BUNDLED_NAME):
        return _resolve_bundled()
    folder = Path(spec).expanduser()
    if folder.exists():
        return _resolve_local(folder, model_id=str(folder), source="local")
    if _looks_like_path(spec):
        raise ModelError(
            f"model folder {spec} does not exist; pass a folder saved with save_pretrained, "
            f"a hub id such as {DEFAULT_HUB_MODEL}, 'bundled' or 'auto'"
        )
    if _HUB_ID.match(spec):
        return _resolve_hub(spec, offline=offline)
    raise ModelError(
        f"--model {spec!r} is neither a folder nor a hub id (org/name); pass 'auto', 'bundled', "
        f"a hub id such as {DEFAULT_HUB_MODEL}, or a folder saved with save_pretrained"
    )


def _looks_like_path(spec: str) -> bool:
    return spec.startswith(("/", "./", "../", "~", ".\\")) or "\\" in spec or spec.count("/") > 1


def _resolve_auto(*, offline: bool) -> ResolvedModel:
    cached = _cached_snapshot(DEFAULT_HUB_MODEL)
    if cached is not None:
        return _resolve_local(cached, model_id=DEFAULT_HUB_MODEL, source="hub", revision=cached.name)
    if offline:
        reason = "HF_HUB_OFFLINE is set"
    else:
        reason = _probe_hub(DEFAULT_HUB_MODEL) or ""
        if not reason:
            return _download(DEFAULT_HUB_MODEL)
    try:
        bundled = _resolve_bundled()
    except ModelError as exc:
        raise ModelError(
            f"--model auto: {DEFAULT_HUB_MODEL} is not in the Hugging Face cache and {reason}, and {exc}"
        ) from None
    warning = (
        f"using the bundled {BUNDLED_NAME} model (small, for offline use): {DEFAULT_HUB_MODEL} is not in the "
        f"Hugging Face cache and {reason}; for the full model run once with hub access "
        f"(HF_HUB_OFFLINE unset) or pass --model {DEFAULT_HUB_MODEL} or --model <folder>"
    )
    logger.warning(warning)
    return ResolvedModel(
        id=bundled.id,
        source=bundled.source,
        path=bundled.path,
        checksum=bundled.checksum,
        revision=bundled.revision,
        warning=warning,
    )


def _resolve_bundled() -> ResolvedModel:
    folder = BUNDLED_MODEL_DIR
    if not (folder / "config.json").is_file():
        raise ModelError(
            f"bundled model missing: {folder} has no config.json (this installation lacks the "
            f"{BUNDLED_NAME} checkpoint); reinstall chronobt, or pass a hub id such as {DEFAULT_HUB_MODEL} "
            "or a local folder with --model"
        )
    return _resolve_local(folder, model_id=BUNDLED_NAME, source="bundled", revision=f"chronobt-{__version__}")


def _resolve_hub(repo_id: str, *, offline: bool) -> ResolvedModel:
    cached = _cached_snapshot(repo_id)
    if cached is not None:
        return _resolve_local(cached, model_id=repo_id, source="hub", revision=cached.name)
    if offline:
        raise ModelError(
            f"model {repo_id} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set; "
            "download it once with hub access, or pass --model bundled or a local folder"
        )
    reason = _probe_hub(repo_id)
    if reason:
        raise ModelError(
            f"model {repo_id} is not in the local Hugging Face cache and {reason}; "
            "download it once with hub access, or pass --model bundled or a local folder"
        )
    return _download(repo_id)


def _cached_snapshot(repo_id: str) -> Path | None:
    """The cached snapshot folder of ``repo_id`` (``main``), or ``None`` when it is not fully cached."""
    from huggingface_hub import constants

    # the Hub cache's documented layout: no models--<org>--<name> folder, nothing cached (and none of
    # huggingface_hub's file and HTTP modules imported, ~0.05 s)
    if not (Path(constants.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}").is_dir():
        return None
    from huggingface_hub import try_to_load_from_cache

    if not isinstance(try_to_load_from_cache(repo_id, "config.json"), str):
        return None
    from huggingface_hub import snapshot_download  # its HTTP stack costs ~0.25 s: only when cached

    try:
        folder = Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # huggingface_hub raises several types for "not cached"
        return None
    return folder if _weight_files(folder) else None


def _download(repo_id: str) -> ResolvedModel:
    from huggingface_hub import snapshot_download

    logger.info("downloading %s from the Hugging Face hub", repo_id)
    try:
        folder = Path(snapshot_download(repo_id))
    except Exception as exc:
        raise ModelError(
            f"downloading {repo_id} from the Hugging Face hub failed ({type(exc).__name__}: {exc}); "
            "retry, or pass --model bundled or a local folder"
        ) from exc
    return _resolve_local(folder, model_id=repo_id, source="hub", revision=folder.name)


def _probe_hub(repo_id: str, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """``None`` when the hub answers for ``repo_id`` within ``timeout`` seconds, else the reason it did not.

    Runs in a daemon thread joined with a deadline, so a stalled DNS lookup cannot hang the caller.
    """
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    url = f"{endpoint}/api/models/{repo_id}"
    outcome: list[str | None] = []

    def probe() -> None:
        try:
            request = urllib.request.Request(url, method="HEAD")
            with urllib.request.urlopen(request, timeout=timeout):
                outcome.append(None)
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403, 404):
                outcome.append(f"the hub has no public model {repo_id} (HTTP {exc.code})")
            else:
                outcome.append(f"the hub answered HTTP {exc.code}")
        except Exception as exc:
            outcome.append(f"the hub is unreachable ({type(exc).__name__})")

    thread = threading.Thread(target=probe, name="chronobt-hub-probe", daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    if not outcome:
        return f"the hub did not answer within {timeout:g} s"
    return outcome[0]


def _resolve_local(
    folder: Path, *, model_id: str, source: Source, revision: str | None = None
) -> ResolvedModel:
    if not folder.is_dir():
        raise ModelError(f"model path {folder} is not a folder; pass a folder saved with save_pretrained")
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise ModelError(
            f"{folder} has no config.json, so it is not a saved Chronos-2 model; pass a folder saved "
            f"with save_pretrained, a hub id such as {DEFAULT_HUB_MODEL}, or 'bundled'"
        )
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"{config_path} is not readable JSON ({exc}); re-save the model") from exc
    if not isinstance(config, dict) or "chronos_config" not in config:
        raise ModelError(
            f"{config_path} has no chronos_config, so it is not a Chronos-2 model; pass a Chronos-2 "
            f"checkpoint (e.g. {DEFAULT_HUB_MODEL}, 'bundled', or a folder saved by Chronos2Pipeline)"
        )
    architectures = config.get("architectures") or ["Chronos2Model"]
    if "Chronos2Model" not in architectures:
        raise ModelError(
            f"{config_path} describes {architectures[0]}, not Chronos-2 (Chronos2Model); chronobt runs "
            f"Chronos-2 checkpoints only; pass e.g. {DEFAULT_HUB_MODEL}, "
            "autogluon/chronos-2-small or 'bundled'"
        )
    weights = _weight_files(folder)
    if not weights:
        raise ModelError(
            f"{folder} has config.json but no weights (*.safetensors or pytorch_model*.bin); "
            "re-save the model"
        )
    return ResolvedModel(
        id=model_id, source=source, path=folder, checksum=weights_checksum(weights), revision=revision
    )


def _weight_files(folder: Path) -> list[Path]:
    return sorted({p for pattern in WEIGHT_PATTERNS for p in folder.glob(pattern) if p.is_file()})


def weights_checksum(files: list[Path]) -> str:
    """sha256 of the single weights file, or of ``"name digest"`` lines when the weights are sharded."""
    digests = [sha256_file(path) for path in files]
    if len(files) == 1:
        return digests[0]
    lines = "".join(f"{path.name} {digest}\n" for path, digest in zip(files, digests, strict=True))
    return hashlib.sha256(lines.encode()).hexdigest()


@contextmanager
def quiet_loading() -> Iterator[None]:
    """While a model loads: transformers' progress bars off and its logs at errors only, both restored
    afterwards (the library prints nothing; a caller who wants transformers' output gets it back after)."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # transformers is chronos' dependency; nothing to silence without it
        yield
        return
    bars, verbosity = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
