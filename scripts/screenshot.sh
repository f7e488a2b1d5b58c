#!/usr/bin/env bash
# Render built HTML pages to PNG with headless chromium (apt-get install -y chromium), to look at them.
# Usage: scripts/screenshot.sh PAGE.html OUT.png [HEIGHT]
set -euo pipefail
page=$(readlink -f "$1"); out=$2; height=${3:-4000}
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
  --disable-component-update --disable-sync --hide-scrollbars --user-data-dir="$(mktemp -d)" \
  --virtual-time-budget=8000 --screenshot="$out" --window-size=1280,"$height" "file://$page" 2>/dev/null
echo "$out"
