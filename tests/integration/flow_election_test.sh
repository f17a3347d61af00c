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
# No timing is asserted: every wait polls with a generous deadline.
set -u
BIN=${1:?usage: flow_election_test.sh MACULA_BIN}
command -v curl >/dev/null || { echo "SKIP: curl not installed"; exit 77; }
command -v python3 >/dev/null || { echo "python3 is required (scripts/setup.sh test installs it)"; exit 1; }

DIR=$(mktemp -d /tmp/macula-flow-election.XXXXXX)
BASE=$((31500 + ($$ % 300) * 20))
SWARMS="a1 b2 c3 d4 e5 f6"
declare -A PID
fail() {
    echo "FAIL: $*"
    for i in 1 2 3; do
        echo "--- node $i log"
        tail -n 20 "$DIR/n$i.log" 2>/dev/null
        echo "--- node $i status"
        post "$i" cluster_status '{}' 2>/dev/null | head -c 3000
        echo
    done
    exit 1
}
cleanup() {
    exec 2>/dev/null # no "Killed" notices
    for i in 1 2 3; do
        [ -n "${PID[$i]:-}" ] && kill -9 "${PID[$i]}" 2>/dev/null
    done
    wait 2>/dev/null
    [ -n "${KEEP:-}" ] && echo "# kept $DIR" || rm -rf "$DIR"
}
trap cleanup EXIT

raft_addr() { echo "127.0.0.1:$((BASE + $1))"; }
http_addr() { echo "127.0.0.1:$((BASE + 5 + $1))"; }
gossip_addr() { echo "127.0.0.1:$((BASE + 10 + $1))"; }
url() { echo "http://$(http_addr "$1")"; }

start_node() { # id [--join]
    local i=$1
    shift
    "$BIN" flow-node --id "$i" --raft "$(raft_addr "$i")" --http "$(http_addr "$i")" \
        --gossip "$(gossip_addr "$i")" --data "$DIR/d$i" --election-ms 150 "$@" >>"$DIR/n$i.log" 2>&1 &
    PID[$i]=$!
}
alive_nodes() { for i in 1 2 3; do [ -n "${PID[$i]:-}" ] && echo "$i"; done; }

post() { # node op json → body on stdout (redirects followed), HTTP status in $DIR/status
    curl -s -L --post302 --post301 -m 5 -o "$DIR/body" -w '%{http_code}' \
        -H 'Content-Type: application/json' -X POST -d "$3" "$(url "$1")/flow/$2" >"$DIR/status" 2>/dev/null
    cat "$DIR/body" 2>/dev/null
}
jget() { python3 -c "import json,sys
try: d=json.load(sys.stdin)
except Exception: sys.exit(1)
for k in sys.argv[1].split('.'):
    d = d.get(k) if isinstance(d, dict) else None
print('' if d is None else (json.dumps(d) if isinstance(d,(dict,list)) else d))" "$1"; }
status_of() { post "$1" cluster_status '{}'; }
wait_leader() { # nodes... → prints the ready leader among them
    for _ in $(seq 1 300); do
        for i in "$@"; do
            local st
            st=$(status_of "$i")
            if [ "$(echo "$st" | jget state)" = leader ] && [ "$(echo "$st" | jget ready)" = True ]; then
                echo "$i"
                return 0
            fi
        done
        sleep 0.1
    done
    return 1
}
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
# check_done NODE FILE → every id in FILE completed in NODE's state, and the monotonic
# completed counter equals the number of completed tasks (none completed twice)
check_done() {
    python3 - "$(url "$1")" "$2" <<'EOF'
import json, sys, time, urllib.request
base, path = sys.argv[1], sys.argv[2]
ids = [l.strip() for l in open(path) if l.strip()]
def post(op, args):
    req = urllib.request.Request(base + "/flow/" + op, data=json.dumps(args).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.load(r)
deadline = time.time() + 90
while True:
    try:
        tasks = {t["id"]: t["state"] for t in post("task_list", {"limit": 100000})}
        m = post("metrics", {})
    except Exception:
        tasks, m = {}, None
    bad = [i for i in ids if tasks.get(i) != "completed"]
    done = sum(1 for s in tasks.values() if s == "completed")
    if not bad and m and m["ended_total"]["completed"] == done:
        print(f"# {base}: {len(ids)} acknowledged tasks completed, {done} completed in all")
        sys.exit(0)
    if time.time() > deadline:
        print(f"{base}: {len(bad)} of {len(ids)} tasks not completed (e.g. {bad[:3]}); "
              f"counter {m and m['ended_total']['completed']} vs {done} completed")
        sys.exit(1)
    time.sleep(0.2)
EOF
}

# ---- 1. cluster formation -----------------------------------------------------------------
start_node 1
start_node 2 --join
start_node 3 --join
L=$(wait_leader 1) || fail "node 1 did not become leader"
for i in 2 3; do
    ok=""
    for _ in $(seq 1 50); do
        if "$BIN" flow cluster join --node "$(url 1)" --id "$i" --address "$(raft_addr "$i")" \
            --api "$(url "$i")" >"$DIR/join$i.out" 2>&1; then
            ok=1
            break
        fi
        sleep 0.2
    done
    [ -n "$ok" ] || fail "join of node $i: $(cat "$DIR/join$i.out")"
done
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
check_done 1 "$DIR/acked.warm" || fail "warm-up tasks"
FWD=0
for i in 1 2 3; do
    [ "$i" = "$L" ] && continue
    f=$(status_of "$i" | jget forwarding.forwarded)
    FWD=$((FWD + ${f:-0}))
done
[ "$FWD" -gt 0 ] || fail "no follower forwarded a proposal (followers coordinate no swarm?)"
echo "ok 2 - 6 swarms leased over $HOLDERS nodes ($BEFORE); 18 tasks completed; followers forwarded $FWD requests"

# ---- 3. kill -9 the leader during a stream of submissions -----------------------------------
VICTIM=$L
echo "$BEFORE" | grep -q "=$VICTIM:" || VICTIM=$(echo "$BEFORE" | tr ' ' '\n' | head -1 | cut -d= -f2 | cut -d: -f1)
submit s1 12
kill -9 "${PID[$VICTIM]}" 2>/dev/null
wait "${PID[$VICTIM]}" 2>/dev/null
PID[$VICTIM]=""
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
for i in $SURV; do check_done "$i" "$DIR/acked.all" || fail "node $i after the kill"; done
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
for i in 1 2 3; do check_done "$i" "$DIR/acked.all" || fail "node $i after the return"; done
echo "ok 4 - node $VICTIM back: the rendezvous choice is restored ($BACK); every task completed once on all nodes"

# ---- 5. clean shutdown ---------------------------------------------------------------------
for i in 1 2 3; do kill -TERM "${PID[$i]}"; done
for i in 1 2 3; do
    wait "${PID[$i]}"
    rc=$?
    PID[$i]=""
    [ "$rc" = 0 ] || fail "node $i exited with $rc on SIGTERM"
done
echo "ok 5 - the three nodes stopped cleanly on SIGTERM"
echo "PASS"
