#!/usr/bin/env bash
# Cron, fast-forwarded: replay SOURCE.parquet one bar per "hour" into $CHRONOBT_DATA_DIR, then run the
# hourly forecast and the track record after it, exactly as the crontab line in nightly.sh does.
#
#   CHRONOBT_DATA_DIR=/tmp/live CHRONOBT_OUTPUT_DIR=/tmp/results \
#   CHRONOBT_FORECAST_ARGS="--preaug differencing --horizon 24" \
#       examples/cron/simulate.sh data/BTCUSD.parquet 48
#
# Then: `chronobt report $CHRONOBT_OUTPUT_DIR/track` draws the live record. The symbol is SOURCE's file
# name; the first run starts the live file with $GROW_START bars (default 300).

set -u -o pipefail

source_file="${1:?usage: $0 SOURCE.parquet [RUNS]}"
runs="${2:-24}"
: "${CHRONOBT_DATA_DIR:?set CHRONOBT_DATA_DIR to the folder the live file grows in}"
: "${CHRONOBT_OUTPUT_DIR:?set CHRONOBT_OUTPUT_DIR to the results folder}"
here="$(cd "$(dirname "$0")" && pwd)"
python="${PYTHON:-python3}"
symbol="$(basename "$source_file" .parquet)"
export CHRONOBT_SYMBOLS="${CHRONOBT_SYMBOLS:-${symbol^^}}"
# nightly.sh's forecast mode asks for the sweep's choice; without a sweep, name one here
export CHRONOBT_FORECAST_ARGS="${CHRONOBT_FORECAST_ARGS:---preaug none}"

for ((run = 1; run <= runs; run++)); do
    "$python" "$here/grow_one_bar.py" "$source_file" "$CHRONOBT_DATA_DIR/${symbol^^}.parquet" \
        --start "${GROW_START:-300}" > /dev/null || exit 1
    "$here/nightly.sh" forecast || exit $?
    "$here/nightly.sh" track
    rc=$?
    [[ $rc -eq 0 || $rc -eq 4 ]] || exit "$rc"
done
echo "$runs runs: see $CHRONOBT_OUTPUT_DIR/track/${symbol^^}/"
