"""Opt-in glibc tuning (``CHRONOBT_MALLOC=keep``): keep freed memory so CPU forwards stop page-faulting.

glibc returns large freed blocks to the kernel (``munmap``, or trimming the heap top), so the next forward
pass's activations of the same size fault in fresh zeroed pages; with a 7M-parameter Chronos-2 at context
2048 that is a few hundred thousand minor page faults per backtest. PyTorch's CPU tuning guide suggests
jemalloc or tcmalloc for the same reason; :func:`keep_freed_memory` gets most of it from glibc itself
with two ``mallopt`` calls: blocks up to 32 MiB come from the heap (``M_MMAP_THRESHOLD``) and the heap is
trimmed only above 1 GiB of free space at its top (``M_TRIM_THRESHOLD``). The cost: the process keeps
its peak memory until it exits.

It is off by default: it removes most page faults, but whole ``chronobt backtest`` runs (the README's
main command, and a 7M-parameter backtest) were not measurably faster end to end
(``benchmarks/allocator.py --cli main|small``; numbers in ``benchmarks/RESULTS.md``).

Only the command line calls this (a library should not change its host process's allocator). It tunes
only when ``CHRONOBT_MALLOC=keep``; it does nothing with ``default`` or unset, on other C libraries, when
the user set glibc's own ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` / ``GLIBC_TUNABLES``, or
when another allocator is preloaded.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from collections.abc import Mapping

from chronobt.errors import ConfigError

ENV = "CHRONOBT_MALLOC"
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # glibc's largest allowed value on 64-bit systems
TRIM_THRESHOLD = 1 << 30
_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")
_OTHER_ALLOCATORS = ("jemalloc", "tcmalloc", "mimalloc")


def keep_freed_memory(environ: Mapping[str, str] | None = None) -> bool:
    """With ``CHRONOBT_MALLOC=keep``, set glibc's mmap and trim thresholds as above; True when both were set.

    Raises :class:`ConfigError` when ``CHRONOBT_MALLOC`` is neither ``keep`` nor ``default``.
    """
    env = os.environ if environ is None else environ
    mode = env.get(ENV, "default").strip().lower() or "default"
    if mode not in ("keep", "default"):
        raise ConfigError(f"{ENV}={env[ENV]!r} is not a choice: use keep or default (the default)")
    if mode == "default" or sys.platform != "linux":
        return False
    if any(name in env for name in _USER_SETTINGS):
        return False
    if any(name in env.get("LD_PRELOAD", "") for name in _OTHER_ALLOCATORS):
        return False
    libc = _glibc()
    if libc is None:
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )


def _glibc() -> ctypes.CDLL | None:
    """The process's C library when it is glibc (``gnu_get_libc_version`` exists), else None."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    if not hasattr(libc, "gnu_get_libc_version") or not hasattr(libc, "mallopt"):
        return None
    libc.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    libc.mallopt.restype = ctypes.c_int
    return libc
