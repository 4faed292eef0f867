#!/usr/bin/env bash
# Installs the pinned anvil binary and Uniswap and Balancer artifacts for the chain tests (idempotent).
# Usage: tests/chain/setup.sh        (from anywhere)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
anvil="$here/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"
marker="$here/node_modules/.package-lock.json"
if [ -x "$anvil" ] && [ -f "$marker" ] && [ "$marker" -nt "$here/package-lock.json" ]; then
  exit 0
fi
command -v npm >/dev/null || { echo "setup.sh: npm is required (apt-get install nodejs npm)" >&2; exit 1; }
npm ci --prefix "$here" --no-audit --no-fund >&2
[ -x "$anvil" ] || { echo "setup.sh: anvil missing at $anvil after npm ci" >&2; exit 1; }
"$anvil" --version | head -1 >&2
