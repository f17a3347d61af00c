#!/usr/bin/env bash
# bench/mcp.sh [BUILD_DIR] — tools/call of a trivial tool (echo {text}) per second and
# p50/p99 latency, over Streamable HTTP and stdio: `macula mcp-fixture` against a server
# written with the official TypeScript SDK (tests/mcp/sdk_echo_server.mjs, McpServer) serving
# the same tool. Load from bench_mcp (C, closed loop). Prints a markdown table with ratios and
# the server's CPU time per request (all its threads).
#
# stdio rows: every round trip or batch costs pipe wake-ups, whose price depends on where the
# scheduler puts the two processes (in a VM a cross-CPU wake-up is an IPI through the
# hypervisor: tens of µs), so each load is measured pinned both ways (--pin 0:0, one CPU:
# local context switches; --pin 0:1, two CPUs: cross-CPU wake-ups) and unpinned (whichever
# the scheduler picks, run by run). "floor" is `bench_mcp echo-server` in the same setup: a C process that
# answers each line without parsing it, the most any server can do there.
# BENCH_SECONDS (default 3) per cell; BENCH_RUNS (default 3): the median run is kept.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$root/build-rel}"
if [[ ! -f "$build/CMakeCache.txt" ]]; then
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$build" -j2 --target macula bench_mcp >/dev/null
mcpdir="$root/tests/mcp"
[[ -d "$mcpdir/node_modules/@modelcontextprotocol/sdk" ]] || (cd "$mcpdir" && npm ci --no-audit --no-fund >/dev/null)
secs="${BENCH_SECONDS:-3}"
runs="${BENCH_RUNS:-3}"
macula="$build/macula"
bench="$build/bench_mcp"
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT

url=
start_http() { # start_http ERRFILE CMD... : sets url
  local err=$1
  shift
  "$@" >/dev/null 2>"$err" &
  pids+=($!)
  url=
  for _ in $(seq 1 200); do
    url=$(sed -n 's#^listening \(http://127.0.0.1:[0-9]*/mcp\)$#\1#p' "$err")
    [[ -n "$url" ]] && return
    sleep 0.05
  done
  echo "server did not start: $*" >&2
  exit 1
}

median() { # median RUN_LINES...: the line with the median rps
  printf '%s\n' "$@" | awk '{for(i=1;i<=NF;i++) if ($i ~ /^rps=/) {split($i,a,"="); print a[2], $0}}' |
    sort -n | awk '{l[NR]=$0} END {print l[int((NR+1)/2)]}' | cut -d' ' -f2-
}
val() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<"$2"; }

measure() { # measure ARGS...: the median of $runs runs
  local lines=()
  for _ in $(seq 1 "$runs"); do lines+=("$("$bench" "$@")"); done
  median "${lines[@]}"
}

tmp=$(mktemp -d)
start_http "$tmp/m.err" "$macula" mcp-fixture --http 0
murl=$url
start_http "$tmp/s.err" node "$mcpdir/sdk_echo_server.mjs" --http 0
surl=$url

echo "| transport | load | macula req/s | SDK req/s | ratio | floor req/s | p50 µs macula / SDK | p99 µs macula / SDK | server CPU µs/req macula / SDK |"
echo "|---|---|---|---|---|---|---|---|---|"
row() { # row LABEL LOAD MACULA_LINE SDK_LINE [FLOOR_LINE]
  local m=$3 s=$4 f=${5:-}
  awk -v t="$1" -v c="$2" -v mr="$(val rps "$m")" -v sr="$(val rps "$s")" -v m50="$(val p50_us "$m")" \
      -v s50="$(val p50_us "$s")" -v m99="$(val p99_us "$m")" -v s99="$(val p99_us "$s")" \
      -v mc="$(val server_cpu_us "$m")" -v sc="$(val server_cpu_us "$s")" -v fr="$(val rps "$f")" \
      'BEGIN { printf "| %s | %s | %.0f | %.0f | %.1f× | %s | %.1f / %.1f | %.1f / %.1f | %s / %s |\n",
               t, c, mr, sr, mr / sr, fr == "" ? "–" : sprintf("%.0f", fr), m50, s50, m99, s99,
               mc == "" ? "?" : mc, sc == "" ? "?" : sc }'
}
for c in 1 8; do
  m=$(measure http "$murl" --conns "$c" --seconds "$secs" --server-pid "${pids[0]}")
  s=$(measure http "$surl" --conns "$c" --seconds "$secs" --server-pid "${pids[1]}")
  row "Streamable HTTP" "$c conn" "$m" "$s"
done
stdio_row() { # stdio_row LOAD WINDOW [--pin C:S]
  local label=$1 w=$2
  shift 2
  m=$(measure stdio --window "$w" --seconds "$secs" "$@" -- "$macula" mcp-fixture)
  s=$(measure stdio --window "$w" --seconds "$secs" "$@" -- node "$mcpdir/sdk_echo_server.mjs")
  f=$(measure stdio --window "$w" --seconds "$secs" "$@" -- "$bench" echo-server)
  row "stdio" "$label" "$m" "$s" "$f"
}
for w in 1 16; do
  stdio_row "$w in flight, one CPU" "$w" --pin 0:0
  stdio_row "$w in flight, two CPUs" "$w" --pin 0:1
  stdio_row "$w in flight, unpinned" "$w"
done
rm -rf "$tmp"
