#!/usr/bin/env bash
# scripts/run-node.sh — installs what is missing, builds, and runs a node with zero
# configuration. Extra arguments go to `macula node`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target macula
exec ./build/macula node "$@"
