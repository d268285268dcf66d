"""The CPU sample-path inversion's loops in C (``_loops.c``), called through ctypes.

The same three loops as :mod:`chronobt.augment.kernels` (numba), with the same arguments and the same
numbers (the same float64 operations in the same order, exact order statistics), without numba's import
and the load of its compiled code: ~0.4 s of every process that inverts. ``setup.py`` builds the library
as the optional extension module ``chronobt.augment._loops``; where it was not built (no C compiler at
install time) or is of another version, :func:`library` gives ``None`` and
:func:`chronobt.augment.sampling.compiled` hands out the numba loops instead. ctypes releases the GIL for
each call, so the inversion's worker threads run the loops side by side.

The library is used only where it is of this module's :data:`VERSION` and, where its source is beside it
(an editable install), was built from that very source (its sha256 is built in): an edited ``_loops.c``
not yet rebuilt (``pip install -e .``) runs the numba loops, with one log line saying why.

The same numbers as numba's means bit for bit, up to the sign of a zero: where a row holds both ``0.0``
and ``-0.0``, either may be read (as :func:`chronobt.augment.kernels.order_statistics` against
``np.sort``). C checks no bounds: each function here checks dtypes, alignment, layouts, shapes and the
read's ranks and plan first (a ``ValueError``); the segments' range (``0 .. Q - 2``) is checked by the C
code in one pass before drawing (a ``ValueError`` too). An allocation the C code could not make is a
``MemoryError``.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import importlib.util
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

#: The library's version this module calls (``chronobt_loops_version`` in ``_loops.c``).
VERSION = 3
#: What the C calls return on failure.
NO_MEMORY, BAD_SEGMENT = -1, -2
#: The C code keeps bins in 16-bit and counts in 32-bit integers.
MAX_BINS = 32_000
MAX_PATHS = 2**31 - 1

_P, _I = ctypes.c_void_p, ctypes.c_int64
_SIGNATURES: dict[str, list[Any]] = {
    "chronobt_draw_steps": [_P, _I, _I, _I, _P, _P, _I, _P],  # every call returns an int64
    "chronobt_order_statistics": [_P, _I, _I, _P, _I, _I, _I, _I, _I, _P],
    "chronobt_running_sum_statistics": [_P, _I, _I, _I, _P, _P, _I, _P, _P, _I, _I, _I, _I, _I, _P, _P],
}


@functools.lru_cache(maxsize=1)
def library() -> ctypes.CDLL | None:
    """The built C library with its functions typed, or ``None`` (not built, not loadable, of another
    version or built from another source than the one beside it: then one log line says why)."""
    try:
        spec = importlib.util.find_spec("chronobt.augment._loops")
        if spec is None or not spec.origin:
            return None  # not built: no C compiler at install time
        lib = ctypes.CDLL(spec.origin)
        lib.chronobt_loops_version.restype = _I
        lib.chronobt_loops_version.argtypes = []
        lib.chronobt_loops_source.restype = ctypes.c_char_p
        lib.chronobt_loops_source.argtypes = []
        problem = _stale(lib.chronobt_loops_version(), lib.chronobt_loops_source() or b"")
        if problem:
            logger.info(
                "the inversion runs its numba loops: the C library %s (pip install -e . rebuilds it)", problem
            )
            return None
        for name, argtypes in _SIGNATURES.items():
            function = getattr(lib, name)
            function.argtypes = argtypes
            function.restype = _I
    except (OSError, AttributeError, ImportError) as exc:
        logger.info("the inversion runs its numba loops: the C library did not load (%s)", exc)
        return None
    return lib


def _stale(version: int, source: bytes) -> str | None:
    """Why a library of ``version`` built from the source of sha256 ``source`` is not used, or ``None``."""
    if version != VERSION:
        return f"is of version {version}, this code calls version {VERSION}"
    beside = Path(__file__).with_name("_loops.c")
    if beside.is_file() and hashlib.sha256(beside.read_bytes()).hexdigest() != source.decode(
        errors="replace"
    ):
        return f"was built from another {beside.name} than the one beside it"
    return None


def function(name: str) -> Callable[..., Any] | None:
    """The loop ``name`` (``draw_steps``, ``order_statistics``, ``running_sum_statistics``), or ``None``
    without the library."""
    if library() is None:
        return None
    functions: dict[str, Callable[..., Any]] = {
        "draw_steps": draw_steps,
        "order_statistics": order_statistics,
        "running_sum_statistics": running_sum_statistics,
    }
    return functions[name]


def _lib() -> ctypes.CDLL:
    lib = library()
    if lib is None:
        raise RuntimeError("the C loops were not built: chronobt.augment.sampling falls back to numba")
    return lib


def _array(name: str, x: np.ndarray, dtype: type, ndim: int, writeable: bool = False) -> int:
    """``x``'s data pointer after checking it is a C-contiguous ``dtype`` array of ``ndim`` dimensions."""
    ok = (
        isinstance(x, np.ndarray)
        and x.dtype == dtype
        and x.ndim == ndim
        and x.flags.c_contiguous
        and x.flags.aligned
        and (x.flags.writeable or not writeable)
    )
    if not ok:
        raise ValueError(
            f"{name}: an aligned, C-contiguous {np.dtype(dtype).name} array of {ndim} dimensions expected"
        )
    return int(x.ctypes.data)


def _check_read(n: int, ranks: np.ndarray, stride: int, low: int, high: int, bins: int) -> None:
    if not 1 <= n <= MAX_PATHS or not 1 <= bins <= MAX_BINS or not 1 <= stride <= n:
        raise ValueError(f"1..{MAX_PATHS} paths, 1..{MAX_BINS} bins and a stride in 1..paths expected")
    pilot = len(range(0, n, stride))
    if not 0 <= low <= high < pilot:
        raise ValueError(f"pilot ranks {low}, {high} outside its {pilot} values")
    if ranks.size and (ranks.min() < 0 or ranks.max() >= n or (np.diff(ranks) < 0).any()):
        raise ValueError(f"ranks must ascend within 0..{n - 1}")


def _done(result: int, n_q: int = 0) -> int:
    if result == BAD_SEGMENT:
        raise ValueError(f"segments must lie in 0..{n_q - 2} for {n_q} quantiles")
    if result < 0:
        raise MemoryError("the inversion's loops could not allocate their work arrays")
    return result


def draw_steps(q: np.ndarray, seg: np.ndarray, frac: np.ndarray, out: np.ndarray) -> None:
    """:func:`chronobt.augment.kernels.draw_steps` in C."""
    pq = _array("q", q, np.float64, 3)
    pseg, pfrac = _array("seg", seg, np.int64, 2), _array("frac", frac, np.float64, 2)
    pout = _array("out", out, np.float64, 3, writeable=True)
    h, rows, n_q = q.shape
    n = seg.shape[1]
    if seg.shape != (h, n) or frac.shape != (h, n) or out.shape != (h, rows, n):
        raise ValueError("draw_steps: q [h, rows, Q], seg and frac [h, P], out [h, rows, P] expected")
    _done(_lib().chronobt_draw_steps(pq, h, rows, n_q, pseg, pfrac, n, pout), n_q)


def order_statistics(
    paths: np.ndarray,
    ranks: np.ndarray,
    stride: int,
    pilot_low: int,
    pilot_high: int,
    bins: int,
    out: np.ndarray,
) -> int:
    """:func:`chronobt.augment.kernels.order_statistics` in C."""
    pp, pr = _array("paths", paths, np.float64, 2), _array("ranks", ranks, np.int64, 1)
    pout = _array("out", out, np.float64, 2, writeable=True)
    rows, n = paths.shape
    if out.shape != (rows, ranks.size):
        raise ValueError(f"out must be [{rows}, {ranks.size}]")
    _check_read(n, ranks, stride, pilot_low, pilot_high, bins)
    lib = _lib()
    return _done(
        lib.chronobt_order_statistics(pp, rows, n, pr, ranks.size, stride, pilot_low, pilot_high, bins, pout)
    )


def running_sum_statistics(
    q: np.ndarray,
    seg: np.ndarray,
    frac: np.ndarray,
    first: np.ndarray,
    ranks: np.ndarray,
    stride: int,
    pilot_low: int,
    pilot_high: int,
    bins: int,
    sums: np.ndarray,
    out: np.ndarray,
) -> int:
    """:func:`chronobt.augment.kernels.running_sum_statistics` in C."""
    pq = _array("q", q, np.float64, 3)
    pseg, pfrac = _array("seg", seg, np.int64, 2), _array("frac", frac, np.float64, 2)
    pfirst, pr = _array("first", first, np.float64, 1), _array("ranks", ranks, np.int64, 1)
    psums = _array("sums", sums, np.float64, 2, writeable=True)
    pout = _array("out", out, np.float64, 3, writeable=True)
    h, rows, n_q = q.shape
    n = seg.shape[1]
    shapes_ok = (
        seg.shape == (h, n)
        and frac.shape == (h, n)
        and first.shape == (rows,)
        and sums.shape == (rows, n)
        and out.shape == (h, rows, ranks.size)
    )
    if not shapes_ok:
        raise ValueError(
            "running_sum_statistics: q [h, rows, Q], seg and frac [h, P], first [rows], sums [rows, P], "
            "out [h, rows, ranks] expected"
        )
    _check_read(n, ranks, stride, pilot_low, pilot_high, bins)
    plan = (stride, pilot_low, pilot_high, bins)
    lib = _lib()
    return _done(
        lib.chronobt_running_sum_statistics(
            pq, h, rows, n_q, pseg, pfrac, n, pfirst, pr, ranks.size, *plan, psums, pout
        ),
        n_q,
    )
