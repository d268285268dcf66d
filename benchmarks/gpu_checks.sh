#!/usr/bin/env bash
# Every GPU check in one run (for a lent GPU machine; CI never has one):
#   1. the gpu-marked tests (CUDA engine == CPU engine; compiled CUDA engine compiles once, no fallback)
#   2. benchmarks/engine_gpu.py on the full-size random Chronos-2 (512 windows, context 2048, horizon 24)
# Prints the tests' summary and the benchmark's markdown table; writes engine_gpu.json to $OUT (or .).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-.}
export PYTHONUNBUFFERED=1
python3 -m pytest -m gpu -q -p no:cacheprovider tests/test_gpu.py 2>&1 | tail -5
timeout 480 python3 benchmarks/engine_gpu.py --json-out "$out/engine_gpu.json"
