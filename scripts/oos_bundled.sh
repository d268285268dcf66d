#!/usr/bin/env bash
# Out-of-sample check of the bundled chronos2-mini with `chronobt backtest` (issue 7's acceptance):
# hourly ETHUSDT and BTCUSDT from ../shared/data/ohlc, the latest 200 non-overlapping 24-bar windows,
# all after the training cutoff (2024-07-01), read in place. Prints close MASE / WQL / coverage vs naive.
set -euo pipefail
cd "$(dirname "$0")/.."
shared=${SHARED_DATA:-../shared/data/ohlc}
out=${OUT_DIR:-$(mktemp -d)}
mkdir -p "$out"
for sym in ETHUSDT BTCUSDT; do
    file="$shared/${sym}_1h__binance-spot_stitched.parquet"
    chronobt backtest "$file" --model bundled --preaug "${PREAUG:-none}" --horizon 24 --context 2048 \
        --windows 200 --start 2024-07-01 --output-dir "$out" --quiet --json > "$out/$sym.json"
done
python3 - "$out" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
print("| series | windows | first origin | close MASE | naive MASE | ratio | WQL | naive WQL | coverage 80% |")
print("|---|---|---|---|---|---|---|---|---|")
for sym in ("ETHUSDT", "BTCUSDT"):
    r = json.loads((out / f"{sym}.json").read_text())["results"][0]
    m, n = r["metrics"]["close"], r["baselines"]["naive"]["close"]
    first = json.loads((Path(r["folder"]) / "metrics.json").read_text())["first_origin"]
    print(f"| {sym} 1h | {r['windows']} | {first[:16]} | {m['mase']:.4f} | {n['mase']:.4f} | "
          f"{m['mase'] / n['mase']:.3f} | {m['wql']:.5f} | {n['wql']:.5f} | {m['coverage_80']:.3f} |")
PY
