#!/usr/bin/env bash
# Install (when missing) and start (when stopped) every server the test suite needs.
# Idempotent: safe to run when everything is already up. Used by `make test` and `.ci/run`.
# Each server has its own file in scripts/services.d/, sourced in order.
set -euo pipefail

log() { printf '[services] %s\n' "$*"; }

apt_install() {
  if [ "$(id -u)" -ne 0 ]; then log "need root to install $*"; return 1; fi
  if [ -z "${APT_UPDATED:-}" ]; then apt-get update -qq; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

wait_for() { # wait_for <what> <seconds> <command...>
  local what=$1 secs=$2; shift 2
  for _ in $(seq 1 $((secs * 5))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  log "$what did not come up within ${secs}s"; return 1
}

here=$(cd "$(dirname "$0")" && pwd)
for part in "$here"/services.d/*.sh; do
  # shellcheck source=/dev/null
  . "$part"
done
log "ready"
