# A MongoDB-wire server on 127.0.0.1:27017: SecantusDB from PyPI (pinned), for the logger tests.
# Sourced by scripts/services.sh, which provides log, apt_install and wait_for.
# Idempotent: installs only when missing, starts only when nothing listens on the port.

SECANTUS_VERSION=0.7.0b3
MONGO_TEST_PORT=${MONGO_TEST_PORT:-27017}
MONGO_TEST_DIR=${MONGO_TEST_DIR:-${TMPDIR:-/tmp}/troupe-secantus}

mongo_listening() {
  (exec 3<>"/dev/tcp/127.0.0.1/$MONGO_TEST_PORT") 2>/dev/null
}

secantus() {
  if mongo_listening; then log "MongoDB-wire server is up on $MONGO_TEST_PORT"; return; fi
  if ! command -v secantusd-py >/dev/null; then
    if ! command -v pip3 >/dev/null && ! python3 -m pip --version >/dev/null 2>&1; then
      log "installing pip"; apt_install python3-pip
    fi
    log "installing SecantusDB==$SECANTUS_VERSION"
    python3 -m pip install -q "SecantusDB==$SECANTUS_VERSION" ||
      python3 -m pip install -q --break-system-packages "SecantusDB==$SECANTUS_VERSION"
    hash -r
    # pyenv installs console scripts behind shims that need a rehash.
    if command -v pyenv >/dev/null; then pyenv rehash || true; fi
  fi
  mkdir -p "$MONGO_TEST_DIR"
  log "starting SecantusDB on $MONGO_TEST_PORT (data in $MONGO_TEST_DIR)"
  nohup secantusd-py --host 127.0.0.1 --port "$MONGO_TEST_PORT" --storage-path "$MONGO_TEST_DIR" \
    >"$MONGO_TEST_DIR.log" 2>&1 &
  wait_for SecantusDB 30 mongo_listening
}

secantus
