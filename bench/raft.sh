#!/usr/bin/env bash
# bench/raft.sh — replicated commits: flow's Raft (libraft, bench/bench_raft.c) beside etcd, three
# members each on 127.0.0.1, printed as a markdown table.
#
#   bench/raft.sh [BUILD_DIR] [N]      (default build, N = 20000 commits per run)
#
# Raft: three libraft servers in one process (flow's log store: fsync'd libuv segments under
# $TMPDIR; libraft's TCP transport on loopback), flow task_submit commands with a 128-byte
# input (an entry of `bench_raft entry-size` bytes). etcd: a three-member cluster started here
# (Debian package etcd-server; data under $TMPDIR, loopback ports), N puts of values of the same
# byte size through its v3 HTTP/JSON gateway on the leader, over keep-alive connections
# (bench_raft etcd). Both at depth 1 (one commit in flight: latency) and depth 16 (16 in
# flight: throughput). Without etcd only the Raft column is printed.
# Then leader re-election after a kill (bench_raft reelect, 20 rounds, three libraft servers in
# one process, the leader closed abruptly in process) at election timeouts 150 ms (flow's
# default) and 50 ms, flow's way ("on": leader-loss watch + pre-vote): time from the kill to a new
# leader, and to that leader having applied a
# barrier (when the registry sees "leader").
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$root/build}"
n="${2:-20000}"
bin="$build/bench_raft"
if [[ ! -x "$bin" ]]; then
    echo "bench/raft.sh: $bin not built (cmake --build $build --target bench_raft)" >&2
    exit 1
fi
tmp="$(mktemp -d)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT

declare -A res
run() { # kind args... -> res[key]
    local out
    out="$("$bin" "$@")" || return 1
    while read -r k v; do res["$k@${depth}"]="$v"; done <<<"$out"
}

for depth in 1 16; do
    echo "raft: $n commits, depth $depth ..." >&2
    run raft "$n" "$depth" 128
done

etcd_bin="$(command -v etcd || echo /usr/bin/etcd)"
have_etcd=0
if [[ -x "$etcd_bin" ]]; then
    have_etcd=1
    base=$((30000 + RANDOM % 20000))
    cluster=""
    for i in 0 1 2; do
        cluster+="${cluster:+,}m$i=http://127.0.0.1:$((base + 10 + i))"
    done
    for i in 0 1 2; do
        ETCD_UNSUPPORTED_ARCH= "$etcd_bin" --name "m$i" --data-dir "$tmp/etcd$i" \
            --listen-client-urls "http://127.0.0.1:$((base + i))" \
            --advertise-client-urls "http://127.0.0.1:$((base + i))" \
            --listen-peer-urls "http://127.0.0.1:$((base + 10 + i))" \
            --initial-advertise-peer-urls "http://127.0.0.1:$((base + 10 + i))" \
            --initial-cluster "$cluster" --initial-cluster-state new \
            --initial-cluster-token bench --log-level error >"$tmp/etcd$i.log" 2>&1 &
        pids+=($!)
    done
    leader=""
    for _ in $(seq 1 100); do
        for i in 0 1 2; do
            st="$(curl -s -m 1 -X POST -d '{}' "http://127.0.0.1:$((base + i))/v3/maintenance/status" || true)"
            if [[ -n "$st" ]] && python3 -c '
import json, sys
s = json.loads(sys.argv[1])
sys.exit(0 if s.get("leader") and s["leader"] == s["header"]["member_id"] else 1)' "$st" 2>/dev/null; then
                leader="http://127.0.0.1:$((base + i))"
            fi
        done
        [[ -n "$leader" ]] && break
        sleep 0.1
    done
    if [[ -z "$leader" ]]; then
        echo "bench/raft.sh: etcd cluster did not elect a leader" >&2
        cat "$tmp"/etcd*.log >&2
        exit 1
    fi
    value="$("$bin" entry-size 128)"
    for depth in 1 16; do
        echo "etcd: $n puts of $value bytes at $leader, depth $depth ..." >&2
        run etcd "$leader" "$n" "$depth" "$value"
    done
    etcd_version="$("$etcd_bin" --version | head -1)"
fi

echo
echo "| 3 members on 127.0.0.1, $n commits | flow Raft (libraft 0.15) | ${etcd_version:-etcd (not installed)} |"
echo "| --- | --- | --- |"
row() { # label key depth
    local e="-"
    (( have_etcd )) && e="${res[etcd_$2@$3]:-?}"
    echo "| $1 | ${res[raft_$2@$3]:-?} | $e |"
}
for depth in 1 16; do
    row "commits/s, depth $depth" commits_per_s "$depth"
    row "latency p50 µs, depth $depth" latency_us_p50 "$depth"
    row "latency p99 µs, depth $depth" latency_us_p99 "$depth"
done
echo "| entry / value bytes | ${res[raft_entry_bytes@16]:-?} | ${res[etcd_value_bytes@16]:--} |"

echo
echo "| leader re-election after a kill, 20 rounds, ms | elected p50 | p99 | max | ready p50 | p99 | max |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
for e in 150 50; do
    echo "reelect: 20 rounds, election timeout $e ms ..." >&2
    declare -A re=()
    while read -r k v; do re["$k"]="$v"; done < <("$bin" reelect 20 "$e")
    echo "| election timeout $e ms ($e-$((2 * e)) ms) | ${re[reelect_elected_ms_p50]:-?} | ${re[reelect_elected_ms_p99]:-?} | ${re[reelect_elected_ms_max]:-?} | ${re[reelect_ready_ms_p50]:-?} | ${re[reelect_ready_ms_p99]:-?} | ${re[reelect_ready_ms_max]:-?} |"
done
