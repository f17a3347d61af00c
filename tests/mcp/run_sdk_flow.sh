#!/usr/bin/env bash
# tests/mcp/run_sdk_flow.sh MACULA_BIN — the official TypeScript SDK client against the flow
# tools over stdio (`macula flow mcp`) and Streamable HTTP (`macula flow serve`). Installs the
# pinned packages from the npm registry (package-lock.json) on first use.
set -eu
macula=$1
here=$(cd "$(dirname "$0")" && pwd)
command -v node >/dev/null || { echo "node is required" >&2; exit 1; }
"$here/npm_ci.sh"
cd "$here"
exec node sdk_flow.mjs "$macula"
