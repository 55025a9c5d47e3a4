#!/usr/bin/env bash
# The VS Code extension's checks, for CI and people: install the pinned npm packages when missing, compile
# with tsc, package the .vsix with vsce, then run the tests with node's own runner against the built
# task-mcp binary: every test on an embedded SQLite store, and the server-facing tests again on PostgreSQL +
# Redis when EXT_TEST_POSTGRES (an admin URL, e.g. postgres://postgres@127.0.0.1:5432/postgres) and
# EXT_TEST_REDIS (e.g. redis://127.0.0.1:6379) are set. Builds the binary unless TASK_MCP_BIN names one.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
if [ -n "${TASK_MCP_BIN:-}" ]; then TASK_MCP_BIN="$(realpath "$TASK_MCP_BIN")"; export TASK_MCP_BIN; fi

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "vscode extension: node and npm are needed (Node 20 or newer)" >&2
  exit 1
fi
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$node_major" -lt 20 ]; then
  echo "vscode extension: node >= 20 is needed (found $(node --version))" >&2
  exit 1
fi

cd "$here"
# Reinstall when a pinned package is missing or at another version than package-lock.json says.
if ! node -e '
  const lock = require("./package-lock.json").packages;
  for (const name of ["typescript", "@vscode/vsce", "@types/vscode", "@types/node"]) {
    const installed = require(`./node_modules/${name}/package.json`).version;
    if (installed !== lock[`node_modules/${name}`].version) process.exit(1);
  }' 2>/dev/null; then
  echo "vscode extension: npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error
fi

if [ -z "${TASK_MCP_BIN:-}" ]; then
  (cd "$root" && cargo build --quiet --bin task-mcp)
  export TASK_MCP_BIN="$root/target/debug/task-mcp"
fi

echo "vscode extension: tsc" >&2
rm -rf out task-mcp-vscode.vsix
npx tsc -p .
echo "vscode extension: vsce package" >&2
npx vsce package --no-dependencies --allow-missing-repository --skip-license --no-rewrite-relative-links --out task-mcp-vscode.vsix >/dev/null
export VSIX="$here/task-mcp-vscode.vsix"

postgres="${EXT_TEST_POSTGRES:-}"
redis="${EXT_TEST_REDIS:-}"
unset EXT_TEST_POSTGRES EXT_TEST_REDIS
echo "vscode extension: tests (sqlite)" >&2
node --test --test-concurrency=1 --test-timeout=120000 test/unit.test.mjs test/core.test.mjs test/extension.test.mjs
if [ -n "$postgres" ] && [ -n "$redis" ]; then
  echo "vscode extension: tests (postgres + redis)" >&2
  EXT_TEST_POSTGRES="$postgres" EXT_TEST_REDIS="$redis" \
    node --test --test-concurrency=1 --test-timeout=120000 --test-name-pattern='against serve|end to end' \
    test/core.test.mjs test/extension.test.mjs
fi
