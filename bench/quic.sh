#!/usr/bin/env bash
# bench/quic.sh — the QUIC transport (bench/bench_quic.c) beside mosquitto holding the same
# number of idle MQTT clients, printed as a markdown table.
#
#   bench/quic.sh [BUILD_DIR] [N]      (default build-rel, N = 10000)
#
# Or, sourced (as bench/run.sh does with its areas): bench_quic_area BUILD_DIR [N]
#
# QUIC: server in one process, N clients in a forked one (see bench/bench_quic.c). MQTT: a
# mosquitto broker started here on free loopback ports, one plain TCP listener and one TLS 1.3
# listener (certificate made with openssl), and N raw-socket MQTT 3.1.1 clients
# (`bench_quic --mqtt`), connected one after the other and left idle. Memory per connection is
# the server's (broker's) resident-set delta / N. The broker runs with set_tcp_nodelay (else
# Nagle costs TLS connects ~40 ms) and as the current user (it would drop root for user
# mosquitto, who cannot read the temporary key). mosquitto is the Debian package `mosquitto`;
# without it (or without openssl) only the QUIC column is printed. Needs `ulimit -n` > N + 100.

bench_quic_area() {
    local root build bin n tmp raw mpid port tport
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    build="${1:-$root/build-rel}"
    n="${2:-10000}"
    bin="$build/bench_quic"
    if [[ ! -x "$bin" ]]; then
        echo "bench/quic.sh: $bin not built (run bench/run.sh or cmake --build)" >&2
        return 1
    fi
    tmp="$(mktemp -d)"
    raw="$tmp/raw.txt"
    echo "quic: $n connections ..." >&2
    "$bin" "$n" 1000 >"$raw" || { rm -rf "$tmp"; return 1; }

    mpid=""
    if command -v mosquitto >/dev/null && command -v openssl >/dev/null; then
        if (( $(ulimit -n) < n + 100 )); then
            ulimit -n $((n + 200)) 2>/dev/null || echo "bench/quic.sh: ulimit -n too low for $n MQTT clients" >&2
        fi
        openssl req -x509 -newkey ed25519 -nodes -keyout "$tmp/key.pem" -out "$tmp/cert.pem" \
            -subj /CN=bench -days 1 2>/dev/null
        port=$(_bq_free_port)
        tport=$(_bq_free_port)
        cat >"$tmp/mosquitto.conf" <<EOF
per_listener_settings false
allow_anonymous true
max_connections -1
persistence false
log_type error
set_tcp_nodelay true
user $(id -un)
listener $port 127.0.0.1
listener $tport 127.0.0.1
certfile $tmp/cert.pem
keyfile $tmp/key.pem
tls_version tlsv1.3
EOF
        mosquitto -c "$tmp/mosquitto.conf" >"$tmp/mosquitto.log" 2>&1 &
        mpid=$!
        sleep 0.5
        echo "mqtt: $n connections over TCP ..." >&2
        "$bin" --mqtt "$port" "$n" "$mpid" >>"$raw" || echo "bench/quic.sh: MQTT/TCP run failed" >&2
        kill "$mpid" 2>/dev/null
        wait "$mpid" 2>/dev/null
        # a fresh broker for TLS, so each baseline is an empty broker
        mosquitto -c "$tmp/mosquitto.conf" >>"$tmp/mosquitto.log" 2>&1 &
        mpid=$!
        sleep 0.5
        echo "mqtt: $n connections over TLS 1.3 ..." >&2
        "$bin" --mqtt "$tport" "$n" "$mpid" tls >>"$raw" || echo "bench/quic.sh: MQTT/TLS run failed" >&2
        kill "$mpid" 2>/dev/null
        wait "$mpid" 2>/dev/null
    else
        echo "bench/quic.sh: mosquitto or openssl not installed: no MQTT comparison" >&2
    fi

    v() { awk -v k="$1" '$1 == k { print $2 }' "$raw"; }
    echo
    echo "| metric ($n idle connections) | macula QUIC (TLS 1.3) | mosquitto MQTT/TCP | mosquitto MQTT/TLS 1.3 |"
    echo "| --- | ---: | ---: | ---: |"
    echo "| connect latency p50, one at a time (us) | $(v quic_handshake_p50_us) | $(v mqtt_connect_p50_us) | $(v mqtts_connect_p50_us) |"
    echo "| connect latency p99 (us) | $(v quic_handshake_p99_us) | $(v mqtt_connect_p99_us) | $(v mqtts_connect_p99_us) |"
    echo "| connects per second | $(v quic_connects_per_s) (256 in flight) | $(v mqtt_connects_per_s) (sequential) | $(v mqtts_connects_per_s) (sequential) |"
    echo "| server bytes per idle connection (RSS) | $(v quic_server_bytes_per_conn_rss) | $(v mqtt_broker_bytes_per_conn_rss) | $(v mqtts_broker_bytes_per_conn_rss) |"
    echo
    echo "QUIC extra: first echo p50 $(v quic_first_echo_p50_us) us, p99 $(v quic_first_echo_p99_us) us;" \
         "server heap $(v quic_server_bytes_per_conn_heap) B/conn, of which ngtcp2 $(v quic_server_ngtcp2_bytes_per_conn) B;" \
         "client RSS $(v quic_client_bytes_per_conn_rss) B/conn."
    rm -rf "$tmp"
}

# a free TCP/UDP port on 127.0.0.1 (asks the kernel)
_bq_free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    set -euo pipefail
    bench_quic_area "$@"
fi
