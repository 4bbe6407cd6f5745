#!/usr/bin/env bash
# 100,000 `log` actions through the broker in split mode (`troupe serve logger` +
# `troupe serve broker`), reporting the broker's and the logger's open file descriptors
# (/proc/PID/fd) before, during (max of 1 s samples) and after the load, and the throughput.
#
#   scripts/bench-logger-fds.sh            # embedded SQLite log store
#   MONGO_URL=mongodb://127.0.0.1:27017 scripts/bench-logger-fds.sh
#
# Env: REQUESTS (100000), CONCURRENCY (50), BASE_PORT (18000). Uses oha when installed,
# else wrk (installed with apt when missing, else `cargo install oha`). Not part of the tests.
set -euo pipefail

REQUESTS=${REQUESTS:-100000}
CONCURRENCY=${CONCURRENCY:-50}
BASE=${BASE_PORT:-18000}
BROKER_PORT=$((BASE + 80)) LOGGER_PORT=$((BASE + 83)) GRPC_PORT=$((BASE + 51)) RPC_PORT=$((BASE + 52))
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
log() { printf '[bench] %s\n' "$*"; }

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

tool=""
if command -v oha >/dev/null; then tool=oha
elif command -v wrk >/dev/null; then tool=wrk
elif [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  log "installing wrk"; apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
  tool=wrk
else
  log "installing oha (cargo install oha)"; cargo install oha; tool=oha
fi

log "building troupe (debug)"
(cd "$here" && cargo build -q --bin troupe)
bin="$here/target/debug/troupe"

export RUST_LOG=${RUST_LOG:-warn} BIND_ADDRESS=127.0.0.1
TROUPE_DATA_DIR="$work/data" LOGGER_PORT=$LOGGER_PORT LOGGER_GRPC_PORT=$GRPC_PORT LOGGER_RPC_PORT=$RPC_PORT \
  "$bin" serve logger >"$work/logger.log" 2>&1 &
logger_pid=$!; pids+=("$logger_pid")
BROKER_PORT=$BROKER_PORT LOGGER_URL="http://127.0.0.1:$LOGGER_PORT" LOGGER_GRPC_URL="http://127.0.0.1:$GRPC_PORT" \
  AUTH_URL="http://127.0.0.1:9" "$bin" serve broker >"$work/broker.log" 2>&1 &
broker_pid=$!; pids+=("$broker_pid")

for _ in $(seq 1 150); do
  curl -fs "http://127.0.0.1:$LOGGER_PORT/readyz" >/dev/null 2>&1 && curl -fs "http://127.0.0.1:$BROKER_PORT/ping" >/dev/null 2>&1 && break
  sleep 0.2
done
body='{"action":"log","log":{"name":"bench","data":"fd benchmark"}}'
curl -fs -X POST "http://127.0.0.1:$BROKER_PORT/handle" -d "$body" >/dev/null || { log "broker not serving"; cat "$work"/*.log; exit 1; }

fds() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }
b0=$(fds "$broker_pid") l0=$(fds "$logger_pid")
log "before: broker $b0 fds, logger $l0 fds"

( bmax=0 lmax=0
  while :; do
    b=$(fds "$broker_pid") l=$(fds "$logger_pid")
    [ "$b" -gt "$bmax" ] && bmax=$b; [ "$l" -gt "$lmax" ] && lmax=$l
    echo "$bmax $lmax" >"$work/max"; sleep 1
  done ) &
sampler=$!; pids+=("$sampler")

start=$(date +%s.%N)
if [ "$tool" = oha ]; then
  oha --no-tui -n "$REQUESTS" -c "$CONCURRENCY" -m POST -H 'content-type: application/json' -d "$body" \
    "http://127.0.0.1:$BROKER_PORT/handle" | tee "$work/load.txt" | grep -E 'Requests/sec|Success rate|\[2|\[5' || true
else
  # wrk runs for a duration: run 10 s rounds until at least REQUESTS were answered.
  cat >"$work/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '$body'
wrk.headers["Content-Type"] = "application/json"
LUA
  done_total=0
  while [ "$done_total" -lt "$REQUESTS" ]; do
    wrk -t 2 -c "$CONCURRENCY" -d 10s -s "$work/post.lua" "http://127.0.0.1:$BROKER_PORT/handle" >"$work/round.txt"
    n=$(awk '/requests in/ {print $1}' "$work/round.txt")
    grep -E 'Non-2xx|Socket errors' "$work/round.txt" || true
    done_total=$((done_total + n))
    log "after $done_total requests: broker $(fds "$broker_pid") fds, logger $(fds "$logger_pid") fds"
  done
  REQUESTS=$done_total
fi
end=$(date +%s.%N)
sleep 2
read -r bmax lmax <"$work/max"
b1=$(fds "$broker_pid") l1=$(fds "$logger_pid")
# Idle keep-alive connections in the broker's pool close after 30 s (pool_idle_timeout).
sleep "${SETTLE_SECS:-35}"
b2=$(fds "$broker_pid") l2=$(fds "$logger_pid")
stored=$(curl -fs "http://127.0.0.1:$LOGGER_PORT/logs?name=bench&limit=1" >/dev/null && echo yes || echo no)
secs=$(echo "$end - $start" | bc)
log "tool: $tool, $REQUESTS requests, concurrency $CONCURRENCY, $(printf '%.1f' "$secs") s ($(echo "$REQUESTS / $secs" | bc) req/s)"
log "broker fds: before $b0, during max $bmax, after $b1, after idle ${SETTLE_SECS:-35} s $b2"
log "logger fds: before $l0, during max $lmax, after $l1, after idle ${SETTLE_SECS:-35} s $l2"
log "logger answers GET /logs: $stored"
