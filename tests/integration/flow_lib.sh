# shellcheck shell=bash
# tests/integration/flow_lib.sh — what the flow cluster tests (cluster, partition, election,
# pbft) share: the prerequisites, a work directory removed at exit with every node killed, the
# ports of node N, starting and killing `macula flow-node`, the HTTP helpers and the join and
# SIGTERM steps. Sourced after the caller has set BIN; then the caller runs
#   flow_setup NAME LOW SLOTS STRIDE NODES
# which sets DIR (a fresh /tmp/macula-flow-NAME.XXXXXX) and BASE, the first port of this run:
# LOW + ($$ % SLOTS) * STRIDE. Node N listens on BASE+N (Raft or PBFT QUIC), BASE+5+N (HTTP)
# and BASE+10+N (gossip), so STRIDE is 10 without gossip, 20 with it. Every test keeps its own
# range [LOW, LOW + SLOTS*STRIDE), disjoint from the others' and below 32768 (the ephemeral
# range, where the kernel picks the ports of port-0 listeners and outgoing connections):
#   pbft 15000-20999, cluster 21000-24999, partition 25000-30999, election 9000-14999.
# Settings the caller may change after flow_setup:
#   FLOW_ADDRS   which address flags start_node passes ("raft http", "raft http gossip",
#                "http"), each --NAME "$(NAME_addr N)"
#   FLOW_ARGS    an array of more flow-node flags, the same for every node
#   FLOW_ENV     an array of NAME=VALUE settings for the nodes (e.g. MACULA_FLOW_FAULTS=1)
#   FLOW_POST_TIMEOUT  post's default curl timeout in seconds (5)
#   FLOW_POST_FOLLOW   1: post follows the leader's redirects (default), 0: it does not
#   FLOW_FAIL_STATUS   fail prints up to this many bytes of each live node's cluster_status (0)
#   KEEP         (environment) keep DIR at exit
command -v curl >/dev/null || { echo "SKIP: curl not installed"; exit 77; }
command -v python3 >/dev/null || { echo "python3 is required (scripts/setup.sh test installs it)"; exit 1; }

declare -A PID
FLOW_NODES=""
FLOW_ADDRS="raft http"
FLOW_ARGS=()
FLOW_ENV=()
FLOW_POST_TIMEOUT=5
FLOW_POST_FOLLOW=1
FLOW_FAIL_STATUS=0

flow_setup() { # NAME LOW SLOTS STRIDE NODES
    local name=$1 low=$2 slots=$3 stride=$4
    [ $((low + slots * stride)) -le 32768 ] || { echo "flow_lib: the ports of $name reach 32768"; exit 1; }
    DIR=$(mktemp -d "/tmp/macula-flow-$name.XXXXXX")
    BASE=$((low + ($$ % slots) * stride))
    FLOW_NODES=$(seq 1 "$5" | tr '\n' ' ')
    trap flow_cleanup EXIT
}
flow_cleanup() {
    local i
    exec 2>/dev/null # no "Killed" notices
    for i in $FLOW_NODES; do
        [ -n "${PID[$i]:-}" ] && kill -9 "${PID[$i]}" 2>/dev/null
    done
    wait 2>/dev/null
    if [ -n "${KEEP:-}" ]; then echo "# kept $DIR"; else rm -rf "$DIR"; fi
}
fail() { # message → prints it and each node's log tail (and status), exits 1
    local i
    echo "FAIL: $*"
    for i in $FLOW_NODES; do
        echo "--- node $i log"
        tail -n 20 "$DIR/n$i.log" 2>/dev/null
        if [ "$FLOW_FAIL_STATUS" -gt 0 ]; then
            echo "--- node $i status"
            [ -n "${PID[$i]:-}" ] && post "$i" cluster_status '{}' 2 | head -c "$FLOW_FAIL_STATUS"
            echo
        fi
    done
    exit 1
}

raft_addr() { echo "127.0.0.1:$((BASE + $1))"; }
quic_addr() { raft_addr "$1"; }
http_addr() { echo "127.0.0.1:$((BASE + 5 + $1))"; }
gossip_addr() { echo "127.0.0.1:$((BASE + 10 + $1))"; }
url() { echo "http://$(http_addr "$1")"; }

start_node() { # id [flags...] → flow-node id in the background, its log appended to $DIR/nID.log
    local i=$1 a
    local -a args=()
    shift
    for a in $FLOW_ADDRS; do args+=("--$a" "$("${a}_addr" "$i")"); done
    env "${FLOW_ENV[@]}" "$BIN" flow-node --id "$i" "${args[@]}" --data "$DIR/d$i" "${FLOW_ARGS[@]}" \
        "$@" >>"$DIR/n$i.log" 2>&1 &
    PID[$i]=$!
}
kill_node() { # id → kill -9, reaped
    kill -9 "${PID[$1]}" 2>/dev/null
    wait "${PID[$1]}" 2>/dev/null
    PID[$1]=""
}
alive_nodes() { local i; for i in $FLOW_NODES; do [ -n "${PID[$i]:-}" ] && echo "$i"; done; }
# stop_nodes NODES... → SIGTERM to each, then waits for each; at the first that does not exit
# 0, sets STOP_NODE and STOP_RC and returns 1 (a sanitizer build reports through the exit code)
# shellcheck disable=SC2034 # STOP_NODE and STOP_RC are for the caller
stop_nodes() {
    local i
    for i in "$@"; do kill -TERM "${PID[$i]}"; done
    for i in "$@"; do
        wait "${PID[$i]}"
        STOP_RC=$?
        PID[$i]=""
        [ "$STOP_RC" = 0 ] || { STOP_NODE=$i; return 1; }
    done
    return 0
}

post() { # node op json [timeout] → body on stdout, HTTP status in $DIR/status
    local -a follow=()
    [ "$FLOW_POST_FOLLOW" = 1 ] && follow=(-L --post302 --post301)
    curl -s "${follow[@]}" -m "${4:-$FLOW_POST_TIMEOUT}" -o "$DIR/body" -w '%{http_code}' \
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
is_ready_leader() { # node
    local st
    st=$(status_of "$1")
    [ "$(echo "$st" | jget state)" = leader ] && [ "$(echo "$st" | jget ready)" = True ]
}
wait_leader() { # nodes... → prints the ready leader among them
    local i
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
wait_live_leader() { # → prints the ready leader among the live nodes
    local -a live
    read -r -a live <<<"$(alive_nodes | tr '\n' ' ')"
    wait_leader "${live[@]}"
}
# join_nodes NODES... → `macula flow cluster join` of each through node 1, retried while node 1
# is not ready
join_nodes() {
    local i ok
    for i in "$@"; do
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
}

# flow_py ARGS... <<'EOF' → runs the Python program on stdin with ARGS after a prelude that
# defines post(base, op, args, timeout=5): POST base/flow/op with args as JSON, the answer parsed
FLOW_PY='import json, sys, time, urllib.request
def post(base, op, args, timeout=5):
    req = urllib.request.Request(base + "/flow/" + op, data=json.dumps(args).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.load(r)
'
flow_py() { { printf '%s' "$FLOW_PY"; cat; } | python3 - "$@"; }

# check_done NODE FILE [SECONDS [COUNTER]] → every task id in FILE is completed in NODE's own
# state (polled for SECONDS, 60 by default); with COUNTER=1 also the monotonic completed
# counter equals the number of completed tasks (none completed twice), and a summary is printed
check_done() {
    flow_py "$(url "$1")" "$2" "${3:-60}" "${4:-0}" <<'EOF'
base, path, wait, counter = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4] == "1"
ids = [l.strip() for l in open(path) if l.strip()]
deadline = time.time() + wait
while True:
    try:
        tasks = {t["id"]: t["state"] for t in post(base, "task_list", {"limit": 100000})}
        m = post(base, "metrics", {}) if counter else None
    except Exception:
        tasks, m = {}, None
    bad = [i for i in ids if tasks.get(i) != "completed"]
    done = sum(1 for s in tasks.values() if s == "completed")
    if not bad and (not counter or (m and m["ended_total"]["completed"] == done)):
        if counter:
            print(f"# {base}: {len(ids)} acknowledged tasks completed, {done} completed in all")
        sys.exit(0)
    if time.time() > deadline:
        print(f"{base}: {len(bad)} of {len(ids)} tasks not completed here (e.g. {bad[:3]})"
              + (f"; counter {m and m['ended_total']['completed']} vs {done} completed" if counter else ""))
        sys.exit(1)
    time.sleep(0.2)
EOF
}
