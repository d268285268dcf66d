"""View checks paid once per machine: each check's verdict stored in the cache folder, reused by later runs.

A view check (:func:`chronobt.engine.views.check.check_view`) runs the view and chronos' full forward on
a two-task batch. Its answer depends only on what both forwards compute, so it is stored under a key of
everything that can change it (:meth:`VerdictCache.key`): the model's weights checksum, the chronos,
torch and chronobt versions (and a digest of the view and Chronos-2 source files, :func:`code_digest`,
for edited checkouts), the device (with the CPU capability or the GPU's name), the dtype, the check
batch's shape and the view's own parameters (which view, output patches, variates, what it is composed
with), plus :data:`CHECK_VERSION` of the check itself. A later run with the same key reuses the verdict
(``reused: true`` in its record); any change of key (a chronos or torch upgrade, other weights) checks
again, so a new version can never silently change a forecast.

Files: ``<cache_dir>/view-checks/<sha256 of the key>.json`` holding the key, the verdict and a sha256
digest of both. A file that cannot be read, is not valid JSON, holds another key, or whose digest does
not match (corrupt or edited) is ignored and the view checked again; a symbolic link there is never
followed. Verdicts are written atomically (:func:`chronobt.atomic.write_json_atomic`, never through a
link); a verdict that cannot be written is logged and the run goes on. The digest guards against
corruption and edits, not against someone with write access to the cache folder (who could as well
replace the model). Delete the folder to check every view again.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import platform
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chronobt.errors import ChronobtError

if TYPE_CHECKING:
    import torch

    from chronobt.engine.views.check import ViewCheck

logger = logging.getLogger(__name__)

#: The cache folder's subfolder holding the verdicts.
FOLDER = "view-checks"
#: Bumped whenever the check batch, the tolerance or the comparison changes (stored verdicts then expire).
CHECK_VERSION = 1
_FIELDS = ("num_output_patches", "passed", "max_abs_diff", "tolerance", "reason", "n_variates")
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_MAX_BYTES = 1 << 16


def _canonical(payload: Any) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=True).encode()


def _digest(payload: Any) -> str:
    return hashlib.sha256(_canonical(payload)).hexdigest()


def device_label(device: torch.device) -> str:
    """The device as it affects float results: ``cuda:<name>`` (the GPU model) or ``cpu:<arch>:<ISA>``."""
    import torch

    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    if device.type == "cpu":
        return f"cpu:{platform.machine()}:{torch.backends.cpu.get_cpu_capability()}"
    return device.type


def code_digest() -> str:
    """sha256 of the source files a check's answer depends on beyond the versions: chronobt's views, its
    native forward and its chronos guard, and chronos' Chronos-2 modules (an edited checkout or a patched
    install changes it without a version change). chronos' files are found, not imported."""
    ours = Path(__file__).parent
    engine = ours.parent
    files = [
        *sorted(ours.glob("*.py")),
        *sorted((engine / "native").glob("*.py")),
        engine / "chronos_compat.py",
    ]
    files += _chronos_sources()
    digest = hashlib.sha256()
    for path in files:
        try:
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
        except OSError:
            digest.update(path.name.encode() + b"\0unreadable")
    return digest.hexdigest()


def _chronos_sources() -> list[Path]:
    """chronos' Chronos-2 modules and the scaling and patching they import, located without importing."""
    spec = importlib.util.find_spec("chronos")
    if spec is None or spec.origin is None:
        return []
    root = Path(spec.origin).parent
    return [*sorted((root / "chronos2").glob("*.py")), root / "chronos_bolt.py"]


def weights_digest(model: Any) -> str:
    """sha256 over a model's state dict (names, shapes, dtypes, bytes): the key of a model without a
    recorded checksum (one injected or fine-tuned in the run)."""
    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        data = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}{tuple(data.shape)}{data.dtype}".encode())
        digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class VerdictCache:
    """Stored view-check verdicts of one engine (see the module docstring); counts reuses and checks.

    Parameters
    ----------
    cache_dir : chronobt's cache folder (``None``: nothing stored, every view checked each run).
    model_checksum : the weights' checksum, or a callable computing it on first use.
    versions : ``{"chronos": ..., "torch": ..., "chronobt": ..., "code": code_digest()}``.
    device, dtype : as the engine runs (:func:`device_label`, e.g. ``"float32"``).
    """

    def __init__(
        self,
        cache_dir: Path | None,
        *,
        model_checksum: str | Callable[[], str],
        versions: dict[str, str],
        device: str,
        dtype: str,
    ) -> None:
        self.folder = None if cache_dir is None else Path(cache_dir) / FOLDER
        self._root = cache_dir
        self._checksum = model_checksum
        self._base = {"versions": dict(versions), "device": device, "dtype": dtype, "check": CHECK_VERSION}
        self.reused = 0
        self.checked = 0

    def key(self, view: str, **params: Any) -> dict[str, Any]:
        """The full key of ``view``'s check with ``params`` (output patches, variates, check shape ...)."""
        if self.folder is not None and callable(self._checksum):
            self._checksum = self._checksum()
        model = None if callable(self._checksum) else self._checksum
        key = {"model": model, **self._base, "view": view, "params": params}
        return dict(json.loads(_canonical(key)))  # as stored: tuples become lists

    def path(self, key: dict[str, Any]) -> Path | None:
        """Where the verdict of ``key`` lives (``None``: no cache folder)."""
        return None if self.folder is None else self.folder / f"{_digest(key)}.json"

    def load(self, key: dict[str, Any]) -> ViewCheck | None:
        """The stored verdict of ``key``, ``None`` when there is none or it is unreadable, another key's,
        or its digest does not match (logged at debug level)."""
        from chronobt.engine.views.check import ViewCheck

        path = self.path(key)
        if path is None:
            return None
        try:
            fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
        except OSError:
            return None  # absent, or a symbolic link (never followed)
        try:
            with os.fdopen(fd, "rb") as handle:
                payload = json.loads(handle.read(_MAX_BYTES))
            check = payload["check"]
            ok = (
                isinstance(payload, dict)
                and payload.get("key") == key
                and payload.get("digest") == _digest({"key": key, "check": check})
                and set(check) == set(_FIELDS)
                and isinstance(check["passed"], bool)
                and isinstance(check["num_output_patches"], int)
                and isinstance(check["reason"], str)
            )
            verdict = ViewCheck(**check, reused=True) if ok else None
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            logger.debug("view check verdict %s ignored: %s", path, exc)
            return None
        if verdict is None:
            logger.debug("view check verdict %s ignored: another key or a digest mismatch", path)
        else:
            self.reused += 1
        return verdict

    def save(self, key: dict[str, Any], check: ViewCheck) -> None:
        """Store ``check`` as ``key``'s verdict (atomically); a failure to write is logged, not raised."""
        from chronobt.atomic import write_json_atomic

        self.checked += 1
        path = self.path(key)
        if path is None:
            return
        fields = {name: getattr(check, name) for name in _FIELDS}
        payload = {"key": key, "check": fields, "digest": _digest({"key": key, "check": fields})}
        try:
            write_json_atomic(path, payload, root=self._root)
        except (ChronobtError, OSError) as exc:
            logger.warning("cannot store the view check verdict in %s: %s", path, exc)

    def record(self) -> dict[str, Any]:
        """``cache``: the verdicts' folder (``None``: not stored); ``reused`` / ``checked``: verdicts read
        from it / views compared with the full forward in this run."""
        return {
            "cache": None if self.folder is None else str(self.folder),
            "reused": self.reused,
            "checked": self.checked,
        }
