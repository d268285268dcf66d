"""What the engine runs on: :class:`EngineConfig` and the device/dtype it resolves to.

The configuration is self-contained: the library reads no environment variable. The command line maps
``CHRONOBT_*`` variables and the legacy compile switches onto it (``chronobt.cli.engine_options``).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args

from chronobt.errors import ConfigError

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N", "mps")
#: The choice options; the command line shows these and matches them case-insensitively.
Dtype = Literal["auto", "float32", "bfloat16"]
CompileChoice = Literal["auto", "on", "off"]
CompileMode = Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"]
DTYPE_CHOICES: tuple[str, ...] = get_args(Dtype)
COMPILE_CHOICES: tuple[str, ...] = get_args(CompileChoice)
COMPILE_MODES: tuple[str, ...] = get_args(CompileMode)
#: Series per forward pass by device type before any call (the CPU batch is then sized per call by
#: :func:`chronobt.engine.cpu_sizing.cpu_series_per_forward`; measurements in ``benchmarks/RESULTS.md``).
DEFAULT_BATCH_SIZE = {"cuda": 256, "mps": 64, "cpu": 16}
_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


@dataclass(frozen=True)
class EngineConfig:
    """How to load and run Chronos-2 (the same whatever the environment holds).

    Attributes
    ----------
    model : ``"auto"``, ``"bundled"``, a hub id or a folder (see
    :func:`chronobt.engine.models.resolve_model`).
    device : ``auto`` (cuda, then mps, then cpu), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
    dtype : ``auto`` (float32), ``float32`` or ``bfloat16`` (CUDA only; float32 with a warning elsewhere).
    compile : ``auto`` (on for CUDA only), ``on`` or ``off``.
    compile_backend : torch.compile backend.
    compile_mode : torch.compile mode, ``None`` for torch's default.
    compile_source : where the compile choice came from, for the record (the CLI sets ``"default"``,
        ``"option"`` or ``"env NAME"``).
    batch_size : series per forward pass; default 256 on CUDA, 64 on MPS, and on a CPU sized per call
        (:func:`chronobt.engine.cpu_sizing.cpu_series_per_forward`).
    cache_dir : chronobt's cache folder; inductor's compile cache goes to ``cache_dir/inductor``
        and the view checks' verdicts to ``cache_dir/view-checks`` (``None``: torch's default, and
        every view checked each run). The CLI maps ``--cache-dir`` / ``CHRONOBT_CACHE_DIR`` onto it.
    cpu_free_cores : CPU cores not busy with other processes when the run starts (the CLI: the cores
        this process may use, ``os.sched_getaffinity``, less the 1-minute load average); below the
        intra-op threads, CPU batches run side by side on one thread each
        (:func:`chronobt.engine.cpu_sizing.cpu_workers`). ``None``: unknown, sized as if idle.
    native : run chronobt's own plain-torch forward of Chronos-2 (:mod:`chronobt.engine.native`) where
        its check against chronos' forward passed (``False``: chronos' model and its views only).
    """

    model: str = "auto"
    device: str = "auto"
    dtype: Dtype = "auto"
    compile: CompileChoice = "auto"
    compile_backend: str = "inductor"
    compile_mode: CompileMode | None = None
    compile_source: str = "option"
    batch_size: int | None = None
    cache_dir: Path | None = None
    cpu_free_cores: float | None = None
    native: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            raise ConfigError(f"model {self.model!r} is empty; pass auto, bundled, a hub id or a folder")
        if not isinstance(self.device, str) or not _DEVICE_RE.match(self.device):
            raise ConfigError(f"device {self.device!r} is not one of {', '.join(DEVICE_CHOICES)}")
        if self.dtype not in DTYPE_CHOICES:
            raise ConfigError(f"dtype {self.dtype!r} is not one of {', '.join(DTYPE_CHOICES)}")
        if self.compile not in COMPILE_CHOICES:
            raise ConfigError(f"compile {self.compile!r} is not one of {', '.join(COMPILE_CHOICES)}")
        if self.compile_mode is not None and self.compile_mode not in COMPILE_MODES:
            raise ConfigError(f"compile mode {self.compile_mode!r} is not one of {', '.join(COMPILE_MODES)}")
        if not isinstance(self.compile_backend, str) or not self.compile_backend.strip():
            raise ConfigError(
                f"compile backend {self.compile_backend!r} is empty; pass a torch.compile backend "
                "such as inductor"
            )
        if not isinstance(self.compile_source, str) or not self.compile_source.strip():
            raise ConfigError(f"compile source {self.compile_source!r} is empty; pass e.g. option")
        if self.batch_size is not None and (
            isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1
        ):
            raise ConfigError(
                f"batch size {self.batch_size!r} must be a positive integer (series per forward)"
            )
        if self.cache_dir is not None and not isinstance(self.cache_dir, Path):
            raise ConfigError(f"cache dir {self.cache_dir!r} must be a pathlib.Path or None")
        if self.cpu_free_cores is not None and (
            isinstance(self.cpu_free_cores, bool)
            or not isinstance(self.cpu_free_cores, (int, float))
            or not self.cpu_free_cores >= 0
        ):
            raise ConfigError(f"cpu free cores {self.cpu_free_cores!r} must be a number >= 0 or None")


def resolve_device(spec: str) -> torch.device:
    """``torch.device`` for a device spec; :class:`ConfigError` when the device is absent."""
    import torch

    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(spec)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {spec}: CUDA is not available here; use --device auto or cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(
                f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) "
                f"(cuda:0..cuda:{torch.cuda.device_count() - 1})"
            )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"--device {spec}: MPS is not available here; use --device auto or cpu")
    return device


def resolve_dtype(spec: str, device: torch.device) -> torch.dtype:
    """float32 unless ``bfloat16`` was asked for on CUDA (warns and uses float32 elsewhere)."""
    import torch

    if spec == "bfloat16":
        if device.type == "cuda":
            return torch.bfloat16
        logger.warning("dtype bfloat16 is CUDA-only; running float32 on %s", device.type)
    return torch.float32
