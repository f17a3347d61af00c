#!/usr/bin/env bash
# bench/instr.sh BUILD_DIR [BASE_BUILD_DIR] — instructions per unit of work, counted by
# valgrind's callgrind: the measure that does not move with a shared machine's load, so a
# change of a few percent shows. For each build directory it prints:
#   node_per_rpc_leg     the node's instructions per RPC leg (one packet in, one out), an echo
#                        call with one call in flight through a `macula node`;
#   client_per_rpc_call  the bench process's (caller + provider) instructions per call, start-up
#                        and the final statistics left out;
#   node_per_msg_16B     the node's instructions per message, pub/sub 1 -> 1 with 16-byte
#                        payloads, QoS 0;
#   node_per_msg_1KiB_x10 the node's instructions per published message, 1 -> 10 with 1 KiB.
# Under valgrind everything runs ~50x slower, so batches are smaller than in a real run: read the
# numbers as work per unit, compared between builds, not as a rate. Needs valgrind
# (scripts/setup.sh bench). Takes about 4 minutes per build. The node runs with idle_poll_us 0:
# polling for the next event executes instructions that are not work per message.
set -euo pipefail
[ $# -ge 1 ] || { sed -n '2,14p' "$0"; exit 64; }
command -v valgrind >/dev/null || { echo "valgrind is missing: scripts/setup.sh bench" >&2; exit 1; }
export BENCH_REALM=bench

# node_up BUILD DIR [valgrind args...]: starts a node (under valgrind when args are given),
# sets $pid and $url
node_up() {
  local b=$1 d=$2
  shift 2
  mkdir -p "$d/home"
  env HOME="$d/home" HEALTH_PORT=0 MACULA_HEALTH_ADDR=127.0.0.1 MACULA_QUIC_PORT=0 \
    MACULA_REALM=bench MACULA_IDLE_POLL_US=0 "$@" "$b/macula" node >"$d/out" 2>"$d/err" &
  pid=$!
  for _ in $(seq 1 600); do grep -q ready "$d/out" 2>/dev/null && break; sleep 0.1; done
  local port
  port=$(sed -n 's#.*quic       udp 0.0.0.0:\([0-9]*\) .*#\1#p' "$d/out")
  [ -n "$port" ] || { echo "node did not start:" >&2; cat "$d/err" >&2; exit 1; }
  url="https://127.0.0.1:$port"
}

node_down() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

total() { callgrind_annotate "$1" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}'; }
# calls FILE FUNCTION: how often FUNCTION was called (the call sites in the annotated sources)
calls() {
  callgrind_annotate --auto=yes --threshold=100 "$1" 2>/dev/null |
    grep -E "=> .*:$2 \([0-9,]+x\)" | grep -o "([0-9,]*x)" | tr -d '(),x' |
    awk '{s += $1} END {print s + 0}'
}

measure() {
  local b w
  b=$(realpath "$1")
  w=$(mktemp -d)
  local d
  # RPC: the node
  d=$(mktemp -d)
  node_up "$b" "$d" valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$w/rpc"
  "$b/bench_pubsub" rpc macula "$url" "$url" 1 2000 >/dev/null
  callgrind_control -z "$pid" >/dev/null 2>&1
  callgrind_control -i on "$pid" >/dev/null 2>&1
  "$b/bench_pubsub" rpc macula "$url" "$url" 1 6000 >/dev/null
  callgrind_control -d "$pid" >/dev/null 2>&1
  sleep 1
  node_down
  rm -rf "$d"
  local t n
  t=$(total "$w/rpc.1")
  n=$(calls "$w/rpc.1" "ngtcp2_conn_read_pkt_versioned")
  echo "node_per_rpc_leg $((t / n))"
  # RPC: the client (caller and provider), the node running natively
  d=$(mktemp -d)
  node_up "$b" "$d"
  valgrind --tool=callgrind --callgrind-out-file="$w/cli" \
    "$b/bench_pubsub" rpc macula "$url" "$url" 1 6000 >/dev/null 2>&1
  node_down
  rm -rf "$d"
  t=$(total "$w/cli")
  local skip
  skip=$(callgrind_annotate --inclusive=yes "$w/cli" 2>/dev/null |
    grep -E "msort_with_tmp.part.0 |identity_load_or_create|gnutls_handshake \[" |
    awk '{gsub(",", "", $1); s += $1} END {print s + 0}')
  n=$(calls "$w/cli" "mc_done")
  echo "client_per_rpc_call $(((t - skip) / n))"
  # pub/sub through the node
  for c in "1 16 50000 node_per_msg_16B" "10 1024 10000 node_per_msg_1KiB_x10"; do
    set -- $c
    d=$(mktemp -d)
    node_up "$b" "$d" valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$w/ps"
    "$b/bench_pubsub" pubsub macula "$url" "$url" "$1" "$2" 2000 5 >/dev/null
    callgrind_control -z "$pid" >/dev/null 2>&1
    callgrind_control -i on "$pid" >/dev/null 2>&1
    "$b/bench_pubsub" pubsub macula "$url" "$url" "$1" "$2" "$3" 5 >/dev/null
    callgrind_control -d "$pid" >/dev/null 2>&1
    sleep 1
    node_down
    rm -rf "$d"
    t=$(total "$w/ps.1")
    echo "$4 $((t / $3))"
    rm -f "$w"/ps*
  done
  rm -rf "$w"
}

for b in "$@"; do
  echo "== $b"
  measure "$b"
done
