#!/usr/bin/env bash
# scripts/setup.sh — installs the Debian packages macula needs that are missing.
# Usage: scripts/setup.sh [build|test|bench]   (test: the tools the test suite uses;
#        bench: the peers the benchmarks compare against)
# Runs `apt-get update` once, and only when something is missing.
set -euo pipefail

BUILD_PKGS=(build-essential cmake pkg-config libuv1-dev libjansson-dev libmsgpuck-dev
            libmicrohttpd-dev libgnutls28-dev libngtcp2-dev libngtcp2-crypto-gnutls-dev
            libinih-dev libraft-dev)
TEST_PKGS=(libcmocka-dev erlang-nox clang libclang-rt-14-dev clang-tidy clang-format cppcheck
           procps curl prometheus openssl python3)

# The peers bench/run.sh measures against, side by side.
# bench/pubsub.sh speaks NATS, RESP and MQTT itself (bench/bench_pubsub.c), so no client
# library is needed, only the servers.
BENCH_PKGS=(erlang-nox mosquitto openssl etcd-server nats-server redis-server time valgrind)

want=("${BUILD_PKGS[@]}")
if [ "${1:-build}" = "bench" ]; then
  want+=("${BENCH_PKGS[@]}")
fi
if [ "${1:-build}" = "test" ]; then
  want+=("${TEST_PKGS[@]}")
  # The MCP interop tests run the official TypeScript SDK (npm registry, pinned by
  # tests/mcp/package-lock.json). Any Node.js >= 18 with npm does; Debian's when none is there.
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    want+=(nodejs npm)
  fi
fi

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "setup: need root (or sudo) to install: ${missing[*]}" >&2
    exit 1
  fi
fi
echo "setup: installing ${missing[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
