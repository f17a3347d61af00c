#!/usr/bin/env bash
# scripts/tidy.sh BUILD_DIR — clang-tidy over the project's sources (checks in .clang-tidy).
set -uo pipefail
cd "$(dirname "$0")/.."
db=${1:-build}
files=$(git ls-files 'src/*.c')
# Run two at a time; print only diagnostics; fail on any.
out=$(echo "$files" | xargs -P "$(nproc)" -n 4 clang-tidy -p "$db" --quiet 2>/dev/null)
if echo "$out" | grep -qE "(warning|error):"; then
  echo "$out" | grep -E -A3 "(warning|error):"
  exit 1
fi
exit 0
