#!/usr/bin/env bash
# Render the HTML page of `symjac derive softmax -n 5 --target html` to
# docs/softmax_n5_html.png with headless Chromium, networking off (the page must render
# its math on its own). Needs chromium. Run from anywhere:
#   bash docs/html_screenshot.sh [WIDTH,HEIGHT]      (default 1000,1600 pixels)
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-1000,1600}
chrome=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [[ -z "$chrome" ]]; then
    echo "html_screenshot.sh: chromium is not on PATH" >&2
    exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python -m symjac derive softmax -n 5 --target html -o "$work" >/dev/null
"$chrome" --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --host-resolver-rules="MAP * ~NOTFOUND" --proxy-server=http://127.0.0.1:9 \
    --disable-background-networking --no-first-run --user-data-dir="$work/profile" \
    --window-size="$size" --virtual-time-budget=5000 \
    --screenshot="$PWD/docs/softmax_n5_html.png" "file://$work/softmax_n5.html" \
    >/dev/null 2>&1
test -s docs/softmax_n5_html.png
echo "wrote docs/softmax_n5_html.png (softmax_n5.html at $size pixels)"
