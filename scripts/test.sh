#!/usr/bin/env bash
# scripts/test.sh — installs what is missing, builds, and runs the whole test suite:
#   1. normal build: unit tests + the OTP oracle (live OTP 25 side by side)
#   2. ASan+UBSan(+LSan) build: unit tests + the oracle against the recorded OTP traces
#   3. static checks: clang-format, cppcheck, clang-tidy
#   4. short libFuzzer runs of every fuzz target (clang)
# Ends with one line "N passed, N failed" over all of it; exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
JOBS=$(nproc)
scripts/setup.sh test || exit 1
tests/mcp/npm_ci.sh || echo "npm ci of tests/mcp failed: the MCP interop tests will fail"

passed=0
failed=0
failures=()
failed_tests=() # "DIR NAME" of every failed ctest entry, reported again at the end

# ctest_pass DIR LABEL: runs ctest and adds its counts
ctest_pass() {
  local dir=$1 label=$2 out
  out=$(cd "$dir" && ctest --output-on-failure -j"$JOBS" 2>&1)
  local rc=$?
  echo "$out"
  local line total nfail
  line=$(echo "$out" | grep -E "tests passed, [0-9]+ tests failed out of [0-9]+" | tail -1)
  if [ -n "$line" ]; then
    nfail=$(echo "$line" | sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\1/')
    total=$(echo "$line" | sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\2/')
    passed=$((passed + total - nfail))
    failed=$((failed + nfail))
  fi
  if [ $rc -ne 0 ]; then
    failures+=("$label")
    [ -n "$line" ] || failed=$((failed + 1))
    local t
    while read -r t; do
      [ -n "$t" ] && failed_tests+=("$dir $t")
    done < <(echo "$out" | sed -n '/The following tests FAILED:/,$p' |
      sed -nE 's/^[[:space:]]*[0-9]+ - ([^ ]+) .*/\1/p')
  fi
}

# report_failed_test DIR NAME: the end of that test's output, from ctest's log
report_failed_test() {
  local dir=$1 name=$2
  echo "---- $dir: $name (last 60 lines of its output)"
  awk -v n="$name" '
    $0 ~ "^[0-9]+/[0-9]+ Test: " n "$" { on = 1; next }
    on && /^"?<end of output>|^Test time =/ { on = 0 }
    on { print }' "$dir/Testing/Temporary/LastTest.log" 2>/dev/null | tail -60
}

# step LABEL CMD...: one check that passes or fails as a whole
step() {
  local label=$1
  shift
  echo "== $label"
  if "$@"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    failures+=("$label")
  fi
}

echo "== build (RelWithDebInfo)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null &&
  cmake --build build -j"$JOBS" || { echo "build failed"; echo "0 passed, 1 failed"; exit 1; }
echo "== tests (normal build, live OTP oracle)"
ctest_pass build "normal build tests"

echo "== build (ASan + UBSan)"
if cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DMACULA_SANITIZE=ON \
  -DMACULA_ORACLE_EXPECTED=ON >/dev/null &&
  cmake --build build-asan -j"$JOBS"; then
  echo "== tests (sanitizers; oracle against recorded OTP traces)"
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  ctest_pass build-asan "sanitizer build tests"
else
  failed=$((failed + 1))
  failures+=("sanitizer build")
fi

C_FILES=$(git ls-files 'src/*.c' 'src/*.h' 'include/*.h' 'tests/*.c' 'bench/*.c' 'fuzz/*.c' 2>/dev/null)
step "clang-format" clang-format --dry-run -Werror $C_FILES
step "cppcheck" cppcheck --quiet --error-exitcode=1 --enable=warning,portability \
  --inline-suppr --std=c11 -I include -I src --suppress=missingIncludeSystem \
  $(git ls-files 'src/*.c')
step "clang-tidy" scripts/tidy.sh build

if ls fuzz/fuzz_*.c >/dev/null 2>&1; then
  echo "== fuzz (short runs)"
  if CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DMACULA_FUZZ=ON \
      -DCMAKE_C_COMPILER=clang >/dev/null &&
    cmake --build build-fuzz -j"$JOBS" --target $(basename -s .c fuzz/fuzz_*.c) >/dev/null; then
    for src in fuzz/fuzz_*.c; do
      name=$(basename "$src" .c)
      corpus="fuzz/corpus/${name#fuzz_}"
      work=$(mktemp -d)
      [ -d "$corpus" ] && cp -r "$corpus"/. "$work"/
      # libFuzzer's progress goes to a file; its last lines are printed, all of it on failure
      log="build-fuzz/$name.log"
      echo "== fuzz $name (log: $log)"
      nfail=${#failures[@]}
      step "fuzz $name" ./build-fuzz/"$name" -max_total_time="${MACULA_FUZZ_SECONDS:-30}" \
        -rss_limit_mb=2048 "$work" >"$log" 2>&1
      if [ ${#failures[@]} -gt "$nfail" ]; then tail -80 "$log"; else tail -1 "$log"; fi
      rm -rf "$work"
    done
  else
    failed=$((failed + 1))
    failures+=("fuzz build")
  fi
fi

echo
for t in "${failed_tests[@]}"; do
  report_failed_test ${t%% *} "${t#* }"
done
if [ ${#failures[@]} -gt 0 ]; then
  echo "failed: ${failures[*]}"
fi
for t in "${failed_tests[@]}"; do
  echo "failed test: $t"
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
