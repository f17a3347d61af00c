#!/usr/bin/env bash
# bench/runtime.sh — the runtime benchmark: bench/bench_runtime.c beside
# bench/erlang/bench_runtime.erl, printed as a markdown table.
#
#   bench/runtime.sh [BUILD_DIR]       (default build-rel; bench/run.sh builds it first)
#
# Or, sourced (bench/run.sh does this): bench_runtime BUILD_DIR
#
# Each mode runs in its own process (C) or VM (Erlang), BENCH_RUNS times (default 3),
# interleaved: C, Erlang with default schedulers, Erlang +S 1, then the next run. Each side's
# number is the MEDIAN of its runs; the Erlang column takes the better of its two scheduler
# settings (higher rate, lower latency or bytes). BENCH_RAW=DIR keeps the raw output there.

bench_runtime() {
    local root build bin runs tmp erldir raw r m
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    build="${1:-$root/build-rel}"
    bin="$build/bench_runtime"
    runs="${BENCH_RUNS:-3}"
    if [[ ! -x "$bin" ]]; then
        echo "bench/runtime.sh: $bin not built (run bench/run.sh)" >&2
        return 1
    fi
    for t in erl erlc; do
        command -v "$t" >/dev/null || { echo "bench/runtime.sh: $t not found" >&2; return 1; }
    done
    tmp="$(mktemp -d)"
    erldir="$tmp/ebin"
    mkdir -p "$erldir"
    erlc -o "$erldir" "$root/bench/erlang/bench_runtime.erl" || { rm -rf "$tmp"; return 1; }
    raw="$tmp/raw.txt"
    : >"$raw"

    # side run mode: tags each output line "side run metric value"
    _br_tag() { awk -v s="$1" -v r="$2" 'NF == 2 { print s, r, $1, $2 }'; }
    local modes=(memory spawn pingpong ring restart)
    for ((r = 1; r <= runs; r++)); do
        echo "run $r/$runs ..." >&2
        for m in "${modes[@]}"; do
            "$bin" "$m" | _br_tag macula "$r" >>"$raw"
            erl -noshell -pa "$erldir" -s bench_runtime main "$m" -s init stop |
                _br_tag erl "$r" >>"$raw"
            erl +S 1 -noshell -pa "$erldir" -s bench_runtime main "$m" -s init stop |
                _br_tag erl_s1 "$r" >>"$raw"
        done
    done
    if [[ -n "${BENCH_RAW:-}" ]]; then
        mkdir -p "$BENCH_RAW" && cp "$raw" "$BENCH_RAW/runtime_raw.txt"
    fi

    awk -v runs="$runs" '
    function median(key,   n, i, j, t, v) {
        n = cnt[key]
        if (n == 0) return ""
        for (i = 1; i <= n; i++) v[i] = val[key, i]
        for (i = 2; i <= n; i++) { t = v[i]; for (j = i - 1; j >= 1 && v[j] > t; j--) v[j + 1] = v[j]; v[j + 1] = t }
        return (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
    }
    function spread(key,   n, i, lo, hi) {
        n = cnt[key]
        if (n == 0) return ""
        lo = hi = val[key, 1]
        for (i = 2; i <= n; i++) { if (val[key, i] < lo) lo = val[key, i]; if (val[key, i] > hi) hi = val[key, i] }
        return fmt(lo) "–" fmt(hi)
    }
    function fmt(x) {
        if (x == "") return "n/a"
        if (x >= 1e6) return sprintf("%.2f M", x / 1e6)
        if (x >= 1e4) return sprintf("%.0f k", x / 1e3)
        if (x == int(x)) return sprintf("%d", x)
        return sprintf("%.2f", x)
    }
    { k = $1 SUBSEP $3; cnt[k]++; val[k, cnt[k]] = $4; metrics[$3] = 1 }
    # row: label, metric, higher-is-better?, goal kind (ratio_ge / ratio_le / abs_lt), goal value, unit
    function row(label, metric, higher, kind, goal, unit,   c, e, e1, eb, which, ratio, gtxt, met) {
        c = median("macula" SUBSEP metric)
        e = median("erl" SUBSEP metric); e1 = median("erl_s1" SUBSEP metric)
        if (e == "" || (e1 != "" && (higher ? e1 > e : e1 < e))) { eb = e1; which = "+S 1" } else { eb = e; which = "default" }
        ratio = (c != "" && eb != "" && eb > 0) ? c / eb : ""
        if (kind == "ratio_ge") { gtxt = "≥ " goal "× Erlang"; met = (ratio != "" && ratio >= goal) }
        else if (kind == "ratio_le") { gtxt = "≤ " goal "× Erlang"; met = (ratio != "" && ratio <= goal) }
        else { gtxt = "< " goal " " unit; met = (c != "" && c < goal) }
        printf "| %s | %s | %s (%s) | %s | %s | %s |\n", label, fmt(c), fmt(eb), which,
            ratio == "" ? "n/a" : (ratio >= 0.1 ? sprintf("%.2f×", ratio) : sprintf("%.3f×", ratio)),
            gtxt, met ? "yes" : "**no**"
    }
    END {
        print ""
        print "| metric | macula | Erlang/OTP 25 | ratio (macula ÷ Erlang) | goal | met? |"
        print "|---|---|---|---|---|---|"
        row("spawn+exit / s", "spawn_exit_per_s", 1, "ratio_ge", 5)
        row("messages / s, ping-pong (2 actors)", "pingpong_msgs_per_s", 1, "ratio_ge", 5)
        row("messages / s, ring of 10,000", "ring_msgs_per_s", 1, "ratio_ge", 5)
        row("restart latency, median (µs)", "restart_latency_median_us", 0, "abs_lt", 10, "µs")
        row("restart latency, p99 (µs)", "restart_latency_p99_us", 0, "abs_lt", 10, "µs")
        row("bytes per idle actor, RSS", "bytes_per_actor_rss", 0, "ratio_le", 0.25)
        row("bytes per idle actor, runtime accounting", "bytes_per_actor_runtime", 0, "ratio_le", 0.25)
        print ""
        printf "Each cell: median of %d runs. Erlang column: the better of default schedulers and +S 1.\n", runs
        print ""
        print "All results (median, and min–max over the runs):"
        print ""
        print "| result | macula | Erlang default | Erlang +S 1 |"
        print "|---|---|---|---|"
        n = split("spawn_exit_per_s spawn_kill_per_s pingpong_msgs_per_s ring_msgs_per_s ring_setup_s restart_latency_median_us restart_latency_p99_us restart_latency_mean_us restart_latency_first1000_median_us restart_latency_last1000_median_us bytes_per_actor_runtime bytes_per_actor_rss", order, " ")
        for (i = 1; i <= n; i++) {
            m = order[i]
            printf "| %s |", m
            split("macula erl erl_s1", sides, " ")
            for (s = 1; s <= 3; s++) {
                key = sides[s] SUBSEP m
                if (cnt[key]) printf " %s (%s) |", fmt(median(key)), spread(key); else printf " – |"
            }
            printf "\n"
        }
    }' "$raw"
    rm -rf "$tmp"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    set -euo pipefail
    bench_runtime "$@"
fi
