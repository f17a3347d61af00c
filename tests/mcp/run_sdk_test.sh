#!/usr/bin/env bash
# tests/mcp/run_sdk_test.sh MACULA_BIN — the official TypeScript SDK client against
# `macula mcp-fixture` over stdio and Streamable HTTP. Installs the pinned SDK from the npm
# registry (package-lock.json) on first use. Exits non-zero on any mismatch.
set -eu
macula=$1
here=$(cd "$(dirname "$0")" && pwd)
command -v node >/dev/null || { echo "node is required" >&2; exit 1; }
"$here/npm_ci.sh"
cd "$here"
exec node sdk_client.mjs "$macula"
