"""Builds the sample-path inversion's C loops (``chronobt/augment/_loops.c``); the rest is in pyproject.toml.

The extension is optional: where no C compiler works, the install goes on without it and the inversion
runs its numba loops instead (the same numbers; numba's import and load cost each process ~0.4 s).
Compiled without fast-math and without fused multiply-adds, so each float64 operation is the one the
numpy reference makes. The source's sha256 is built in: ``chronobt.augment.loops`` uses the library only
while the source beside it is the one it was built from.
"""

import hashlib
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

SOURCE = "chronobt/augment/_loops.c"
#: Flags by compiler: exact float64 arithmetic (no contraction, no fast-math); trapping math off only lets
#: comparisons vectorise (it changes no value). GCC-style for every compiler but MSVC (mingw32, cygwin).
_MSVC_FLAGS = ["/O2", "/fp:precise"]
_GCC_FLAGS = ["-O3", "-fno-fast-math", "-ffp-contract=off", "-fno-trapping-math"]


class _ExactBuild(build_ext):
    def build_extensions(self) -> None:
        flags = _MSVC_FLAGS if self.compiler.compiler_type == "msvc" else _GCC_FLAGS
        for extension in self.extensions:
            extension.extra_compile_args = [*flags, *extension.extra_compile_args]
        super().build_extensions()


_DIGEST = hashlib.sha256(Path(__file__).resolve().parent.joinpath(SOURCE).read_bytes()).hexdigest()

setup(
    ext_modules=[
        Extension(
            "chronobt.augment._loops",
            [SOURCE],
            define_macros=[("CHRONOBT_LOOPS_SOURCE", f'"{_DIGEST}"')],
            optional=True,
        )
    ],
    cmdclass={"build_ext": _ExactBuild},
)
