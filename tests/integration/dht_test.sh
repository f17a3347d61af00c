#!/usr/bin/env bash
# tests/integration/dht_test.sh MACULA — the DHT across real `macula node` processes on
# 127.0.0.1 (issue 4): six nodes bootstrapped in a chain (node i knows only node i-1's URL);
# a value put at node 1 is found from node 6; node 3 is killed (kill -9) and lookups still
# succeed, new puts too; a node of another realm on the same machine, given node 1 as its
# bootstrap peer, is refused there, keeps retrying (reported in /health) and finds nothing.
# Every node has a private HOME/data dir and free ports (port 0, read back from the banner).
# No timing assertions: waits are bounded polls.
set -u
macula=$(realpath "$1")
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
# shellcheck source=tests/integration/mesh_lib.sh
. "$(dirname "$0")/mesh_lib.sh"
health() { curl -s "http://127.0.0.1:${hport[$1]}/health"; }
metrics() { curl -s "http://127.0.0.1:${hport[$1]}/metrics"; }
contacts() { metrics "$1" | sed -n 's/^macula_dht_contacts \([0-9]*\)$/\1/p'; }
# dht N REALM ARGS...: the CLI against node N
dht() {
  local n=$1 realm=$2
  shift 2
  "$macula" dht "$@" --node "$(url "$n")" --realm "$realm" --timeout 60
}
# poll TRIES CMD...: runs CMD until it succeeds, at most TRIES times, a second apart
poll() {
  local tries=$1
  shift
  for _ in $(seq 1 "$tries"); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 1
  done
  return 1
}
joined() { health "$1" | grep -q '"state":"joined"'; }
has_contacts() { local c; c=$(contacts "$1"); [ -n "$c" ] && [ "$c" -ge "$2" ]; }
found() { # found N REALM KEY VALUE
  dht "$1" "$2" get "$3" >"$work/get.out" 2>"$work/get.err" && grep -qx "$4" "$work/get.out"
}

R=dht.test
check "node 1 starts (no bootstrap peers: a new mesh)" start 1 $R
check "...its /health says first node" poll 20 bash -c "curl -s http://127.0.0.1:${hport[1]}/health | grep -q '\"first_node\":true'"
for n in 2 3 4 5 6; do
  check "node $n starts with node $((n - 1)) as its only bootstrap peer" start $n $R "$(url $((n - 1)))"
done
for n in 2 3 4 5 6; do
  check "node $n joined through node $((n - 1))" poll 60 joined $n
done
# Each node looked itself up and refreshed its buckets: it knows nodes beyond its bootstrap peer.
check "node 6 learned more than its bootstrap peer" poll 60 has_contacts 6 3
check "node 1 learned of nodes that joined after it" poll 60 has_contacts 1 3
check "node 6's /health counts its mesh peers" \
  bash -c "curl -s http://127.0.0.1:${hport[6]}/health | grep -Eq '\"peers\":[1-9]'"

dht 1 $R put greeting "hello from node 1" >"$work/put.out" 2>&1
check "put at node 1" test $? -eq 0
check "...stored on several nodes" grep -Eq "stored greeting on ([2-9]|[1-9][0-9]) nodes" "$work/put.out"
check "get from node 6 finds the value" poll 30 found 6 $R greeting "hello from node 1"
dht 6 $R peers >"$work/peers.out" 2>&1
check "dht peers on node 6 lists contacts" grep -Eq "^[0-9a-f]{64} 127.0.0.1:[0-9]+$" "$work/peers.out"
dht 6 $R get no-such-key >/dev/null 2>"$work/nf.err"
check "a key nobody put: not found, exit 1" test $? -eq 1
check "...said so" grep -q "not found" "$work/nf.err"

kill -9 "${pids[3]}"
check "after node 3 is killed, node 6 still finds the value" poll 30 found 6 $R greeting "hello from node 1"
check "...and node 1 does too" poll 30 found 1 $R greeting "hello from node 1"
dht 2 $R put after-kill "put at node 2 after node 3 died" >"$work/put2.out" 2>&1
check "a put at node 2 after the kill" test $? -eq 0
check "...is found from node 6" poll 30 found 6 $R after-kill "put at node 2 after node 3 died"
check "...and from node 5" poll 30 found 5 $R after-kill "put at node 2 after node 3 died"

# Another realm on the same machine: its bootstrap peer (node 1) refuses its CONNECT.
check "node 7 (realm other.realm) starts, node 1 as its bootstrap peer" start 7 other.realm "$(url 1)"
check "...node 1 is reported unreachable in its /health" \
  poll 30 bash -c "curl -s http://127.0.0.1:${hport[7]}/health | grep -q '\"state\":\"unreachable\"'"
check "...with the refusal" bash -c "curl -s http://127.0.0.1:${hport[7]}/health | grep -q 'realm_mismatch'"
check "...and logged, not fatal" grep -q "bootstrap peer $(url 1) unreachable" "$work/n7/err"
check "...the node runs on" kill -0 "${pids[7]}"
dht 7 other.realm get greeting >/dev/null 2>"$work/other.err"
check "the other realm finds nothing under the same key" test $? -eq 1
dht 7 $R get greeting >/dev/null 2>"$work/other2.err"
check "...and node 7 refuses a client of realm $R" grep -q "realm_mismatch" "$work/other2.err"
dht 6 other.realm get greeting >/dev/null 2>&1
check "...node 6 refuses a client of the other realm" test $? -eq 1

check "/metrics counts the DHT queries node 1 answered" \
  bash -c "curl -s http://127.0.0.1:${hport[1]}/metrics | grep -Eq '^macula_bootstrap_queries_total\{type=\"find_node\"\} [1-9]'"
check "/metrics shows the mesh pool" \
  bash -c "curl -s http://127.0.0.1:${hport[1]}/metrics | grep -Eq '^macula_mesh_pool_ready [1-9]'"
if command -v promtool >/dev/null; then
  metrics 1 >"$work/metrics"
  check "promtool accepts /metrics" promtool check metrics <"$work/metrics"
fi

for n in 1 2 4 5 6 7; do kill -TERM "${pids[n]}" 2>/dev/null; done
for n in 1 2 4 5 6 7; do
  wait "${pids[n]}"
  check "node $n stops cleanly" test $? -eq 0
done
pids=()
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
