#!/usr/bin/env bash
# tests/integration/peers_test.sh MACULA [EXAMPLE_MESH] — per-peer systems and fault isolation on
# real `macula node` processes (issue 5, seed 000 scenarios), two nodes in realm peers.test:
#  1. A publish from node 1 to a subscriber on node 2 opens a mesh pool connection: node 1 has a
#     peer system for node 2; an RPC from node 1 to a provider on node 2 is accounted by that
#     peer's rpc_handler (a call out, its result) and advertisement_manager (demo.add);
#     `macula peers` shows it (table and --json).
#  2. Node 2's rpc_handler on node 1 is crashed (`macula chaos crash macula_rpc_handler:HEX`):
#     rpc_handler and advertisement_manager get new pids in /tree, macula_connection and
#     macula_pubsub_handler keep theirs, the RPC accounting starts from zero while the
#     connection's frame counts go on, and RPC over that peer still works.
#  3. The bootstrap system of node 1 crashes (its children are killed until it gives up and
#     macula_root restarts it): a `macula sub` started before keeps receiving, RPC and `macula
#     dht get` still work, and the bootstrap system is back in /tree with a new pid.
#  4. examples/mesh.c (one header: pub/sub and advertise/call) runs against node 1.
# No timing assertions: waits are bounded polls.
set -u
macula=$(realpath "$1")
example=${2:-}
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  wait 2>/dev/null
  [ -n "${KEEP:-}" ] && echo "kept $work" || rm -rf "$work"
}
trap cleanup EXIT
MESH_TEST_CHAOS=1
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
tree() { curl -s "http://127.0.0.1:${hport[$1]}/tree"; }
peers_json() { "$macula" peers --node "$(url "$1")" --realm $R --json; }
# peer N FIELD: jq FIELD of node N's entry for peer $P2 (node 2) in `macula peers --json`
peer() { peers_json "$1" | jq -r --arg id "$P2" ".peers[] | select(.node_id == \$id) | $2"; }
# workers N PID: "ID PID" for each child of node N's peer system that holds PID
workers() {
  tree "$1" | jq -r --arg pid "$2" '.. | objects | select(.id? == "macula_peer_system")
    | select(any(.children[]?; .pid == $pid)) | .children[] | "\(.id) \(.pid) \(.state)"'
}
pid_of() { awk -v id="$1" '$1 == id { print $2 }'; }
call() { "$macula" call demo.add '[1,2]' --node "$(url "$1")" --realm $R --timeout 20; }
answers3() { [ "$(call "$1" 2>/dev/null)" = 3 ]; }
waitpid() { # waitpid PID TRIES: wait for a background process to end, bounded
  for _ in $(seq 1 "$2"); do kill -0 "$1" 2>/dev/null || return 0; sleep 1; done
  return 1
}
R=peers.test

check "node 1 starts" start 1 $R
check "node 2 starts with node 1 as its bootstrap peer" start 2 $R "$(url 1)"
check "node 2 joined" poll 60 joined 2
P2=$(node_id 2)
H2=${P2:0:16}
check "node 2 printed its id" test ${#P2} = 64

# 1. A peer system for node 2 on node 1, and the per-peer RPC accounting.
"$macula" sub 'to2.*' --node "$(url 2)" --realm $R >"$work/sub2.out" 2>"$work/sub2.err" &
pids+=($!)
"$macula" advertise demo.add --node "$(url 2)" --realm $R -- sh -c 'echo 3' \
  >"$work/adv.out" 2>"$work/adv.err" &
pids+=($!)
check "subscriber and provider on node 2 are ready" poll 30 bash -c \
  "grep -q subscribed '$work/sub2.err' && grep -q 'serving demo.add' '$work/adv.out'"
published() {
  "$macula" pub to2.x hello --node "$(url 1)" --realm $R && grep -q "to2.x" "$work/sub2.out"
}
check "a publish at node 1 reaches node 2's subscriber" poll 60 published
lists2() { "$macula" peers --node "$(url 1)" --realm $R | grep -q "^$H2 "; }
check "macula peers at node 1 lists node 2" poll 30 lists2
check "macula call demo.add at node 1 answers 3 (provider on node 2)" poll 60 answers3 1
accounted() { # the rpc_handler counted a call out and its result; the manager knows demo.add
  [ "$(peer 1 '.rpc_handler.calls_out >= 1 and .rpc_handler.results_in >= 1 and
     ([.advertisement_manager.procedures[].procedure] | index("demo.add") != null)')" = true ]
}
check "node 2's rpc_handler on node 1 counted the call out and its result, its advertisement_manager knows demo.add" poll 10 accounted
"$macula" peers --node "$(url 1)" --realm $R >"$work/peers.txt"
check "macula peers prints a header" grep -q '^NODE .*PROVIDES$' "$work/peers.txt"
check "...and node 2's line: its address, calls out, results, demo.add" grep -Eq \
  "^$H2 +127.0.0.1:${qport[2]} +[0-9.]+s +[0-9]+ +[0-9]+ +[1-9][0-9]* +[0-9]+ +[1-9][0-9]* +[0-9]+ +[0-9]+ +demo.add$" "$work/peers.txt"
check "macula peers --json names the node and counts its peer systems" test \
  "$(peers_json 1 | jq -r '(.node_id | length) == 64 and .count >= 1')" = true
check "macula peers with a bad option exits 2" test "$("$macula" peers --bogus 2>/dev/null; echo $?)" = 2

# 2. Crash node 2's rpc_handler on node 1.
rpc_pid=$(peer 1 .rpc_handler.pid)
before=$(workers 1 "$rpc_pid")
echo "$before" | sed 's/^/     before: /'
conn_frames=$(peer 1 .frames_in)
check "node 1's peer system for node 2 has its 4 workers running" test \
  "$(echo "$before" | grep -c ' running$')" = 4
check "macula chaos crash macula_rpc_handler:$H2 at node 1" \
  "$macula" chaos crash "macula_rpc_handler:$H2" --node "$(url 1)" --realm $R
conn_pid=$(echo "$before" | pid_of macula_connection)
restarted() {
  after=$(workers 1 "$conn_pid")
  [ "$(echo "$after" | grep -c ' running$')" = 4 ] &&
    [ "$(echo "$after" | pid_of macula_rpc_handler)" != "$(echo "$before" | pid_of macula_rpc_handler)" ]
}
check "rpc_handler restarted (new pid in /tree)" poll 30 restarted
after=$(workers 1 "$conn_pid")
echo "$after" | sed 's/^/     after:  /'
for w in macula_connection macula_pubsub_handler; do
  check "$w kept its pid" test "$(echo "$after" | pid_of $w)" = "$(echo "$before" | pid_of $w)"
done
check "macula_advertisement_manager restarted too (rest_for_one)" test \
  "$(echo "$after" | pid_of macula_advertisement_manager)" != \
  "$(echo "$before" | pid_of macula_advertisement_manager)"
check "the connection stayed: its frame count went on" test "$(peer 1 .frames_in)" -ge "$conn_frames"
check "the crash lost exactly that peer's RPC accounting" test \
  "$(peer 1 '.rpc_handler.calls_out == 0 and .rpc_handler.results_in == 0 and
            (.advertisement_manager.procedures | length) == 0')" = true
check "RPC over that peer still works after the crash" poll 30 answers3 1
check "...and is accounted by the new rpc_handler and advertisement_manager" poll 10 accounted

# 3. The bootstrap system of node 1 crashes while a subscriber and a DHT value are in place.
"$macula" sub 'boot.*' --count 2 --timeout 120 --node "$(url 1)" --realm $R \
  >"$work/sub1.out" 2>"$work/sub1.err" &
subpid=$!
pids+=($subpid)
check "a subscriber on node 1 is subscribed" poll 20 grep -q subscribed "$work/sub1.err"
check "macula dht put at node 1" "$macula" dht put peers.test.key kept --node "$(url 1)" --realm $R
got_first() {
  "$macula" pub boot.one 1 --node "$(url 1)" --realm $R && grep -q "boot.one" "$work/sub1.out"
}
check "the subscriber receives boot.one" poll 20 got_first
bs_pid() { tree 1 | jq -r '.children[] | select(.id == "macula_bootstrap_system") | .pid'; }
bs_before=$(bs_pid)
check "node 1's /tree shows macula_bootstrap_system" test -n "$bs_before"
crashed_system() {
  for _ in $(seq 1 40); do
    for child in macula_bootstrap_server macula_bootstrap_registry macula_bootstrap_health; do
      "$macula" chaos crash $child --node "$(url 1)" --realm $R >/dev/null 2>&1
      [ "$(bs_pid)" != "$bs_before" ] && return 0
    done
  done
  return 1
}
check "crashing its children makes macula_bootstrap_system give up and restart" crashed_system
bs_back() {
  tree 1 | jq -e --arg old "$bs_before" '.children[] | select(.id == "macula_bootstrap_system")
    | (.pid != $old and ([.children[] | select(.state == "running")] | length) == 3)'
}
check "macula_bootstrap_system is back in /tree with a new pid, its 3 children running" poll 30 bs_back
check "the subscriber stayed connected" kill -0 $subpid
check "macula pub boot.two at node 1" "$macula" pub boot.two 2 --node "$(url 1)" --realm $R
check "...reaches the subscriber started before the crash" waitpid $subpid 30
check "...which printed both messages" test "$(grep -c '^boot\.' "$work/sub1.out")" = 2
check "RPC still works at node 1" poll 30 answers3 1
dht_kept() { "$macula" dht get peers.test.key --node "$(url 1)" --realm $R --timeout 20 | grep -q kept; }
check "macula dht get at node 1 still finds the value" poll 30 dht_kept
check "the gateway and routing server were not restarted" test \
  "$(tree 1 | jq -r '[.children[] | select(.id == "macula_gateway_system" or .id == "macula_routing_server") | .restarts] | add')" = 0

# 4. The one-header example: pub/sub and advertise/call through node 1.
if [ -n "$example" ]; then
  example_ok() {
    timeout 60 "$example" "$(url 1)" $R >"$work/example.out" 2>&1
    cat "$work/example.out" >>"$work/example.all"
    grep -qx "sum=6 delivered=6" "$work/example.out"
  }
  check "examples/mesh.c: the call answered 6 and the publication came back" example_ok ||
    cat "$work/example.all"
fi

echo "passed $passed, failed $failed"
[ "$failed" = 0 ]
