# tests/integration/mesh_lib.sh — what the multi-node tests (dht, rpc, pubsub) share: the
# check counter, a clean environment, and starting node N in its own HOME on free ports.
# Sourced after the caller has set `macula` and `work`; MESH_TEST_CHAOS=1 starts nodes with
# MACULA_CHAOS=1 (the admin crash procedure); the array node_env holds more NAME=VALUE
# settings for the next start (e.g. node_env=(MACULA_RPC_NO_DIRECT=ID)).
passed=0
failed=0
check() { # check NAME CONDITION...
  local name=$1
  shift
  if "$@"; then passed=$((passed + 1)); echo "ok   $name"; else failed=$((failed + 1)); echo "FAIL $name"; fi
}
unset MACULA_DATA_DIR XDG_DATA_HOME MACULA_CONFIG MACULA_REALM MACULA_CERT_PATH MACULA_KEY_PATH \
  MACULA_BOOTSTRAP_PEERS MACULA_BOOTSTRAP_URL MACULA_NODE MACULA_CHAOS

declare -a qport hport
node_env=()
# start N REALM [BOOTSTRAP_URL]: node N in its own HOME; sets pids[N], qport[N] and hport[N].
start() {
  local n=$1 realm=$2 boot=${3:-}
  local dir="$work/n$n"
  local extra=()
  [ -n "${MESH_TEST_CHAOS:-}" ] && extra+=(MACULA_CHAOS=1)
  extra+=("${node_env[@]}")
  mkdir -p "$dir/home"
  env HOME="$dir/home" HEALTH_PORT=0 MACULA_HEALTH_ADDR=127.0.0.1 MACULA_QUIC_PORT=0 \
    MACULA_REALM="$realm" MACULA_BOOTSTRAP_PEERS="$boot" "${extra[@]}" \
    "$macula" node >"$dir/out" 2>"$dir/err" &
  pids[n]=$!
  for _ in $(seq 1 200); do
    hport[n]=$(sed -n 's#.*health     http://127.0.0.1:\([0-9]*\)/health.*#\1#p' "$dir/out")
    qport[n]=$(sed -n 's#.*quic       udp 0.0.0.0:\([0-9]*\) .*#\1#p' "$dir/out")
    [ -n "${hport[n]}" ] && [ -n "${qport[n]}" ] && grep -q "ready" "$dir/out" && return 0
    sleep 0.05
  done
  return 1
}
url() { echo "https://127.0.0.1:${qport[$1]}"; }
# node_id N: node N's id (64 hex digits), as it printed it at start
node_id() { sed -n 's#^  node id    \([0-9a-f]\{64\}\) .*#\1#p' "$work/n$1/out"; }
