#!/usr/bin/env bash
# Every GPU check in one run, for a GPU machine (CI never has one); ``--device cpu`` rehearses the
# same steps at tiny sizes on any machine, so the one GPU run cannot fail on set-up.
#
#   benchmarks/gpu_checks.sh                # CUDA: gpu-marked tests + the full-size table
#   benchmarks/gpu_checks.sh --device cpu   # rehearsal (tiny model, aot_eager compile backend)
#
# The GPU machine (Python 3.12) has torch (CUDA), transformers, pandas, pyarrow, typer, rich, scipy,
# einops, accelerate, pytest, but neither chronos-forecasting nor exchange_calendars nor a package
# registry. The missing packages come as pure-python wheels in the checkout's ignored .whl/ folder
# (never committed), downloaded beforehand on a machine with a registry:
#
#   python3 -m pip download --no-deps -d .whl chronos-forecasting==2.3.2 einops==0.8.2
#   python3 -m pip download --no-deps -d .whl accelerate==1.15.0 psutil==7.2.2   # chronos' Requires-Dist
#   python3 -m pip download --no-deps -d .whl exchange_calendars==4.13.2 pyluach==2.3.0 \
#       korean_lunar_calendar==0.4.0 tzdata==2026.6                             # chronobt's calendars
#   python3 -m pip download --no-deps -d .whl pytest pluggy iniconfig            # for the gpu tests
#   python3 -m pip download --no-deps -d .whl peft==0.21.2                       # the LoRA row
#   python3 -m pip download --no-deps -d .whl --only-binary=:all: --python-version 3.12 \
#       --platform manylinux_2_28_x86_64 numba==0.68.1 llvmlite==0.50.0          # the host inversion
#
# (chronos-forecasting 2.3.2 requires accelerate, einops, numpy, pandas, torch, transformers; it imports
# einops, not accelerate. Every wheel is installed only when its module does not import. psutil's wheel
# is abi3, numba's and llvmlite's are CPython 3.12 builds, the others pure python.) About 65 MB in all
# (llvmlite 60 MB), inside the 64 MiB carry: name .whl in the run's carry.
# Carry .whl to the machine with the checkout. Only wheels whose module does not import are installed,
# with ``pip install --no-index --no-deps --target`` into a scratch folder put on PYTHONPATH after the
# checkout (chronobt is imported from the checkout, never installed).
#
# Prints the tests' summary and ONE markdown table (benchmarks/gpu_table.py; each row also goes to stderr
# as it is measured); writes gpu_table.json under the output folder: `--out DIR`, else $OUT (one of them
# is required, so nothing lands in the checkout). The table is capped at 500 s to fit one 600 s device
# call: run `benchmarks/gpu_checks.sh` with .whl carried and a 600 s limit.
# Usage: benchmarks/gpu_checks.sh [--device cuda|cpu] [--out DIR]
set -uo pipefail
device=cuda
out=${OUT:-}
while (( $# )); do
  case "$1" in
    --device) device=${2:?--device needs a value}; shift 2 ;;
    --out) out=${2:?--out needs a folder}; shift 2 ;;
    *) echo "usage: $0 [--device cuda|cpu] [--out DIR]" >&2; exit 2 ;;
  esac
done
if [[ -z "$out" ]]; then echo "give the output folder: --out DIR or OUT=DIR" >&2; exit 2; fi
out=$(mkdir -p "$out" && cd "$out" && pwd) || exit 2  # absolute: the script runs from the checkout
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1

site=$(mktemp -d)/site
wheels=()
for pair in chronos:chronos_forecasting einops:einops accelerate:accelerate psutil:psutil \
    exchange_calendars:exchange_calendars pyluach:pyluach korean_lunar_calendar:korean_lunar_calendar \
    tzdata:tzdata pytest:pytest pluggy:pluggy iniconfig:iniconfig peft:peft llvmlite:llvmlite numba:numba; do
  module=${pair%%:*} wheel=${pair##*:}
  if ! python3 -c "import $module" 2>/dev/null; then
    found=(.whl/"$wheel"-*.whl)
    if [[ -e "${found[0]}" ]]; then wheels+=("${found[0]}"); else echo "missing $module and no .whl/$wheel-*.whl" >&2; fi
  fi
done
if (( ${#wheels[@]} )); then
  echo "installing ${wheels[*]} into $site" >&2
  if ! python3 -m pip install --no-index --no-deps --quiet --target "$site" "${wheels[@]}"; then
    mkdir -p "$site"  # no pip: a pure-python wheel is a zip of importable files
    for w in "${wheels[@]}"; do python3 -m zipfile -e "$w" "$site"; done
  fi
fi
export PYTHONPATH=".:$site${PYTHONPATH:+:$PYTHONPATH}"
python3 -c "import chronobt, chronos, torch; print('chronobt', chronobt.__file__, 'chronos', chronos.__version__, 'torch', torch.__version__, 'cuda', torch.cuda.is_available())" || exit 1

if [[ "$device" == cuda* ]]; then
  python3 -m pytest -m gpu -q -p no:cacheprovider tests/test_gpu.py 2>&1 | tail -5
else
  python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py 2>&1 | tail -2  # skipped without CUDA
fi
timeout 500 python3 benchmarks/gpu_table.py --device "$device" --out "$out"
