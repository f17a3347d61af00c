#!/usr/bin/env bash
# tests/integration/node_test.sh MACULA — a real `macula node` process on 127.0.0.1:
# zero-configuration start, the HTTP endpoints, `macula tree`, a clean SIGTERM shutdown,
# a refused second node on the same port, and a refused invalid HEALTH_PORT.
set -u
macula=$1
work=$(mktemp -d)
trap 'kill $pid 2>/dev/null; rm -rf "$work"' EXIT
passed=0
failed=0
check() { # check NAME CONDITION...
  local name=$1
  shift
  if "$@"; then passed=$((passed + 1)); echo "ok   $name"; else failed=$((failed + 1)); echo "FAIL $name"; fi
}

HEALTH_PORT=0 MACULA_HEALTH_ADDR=127.0.0.1 "$macula" node >"$work/out" 2>"$work/err" &
pid=$!
port=
for _ in $(seq 1 100); do
  port=$(sed -n 's#.*health     http://127.0.0.1:\([0-9]*\)/health.*#\1#p' "$work/out")
  [ -n "$port" ] && grep -q "ready" "$work/out" && break
  sleep 0.05
done
check "banner names the health port" test -n "$port"
check "banner shows the root" grep -q "macula_root one_for_one, 10 restarts in 5 s" "$work/out"
health=$(curl -s "http://127.0.0.1:$port/health")
check "/health is healthy" grep -q '"status":"healthy"' <<<"$health"
check "/live answers 200" test "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/live")" = 200
check "/nope answers 404" test "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/nope")" = 404
tree=$("$macula" tree --url "http://127.0.0.1:$port")
check "macula tree prints the seed's names" grep -q "macula_gateway_health" <<<"$tree"
HEALTH_PORT=$port MACULA_HEALTH_ADDR=127.0.0.1 timeout 5 "$macula" node >"$work/out2" 2>&1
rc2=$?
check "a second node on the same port is refused" test $rc2 -ne 0
check "...with a reason" grep -q "listen" "$work/out2"
HEALTH_PORT=abc timeout 5 "$macula" node >"$work/out3" 2>&1
rc3=$?
check "invalid HEALTH_PORT refused" test $rc3 -eq 2
check "...naming key, value and what is allowed" grep -q 'HEALTH_PORT="abc" is not valid: allowed is an integer from 0 to 65535' "$work/out3"
kill -TERM $pid
wait $pid
rc=$?
check "SIGTERM: clean exit" test $rc -eq 0
check "SIGTERM: orderly shutdown" grep -q "root supervisor ended (shutdown)" "$work/err"
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
