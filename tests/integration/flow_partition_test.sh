#!/usr/bin/env bash
# tests/integration/flow_partition_test.sh MACULA_BIN — partitions of a 3-node flow cluster
# (Raft + gossip over QUIC) of real processes on 127.0.0.1, cut by the test-only fault switch
# (MACULA_FLOW_FAULTS=1, POST /flow/cluster_fault {"isolate": bool}: the node drops all its
# Raft and gossip traffic both ways):
#  1. node 1 bootstraps, 2 and 3 join (gossip endpoints learnt from their API); every node's
#     gossip view sees three members alive, nobody paused;
#  2. a follower is isolated → it reports paused (its gossip view holds the two others
#     suspect/dead: no quorum) while the majority still accepts and completes submissions;
#  3. healed → it catches up (its state has the tasks submitted during the partition) and is
#     no longer paused;
#  4. the leader is isolated → the majority elects a new leader and goes on; the old leader
#     pauses and cannot commit;
#  5. healed → all three converge: the same tasks, all completed, the same counters;
#  6. SIGTERM → every node exits 0 (with a sanitizer build: no leak, no error).
# No timing is asserted: every wait polls with a generous deadline.
set -u
BIN=${1:?usage: flow_partition_test.sh MACULA_BIN}
command -v curl >/dev/null || { echo "SKIP: curl not installed"; exit 77; }
command -v python3 >/dev/null || { echo "python3 is required (scripts/setup.sh test installs it)"; exit 1; }

DIR=$(mktemp -d /tmp/macula-flow-partition.XXXXXX)
BASE=$((25000 + ($$ % 300) * 20))
declare -A PID
fail() {
    echo "FAIL: $*"
    for i in 1 2 3; do
        echo "--- node $i log"
        tail -n 20 "$DIR/n$i.log" 2>/dev/null
        echo "--- node $i status"
        post "$i" cluster_status '{}' 2>/dev/null | head -c 2000
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
    rm -rf "$DIR"
}
trap cleanup EXIT

raft_addr() { echo "127.0.0.1:$((BASE + $1))"; }
http_addr() { echo "127.0.0.1:$((BASE + 5 + $1))"; }
gossip_addr() { echo "127.0.0.1:$((BASE + 10 + $1))"; }
url() { echo "http://$(http_addr "$1")"; }

start_node() { # id [--join]
    local i=$1
    shift
    MACULA_FLOW_FAULTS=1 "$BIN" flow-node --id "$i" --raft "$(raft_addr "$i")" \
        --http "$(http_addr "$i")" --gossip "$(gossip_addr "$i")" --data "$DIR/d$i" \
        --election-ms 150 "$@" >>"$DIR/n$i.log" 2>&1 &
    PID[$i]=$!
}

post() { # node op json → body on stdout (redirects followed), HTTP status in $DIR/status
    curl -s -L --post302 --post301 -m 5 -o "$DIR/body" -w '%{http_code}' \
        -H 'Content-Type: application/json' -X POST -d "$3" "$(url "$1")/flow/$2" >"$DIR/status" 2>/dev/null
    cat "$DIR/body" 2>/dev/null
}
post_here() { # node op json → HTTP status of this node's own answer (no redirect)
    curl -s -m "${4:-5}" -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
        -X POST -d "$3" "$(url "$1")/flow/$2" 2>/dev/null
}
jget() { python3 -c "import json,sys
try: d=json.load(sys.stdin)
except Exception: sys.exit(1)
for k in sys.argv[1].split('.'):
    d = d.get(k) if isinstance(d, dict) else None
print('' if d is None else (json.dumps(d) if isinstance(d,(dict,list)) else d))" "$1"; }

status_of() { post "$1" cluster_status '{}'; }
is_ready_leader() { # node
    local st
    st=$(status_of "$1")
    [ "$(echo "$st" | jget state)" = leader ] && [ "$(echo "$st" | jget ready)" = True ]
}
wait_leader() { # nodes... → prints the ready leader among them
    for _ in $(seq 1 300); do
        for i in "$@"; do
            if is_ready_leader "$i"; then
                echo "$i"
                return 0
            fi
        done
        sleep 0.1
    done
    return 1
}
# node's gossip view: "paused" and how many members are alive
gossip_view() { status_of "$1" | python3 -c "import json,sys
d=json.load(sys.stdin); g=d.get('gossip') or {}
m=g.get('members') or {}
print(d.get('paused'), sum(1 for s in m.values() if s=='alive'), len(m))" 2>/dev/null; }
wait_view() { # node "paused alive known" (e.g. "False 3 3") [tries]
    for _ in $(seq 1 "${3:-300}"); do
        [ "$(gossip_view "$1")" = "$2" ] && return 0
        sleep 0.1
    done
    return 1
}
isolate() { # node true|false
    [ "$(post_here "$1" cluster_fault "{\"isolate\":$2}")" = 200 ] || fail "cluster_fault on node $1"
}

submit_batch() { # node count tag → appends acknowledged ids to $DIR/acked.tag
    local node=$1 count=$2 tag=$3 k ok
    for k in $(seq 1 "$count"); do
        ok=""
        for _ in $(seq 1 50); do
            body=$(post "$node" task_submit "{\"swarm\":\"s1\",\"input\":{\"op\":\"sleep\",\"ms\":10,\"k\":\"$tag-$k\"}}")
            if [ "$(cat "$DIR/status")" = 200 ]; then
                echo "$body" | jget id >>"$DIR/acked.$tag"
                ok=1
                break
            fi
            sleep 0.1
        done
        [ -n "$ok" ] || fail "submission $tag-$k to node $node not acknowledged: $(cat "$DIR/body")"
    done
}
# node file → every id in file present and completed in node's own state
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
deadline = time.time() + 60
while True:
    try:
        tasks = {t["id"]: t["state"] for t in post("task_list", {"limit": 100000})}
    except Exception:
        tasks = {}
    bad = [i for i in ids if tasks.get(i) != "completed"]
    if not bad:
        sys.exit(0)
    if time.time() > deadline:
        print(f"{base}: {len(bad)} of {len(ids)} tasks not completed here (e.g. {bad[:3]})")
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
    wait_view "$i" "False 3 3" || fail "node $i: gossip view $(gossip_view "$i"), expected 3 alive"
    got=""
    for _ in $(seq 1 100); do # messages really flow (not just the 3 s grace of a new member)
        r=$(status_of "$i" | jget gossip.received)
        [ "${r:-0}" -gt 2 ] && got=1 && break
        sleep 0.1
    done
    [ -n "$got" ] || fail "node $i received no gossip"
    # rejected = refused by the core or oversized; "unknown" (a member not yet in this node's
    # directory while its join is applied) is normal at start-up
    [ "$(status_of "$i" | jget gossip.rejected)" = 0 ] || fail "node $i rejected gossip"
done
n=$(status_of 2 | python3 -c "import json,sys; d=json.load(sys.stdin); print(sum(1 for m in d['members'] if m.get('node') and m.get('gossip')))")
[ "$n" = 3 ] || fail "the member directory has $n gossip endpoints, expected 3"
echo "ok 1 - 3-node cluster with gossip over QUIC: every node sees 3 members alive, none paused"

post 1 swarm_create '{"id":"s1","topology":"star","config":{"pool_min":{"worker":2,"specialist":0,"scout":0}}}' >/dev/null
[ "$(cat "$DIR/status")" = 200 ] || fail "swarm_create: $(cat "$DIR/body")"
submit_batch 1 5 warm
check_done 1 "$DIR/acked.warm" || fail "warm-up tasks"

# ---- 2. isolate a follower ------------------------------------------------------------------
F=2
[ "$L" = 2 ] && F=3
isolate "$F" true
wait_view "$F" "True 1 3" 600 || fail "isolated follower $F: gossip view $(gossip_view "$F"), expected paused"
submit_batch "$L" 10 p1
check_done "$L" "$DIR/acked.p1" || fail "the majority did not complete the submissions"
[ "$(status_of "$L" | jget paused)" = False ] || fail "leader $L paused with a majority"
echo "ok 2 - isolated follower $F paused (no quorum in its gossip view); the majority completed 10 submissions"

# ---- 3. heal the follower ------------------------------------------------------------------
isolate "$F" false
wait_view "$F" "False 3 3" 600 || fail "healed follower $F: gossip view $(gossip_view "$F")"
check_done "$F" "$DIR/acked.p1" || fail "healed follower $F did not catch up"
echo "ok 3 - healed follower $F caught up (has the partition's tasks) and is no longer paused"

# ---- 4. isolate the leader ------------------------------------------------------------------
OTHERS=()
for i in 1 2 3; do [ "$i" != "$L" ] && OTHERS+=("$i"); done
isolate "$L" true
L2=$(wait_leader "${OTHERS[@]}") || fail "no new leader among ${OTHERS[*]} after isolating leader $L"
wait_view "$L" "True 1 3" 600 || fail "isolated old leader $L: gossip view $(gossip_view "$L")"
code=$(post_here "$L" task_submit '{"swarm":"s1","input":{"op":"sleep","ms":1,"k":"old-leader"}}' 10)
[ "$code" != 200 ] || fail "the isolated old leader $L acknowledged a submission"
[ "$(status_of "$L" | jget ready)" != True ] || fail "the isolated old leader $L still reports itself a ready leader"
submit_batch "$L2" 10 p2
check_done "$L2" "$DIR/acked.p2" || fail "the new leader $L2 did not complete the submissions"
echo "ok 4 - leader $L isolated: $L2 elected and completed 10 submissions; $L paused and refused (HTTP $code)"

# ---- 5. heal: everybody converges ------------------------------------------------------------
isolate "$L" false
for i in 1 2 3; do
    wait_view "$i" "False 3 3" 600 || fail "node $i after healing: gossip view $(gossip_view "$i")"
done
cat "$DIR"/acked.* >"$DIR/acked.all"
for i in 1 2 3; do check_done "$i" "$DIR/acked.all" || fail "node $i did not converge"; done
python3 - "$(url 1)" "$(url 2)" "$(url 3)" <<'EOF' || fail "the three states differ"
import json, sys, time, urllib.request
def post(base, op, args):
    req = urllib.request.Request(base + "/flow/" + op, data=json.dumps(args).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.load(r)
deadline = time.time() + 60
while True:
    views = []
    for b in sys.argv[1:]:
        tasks = sorted((t["id"], t["state"]) for t in post(b, "task_list", {"limit": 100000}))
        m = post(b, "metrics", {})
        views.append((tasks, m["ended_total"]))
    if all(v == views[0] for v in views):
        print(f"# {len(views[0][0])} tasks, ended {views[0][1]} on all three")
        sys.exit(0)
    if time.time() > deadline:
        for b, v in zip(sys.argv[1:], views):
            print(b, len(v[0]), v[1])
        sys.exit(1)
    time.sleep(0.2)
EOF
echo "ok 5 - healed: all three nodes converged (same tasks, same counters), none paused"

# ---- 6. clean shutdown (a sanitizer build reports leaks and errors through the exit code) --
for i in 1 2 3; do kill -TERM "${PID[$i]}"; done
for i in 1 2 3; do
    wait "${PID[$i]}"
    rc=$?
    PID[$i]=""
    [ "$rc" = 0 ] || fail "node $i exited with $rc on SIGTERM"
done
echo "ok 6 - the three nodes stopped cleanly on SIGTERM"
echo "PASS"
