#!/usr/bin/env bash
# Unattended chronobt: a weekly sweep (choose each symbol's pre-augmentation), hourly forecasts
# with that choice (--preaug auto) and, right after each forecast, the live track record that scores
# every archived forecast whose bars have arrived. Runs every symbol in $CHRONOBT_DATA_DIR (or
# $CHRONOBT_SYMBOLS; track: every symbol with a forecast archive).
#
# crontab -e (adjust the paths; cron's PATH is minimal, so give the full path of chronobt):
#
#   CHRONOBT_DATA_DIR=/srv/chronobt/data
#   CHRONOBT_OUTPUT_DIR=/srv/chronobt/results
#   CHRONOBT=/opt/chronobt/venv/bin/chronobt
#   # sweep every Sunday at 02:15
#   15 2 * * 0  /opt/chronobt/examples/cron/nightly.sh sweep    >> /var/log/chronobt-cron.log 2>&1
#   # forecast every hour at minute 5, after the hourly bar has closed; then track (scores the
#   # forecasts whose bars arrived, exit 4 = live significantly worse than the backtest: cron mails it)
#   5 * * * *   /opt/chronobt/examples/cron/nightly.sh forecast >> /var/log/chronobt-cron.log 2>&1; /opt/chronobt/examples/cron/nightly.sh track >> /var/log/chronobt-cron.log 2>&1
#
# Both jobs lock the output dir. A forecast that meets the running sweep waits up to
# $CHRONOBT_FORECAST_WAIT seconds, then gives up (exit 75) and the next hour's run catches up; that is
# logged as "skipped" and this script exits 0. Exit codes otherwise pass through:
# 0 ok, 1 error, 2 bad usage/config, 3 some symbols failed (the others were written), 4 (track) live
# forecasts drifted: significantly worse than their backtest (--fail-on-drift).
# Extra options: $CHRONOBT_SWEEP_ARGS / $CHRONOBT_FORECAST_ARGS / $CHRONOBT_TRACK_ARGS (e.g. "--horizon 24
# --model auto"; track: "--drift-alpha 0.01").
# grow_one_bar.py and simulate.sh beside this script replay a data file one bar per run.

set -u -o pipefail

mode="${1:-forecast}"
: "${CHRONOBT_DATA_DIR:?set CHRONOBT_DATA_DIR to the folder of <SYMBOL>.parquet files}"
: "${CHRONOBT_OUTPUT_DIR:?set CHRONOBT_OUTPUT_DIR to the results folder}"
export CHRONOBT_DATA_DIR CHRONOBT_OUTPUT_DIR
chronobt="${CHRONOBT:-chronobt}"
log_dir="${CHRONOBT_LOG_DIR:-$CHRONOBT_OUTPUT_DIR/logs}"
mkdir -p "$log_dir"
log_file="$log_dir/$mode-$(date -u +%Y%m%d).log"

stamp() { date -u +%Y-%m-%dT%H:%M:%SZ; }

symbols=()
if [[ -n "${CHRONOBT_SYMBOLS:-}" ]]; then
    read -r -a symbols <<< "$CHRONOBT_SYMBOLS"
elif [[ "$mode" != track ]]; then
    for file in "$CHRONOBT_DATA_DIR"/*.parquet; do
        [[ -e "$file" ]] || continue
        name="$(basename "$file" .parquet)"
        symbols+=("${name^^}")
    done
fi
if [[ ${#symbols[@]} -eq 0 && "$mode" != track ]]; then
    echo "$(stamp) chronobt $mode: no symbols in $CHRONOBT_DATA_DIR" >&2
    exit 2
fi

case "$mode" in
    sweep)
        # shellcheck disable=SC2086  # word splitting of the extra options is intended
        "$chronobt" sweep "${symbols[@]}" --quiet --log-file "$log_file" \
            --wait "${CHRONOBT_SWEEP_WAIT:-3600}" ${CHRONOBT_SWEEP_ARGS:-}
        rc=$?
        ;;
    forecast)
        # shellcheck disable=SC2086
        "$chronobt" forecast "${symbols[@]}" --preaug auto --quiet --log-file "$log_file" \
            --wait "${CHRONOBT_FORECAST_WAIT:-600}" ${CHRONOBT_FORECAST_ARGS:-}
        rc=$?
        ;;
    track)
        # shellcheck disable=SC2086
        "$chronobt" track ${symbols[@]+"${symbols[@]}"} --fail-on-drift --quiet --log-file "$log_file" \
            --wait "${CHRONOBT_TRACK_WAIT:-600}" ${CHRONOBT_TRACK_ARGS:-}
        rc=$?
        ;;
    *)
        echo "usage: $0 sweep|forecast|track" >&2
        exit 2
        ;;
esac

case "$rc" in
    0) ;;
    3) echo "$(stamp) chronobt $mode: some symbols failed, the others were written (see $log_file)" >&2 ;;
    4) echo "$(stamp) chronobt $mode: live forecasts significantly worse than their backtest (see $log_file)" >&2 ;;
    75)
        echo "$(stamp) chronobt $mode: skipped, another chronobt run holds $CHRONOBT_OUTPUT_DIR" >&2
        rc=0
        ;;
    *) echo "$(stamp) chronobt $mode: failed with exit code $rc (see $log_file)" >&2 ;;
esac
exit "$rc"
