#!/usr/bin/env bash
# tests/integration/pubsub_test.sh MACULA [EXAMPLE] — pub/sub across real `macula node`
# processes on 127.0.0.1 (issue 5): five nodes bootstrapped in a chain (node i knows only node
# i-1). A subscriber of `sensor.*.temp` on node 5 receives `sensor.kitchen.temp` published at
# node 1 (remote wildcard through the DHT subscriber index, never connected to node 1);
# `**` patterns (trailing and leading); QoS 1 delivered once to the application although the
# subscriber withheld its first acknowledgement (the node retried); unsubscribe stops
# delivery; the pubsub worker of node 5 is killed (MACULA_CHAOS=1 procedure): pubsub, mesh
# restart, the subscriber stays connected and still receives. No timing assertions: waits are
# bounded polls.
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
health() { curl -s "http://127.0.0.1:${hport[$1]}/health"; }
metric() { curl -s "http://127.0.0.1:${hport[$1]}/metrics" | sed -n "s/^$2 \([0-9]*\)$/\1/p"; }
poll() { # poll TRIES CMD...
  local tries=$1
  shift
  for _ in $(seq 1 "$tries"); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 1
  done
  return 1
}
joined() { health "$1" | grep -q '"state":"joined"'; }
R=ps.test
# sub_bg N NAME ARGS...: a subscriber on node N in the background (output in $work/NAME.*)
sub_bg() {
  local n=$1 name=$2
  shift 2
  "$macula" sub "$@" --node "$(url "$n")" --realm $R >"$work/$name.out" 2>"$work/$name.err" &
  subpid[$name]=$!
}
declare -A subpid
subscribed() { grep -q "subscribed" "$work/$1.err"; }
# indexed N KEY PATTERN: node N's DHT finds PATTERN under the index key KEY
indexed() { "$macula" dht get "$2" --node "$(url "$1")" --realm $R --timeout 30 2>/dev/null | grep -qF "$3"; }
pub() { local n=$1; shift; "$macula" pub "$@" --node "$(url "$n")" --realm $R; }
waitpid() { # waitpid PID TRIES: wait for a background process to end, bounded
  for _ in $(seq 1 "$2"); do kill -0 "$1" 2>/dev/null || return 0; sleep 1; done
  return 1
}

check "node 1 starts" start 1 $R
for n in 2 3 4 5; do
  check "node $n starts with node $((n - 1)) as its only bootstrap peer" start $n $R "$(url $((n - 1)))"
done
for n in 2 3 4 5; do
  check "node $n joined" poll 60 joined $n
done

# 1. Remote wildcard: node 5 subscribes sensor.*.temp; node 1 publishes.
sub_bg 5 wild 'sensor.*.temp' --count 1 --timeout 90
check "subscriber on node 5 is subscribed" poll 20 subscribed wild
check "node 1 finds node 5's pattern in the index (psub:sensor)" poll 60 indexed 1 psub:sensor 'sensor.*.temp'
same_pool() {
  local gw dht
  gw=$(metric 1 macula_gateway_mesh_ready) dht=$(metric 1 macula_mesh_pool_ready)
  [ -n "$gw" ] && [ "$gw" = "$dht" ]
}
check "node 1 has one mesh pool: DHT and pub/sub report the same connections" poll 10 same_pool
check "macula pub sensor.kitchen.temp at node 1" pub 1 sensor.kitchen.temp 21.5
check "...reaches the wildcard subscriber on node 5" waitpid "${subpid[wild]}" 30
check "...printed TOPIC<TAB>PAYLOAD" grep -qx "$(printf 'sensor.kitchen.temp\t21.5')" "$work/wild.out"
check "node 1 routed it (PUBSUB_ROUTE)" test "$(metric 1 macula_pubsub_routes_out_total)" -ge 1
check "node 5 accepted the route" test "$(metric 5 macula_pubsub_routes_in_total)" -ge 1
check "node 1's /tree shows a peer system with its 4 workers" bash -c \
  "curl -s http://127.0.0.1:${hport[1]}/tree | grep -o '\"id\":\"macula_\(connection\|pubsub_handler\|rpc_handler\|advertisement_manager\)\"' | sort -u | wc -l | grep -qx 4"

# 2. ** patterns: trailing (alarm.**: also matches `alarm` itself) and leading (**.humidity).
sub_bg 4 trail 'alarm.**' --count 2 --timeout 90
sub_bg 3 lead '**.humidity' --count 1 --timeout 90
check "subscribers on nodes 4 and 3 are subscribed" poll 20 bash -c "grep -q subscribed $work/trail.err && grep -q subscribed $work/lead.err"
check "node 2 finds alarm.** (psub:alarm)" poll 60 indexed 2 psub:alarm 'alarm.**'
check "node 1 finds **.humidity (psub:*)" poll 60 indexed 1 'psub:*' '**.humidity'
check "pub alarm.fire.kitchen at node 2" pub 2 alarm.fire.kitchen smoke
check "pub alarm at node 2" pub 2 alarm test
# node 1 may hold a fresh empty answer for psub:* (5 s negative cache) from the first scenario:
# publish until the subscriber has it.
pub_until() { # pub_until NAME N TOPIC DATA: publish at node N once a second until NAME ends
  local name=$1 n=$2
  shift 2
  for _ in $(seq 1 30); do
    pub "$n" "$@" || return 1
    kill -0 "${subpid[$name]}" 2>/dev/null || return 0
    sleep 1
    kill -0 "${subpid[$name]}" 2>/dev/null || return 0
  done
  return 1
}
check "pub house.bath.humidity at node 1 (until seen)" pub_until lead 1 house.bath.humidity 80
check "alarm.** on node 4 got both" waitpid "${subpid[trail]}" 30
check "...alarm.fire.kitchen and alarm" bash -c "grep -qx \"\$(printf 'alarm.fire.kitchen\tsmoke')\" $work/trail.out && grep -qx \"\$(printf 'alarm\ttest')\" $work/trail.out"
check "**.humidity on node 3 got house.bath.humidity" waitpid "${subpid[lead]}" 30
check "...printed" grep -qx "$(printf 'house.bath.humidity\t80')" "$work/lead.out"

# 3. QoS 1 once to the application despite a retry (the subscriber withholds its first ack).
# The subscriber runs until it is stopped (its timeout is only a bound): once node 5 has
# resent the delivery, and a little more for a duplicate to show, it is stopped and its output
# counted.
sub_bg 5 q1 'q1.*' --qos 1 --drop-acks 1 --timeout 120
check "QoS 1 subscriber on node 5 is subscribed" poll 20 subscribed q1
check "node 1 finds q1.* (psub:q1)" poll 60 indexed 1 psub:q1 'q1.*'
resent0=$(metric 5 macula_pubsub_qos_resent_total)
resent_above() { [ "$(metric 5 macula_pubsub_qos_resent_total)" -gt "${resent0:-0}" ]; }
check "pub q1.a --qos 1 at node 1 (acknowledged)" pub 1 q1.a once --qos 1
check "node 5 retried the unacknowledged delivery" poll 60 resent_above
check "...the subscriber printed it" poll 30 grep -q "$(printf 'q1.a\tonce')" "$work/q1.out"
# Node 5 resends every second until acknowledged: once its resend count holds still for 3 s
# the retry was acknowledged, and a duplicate would have been printed by then.
settled() {
  local a b
  a=$(metric 5 macula_pubsub_qos_resent_total)
  sleep 3
  b=$(metric 5 macula_pubsub_qos_resent_total)
  [ "$a" = "$b" ]
}
check "node 5's resends stopped (the retry was acknowledged)" poll 20 settled
kill -TERM "${subpid[q1]}" 2>/dev/null
check "subscriber stopped" waitpid "${subpid[q1]}" 30
check "...printed the message exactly once" test "$(grep -c "$(printf 'q1.a\tonce')" "$work/q1.out")" = 1

# 4. Unsubscribe stops delivery (the example program: subscribe, one message, unsubscribe).
if [ -n "$example" ]; then
  "$example" "$(url 5)" $R 'u.*' 8 >"$work/ex.out" 2>"$work/ex.err" &
  expid=$!
  check "example subscribed on node 5" poll 20 grep -q "subscribed to" "$work/ex.err"
  check "node 1 finds u.* (psub:u)" poll 60 indexed 1 psub:u 'u.*'
  check "pub u.a at node 1" pub 1 u.a first --qos 1
  check "example got it and unsubscribed" poll 20 grep -q unsubscribed "$work/ex.err"
  check "node 1's index no longer lists u.* for node 5" poll 60 bash -c "! $macula dht get psub:u --node $(url 1) --realm $R --timeout 30 2>/dev/null | grep -qF 'u.*'"
  d0=$(metric 5 macula_pubsub_delivered_total)
  check "pub u.a again at node 1" pub 1 u.a second --qos 1
  check "example ends: nothing after the unsubscribe" waitpid $expid 30
  check "...after_unsubscribe=0" grep -qx "after_unsubscribe=0" "$work/ex.out"
  check "node 5 delivered nothing more" test "$(metric 5 macula_pubsub_delivered_total)" = "$d0"
fi

# 5. Fault isolation: node 5's pubsub worker crashes; pubsub and mesh restart, clients stay.
sub_bg 5 chaos 'c.*' --qos 1 --count 1 --timeout 120
check "subscriber for c.* on node 5 is subscribed" poll 20 subscribed chaos
check "node 1 finds c.* (psub:c)" poll 60 indexed 1 psub:c 'c.*'
check "macula chaos crash macula_gateway_pubsub on node 5" \
  "$macula" chaos crash macula_gateway_pubsub --node "$(url 5)" --realm $R
tree5() { curl -s "http://127.0.0.1:${hport[5]}/tree"; }
restarted() { tree5 | grep -q "\"id\":\"$1\",\"restart\":\"permanent\",\"restarts\":[1-9]"; }
check "...macula_gateway_pubsub restarted" poll 10 restarted macula_gateway_pubsub
check "...macula_gateway_mesh restarted (rest_for_one)" poll 10 restarted macula_gateway_mesh
check "...macula_gateway_clients did not" bash -c "! curl -s http://127.0.0.1:${hport[5]}/tree | grep -q '\"id\":\"macula_gateway_clients\",\"restart\":\"permanent\",\"restarts\":[1-9]'"
check "...macula_gateway (connections) did not" bash -c "! curl -s http://127.0.0.1:${hport[5]}/tree | grep -q '\"id\":\"macula_gateway\",\"restart\":\"permanent\",\"restarts\":[1-9]'"
# (the client API never reconnects: a subscriber process alive and receiving afterwards kept
# its connection)
check "the subscriber is still connected" kill -0 "${subpid[chaos]}"
check "node 5 rebuilt the subscription from the gateway's ledger" poll 10 bash -c "test \"\$(curl -s http://127.0.0.1:${hport[5]}/metrics | sed -n 's/^macula_pubsub_subscriptions \([0-9]*\)$/\1/p')\" -ge 1"
check "pub c.x --qos 1 at node 1 after the crash" pub 1 c.x after --qos 1
check "...reaches the subscriber that stayed connected" waitpid "${subpid[chaos]}" 30
check "...printed" grep -qx "$(printf 'c.x\tafter')" "$work/chaos.out"
# (that a node started without MACULA_CHAOS refuses the procedure is checked in rpc_test.sh,
# whose nodes run without it)

for n in 1 2 3 4 5; do
  kill -TERM "${pids[n]}" 2>/dev/null
done
for n in 1 2 3 4 5; do
  check "node $n stops cleanly" waitpid "${pids[n]}" 20
done
echo "pubsub_test: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
