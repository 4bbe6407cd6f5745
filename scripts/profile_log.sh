#!/usr/bin/env bash
# `make profile-log`: instructions per broker `log` action in `troupe up`, counted by
# valgrind's callgrind (repeatable on a noisy machine, unlike a wall-clock figure), once with
# tracing and metrics as shipped and once with them off (`OTEL_SDK_DISABLED=true
# TROUPE_METRICS=off`). Start-up is not counted: the counters are zeroed once the platform is
# ready, then wrk drives PROFILE_SECS (default 20) seconds of `log` actions on PROFILE_CONNS
# (default 8) connections, and the counters are dumped. Prints Ir per request for each and
# their ratio, and keeps each profile (callgrind.out.on / .off in PROFILE_DIR, default
# target/profile-log) for `callgrind_annotate --inclusive=yes`. The history sampler is off
# during the run (see `profile`).
# Needs the release binary (`cargo build --release -p troupe-http --bin troupe`), valgrind
# and wrk (Debian packages; installed here when missing).
log_tag=profile
source "$(dirname "$0")/tools-env.sh"

die() { log "$*"; exit 1; }
sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
for pkg in valgrind wrk; do
  command -v "$pkg" >/dev/null || { log "installing $pkg"; $sudo apt-get install -y -q "$pkg" >/dev/null; }
done
bin="${TROUPE_BIN:-target/release/troupe}"
[ -x "$bin" ] || cargo build --release -q -p troupe-http --bin troupe
out="${PROFILE_DIR:-target/profile-log}"
secs="${PROFILE_SECS:-20}"
conns="${PROFILE_CONNS:-8}"
port="${PROFILE_PORT:-18400}"
mkdir -p "$out"
cat > "$out/log.lua" <<'EOF'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"action":"log","log":{"name":"bench","data":"a log line from the benchmark"}}'
EOF

# profile NAME ENV...: one run, prints "NAME <Ir> <requests>".
profile() {
  local name=$1; shift
  local data="$out/data-$name" pid ir requests
  rm -rf "$data" "$out/callgrind.out.$name"
  # Under valgrind a request takes ~30 times as long, a timer not: the history sampler
  # (every METRICS_SAMPLE_INTERVAL, 5 s, parsing each service's /metrics) would weigh ~30
  # times what it weighs in a real run and, having more series to read with metrics on,
  # skew the ratio. It is set past the run; `make bench-log` measures it in real time.
  env "$@" TROUPE_DATA_DIR="$data" METRICS_SAMPLE_INTERVAL=1h \
    BROKER_PORT=$port FRONTEND_PORT=$((port + 1)) AUTH_PORT=$((port + 2)) LOGGER_PORT=$((port + 3)) \
    MAILER_PORT=$((port + 4)) LISTENER_PORT=$((port + 5)) LOGGER_GRPC_PORT=$((port + 6)) \
    LOGGER_RPC_PORT=$((port + 7)) CATCHER_SMTP_PORT=$((port + 8)) CATCHER_HTTP_PORT=$((port + 9)) \
    valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.out.$name" \
    "$bin" up > "$out/$name.log" 2>&1 &
  pid=$!
  for _ in $(seq 600); do
    curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || { cat "$out/$name.log"; die "troupe up ($name) exited"; }
    sleep 0.5
  done
  callgrind_control --zero "$pid" >/dev/null
  requests=$(wrk -t1 -c"$conns" -d"${secs}s" -s "$out/log.lua" "http://127.0.0.1:$port/handle" |
    awk '/requests in/ {print $1}')
  callgrind_control --dump "$pid" >/dev/null
  kill -TERM "$pid"; wait "$pid" || true
  # The first dump (`.1`) holds the load: from the zeroing to the dump; the file without a
  # number is the rest (shutdown).
  local dump="$out/callgrind.out.$name.1"
  ir=$(awk '/^summary:/ {print $2; exit}' "$dump")
  cp "$dump" "$out/profile.$name"
  echo "$name $ir $requests"
}

on=$(profile on)
off=$(profile off OTEL_SDK_DISABLED=true TROUPE_METRICS=off)
python3 - "$on" "$off" <<'EOF'
import sys
(n1, ir1, r1), (n2, ir2, r2) = (a.split() for a in sys.argv[1:3])
per = {n1: int(ir1) / int(r1), n2: int(ir2) / int(r2)}
for n, ir, r in ((n1, ir1, r1), (n2, ir2, r2)):
    print(f"{n:>3}: {int(ir):,} instructions over {int(r):,} requests = {per[n]:,.0f} per request")
print(f"on / off instructions per request: {per[n1] / per[n2]:.3f}")
EOF
log "profiles: $out/profile.on, $out/profile.off (callgrind_annotate --inclusive=yes FILE)"
