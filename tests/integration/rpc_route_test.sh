#!/usr/bin/env bash
# tests/integration/rpc_route_test.sh MACULA — a 2-hop RPC on real `macula node` processes
# (issue 5, docs/rpc.md "Sending an RPC_ROUTE"): node 1 is the middle, node 2 the provider,
# node 3 the caller, started with MACULA_RPC_NO_DIRECT=<node 2's id> (the rpc_no_direct
# setting), so it may not send RPC traffic to node 2 itself although it knows node 2 (its
# routing table lists it). `macula call` at node 3 answers through node 1: node 3 originates
# the RPC_ROUTE, node 1 forwards it (its gateway received RPC_ROUTE frames and its rpc worker
# counts a forward per call) and node 2 delivers it; node 2's own calls stay direct. A bad
# rpc_no_direct value is refused at start with the config's message. No timing assertions.
set -u
macula=$(realpath "$1")
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  wait 2>/dev/null
  [ -n "${KEEP:-}" ] && echo "kept $work" || rm -rf "$work"
}
trap cleanup EXIT
# shellcheck source=tests/integration/mesh_lib.sh
. "$(dirname "$0")/mesh_lib.sh"
poll() { # poll TRIES CMD...
  local tries=$1
  shift
  for _ in $(seq 1 "$tries"); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 1
  done
  return 1
}
joined() { curl -s "http://127.0.0.1:${hport[$1]}/health" | grep -q '"state":"joined"'; }
metric() { # metric N NAME (with labels, regex-quoted by the caller)
  curl -s "http://127.0.0.1:${hport[$1]}/metrics" | sed -n "s/^$2 \([0-9]*\)$/\1/p"
}
forwarded() { metric "$1" macula_rpc_routes_forwarded_total; }
route_frames_in() { metric "$1" 'macula_gateway_frames_in_total{type="rpc_route"}'; }
knows() { "$macula" dht peers --node "$(url "$1")" --realm $R 2>/dev/null | grep -qi "$2"; }
answers() { [ "$("$macula" call demo.route '{}' --node "$(url "$1")" --realm $R --timeout 20 2>/dev/null)" = 42 ]; }
R=route.test

check "a bad MACULA_RPC_NO_DIRECT is refused at start" bash -c \
  "HOME='$work' MACULA_RPC_NO_DIRECT=abc '$macula' node 2>&1 >/dev/null | grep -q 'environment MACULA_RPC_NO_DIRECT: rpc_no_direct = \"abc\" is not valid'"
check "node 1 (the middle) starts" start 1 $R
check "node 2 (the provider) starts with node 1 as its bootstrap peer" start 2 $R "$(url 1)"
P2=$(node_id 2)
check "node 2 printed its id" test ${#P2} = 64
node_env=("MACULA_RPC_NO_DIRECT=$P2")
check "node 3 (the caller) starts with MACULA_RPC_NO_DIRECT=node 2" start 3 $R "$(url 1)"
node_env=()
for n in 2 3; do
  check "node $n joined" poll 60 joined $n
done
check "node 3 knows node 2 directly (its routing table lists it)" poll 60 knows 3 "$P2"

"$macula" advertise demo.route --node "$(url 2)" --realm $R -- sh -c 'echo 42' \
  >"$work/adv.out" 2>"$work/adv.err" &
pids+=($!)
check "node 2 serves demo.route" poll 20 grep -q "serving demo.route" "$work/adv.out"
f0=$(forwarded 1)
check "node 1 has forwarded no route yet" test "$f0" = 0
check "macula call demo.route at node 3 answers 42" poll 60 answers 3
check "node 3 originated the route" test "$(metric 3 macula_rpc_routes_sent_total)" -ge 1
check "node 1 (the middle) forwarded it: macula_rpc_routes_forwarded_total" test "$(forwarded 1)" -ge 1
check "node 1's gateway received RPC_ROUTE frames" test "$(route_frames_in 1)" -ge 1
check "node 2 delivered it" test "$(metric 2 macula_rpc_routes_delivered_total)" -ge 1
# Every further call from node 3 goes through node 1 again.
f1=$(forwarded 1)
for i in 1 2 3; do
  check "call $i from node 3 answers 42" answers 3
done
check "node 1 forwarded each of those 3 calls" test "$(forwarded 1)" -ge $((f1 + 3))
check "node 2's own call is served locally (nothing forwarded by node 1)" bash -c \
  "f=\$(curl -s http://127.0.0.1:${hport[1]}/metrics | sed -n 's/^macula_rpc_routes_forwarded_total \([0-9]*\)$/\1/p');
   [ \"\$('$macula' call demo.route '{}' --node '$(url 2)' --realm $R --timeout 20)\" = 42 ] &&
   [ \"\$(curl -s http://127.0.0.1:${hport[1]}/metrics | sed -n 's/^macula_rpc_routes_forwarded_total \([0-9]*\)$/\1/p')\" = \"\$f\" ]"

echo "passed $passed, failed $failed"
[ "$failed" = 0 ]
