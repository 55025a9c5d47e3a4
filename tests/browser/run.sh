#!/usr/bin/env bash
# Browser tests of the dashboard: Debian's Chromium driven by playwright-core (npm) against a real
# `task-mcp serve` on 127.0.0.1 and the real stdio server. One entry point for CI and people:
#   bash tests/browser/run.sh
# Installs what is missing (chromium, node/npm, the npm packages from package-lock.json), builds the
# binary unless TASK_MCP_BIN names one, and runs the tests with node's own runner. Exits non-zero on
# any failure. Screenshots and timings land in artifacts/browser/ (git-ignored).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# A binary named relative to where we were called from, before we move.
if [ -n "${TASK_MCP_BIN:-}" ]; then TASK_MCP_BIN="$(realpath "$TASK_MCP_BIN")"; export TASK_MCP_BIN; fi

sudo_if_needed() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_updated=0
apt_install() {
  if [ "$apt_updated" -eq 0 ]; then
    sudo_if_needed apt-get update -qq
    apt_updated=1
  fi
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

chromium_bin="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$chromium_bin" ]; then
  echo "browser tests: installing Debian's chromium" >&2
  apt_install chromium fonts-dejavu-core
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "browser tests: installing node and npm" >&2
  apt_install nodejs npm
fi
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$node_major" -lt 20 ]; then
  echo "browser tests: node >= 20.11 is needed (found $(node --version))" >&2
  exit 1
fi

cd "$here"
if [ ! -f node_modules/playwright-core/package.json ] \
  || ! node -e 'const l=require("./package-lock.json").packages["node_modules/playwright-core"].version; const i=require("./node_modules/playwright-core/package.json").version; process.exit(l===i?0:1)'; then
  echo "browser tests: npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error
fi

if [ -z "${TASK_MCP_BIN:-}" ]; then
  # The assets are embedded in the binary: build it so the tests see the current dashboard.
  (cd "$root" && cargo build --quiet --bin task-mcp)
  export TASK_MCP_BIN="$root/target/debug/task-mcp"
fi
export CHROMIUM="$chromium_bin"
export ARTIFACTS_DIR="${ARTIFACTS_DIR:-$root/artifacts/browser}"
mkdir -p "$ARTIFACTS_DIR"

exec node --test --test-reporter=spec ./*.test.mjs
