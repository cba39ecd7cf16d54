#!/usr/bin/env bash
# The browser tests drive Debian's Chromium: Playwright's own browser download
# needs internet access this project cannot assume.
set -euo pipefail
CHROMIUM="${PY_AGENT_CHROMIUM:-/usr/bin/chromium}"
if [ -x "$CHROMIUM" ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "chromium: not found at $CHROMIUM, installing Debian's package"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  exit 0
fi
echo "chromium: not found at $CHROMIUM. Install it (Debian/Ubuntu: sudo apt-get install chromium)" >&2
echo "or point PY_AGENT_CHROMIUM at a Chromium binary." >&2
exit 1
