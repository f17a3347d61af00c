#!/usr/bin/env bash
# tests/integration/rpc_test.sh MACULA — RPC across real `macula node` processes on 127.0.0.1
# (issue 5): five nodes bootstrapped in a chain (node i knows only node i-1's URL).
#  - `macula advertise demo.add` on node 5 serves a shell command; `macula call demo.add [1,2]`
#    at node 1 answers 3 (found through the DHT, carried as RPC_ROUTE);
#  - a procedure nobody serves: no_handler, exit 1; a handler that fails: handler_error;
#  - a second provider of demo.slow on node 3 while the one on node 4 hangs: calls fail over
#    (the hanging attempt times out after 5 s) and answer from node 3;
#  - one of two providers is killed: calls fail over to the remaining one;
#  - realm isolation: a node of another realm (node 6) sees no provider, and node 1 refuses a
#    client of the other realm with realm_mismatch;
#  - multi-hop: node 1's RPC_ROUTE counters show it originated routes, node 5's that they were
#    delivered; a route forwarded by an intermediate node is covered by the unit test
#    test_rpc_mesh (three nodes where one may not talk to another directly).
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
metric() { curl -s "http://127.0.0.1:${hport[$1]}/metrics" | sed -n "s/^$2 \([0-9]*\)$/\1/p"; }
poll() {
  local tries=$1
  shift
  for _ in $(seq 1 "$tries"); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 1
  done
  return 1
}
joined() { curl -s "http://127.0.0.1:${hport[$1]}/health" | grep -q '"state":"joined"'; }
# call N REALM PROC ARGS [TIMEOUT]: macula call against node N; output in $work/call.{out,err}
call() {
  "$macula" call "$3" "$4" --node "$(url "$1")" --realm "$2" --timeout "${5:-20}" \
    >"$work/call.out" 2>"$work/call.err"
}
answers() { call "$1" "$2" "$3" "$4" && [ "$(cat "$work/call.out")" = "$5" ]; }
# advertise N REALM PROC NAME CMD...: a provider process; its pid in adv[NAME]
declare -A adv
advertise() {
  local n=$1 realm=$2 proc=$3 name=$4
  shift 4
  "$macula" advertise "$proc" --node "$(url "$n")" --realm "$realm" -- "$@" \
    >"$work/adv.$name.out" 2>"$work/adv.$name.err" &
  adv[$name]=$!
  pids+=("${adv[$name]}")
  poll 20 grep -q "serving $proc" "$work/adv.$name.out"
}

R=rpc.test
check "node 1 starts" start 1 $R
for n in 2 3 4 5; do
  check "node $n starts with node $((n - 1)) as its bootstrap peer" start $n $R "$(url $((n - 1)))"
done
for n in 2 3 4 5; do
  check "node $n joined" poll 60 joined $n
done

# demo.add: a shell command (jq when installed, else awk) that adds a JSON array of numbers.
if command -v jq >/dev/null; then add=(jq -c add); else add=(sh -c "tr -d '[] ' | awk -F, '{s=0; for(i=1;i<=NF;i++) s+=\$i; print s}'"); fi
check "macula advertise demo.add on node 5" advertise 5 $R demo.add add "${add[@]}"
check "macula call demo.add [1,2] at node 1 answers 3" poll 30 answers 1 $R demo.add '[1,2]' 3
check "...and again from node 2" answers 2 $R demo.add '[40,2]' 42
check "...and at node 5 itself (local handler)" answers 5 $R demo.add '[2,2]' 4
# A 10,000-character argument and result (frames larger than the rpc worker's 4 KiB buffer).
big="\"$(head -c 10000 /dev/zero | tr '\0' x)\""
check "a provider of demo.echo (cat) on node 5" advertise 5 $R demo.echo echo cat
check "a 10 KB call at node 5 comes back whole" answers 5 $R demo.echo "$big" "$big"
check "...and at node 1 (routed)" poll 30 answers 1 $R demo.echo "$big" "$big"
check "node 1 originated RPC routes" test "$(metric 1 macula_rpc_routes_sent_total)" -ge 1
check "node 5 delivered routed calls to its handler" test "$(metric 5 macula_rpc_routes_delivered_total)" -ge 1

# Arguments that are not one JSON text are refused before anything is
# sent (exit 2): a cut array, a lone surrogate escape, an integer past int64.
for bad in '[1,' '"\ud800"' '9223372036854775808'; do
  call 1 $R demo.add "$bad" 20
  check "macula call with the arguments $bad: exit 2" test $? -eq 2
  check "...the arguments are not JSON" grep -q "the arguments are not JSON" "$work/call.err"
done

call 1 $R demo.unknown '[]' 20
check "a procedure nobody serves: exit 1" test $? -eq 1
check "...with no_handler" grep -q "^no_handler" "$work/call.err"

check "a failing handler (exit 3) on node 2" advertise 2 $R demo.fail fail sh -c 'echo broken >&2; exit 3'
poll 30 bash -c "! \"$macula\" call demo.fail '{}' --node $(url 1) --realm $R 2>&1 | grep -q no_handler"
call 1 $R demo.fail '{}' 20
check "...answers handler_error, exit 1" bash -c "grep -q '^handler_error' '$work/call.err'"
check "...with the exit status and stderr" grep -q "exit status 3: broken" "$work/call.err"

# Failover: demo.slow on node 4 hangs, on node 3 it answers.
check "a hanging provider of demo.slow on node 4" advertise 4 $R demo.slow hang sh -c 'sleep 600'
check "a working provider of demo.slow on node 3" advertise 3 $R demo.slow good sh -c 'echo "\"from node 3\""'
# dht_has N KEY: macula dht get KEY at node 1 lists at least N providers
dht_has() { [ "$("$macula" dht get "$2" --node "$(url 1)" --realm $R | wc -l)" -ge "$1" ]; }
check "...both are in the DHT (macula dht get rpc:demo.slow at node 1)" poll 60 dht_has 2 rpc:demo.slow
# Node 1 picks a provider at random: call until the hanging one got a call (each pick of it
# costs one 5 s attempt; 16 calls miss it with probability 2^-16). Every call must answer.
ok=0 calls=0
fo0=$(metric 1 macula_rpc_failovers_total)
while [ $calls -lt 16 ] && [ "$(metric 4 macula_rpc_served_total)" -eq 0 ]; do
  calls=$((calls + 1))
  call 1 $R demo.slow "{}" 25 && grep -qx "\"from node 3\"" "$work/call.out" && ok=$((ok + 1)) || cat "$work/call.err" "$work/call.out"
done
check "node 1 sent a call to the hanging provider on node 4" test "$(metric 4 macula_rpc_served_total)" -ge 1
check "every call at node 1 answered from node 3 ($ok of $calls)" test $ok -eq $calls
check "...node 1 failed over from the hanging provider" test "$(metric 1 macula_rpc_failovers_total)" -gt "$fo0"

# The provider is killed (kill -9: its node notices only when the connection times out):
# calls fail over to the other provider, which node 1 knows from the same lookup.
check "a provider of demo.mul on node 5" advertise 5 $R demo.mul mul5 sh -c 'echo 6'
check "a provider of demo.mul on node 2" advertise 2 $R demo.mul mul2 sh -c 'echo 6'
check "...both are in the DHT (macula dht get rpc:demo.mul at node 1)" poll 60 dht_has 2 rpc:demo.mul
poll 30 answers 1 $R demo.mul '[2,3]' 6
kill -9 "${adv[mul5]}"
# Random picks again: call until node 1 picked the dead provider and failed over (bounded).
ok=0 calls=0
fo0=$(metric 1 macula_rpc_failovers_total)
while [ $calls -lt 16 ] && [ "$(metric 1 macula_rpc_failovers_total)" -eq "$fo0" ]; do
  calls=$((calls + 1))
  answers 1 $R demo.mul "[2,3]" 6 && ok=$((ok + 1)) || cat "$work/call.err"
done
check "after the provider on node 5 is killed, node 1 failed over from it" test "$(metric 1 macula_rpc_failovers_total)" -gt "$fo0"
check "...and every call at node 1 answered ($ok of $calls)" test $ok -eq $calls

# advertise killed with SIGKILL while a handler runs: the handler's process group (its guard,
# the shell and the sleep it started) goes with it.
check "a provider of demo.orphan on node 2" advertise 2 $R demo.orphan orphan sh -c 'sleep 600; echo advkill-marker'
"$macula" call demo.orphan '{}' --node "$(url 2)" --realm $R --timeout 3 >/dev/null 2>&1 &
pids+=($!)
handler_up() { pgrep -f '^sh -c sleep 600; echo advkill-marker' >/dev/null; }
check "the demo.orphan handler runs" poll 20 handler_up
hpgid=$(ps -o pgid= -p "$(pgrep -f '^sh -c sleep 600; echo advkill-marker' | head -1)" | tr -d ' ')
check "...in a process group of its own (its guard's)" test -n "$hpgid" -a "$hpgid" != "$(ps -o pgid= -p $$ | tr -d ' ')" -a "$hpgid" != "$(ps -o pgid= -p "${adv[orphan]}" | tr -d ' ')"
kill -9 "${adv[orphan]}"
group_gone() { ! pgrep -g "$hpgid" >/dev/null; }
check "after kill -9 of advertise, nothing of the handler's group is left" poll 10 group_gone

# advertise as PID 1 (a container's entry point, here a PID namespace of its own): its
# handlers' guards must not take PID 1 for a dead parent.
# As root a PID namespace needs no more; elsewhere a user namespace may provide one.
ns=()
if unshare -fp --mount-proc true 2>/dev/null; then
  ns=(unshare -fp --mount-proc)
elif unshare -Urfp --mount-proc true 2>/dev/null; then
  ns=(unshare -Urfp --mount-proc)
fi
if [ ${#ns[@]} -gt 0 ]; then
  "${ns[@]}" "$macula" advertise demo.pid1 --node "$(url 2)" --realm $R -- sh -c 'echo 11' \
    >"$work/adv.pid1.out" 2>"$work/adv.pid1.err" &
  adv[pid1]=$!
  pids+=("${adv[pid1]}")
  check "advertise as PID 1 of a PID namespace serves demo.pid1" poll 20 grep -q "serving demo.pid1" "$work/adv.pid1.out"
  check "...and its handler answers" poll 30 answers 2 $R demo.pid1 '{}' 11
  kill -TERM "${adv[pid1]}" 2>/dev/null
elif [ "$(id -u)" = 0 ]; then
  check "PID namespaces are available to root (unshare -fp)" false
else
  echo "skip advertise as PID 1 (no PID namespaces for this user here)"
fi

# The chaos procedure on a node started without MACULA_CHAOS (as all of these are): refused,
# and nothing is killed.
"$macula" chaos crash macula_gateway_pubsub --node "$(url 2)" --realm $R >"$work/chaos.out" 2>"$work/chaos.err"
check "macula chaos crash on a node without MACULA_CHAOS fails" test $? -ne 0
check "...because chaos needs MACULA_CHAOS=1" grep -q "chaos procedures need MACULA_CHAOS=1" "$work/chaos.err"
check "...and node 2's pubsub worker was not restarted" bash -c "curl -s http://127.0.0.1:${hport[2]}/tree | grep -q '\"id\":\"macula_gateway_pubsub\",\"restart\":\"permanent\",\"restarts\":0,'"

# Realms: node 6 of another realm bootstraps through node 1 (refused there).
check "node 6 (realm other.realm) starts" start 6 other.realm "$(url 1)"
call 6 other.realm demo.add '[1,2]' 20
check "another realm does not see the providers: no_handler" grep -q "^no_handler" "$work/call.err"
call 1 other.realm demo.add '[1,2]' 20
check "node 1 refuses a client of another realm: realm_mismatch" grep -q "realm_mismatch" "$work/call.err"

if command -v promtool >/dev/null; then
  curl -s "http://127.0.0.1:${hport[1]}/metrics" >"$work/metrics"
  check "promtool accepts /metrics with the rpc counters" promtool check metrics <"$work/metrics"
fi

for p in "${adv[@]}"; do kill -TERM "$p" 2>/dev/null; done
for n in 1 2 3 4 5 6; do kill -TERM "${pids[n]}" 2>/dev/null; done
for n in 1 2 3 4 5 6; do
  wait "${pids[n]}"
  check "node $n stops cleanly" test $? -eq 0
done
pids=()
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
