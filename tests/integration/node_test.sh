#!/usr/bin/env bash
# tests/integration/node_test.sh MACULA — real `macula node` processes on 127.0.0.1:
# zero-configuration start (identity created in the default data directory), the HTTP
# endpoints, `macula tree`, `macula id` agreeing with /health, a clean SIGTERM shutdown, a
# restart keeping the node ID, flag > environment precedence, a refused second node on the same
# port, invalid values (environment, INI file, flag) refused with status 2 and a message naming
# the key, and the ./macula-data fallback when even HOME is unset.
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
# Every run gets a private HOME: zero configuration puts the identity under it.
export HOME="$work/home"
unset MACULA_DATA_DIR XDG_DATA_HOME MACULA_CONFIG MACULA_REALM MACULA_CERT_PATH MACULA_KEY_PATH
mkdir -p "$HOME"

# start_node OUT ERR [ARGS...]: starts a node on a free health port; sets pid and port.
start_node() {
  local out=$1 err=$2
  shift 2
  HEALTH_PORT=0 MACULA_HEALTH_ADDR=127.0.0.1 MACULA_QUIC_PORT=0 "$macula" node "$@" >"$out" 2>"$err" &
  pid=$!
  port=
  for _ in $(seq 1 600); do
    port=$(sed -n 's#.*health     http://127.0.0.1:\([0-9]*\)/health.*#\1#p' "$out")
    qport=$(sed -n 's#.*quic       udp 0.0.0.0:\([0-9]*\) .*#\1#p' "$out")
    [ -n "$port" ] && grep -q "ready" "$out" && break
    sleep 0.05
  done
}
json_field() { # json_field NAME JSON: a string field's value
  sed -n "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/p" <<<"$2"
}

start_node "$work/out" "$work/err"
check "banner names the health port" test -n "$port"
check "banner shows the root" grep -q "macula_root one_for_one, 10 restarts in 5 s" "$work/out"
banner_id=$(sed -n 's/^  node id    \([0-9a-f]\{64\}\) .*/\1/p' "$work/out")
check "banner shows a new node id" grep -q "node id    [0-9a-f]\{64\} (EdDSA (Ed25519), new identity)" "$work/out"
check "banner shows realm, quic port, data dir, versions" \
  grep -q "realm      macula.default" "$work/out"
check "...the bound QUIC port" test -n "$qport"

# macula ping: QUIC + TLS 1.3 + CONNECT with the node's realm, PING/PONG round trips; the
# node id the client derives from the certificate is the banner's.
"$macula" ping "https://127.0.0.1:$qport" --count 2 --timeout 5 >"$work/ping" 2>&1
check "ping gets its pongs" test $? -eq 0
check "...from the node the banner names" grep -q "connected to node $banner_id" "$work/ping"
check "...two round trips" grep -q "2 pings, 2 pongs" "$work/ping"
"$macula" ping "https://127.0.0.1:$qport" --expect "$banner_id" --count 1 >/dev/null 2>&1
check "ping with the expected node id" test $? -eq 0
"$macula" ping "https://127.0.0.1:$qport" --expect "$(printf '0%.0s' $(seq 64))" --count 1 \
  >"$work/ping2" 2>&1
check "ping to an unexpected node id fails" test $? -eq 1
"$macula" ping "https://127.0.0.1:$qport" --realm another.realm --count 1 >"$work/ping3" 2>&1
check "ping in another realm is refused" test $? -eq 1
check "...with realm_mismatch" grep -q "refused by the node: realm_mismatch" "$work/ping3"
metrics=$(curl -s "http://127.0.0.1:$port/metrics")
check "/metrics counts the accepted connects" grep -q '^macula_gateway_connects_accepted_total [1-9]' <<<"$metrics"
check "/metrics counts the realm refusal" \
  grep -q '^macula_gateway_connects_refused_total{reason="realm_mismatch"} 1' <<<"$metrics"
# the node loop's polling counters (idle_poll_us, default 200): the loop has slept at least once
check "banner names the loop's polling" grep -q "loop       polls up to 200 us" "$work/out"
check "/metrics shows the node loop's polling" grep -q '^macula_loop_poll_seconds_total ' <<<"$metrics"
check "...and the loop's sleeps" grep -Eq '^macula_loop_sleeps_total [1-9]' <<<"$metrics"
check "...default data dir under HOME" grep -q "data dir   $HOME/.local/share/macula" "$work/out"
check "...versions" grep -q "versions   libuv .*GnuTLS" "$work/out"
check "identity files are mode 600" test "$(stat -c %a "$HOME/.local/share/macula/key.pem" "$HOME/.local/share/macula/cert.pem" | sort -u)" = 600
health=$(curl -s "http://127.0.0.1:$port/health")
check "/health is healthy" grep -q '"status":"healthy"' <<<"$health"
check "/health node_id is the banner's" test "$(json_field node_id "$health")" = "$banner_id"
check "/health realm" test "$(json_field realm "$health")" = macula.default
check "/live answers 200" test "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/live")" = 200
check "/nope answers 404" test "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/nope")" = 404
tree=$("$macula" tree --url "http://127.0.0.1:$port")
check "macula tree prints the seed's names" grep -q "macula_gateway_health" <<<"$tree"
check "macula id agrees with /health" test "$("$macula" id 2>/dev/null)" = "$banner_id"
HEALTH_PORT=$port MACULA_HEALTH_ADDR=127.0.0.1 timeout 5 "$macula" node >"$work/out2" 2>&1
rc2=$?
check "a second node on the same port is refused" test $rc2 -ne 0
check "...with a reason" grep -q "listen" "$work/out2"
kill -TERM $pid
wait $pid
rc=$?
check "SIGTERM: clean exit" test $rc -eq 0
check "SIGTERM: orderly shutdown" grep -q "root supervisor ended (shutdown)" "$work/err"

# Restart: same identity; a flag beats the environment.
MACULA_REALM=env.realm start_node "$work/out4" "$work/err4" --realm flag.realm
health=$(curl -s "http://127.0.0.1:$port/health")
check "restart keeps the node id" test "$(json_field node_id "$health")" = "$banner_id"
check "...and says it was loaded" grep -q "(EdDSA (Ed25519), loaded)" "$work/out4"
check "--realm beats MACULA_REALM" test "$(json_field realm "$health")" = flag.realm
kill -TERM $pid
wait $pid
pid=

# Invalid values stop the node with status 2 and a message naming the key.
HEALTH_PORT=abc timeout 5 "$macula" node >"$work/out3" 2>&1
rc3=$?
check "invalid HEALTH_PORT refused" test $rc3 -eq 2
check "...naming variable, key, value and what is allowed" grep -q 'environment HEALTH_PORT: health_port = "abc" is not valid: allowed is an integer from 0 to 65535' "$work/out3"
HEALTH_PORT=99999 timeout 5 "$macula" node >"$work/out5" 2>&1
check "HEALTH_PORT=99999 refused with status 2" test $? -eq 2
check "...naming the key" grep -q 'health_port = "99999" is not valid' "$work/out5"
printf '[macula]\nrealm = ok.realm\nhelth_port = 8080\n' >"$work/bad.ini"
timeout 5 "$macula" node --config "$work/bad.ini" >"$work/out6" 2>&1
check "unknown INI key refused with status 2" test $? -eq 2
check "...naming file, line and key" grep -q "$work/bad.ini:3: unknown key \"helth_port\"" "$work/out6"
printf 'dht_k = 4\ndht_alpha = 5\n' >"$work/alpha.ini"
MACULA_CONFIG="$work/alpha.ini" timeout 5 "$macula" node >"$work/out7" 2>&1
check "dht_alpha > dht_k refused with status 2" test $? -eq 2
check "...naming the key" grep -q "dht_alpha = 5 is not valid" "$work/out7"
timeout 5 "$macula" node --quic-port 70000 >"$work/out8" 2>&1
check "bad --quic-port refused with status 2" test $? -eq 2
check "...naming the flag" grep -q 'flag --quic-port: quic_port = "70000"' "$work/out8"

# No HOME at all: the identity goes to ./macula-data, and the node says so.
(cd "$work" && env -u HOME "$macula" id >"$work/out9" 2>&1)
check "without HOME: ./macula-data" test -f "$work/macula-data/key.pem"
check "...and it says so" grep -q "keeping the node's files in ./macula-data" "$work/out9"
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
