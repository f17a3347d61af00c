#!/usr/bin/env bash
# tests/integration/flow_cli_test.sh MACULA — the flow script commands against a running
# `macula flow serve` (through its MCP Streamable HTTP endpoint): swarm create/list/status/
# scale/destroy, agent spawn (builtin and exec /bin/cat)/list/stop, task submit (with wait,
# priority, dependencies)/status/result/list/cancel, metrics, tools, --table output, exit
# statuses (1 tool error, 2 usage, 3 unreachable), and a clean SIGTERM shutdown.
set -u
macula=$(realpath "$1")
work=$(mktemp -d)
pid=
trap 'kill $pid 2>/dev/null; rm -rf "$work"' EXIT
passed=0
failed=0
check() { # check NAME CONDITION...
  local name=$1
  shift
  if "$@"; then passed=$((passed + 1)); echo "ok   $name"; else failed=$((failed + 1)); echo "FAIL $name"; fi
}
field() { # field NAME JSON: the first string value of "NAME" in pretty JSON
  sed -n "s/^ *\"$1\": \"\\([^\"]*\\)\".*/\\1/p" <<<"$2" | head -1
}
export HOME="$work/home"
mkdir -p "$HOME"
unset MACULA_FLOW_CHAOS MACULA_DATA_DIR MACULA_CONFIG

HEALTH_PORT=0 MACULA_HEALTH_ADDR=127.0.0.1 MACULA_MCP_PORT=0 MACULA_QUIC_PORT=0 \
  "$macula" flow serve --data-dir "$work/data" >"$work/out" 2>"$work/err" &
pid=$!
url=
for _ in $(seq 1 200); do
  url=$(sed -n 's#^  mcp        \(http://127.0.0.1:[0-9]*/mcp\)$#\1#p' "$work/out")
  [ -n "$url" ] && grep -q ready "$work/out" && break
  sleep 0.05
done
check "flow serve prints its MCP endpoint" test -n "$url"
check "flow serve banner names flow" grep -q "flow       erlmcp_flow_sup + macula_flow_mcp, 14 MCP tools" "$work/out"
f() { "$macula" flow "$@" --url "$url"; }

tools=$(f tools)
check "flow tools lists 14 tools" test "$(wc -l <<<"$tools")" -eq 14
check "...task_submit among them" grep -q "^task_submit " <<<"$tools"

out=$(f swarm create --id cli --topology star --config '{"pool_min":{"worker":0,"specialist":0,"scout":0}}')
check "swarm create" test "$(field id "$out")" = cli
check "...topology" test "$(field topology "$out")" = star
out=$(f agent spawn cli --role worker --id w1)
check "agent spawn (builtin)" test "$(field id "$out")" = w1
out=$(f agent spawn cli --role specialist --exec /bin/cat --id cat1)
check "agent spawn --exec /bin/cat" grep -q '"/bin/cat"' <<<"$out"
check "agent list --table" grep -q "^cat1 .*specialist" <<<"$(f agent list cli --table)"

out=$(f task submit cli --role specialist --input '{"hello":"world"}' --wait 10000)
check "task submit --wait via exec: completed" test "$(field state "$out")" = completed
check "...the result is cat's output" grep -q '"hello": "world"' <<<"$out"
out=$(f task submit cli --role worker --input '{"op":"sleep","ms":100}' --priority high)
task=$(field id "$out")
check "task submit (no wait) returns the id" grep -Eq '^[0-9a-f-]{36}$' <<<"$task"
check "...priority" test "$(field priority "$out")" = high
out=$(f task result "$task" --wait 10000)
check "task result --wait" test "$(field state "$out")" = completed
check "task status" test "$(field state "$(f task status "$task")")" = completed

f swarm create --id idle --config '{"pool_min":{"worker":0,"specialist":0,"scout":0}}' >/dev/null
p1=$(field id "$(f task submit idle --input 1)")
p2=$(field id "$(f task submit idle --input 2 --dep "$p1")")
check "task list --state pending" test "$(f task list --swarm idle --state pending --table | wc -l)" -eq 3
check "task cancel" test "$(field state "$(f task cancel "$p1")")" = cancelled
check "...its dependent failed" test "$(field state "$(f task status "$p2")")" = failed
f task cancel "$p1" >/dev/null 2>"$work/e"
check "cancelling again is a tool error (exit 1)" test $? -eq 1
check "...with the reason on stderr" grep -q "task_cancel" "$work/e"

check "swarm list --table" grep -q "^cli .*star" <<<"$(f swarm list --table)"
check "swarm status" grep -q '"completed": 2' <<<"$(f swarm status cli)"
check "swarm scale" grep -q '"scout": 1' <<<"$(f swarm scale cli scout 1)"
check "metrics" grep -q '"observer"' <<<"$(f metrics)"
check "agent stop" test "$(field id "$(f agent stop w1)")" = w1
f swarm status nope >/dev/null 2>"$work/e"
check "unknown swarm: exit 1" test $? -eq 1
check "...not_found on stderr" grep -q "not_found" "$work/e"
f task submit cli --priority urgent >/dev/null 2>"$work/e"
check "bad arguments: exit 1 (tool error)" test $? -eq 1
f swarm frobnicate >/dev/null 2>&1
check "unknown verb: exit 2" test $? -eq 2
f task submit cli --wait soon >/dev/null 2>&1
check "bad option value: exit 2" test $? -eq 2
"$macula" flow swarm list --url http://127.0.0.1:1/mcp >/dev/null 2>&1
check "unreachable server: exit 3" test $? -eq 3
check "swarm destroy" grep -q '"destroyed": true' <<<"$(f swarm destroy cli)"
check "...gone" test "$(f swarm list --table | grep -c '^cli ')" -eq 0

kill -TERM $pid
for _ in $(seq 1 100); do kill -0 $pid 2>/dev/null || break; sleep 0.05; done
wait $pid
rc=$?
check "flow serve stops cleanly on SIGTERM" test $rc -eq 0
check "...and says so" grep -q "macula: stopped" "$work/out"
pid=

echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
