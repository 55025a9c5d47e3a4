#!/usr/bin/env bash
# The official MCP conformance runner (@modelcontextprotocol/conformance, pinned in package-lock.json
# with the Node 22 it needs, both from npm) against a real zero-config `serve`'s /mcp, through a
# loopback proxy that adds an API key. Scenarios this server fails on purpose are listed, each with its
# reason, in expected-failures.yml; any other failure, or a listed scenario that passes, fails the run.
#   bash tests/conformance/run.sh        (TASK_MCP_BIN names a built binary; else it is built)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
echo "== MCP conformance (the official runner against /mcp)"
# A binary named relative to where we were called from, before we move.
if [ -n "${TASK_MCP_BIN:-}" ]; then TASK_MCP_BIN="$(realpath "$TASK_MCP_BIN")"; fi

if ! command -v npm >/dev/null; then
  echo "conformance: installing node and npm" >&2
  if [ "$(id -u)" -eq 0 ]; then apt-get update -qq; else sudo apt-get update -qq; fi
  if [ "$(id -u)" -eq 0 ]; then apt-get install -y -qq nodejs npm >/dev/null; else sudo apt-get install -y -qq nodejs npm >/dev/null; fi
fi
cd "$here"
if [ ! -x node_modules/node/bin/node ] || [ ! -f node_modules/@modelcontextprotocol/conformance/package.json ] \
  || ! cmp -s package-lock.json node_modules/.package-lock.json.copy 2>/dev/null; then
  echo "conformance: npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json node_modules/.package-lock.json.copy
fi
# The runner and the proxy run on the pinned Node 22, whatever node the machine has.
export PATH="$here/node_modules/node/bin:$PATH"

bin="${TASK_MCP_BIN:-}"
if [ -z "$bin" ]; then
  (cd "$root" && cargo build --quiet --locked --bin task-mcp)
  bin="$root/target/debug/task-mcp"
fi

work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# Zero configuration: the embedded store in a data directory of its own, no Redis.
export TASK_MCP_DATA_DIR="$work/data" DATABASE_URL="sqlite://$work/data/tasks.db"
unset REDIS_URL CORS_ORIGINS ALLOWED_HOSTS PUBLIC_URL JWT_SECRET
mkdir -p "$work/data"
"$bin" serve --host 127.0.0.1 --port 0 2>"$work/serve.log" &
pids+=($!)
base=""
for _ in $(seq 300); do
  base=$(grep -o 'serving on http://[^ ]*' "$work/serve.log" | head -1 | sed 's/serving on //') || true
  [ -n "$base" ] && break
  kill -0 "${pids[0]}" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$base" ]; then
  echo "conformance: serve did not start" >&2
  cat "$work/serve.log" >&2
  exit 1
fi
key=$("$bin" api-key create --user conformance@example.com --name conformance 2>/dev/null | tail -n 1)

TARGET="$base" AUTHORIZATION="Bearer $key" node proxy.mjs >"$work/proxy.url" &
pids+=($!)
proxy=""
for _ in $(seq 100); do
  proxy=$(head -n 1 "$work/proxy.url")
  [ -n "$proxy" ] && break
  sleep 0.1
done
[ -n "$proxy" ] || { echo "conformance: the proxy did not start" >&2; exit 1; }

status=0
(cd "$work" && "$here/node_modules/.bin/conformance" server --url "$proxy/mcp" \
  --expected-failures "$here/expected-failures.yml") >"$work/runner.log" 2>&1 || status=$?
grep -E '^(✓|✗|Total)|regression|stale|expected' "$work/runner.log" || true
if [ "$status" -ne 0 ]; then
  echo "conformance: the runner failed (exit $status); its output:" >&2
  tail -n 80 "$work/runner.log" >&2
  echo "the server's log:" >&2
  tail -n 30 "$work/serve.log" >&2
fi
exit "$status"
