#!/usr/bin/env bash
# bench/run.sh — builds the Release tree (build-rel) if needed and runs the benchmarks,
# each area printing its own markdown table. Timing lives here, never in the tests.
#
#   bench/run.sh                    all areas
#   BENCH_AREAS="quic" bench/run.sh  some areas (runtime mcp quic aead pubsub)
#   BENCH_RUNS=5 bench/run.sh
#
# It installs the peers it compares against (Debian packages: erlang-nox, mosquitto, openssl,
# nats-server, redis-server)
# with scripts/setup.sh bench.
#
# Areas are functions sourced from bench/<area>.sh; add one by adding a file and a line below.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$root/build-rel"
"$root/scripts/setup.sh" bench

if [[ ! -f "$build/CMakeCache.txt" ]]; then
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMACULA_WERROR=ON >/dev/null
fi
cmake --build "$build" -j"$(nproc)" >/dev/null

echo "# macula benchmarks"
echo
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'),"\
     "$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo);" \
     "$(. /etc/os-release && echo "$PRETTY_NAME"); $(uname -r);" \
     "$(erl -noshell -eval 'io:format("OTP ~s", [erlang:system_info(otp_release)]), halt().')"

# shellcheck source=bench/runtime.sh
. "$root/bench/runtime.sh"
# shellcheck source=bench/quic.sh
. "$root/bench/quic.sh"

area() { [[ -z "${BENCH_AREAS:-}" || " $BENCH_AREAS " == *" $1 "* ]]; }

if area runtime; then
    echo
    echo "## Runtime"
    bench_runtime "$build"
fi
if area mcp; then
    echo
    echo "## MCP: tools/call over Streamable HTTP and stdio"
    bash "$root/bench/mcp.sh" "$build"
fi
if area quic; then
    echo
    echo "## QUIC transport: ${BENCH_QUIC_CLIENTS:-10000} idle clients on one node"
    bench_quic_area "$build" "${BENCH_QUIC_CLIENTS:-10000}"
fi
if area aead; then
    echo
    echo "## QUIC packet protection: built-in AES-128-GCM beside GnuTLS's"
    "$build/bench_aead"
fi
if area pubsub; then
    echo
    echo "## Pub/sub and RPC beside NATS, redis and mosquitto"
    bash "$root/bench/pubsub.sh" "$build"
fi
