#!/usr/bin/env bash
# tests/integration/flow_election_test.sh MACULA_BIN — per-swarm coordinators with fencing
# tokens in a 3-node flow cluster (Raft + gossip over QUIC) of real processes on 127.0.0.1:
#  1. node 1 bootstraps, 2 and 3 join (gossip endpoints learnt from their API);
#  2. six swarms: every one gets a lease (cluster_status "leases", the same on every node),
#     the holders are spread over the nodes (rendezvous over the live members), and tasks
#     submitted to every swarm complete, those of the swarms followers coordinate too (their
#     commands are forwarded to the leader);
#  3. kill -9 of the leader (a coordinator) during a stream of submissions → once the others'
#     gossip holds it dead, each of its swarms has a new holder among the survivors with a
#     higher token, the survivors' swarms keep their holder and token, and every acknowledged
#     task is completed exactly once (the monotonic completed counter equals the number of
#     completed tasks);
#  4. the killed node restarts: it gets its swarms back (higher tokens again), all tasks stay
#     completed once, every node converges;
#  5. SIGTERM → every node exits 0 (with a sanitizer build: no leak, no error).
# No timing is asserted: every wait polls with a generous deadline. Election timeout 1 s (1-2 s
# randomised): no step measures an election's speed, and a stall of a node under a sanitizer
# and a parallel ctest must not depose the leader between the steps; the leader is read again
# where a step relies on it.
set -u
BIN=${1:?usage: flow_election_test.sh MACULA_BIN}
# shellcheck source=tests/integration/flow_lib.sh
. "$(dirname "$0")/flow_lib.sh"

flow_setup election 9000 300 20 3
FLOW_ADDRS="raft http gossip"
FLOW_ARGS=(--election-ms 1000)
FLOW_FAIL_STATUS=3000
SWARMS="a1 b2 c3 d4 e5 f6"

alive_in_view() { # node → how many members its gossip view holds alive
    status_of "$1" | python3 -c "import json,sys
m=(json.load(sys.stdin).get('gossip') or {}).get('members') or {}
print(sum(1 for s in m.values() if s=='alive'))" 2>/dev/null
}

# leases NODE → "swarm=holder:token ..." (sorted) of every swarm in $SWARMS, or fails when one
# has no lease yet
leases() {
    status_of "$1" | python3 -c "
import json, sys
l = json.load(sys.stdin).get('leases') or {}
out = []
for sw in sys.argv[1].split():
    x = l.get(sw)
    if not x:
        sys.exit(1)
    out.append(f\"{sw}={x['node']}:{x['token']}\")
print(' '.join(out))" "$SWARMS" 2>/dev/null
}
# settled NODES... → prints the leases once every given node reports the same ones twice in a
# row, all held by given nodes
settled() {
    local prev="" cur
    for _ in $(seq 1 600); do
        cur=""
        for i in "$@"; do
            local l
            l=$(leases "$i") || { cur=""; break; }
            [ -z "$cur" ] && cur=$l
            [ "$l" = "$cur" ] || { cur=""; break; }
        done
        if [ -n "$cur" ] && python3 -c "
import sys
ok = set(sys.argv[2].split())
sys.exit(0 if all(kv.split('=')[1].split(':')[0] in ok for kv in sys.argv[1].split()) else 1)" "$cur" "$*"; then
            [ "$cur" = "$prev" ] && { echo "$cur"; return 0; }
            prev=$cur
        else
            prev=""
        fi
        sleep 0.2
    done
    return 1
}

submit() { # tag count → appends acknowledged ids to $DIR/acked.tag (any live node; redirects)
    local tag=$1 count=$2 k ok sw
    local -a sws
    read -r -a sws <<<"$SWARMS"
    for k in $(seq 1 "$count"); do
        sw=${sws[$(((k - 1) % ${#sws[@]}))]}
        ok=""
        for _ in $(seq 1 100); do
            for i in $(alive_nodes); do
                body=$(post "$i" task_submit "{\"swarm\":\"$sw\",\"input\":{\"op\":\"sleep\",\"ms\":20,\"k\":\"$tag-$k\"}}")
                if [ "$(cat "$DIR/status")" = 200 ]; then
                    echo "$body" | jget id >>"$DIR/acked.$tag"
                    ok=1
                    break
                fi
            done
            [ -n "$ok" ] && break
            sleep 0.1
        done
        [ -n "$ok" ] || fail "submission $tag-$k not acknowledged: $(cat "$DIR/body")"
    done
}
# check_done_once NODE FILE → every id in FILE completed in NODE's state, and the monotonic
# completed counter equals the number of completed tasks (none completed twice)
check_done_once() { check_done "$1" "$2" 90 1; }

# ---- 1. cluster formation -----------------------------------------------------------------
start_node 1
start_node 2 --join
start_node 3 --join
L=$(wait_leader 1) || fail "node 1 did not become leader"
join_nodes 2 3
for i in 1 2 3; do
    for _ in $(seq 1 300); do
        [ "$(alive_in_view "$i")" = 3 ] && break
        sleep 0.1
    done
    [ "$(alive_in_view "$i")" = 3 ] || fail "node $i: gossip view does not hold 3 members alive"
done
echo "ok 1 - 3-node cluster with gossip: every node sees 3 members alive"

# ---- 2. swarms spread over the nodes --------------------------------------------------------
for sw in $SWARMS; do
    post 2 swarm_create "{\"id\":\"$sw\",\"topology\":\"star\",\"config\":{\"pool_min\":{\"worker\":2,\"specialist\":0,\"scout\":0}}}" >/dev/null
    [ "$(cat "$DIR/status")" = 200 ] || fail "swarm_create $sw: $(cat "$DIR/body")"
done
BEFORE=$(settled 1 2 3) || fail "leases did not settle on all three nodes"
HOLDERS=$(echo "$BEFORE" | tr ' ' '\n' | cut -d= -f2 | cut -d: -f1 | sort -u | wc -l)
[ "$HOLDERS" -ge 2 ] || fail "all swarms coordinated by one node: $BEFORE"
echo "# leases: $BEFORE"
submit warm 18
check_done_once 1 "$DIR/acked.warm" || fail "warm-up tasks"
FWD=0
L=$(wait_live_leader) || fail "no leader after the warm-up"
for i in 1 2 3; do
    [ "$i" = "$L" ] && continue
    f=$(status_of "$i" | jget forwarding.forwarded)
    FWD=$((FWD + ${f:-0}))
done
[ "$FWD" -gt 0 ] || fail "no follower forwarded a proposal (followers coordinate no swarm?)"
echo "ok 2 - 6 swarms leased over $HOLDERS nodes ($BEFORE); 18 tasks completed; followers forwarded $FWD requests"

# ---- 3. kill -9 the leader during a stream of submissions -----------------------------------
L=$(wait_live_leader) || fail "no leader before the kill"
VICTIM=$L
echo "$BEFORE" | grep -q "=$VICTIM:" || VICTIM=$(echo "$BEFORE" | tr ' ' '\n' | head -1 | cut -d= -f2 | cut -d: -f1)
submit s1 12
kill_node "$VICTIM"
echo "# killed node $VICTIM (leader $L)"
submit s2 24
SURV=$(alive_nodes | tr '\n' ' ')
# shellcheck disable=SC2086
AFTER=$(settled $SURV) || fail "leases did not settle on the survivors $SURV"
python3 - "$BEFORE" "$AFTER" "$VICTIM" <<'EOF' || fail "leases after the kill: $BEFORE -> $AFTER"
import sys
before = {kv.split('=')[0]: kv.split('=')[1].split(':') for kv in sys.argv[1].split()}
after = {kv.split('=')[0]: kv.split('=')[1].split(':') for kv in sys.argv[2].split()}
victim = sys.argv[3]
for sw, (holder, token) in before.items():
    h2, t2 = after[sw]
    if holder == victim:
        if h2 == victim or int(t2) <= int(token):
            print(f"{sw}: {holder}:{token} -> {h2}:{t2} (the dead node's swarm did not move up)")
            sys.exit(1)
    elif (h2, t2) != (holder, token):
        print(f"{sw}: {holder}:{token} -> {h2}:{t2} (a survivor's swarm moved)")
        sys.exit(1)
EOF
cat "$DIR"/acked.* >"$DIR/acked.all"
for i in $SURV; do check_done_once "$i" "$DIR/acked.all" || fail "node $i after the kill"; done
echo "ok 3 - node $VICTIM killed: its swarms moved with higher tokens, the others kept theirs ($AFTER); every task completed once"

# ---- 4. the killed node comes back --------------------------------------------------------
start_node "$VICTIM"
for _ in $(seq 1 300); do
    [ "$(alive_in_view "$VICTIM")" = 3 ] && break
    sleep 0.1
done
submit back 12
BACK=$(settled 1 2 3) || fail "leases did not settle after node $VICTIM came back"
python3 - "$BEFORE" "$AFTER" "$BACK" <<'EOF' || fail "leases after the return: $BEFORE / $AFTER -> $BACK"
import sys
parse = lambda s: {kv.split('=')[0]: kv.split('=')[1].split(':') for kv in s.split()}
before, after, back = parse(sys.argv[1]), parse(sys.argv[2]), parse(sys.argv[3])
for sw in before:
    if back[sw][0] != before[sw][0] or int(back[sw][1]) < int(after[sw][1]):
        print(f"{sw}: {before[sw]} / {after[sw]} -> {back[sw]}")
        sys.exit(1)
EOF
cat "$DIR"/acked.* >"$DIR/acked.all"
for i in 1 2 3; do check_done_once "$i" "$DIR/acked.all" || fail "node $i after the return"; done
echo "ok 4 - node $VICTIM back: the rendezvous choice is restored ($BACK); every task completed once on all nodes"

# ---- 5. clean shutdown ---------------------------------------------------------------------
stop_nodes 1 2 3 || fail "node $STOP_NODE exited with $STOP_RC on SIGTERM"
echo "ok 5 - the three nodes stopped cleanly on SIGTERM"
echo "PASS"
