#!/usr/bin/env bash
# bench/run.sh — builds the Release tree (build-rel) if needed and runs the benchmarks,
# each area printing its own markdown table. Timing lives here, never in the tests.
#
#   bench/run.sh            all areas (today: the runtime)
#   BENCH_RUNS=5 bench/run.sh
#
# Areas are functions sourced from bench/<area>.sh; add one by adding a file and a line below.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$root/build-rel"

if [[ ! -f "$build/CMakeCache.txt" ]]; then
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DMACULA_WERROR=ON >/dev/null
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
echo
echo "## Runtime"
bench_runtime "$build"
