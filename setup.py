"""Builds the sample-path inversion's C loops (``chronobt/augment/_loops.c``); the rest is in pyproject.toml.

The extension is optional: where no C compiler works, the install goes on without it and the inversion
runs its numba loops instead (the same numbers; numba's import and load cost each process ~0.4 s).
Compiled without fast-math and without fused multiply-adds, so each float64 operation is the one the
numpy reference makes.
"""

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

#: Flags by compiler family: exact float64 arithmetic (no contraction, no fast-math); trapping math off
#: only lets comparisons vectorise (it changes no value).
_FLAGS = {
    "unix": ["-O3", "-fno-fast-math", "-ffp-contract=off", "-fno-trapping-math"],
    "msvc": ["/O2", "/fp:precise"],
}


class _ExactBuild(build_ext):
    def build_extensions(self) -> None:
        flags = _FLAGS.get(self.compiler.compiler_type, [])
        for extension in self.extensions:
            extension.extra_compile_args = [*flags, *extension.extra_compile_args]
        super().build_extensions()


setup(
    ext_modules=[Extension("chronobt.augment._loops", ["chronobt/augment/_loops.c"], optional=True)],
    cmdclass={"build_ext": _ExactBuild},
)
