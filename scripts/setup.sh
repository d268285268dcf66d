#!/usr/bin/env bash
# One-step set-up: installs chronobt (editable) with its dev tools into the active Python.
#
# torch: if none is installed yet we install the pinned release first (TORCH_SPEC, default
# torch==2.13.0). On machines with a local CPU wheel index that resolves to the CPU build in
# seconds; on a normal Linux box it is PyPI's CUDA build, which is what GPU users want. An
# already-installed torch (CPU, CUDA or ROCm) is never replaced.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c "import torch" >/dev/null 2>&1; then
    "$PY" -m pip install --disable-pip-version-check "${TORCH_SPEC:-torch==2.13.0}"
fi
"$PY" -m pip install --disable-pip-version-check -e ".[dev]"
