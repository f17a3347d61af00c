#!/usr/bin/env bash
# bench/cpu_per_msg.sh BUILD_DIR NSUBS SIZE COUNT — CPU time per message through one node, the
# steadier measure on a shared machine (throughput moves with the host's load, CPU time much
# less). Starts a `macula node` with zero configuration, runs bench_pubsub's pub/sub workload
# through it (NSUBS subscribers, SIZE-byte payloads, COUNT messages, after a 20,000-message
# warm-up) and prints the node's utime+stime (1/100 s) over the measured part, the bench
# process's user and system seconds, and deliveries per second. Compare two trees by running
# it on each build directory in turn. The node runs with idle_poll_us 0 unless
# MACULA_IDLE_POLL_US is set: time spent polling for the next event is not work per message
# (it depends on how the load is spaced; /metrics shows it as macula_loop_poll_seconds_total).
set -euo pipefail
[ $# -eq 4 ] || { sed -n '2,8p' "$0"; exit 64; }
b=$(realpath "$1"); ns=$2; sz=$3; cnt=$4
d=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$d"' EXIT
mkdir -p "$d/home"
env HOME="$d/home" HEALTH_PORT=0 MACULA_HEALTH_ADDR=127.0.0.1 MACULA_QUIC_PORT=0 \
  MACULA_REALM=bench MACULA_IDLE_POLL_US="${MACULA_IDLE_POLL_US:-0}" \
  "$b/macula" node >"$d/out" 2>"$d/err" &
pid=$!
for _ in $(seq 1 200); do grep -q ready "$d/out" 2>/dev/null && break; sleep 0.05; done
port=$(sed -n 's#.*quic       udp 0.0.0.0:\([0-9]*\) .*#\1#p' "$d/out")
[ -n "$port" ] || { echo "node did not start:" >&2; cat "$d/err" >&2; exit 1; }
a="https://127.0.0.1:$port"
export BENCH_REALM=bench
"$b/bench_pubsub" pubsub macula "$a" "$a" "$ns" "$sz" 20000 5 >/dev/null
t0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
/usr/bin/time -f '%U %S' -o "$d/time" "$b/bench_pubsub" pubsub macula "$a" "$a" "$ns" "$sz" \
  "$cnt" 5 >"$d/res"
t1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
read -r bu bs <"$d/time"
echo "$ns x $sz B, $cnt messages: node_cpu_cs $((t1 - t0)) bench_user_s $bu bench_sys_s $bs" \
  "$(grep -E '^(deliveries_per_s|lost) ' "$d/res" | tr '\n' ' ')"
