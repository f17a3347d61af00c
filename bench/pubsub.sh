#!/usr/bin/env bash
# bench/pubsub.sh — pub/sub and RPC through real `macula node` processes beside nats-server,
# redis-server and mosquitto on the same machine (issue 5), printed as markdown tables of
# absolute numbers and ratios. The workload is bench/bench_pubsub.c (its header says what each
# number is).
#
#   bench/pubsub.sh [BUILD_DIR]        (default build-rel; also BENCH_AREAS=pubsub bench/run.sh)
#
#   BENCH_PUBSUB_COUNT   messages per throughput cell (default 50000)
#   BENCH_PUBSUB_LAT     messages per latency cell, one in flight (default 1000)
#   BENCH_RPC_MS         measuring time per RPC cell (default 3000, after 1 s of warm-up)
#   BENCH_RPC_INFLIGHT   the "N in flight" of the RPC rows (default 32)
#   BENCH_RUNS           rounds (every system once per round); the median is printed (default 1)
#   BENCH_SYSTEMS        which columns to run (default "macula macula1 nats natss redis rediss
#                        mqtt mqtts"; ratios of columns not run print as –)
#   BENCH_CASES          pub/sub cells as NSUBS:SIZE (default "1:16 1:1024 10:16 10:1024")
#   BENCH_RPC_CELLS      0: no RPC cells (default 1)
#
# Servers, all on 127.0.0.1, on free ports asked from the kernel, started here and killed on
# any exit (trap): two macula nodes (realm bench; B bootstraps from A), nats-server plain and
# nats-server with TLS, one redis-server with a plain and a TLS port, one mosquitto with a
# plain and a TLS listener. TLS is 1.3 with a throw-away ed25519 certificate made with openssl
# (not verified by the client). A missing server is an error: `scripts/setup.sh bench`
# installs them (nats-server, redis-server, mosquitto, openssl).
#
# The macula nodes run with their defaults, so they poll up to idle_poll_us (200 µs) for the
# next event before sleeping (README, Configuration); nats-server's Go runtime spins before it
# parks as well, redis and mosquitto sleep in epoll_wait. BENCH_MACULA_ENV adds environment
# settings to every node (e.g. "MACULA_IDLE_POLL_US=0" to measure them sleeping).
#
# Columns: "macula" is publisher and subscribers (caller and provider) on node A; "macula
# 1 hop" has the subscribers (the provider) on node B: node A forwards to node B over the
# mesh (PUBSUB_ROUTE / RPC_ROUTE, found through the DHT). Ratios are macula (node A only) /
# peer: above 1 is better for macula in throughput rows, below 1 is better in latency rows.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$(realpath "${1:-$root/build-rel}")"
bin="$build/bench_pubsub"
macula="$build/macula"
count="${BENCH_PUBSUB_COUNT:-50000}"
latn="${BENCH_PUBSUB_LAT:-1000}"
rpcms="${BENCH_RPC_MS:-3000}"
inflight="${BENCH_RPC_INFLIGHT:-32}"
runs="${BENCH_RUNS:-1}"

for x in "$bin" "$macula"; do
  [[ -x "$x" ]] || { echo "bench/pubsub.sh: $x not built (run bench/run.sh or cmake --build)" >&2; exit 1; }
done
for c in nats-server redis-server mosquitto openssl python3 curl; do
  command -v "$c" >/dev/null || { echo "bench/pubsub.sh: $c is not installed (scripts/setup.sh bench)" >&2; exit 1; }
done

tmp="$(mktemp -d)"
spids=()
cleanup() {
  local p
  for p in "${spids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${spids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
# wait_tcp PORT: until something listens there (10 s)
wait_tcp() {
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "bench/pubsub.sh: nothing listens on port $1" >&2
  return 1
}

openssl req -x509 -newkey ed25519 -nodes -keyout "$tmp/key.pem" -out "$tmp/cert.pem" \
  -subj /CN=bench -days 1 2>/dev/null

# ---- peers
nport=$(free_port)
nats-server -a 127.0.0.1 -p "$nport" >"$tmp/nats.log" 2>&1 &
spids+=($!)
ntport=$(free_port)
cat >"$tmp/nats-tls.conf" <<EOF
listen: 127.0.0.1:$ntport
tls {
  cert_file: "$tmp/cert.pem"
  key_file: "$tmp/key.pem"
}
EOF
nats-server -c "$tmp/nats-tls.conf" >"$tmp/nats-tls.log" 2>&1 &
spids+=($!)
rport=$(free_port)
rtport=$(free_port)
redis-server --bind 127.0.0.1 --port "$rport" --tls-port "$rtport" --tls-cert-file "$tmp/cert.pem" \
  --tls-key-file "$tmp/key.pem" --tls-auth-clients no --tls-protocols TLSv1.3 \
  --save '' --appendonly no --dir "$tmp" >"$tmp/redis.log" 2>&1 &
spids+=($!)
mport=$(free_port)
mtport=$(free_port)
# set_tcp_nodelay: else Nagle delays small packets; `user`: mosquitto drops root for user
# mosquitto, who could not read the temporary key.
cat >"$tmp/mosquitto.conf" <<EOF
per_listener_settings false
allow_anonymous true
persistence false
log_type error
set_tcp_nodelay true
user $(id -un)
listener $mport 127.0.0.1
listener $mtport 127.0.0.1
certfile $tmp/cert.pem
keyfile $tmp/key.pem
tls_version tlsv1.3
EOF
mosquitto -c "$tmp/mosquitto.conf" >"$tmp/mosquitto.log" 2>&1 &
spids+=($!)
for p in "$nport" "$ntport" "$rport" "$rtport" "$mport" "$mtport"; do wait_tcp "$p"; done

# ---- macula nodes (the same environment as tests/integration/mesh_lib.sh)
unset MACULA_DATA_DIR XDG_DATA_HOME MACULA_CONFIG MACULA_REALM MACULA_CERT_PATH MACULA_KEY_PATH \
  MACULA_BOOTSTRAP_PEERS MACULA_BOOTSTRAP_URL MACULA_NODE MACULA_CHAOS
export BENCH_REALM=bench
declare -A qport hport
start_node() { # start_node NAME [BOOTSTRAP_URL [RPC_NO_DIRECT]]
  local n=$1 boot=${2:-} nodirect=${3:-} dir="$tmp/node-$1"
  mkdir -p "$dir/home"
  # shellcheck disable=SC2086 # BENCH_MACULA_ENV is a list of NAME=VALUE words
  env HOME="$dir/home" HEALTH_PORT=0 MACULA_HEALTH_ADDR=127.0.0.1 MACULA_QUIC_PORT=0 \
    MACULA_REALM=bench MACULA_BOOTSTRAP_PEERS="$boot" MACULA_RPC_NO_DIRECT="$nodirect" \
    ${BENCH_MACULA_ENV:-} "$macula" node >"$dir/out" 2>"$dir/err" &
  spids+=($!)
  for _ in $(seq 1 200); do
    hport[$n]=$(sed -n 's#.*health     http://127.0.0.1:\([0-9]*\)/health.*#\1#p' "$dir/out")
    qport[$n]=$(sed -n 's#.*quic       udp 0.0.0.0:\([0-9]*\) .*#\1#p' "$dir/out")
    [[ -n "${hport[$n]}" && -n "${qport[$n]}" ]] && grep -q ready "$dir/out" && return 0
    sleep 0.05
  done
  echo "bench/pubsub.sh: macula node $n did not start:" >&2
  cat "$dir/err" >&2
  return 1
}
start_node A
A="https://127.0.0.1:${qport[A]}"
start_node B "$A"
B="https://127.0.0.1:${qport[B]}"
for _ in $(seq 1 60); do
  curl -s "http://127.0.0.1:${hport[B]}/health" | grep -q '"state":"joined"' && break
  sleep 1
done
curl -s "http://127.0.0.1:${hport[B]}/health" | grep -q '"state":"joined"' ||
  { echo "bench/pubsub.sh: node B did not join node A" >&2; exit 1; }
# Node C (for "macula 2 hops"): joins through A and never sends RPC to B directly
# (rpc_no_direct), so a call from a client of C to a provider on B goes C → A → B and back.
bid=$(sed -n 's/.*node id    \([0-9a-f]\{64\}\).*/\1/p' "$tmp/node-B/out")
[[ -n "$bid" ]] || { echo "bench/pubsub.sh: node B's id not found in its banner" >&2; exit 1; }
start_node C "$A" "$bid"
C="https://127.0.0.1:${qport[C]}"
for _ in $(seq 1 60); do
  curl -s "http://127.0.0.1:${hport[C]}/health" | grep -q '"state":"joined"' && break
  sleep 1
done
curl -s "http://127.0.0.1:${hport[C]}/health" | grep -q '"state":"joined"' ||
  { echo "bench/pubsub.sh: node C did not join node A" >&2; exit 1; }
forwarded() { curl -s "http://127.0.0.1:${hport[A]}/metrics" | awk '$1 == "macula_rpc_routes_forwarded_total" { print $2 }'; }

# ---- cells
raw="$tmp/raw"
: >"$raw"
# sys SYS PUB SUB: addresses of system SYS for the publisher (caller) and subscribers (server)
addr() {
  case $1 in
    macula) echo "$A $A" ;;
    macula1) echo "$A $B" ;;
    macula2) echo "$C $B" ;;
    nats) echo "127.0.0.1:$nport 127.0.0.1:$nport" ;;
    natss) echo "127.0.0.1:$ntport 127.0.0.1:$ntport" ;;
    redis) echo "127.0.0.1:$rport 127.0.0.1:$rport" ;;
    rediss) echo "127.0.0.1:$rtport 127.0.0.1:$rtport" ;;
    mqtt) echo "127.0.0.1:$mport 127.0.0.1:$mport" ;;
    mqtts) echo "127.0.0.1:$mtport 127.0.0.1:$mtport" ;;
  esac
}
kind() { [[ $1 == macula[12] ]] && echo macula || echo "$1"; }
# cell KEY CMD...: runs CMD once, appends "KEY name value" lines to $tmp/all. The whole set
# of cells is run BENCH_RUNS times in rounds (every system once per round), so a slow period
# of a shared machine falls on every system alike rather than on one system's block of cells;
# the median over the rounds is printed.
cell() {
  local key=$1
  shift
  echo "pubsub: $key (round $((round + 1)) of $runs) ..." >&2
  if ! timeout 300 "$@" >"$tmp/cell" 2>"$tmp/cell.err"; then
    echo "bench/pubsub.sh: $key failed:" >&2
    cat "$tmp/cell.err" >&2
    exit 1
  fi
  awk -v key="$key" 'NF == 2 { print key, $1, $2 }' "$tmp/cell" >>"$tmp/all"
}

systems=(macula macula1 macula2 nats natss redis rediss mqtt mqtts)
read -r -a run_systems <<<"${BENCH_SYSTEMS:-${systems[*]}}"
cases=()
for c in ${BENCH_CASES:-1:16 1:1024 10:16 10:1024}; do cases+=("${c/:/ }"); done
: >"$tmp/all"
for ((round = 0; round < runs; round++)); do
  for s in "${run_systems[@]}"; do
    read -r pa sa <<<"$(addr "$s")"
    for c in "${cases[@]}"; do
      [[ $s == macula2 ]] && break # 2 hops: RPC only
      read -r ns sz <<<"$c"
      cell "ps.$s.$ns.$sz" "$bin" pubsub "$(kind "$s")" "$pa" "$sa" "$ns" "$sz" "$count" "$latn"
    done
    [[ "${BENCH_RPC_CELLS:-1}" == 0 ]] && continue
    for n in 1 "$inflight"; do
      cell "rpc.$s.$n" "$bin" rpc "$(kind "$s")" "$pa" "$sa" "$n" "$rpcms"
    done
  done
done
# the median of each KEY name over the rounds
sort -k1,1 -k2,2 -k3,3g "$tmp/all" | awk '
  { k = $1 " " $2; v[k, ++n[k]] = $3 }
  END { for (k in n) print k, v[k, int((n[k] + 1) / 2)] }' >>"$raw"

# ---- tables
v() { awk -v k="$1" -v m="$2" '$1 == k && $2 == m { print $3 }' "$raw"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "–"; else printf "%.2f\n", a / b }'; }
peers=(nats natss redis rediss mqtt mqtts)
head_abs="| macula | macula 1 hop | NATS | NATS TLS | redis | redis TLS | mosquitto | mosquitto TLS |"
head_rpc="| macula | macula 1 hop | macula 2 hops | NATS | NATS TLS | redis | redis TLS | mosquitto | mosquitto TLS |"
ps_systems=(macula macula1 nats natss redis rediss mqtt mqtts)
row_sys=("${ps_systems[@]}")
head_rat="macula / NATS | / NATS TLS | / redis | / redis TLS | / mosquitto | / mosquitto TLS |"
row() { # row LABEL KEYPREFIX KEYSUFFIX METRIC
  local label=$1 pre=$2 suf=$3 m=$4 line s mv
  line="| $label |"
  for s in "${row_sys[@]}"; do line+=" $(v "$pre.$s.$suf" "$m") |"; done
  mv=$(v "$pre.macula.$suf" "$m")
  for s in "${peers[@]}"; do line+=" $(ratio "$mv" "$(v "$pre.$s.$suf" "$m")") |"; done
  echo "$line"
}
sep="|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
echo
echo "Pub/sub, QoS 0, one publisher; throughput $count messages (window min(1000, 256 KiB / size) ahead of the slowest subscriber), latency $latn messages one in flight."
echo
echo "| messages delivered / s (higher is better) $head_abs $head_rat"
echo "$sep"
for c in "${cases[@]}"; do
  read -r ns sz <<<"$c"
  row "1 → $ns, $sz B" ps "$ns.$sz" deliveries_per_s
done
echo
echo "| latency p50 / p99 µs (lower is better) $head_abs $head_rat"
echo "$sep"
for c in "${cases[@]}"; do
  read -r ns sz <<<"$c"
  row "p50, 1 → $ns, $sz B" ps "$ns.$sz" lat_p50_us
  row "p99, 1 → $ns, $sz B" ps "$ns.$sz" lat_p99_us
done
echo
echo "RPC: echo of a 16-byte argument, ${rpcms} ms per cell after 1 s of warm-up (macula: advertise/call; NATS: request/reply; redis and mosquitto: a request topic and a reply topic)."
echo
echo "| RPC $head_rpc $head_rat"
echo "$sep---:|"
row_sys=("${systems[@]}")
for n in 1 "$inflight"; do
  row "calls/s, $n in flight (higher is better)" rpc "$n" calls_per_s
  row "p50 µs, $n in flight" rpc "$n" call_p50_us
  row "p99 µs, $n in flight" rpc "$n" call_p99_us
done
lost=$(awk '($2 == "lost" || $2 == "lat_lost" || $2 == "call_errors") && $3 != 0 { printf "%s %s=%s; ", $1, $2, $3 }' "$raw")
echo
echo "Messages lost / failed calls: ${lost:-none}."
echo "macula 2 hops: caller on node C, provider on node B, C started with rpc_no_direct = B, so every call goes C → A → B and back (RPC_ROUTE); node A forwarded $(forwarded) routes in all."

if [[ -n "${BENCH_PUBSUB_RAW:-}" ]]; then cp "$raw" "$BENCH_PUBSUB_RAW"; fi
