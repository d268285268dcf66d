"""What the engine loads: the native forward first, chronos' own pipeline only when something needs it.

:class:`ModelStack` resolves the model, loads it into :class:`~chronobt.engine.native.model.NativeChronos2`
(torch, json and safetensors: no chronos, no transformers) and holds chronos' ``Chronos2Pipeline`` as a
lazy attribute: it is imported and loaded the first time a native check has no stored verdict, a check
failed, a horizon needs chronos' unrolling, or a caller asks for it (fine-tuning). An injected pipeline
(tests) or a model the native forward does not compute loads chronos at once, as before. The seconds
spent importing torch, and chronos with transformers when they load, are counted in ``import_seconds``.
"""

from __future__ import annotations

import importlib.metadata
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chronobt.atomic import sha256_file
from chronobt.errors import ModelError

if TYPE_CHECKING:
    import torch

    from chronobt.engine.config import EngineConfig
    from chronobt.engine.native.config import NativeConfig
    from chronobt.engine.native.model import NativeChronos2
    from chronobt.engine.views.verdicts import VerdictCache

__all__ = ["ModelStack", "load_pipeline", "package_version", "spec_of"]

logger = logging.getLogger(__name__)


def load_pipeline(path: Any) -> Any:
    """Load a ``Chronos2Pipeline`` from a local folder on the CPU, quietly; :class:`ModelError` on failure."""
    from chronos import Chronos2Pipeline

    from chronobt.engine.models import quiet_loading

    try:
        with quiet_loading():  # no weight-loading progress bar: the library prints nothing
            return Chronos2Pipeline.from_pretrained(str(path))
    except Exception as exc:
        raise ModelError(
            f"cannot load a Chronos-2 model from {path} ({type(exc).__name__}: {exc}); "
            "pass another --model (auto, bundled, a hub id or a folder saved with save_pretrained)"
        ) from exc


def package_version(name: str) -> str:
    """An installed distribution's version without importing it (``"unknown"`` when not installed)."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def spec_of(model: Any) -> NativeConfig:
    """A loaded chronos ``Chronos2Model``'s settings as :class:`NativeConfig` (what the engine sizes by)."""
    from chronobt.engine.native.config import NativeConfig

    cfg, fc = model.config, model.chronos_config
    return NativeConfig(
        d_model=int(cfg.d_model),
        d_kv=int(cfg.d_kv),
        d_ff=int(cfg.d_ff),
        num_layers=int(cfg.num_layers),
        num_heads=int(cfg.num_heads),
        layer_norm_epsilon=float(cfg.layer_norm_epsilon),
        rope_theta=float(getattr(cfg, "rope_theta", 10000.0)),
        dense_act_fn=str(getattr(cfg, "dense_act_fn", "relu")),
        context_length=int(fc.context_length),
        input_patch_size=int(fc.input_patch_size),
        output_patch_size=int(fc.output_patch_size),
        max_output_patches=int(fc.max_output_patches),
        quantiles=tuple(float(q) for q in fc.quantiles),
        time_encoding_scale=float(getattr(fc, "time_encoding_scale", None) or fc.context_length),
        use_arcsinh=bool(getattr(fc, "use_arcsinh", False)),
        use_reg_token=bool(getattr(fc, "use_reg_token", False)),
    )


class ModelStack:
    """The engine's models (see the module docstring).

    Parameters
    ----------
    config : the engine's settings (``model``, ``native``, ``cache_dir``).
    device, dtype : where and how the model runs.
    pipeline : an already loaded ``Chronos2Pipeline`` (tests); no native model then.
    """

    def __init__(
        self, config: EngineConfig, device: torch.device, dtype: torch.dtype, pipeline: Any = None
    ) -> None:
        started = time.perf_counter()
        import torch

        #: seconds importing torch here (the engine adds its own) and chronos with transformers later
        self.import_seconds = time.perf_counter() - started
        self.config, self.device, self.dtype = config, device, dtype
        self._pipeline: Any = None
        self._model: Any = None
        self.native: NativeChronos2 | None = None
        self.native_problem: str | None = None
        if pipeline is not None:
            self.model_info: dict[str, Any] = {
                "id": "injected",
                "source": "local",
                "path": None,
                "checksum": None,
                "revision": None,
            }
            self.path = None
            self.native_problem = "a loaded chronos pipeline was passed in"
            self._adopt(pipeline)
            return
        from chronobt.engine.models import resolve_model

        resolved = resolve_model(config.model)
        self.model_info = resolved.info()
        self.path = resolved.path
        if config.native:
            from chronobt.engine.native.loading import NativeUnavailable, load_native

            try:
                self.native = load_native(resolved.path, device=device, dtype=dtype)
            except NativeUnavailable as exc:
                self.native_problem = str(exc)
                logger.info("native forward unavailable (%s); loading chronos' model", exc)
            except torch.OutOfMemoryError as exc:
                raise ModelError(f"the model does not fit on {device}: {exc}; use --device cpu") from exc
        else:
            self.native_problem = "turned off (EngineConfig.native)"
        if self.native is None:
            self._load()
        self.spec: NativeConfig = self.native.config if self.native is not None else spec_of(self.model)

    @property
    def loaded(self) -> bool:
        """Whether chronos' pipeline has been loaded (imported with transformers)."""
        return self._pipeline is not None

    @property
    def pipeline(self) -> Any:
        """chronos' ``Chronos2Pipeline`` (imported and loaded on first use)."""
        if self._pipeline is None:
            self._load()
        return self._pipeline

    @property
    def model(self) -> Any:
        """chronos' ``Chronos2Model`` on the engine's device and dtype, in eval mode (loaded on first use)."""
        if self._model is None:
            self._load()
        return self._model

    def _load(self) -> None:
        started = time.perf_counter()
        import chronos  # noqa: F401  (with transformers: the model stack's imports, timed for the record)

        self.import_seconds += time.perf_counter() - started
        self._adopt(load_pipeline(self.path))

    def _adopt(self, pipeline: Any) -> None:
        import torch

        self._pipeline = pipeline
        try:
            self._model = pipeline.model.to(device=self.device, dtype=self.dtype).eval()
        except torch.OutOfMemoryError as exc:
            raise ModelError(f"the model does not fit on {self.device}: {exc}; use --device cpu") from exc
        if self.native is None:
            self.spec = spec_of(self._model)

    def verdict_cache(self) -> VerdictCache:
        """Stored check verdicts under ``config.cache_dir``, keyed by this model (its recorded checksum,
        else a digest of chronos' loaded weights), versions (read without importing), device and dtype."""
        import torch

        from chronobt._version import __version__
        from chronobt.engine.views.verdicts import VerdictCache, code_digest, device_label, weights_digest

        checksum = self.model_info.get("checksum")
        if checksum and self.path is not None:  # the native forward reads config.json itself: key it too
            checksum = f"{checksum} config {sha256_file(Path(self.path) / 'config.json')}"
        return VerdictCache(
            self.config.cache_dir,
            model_checksum=str(checksum) if checksum else lambda: weights_digest(self.model),
            versions={
                "chronos": package_version("chronos-forecasting"),
                "transformers": package_version("transformers"),
                "torch": str(torch.__version__),
                "chronobt": __version__,
                "code": code_digest() if self.config.cache_dir is not None else "",
            },
            device=device_label(self.device),
            dtype=str(self.dtype).removeprefix("torch."),
        )
