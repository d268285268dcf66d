#!/usr/bin/env bash
# Render a chronobt HTML report to a PNG with headless Chromium (no network needed: the report is
# self-contained).
#
#   scripts/screenshot_report.sh REPORT.html OUT.png [WIDTHxHEIGHT] [RESIZE_WIDTH]
#
# WIDTHxHEIGHT is the browser window (default 1400x3000, the screenshot's size); RESIZE_WIDTH (default
# 1000) scales the PNG down and reduces it to 256 colours with ImageMagick's `convert` when it is
# installed, to keep the file small. Needs `chromium` (Debian: apt-get install -y chromium).
set -euo pipefail

if [[ $# -lt 2 || $# -gt 4 ]]; then
    echo "usage: $0 REPORT.html OUT.png [WIDTHxHEIGHT] [RESIZE_WIDTH]" >&2
    exit 2
fi
report=$1
out=$2
size=${3:-1400x3000}
resize=${4:-1000}
if [[ ! -f "$report" ]]; then
    echo "error: $report: no such file" >&2
    exit 2
fi
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [[ -z "$browser" ]]; then
    echo "error: no chromium found; install it (Debian: apt-get update && apt-get install -y chromium)" >&2
    exit 1
fi
url="file://$(cd "$(dirname "$report")" && pwd)/$(basename "$report")"
out_abs="$(cd "$(dirname "$out")" && pwd)/$(basename "$out")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$browser" --headless --disable-gpu --no-sandbox --hide-scrollbars --user-data-dir="$tmp/profile" \
    --window-size="${size/x/,}" --screenshot="$tmp/shot.png" "$url" >"$tmp/log" 2>&1 || {
    cat "$tmp/log" >&2
    exit 1
}
if [[ ! -s "$tmp/shot.png" ]]; then
    cat "$tmp/log" >&2
    echo "error: chromium wrote no screenshot" >&2
    exit 1
fi
if [[ "$resize" != 0 ]] && convert -version 2>/dev/null | grep -q ImageMagick; then
    convert "$tmp/shot.png" -resize "${resize}x>" -colors 256 -strip "PNG8:$out_abs"
else
    [[ "$resize" != 0 ]] && echo "warning: ImageMagick's convert not found; PNG left at full size" >&2
    cp "$tmp/shot.png" "$out_abs"
fi
echo "$out_abs"
