#!/usr/bin/env bash
# tests/mcp/npm_ci.sh — installs the pinned packages of tests/mcp (package-lock.json) unless
# they are already complete. The MCP tests call it first; ctest runs them in parallel, so it
# holds a lock: one `npm ci` at a time, and no test reads node_modules while another one is
# rebuilding it. A finished install leaves a stamp that names the lockfile's checksum.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
command -v npm >/dev/null || { echo "npm is required" >&2; exit 1; }
exec 9>"$here/.npm.lock"
flock 9
sum=$(sha256sum "$here/package-lock.json" | cut -d' ' -f1)
stamp="$here/node_modules/.macula-stamp"
if [ "$(cat "$stamp" 2>/dev/null)" != "$sum" ]; then
  (cd "$here" && npm ci --no-audit --no-fund >/dev/null)
  echo "$sum" >"$stamp"
fi
