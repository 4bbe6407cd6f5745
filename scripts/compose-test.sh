#!/usr/bin/env bash
# `make compose-test`: the whole compose stack in real containers, from a fresh clone, offline.
#   1. a private Docker engine (scripts/container-engine.sh: installed idempotently, started
#      here, stopped and the host checked unchanged at the end);
#   2. the backend images from Debian packages (debootstrap, cached) and PyPI (SecantusDB);
#   3. the Troupe image from docker/Dockerfile's `prebuilt` target: target/debug/troupe
#      (as CI builds it), stripped, on scratch with the libraries ldd lists;
#   4. docker/compose.yml + compose.override.yml + compose.test.yml up on free host ports,
#      every health check healthy, then scripts/compose_contract.py: the contract through the
#      broker's and the console's published ports, a container kill, recovery;
#   5. `docker compose down -v`.
# Caches (engine data, rootfs tarballs) live in TROUPE_DOCKER_DIR (/var/lib/troupe-docker).
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '[compose-test] %s\n' "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }
t0=$(date +%s)
dir=${TROUPE_DOCKER_DIR:-/var/lib/troupe-docker}
cache="$dir/cache"
engine=scripts/container-engine.sh
eval "$($engine env)"
project=troupe-test

$engine install
was_running=no
[ -f "$dir/dockerd.pid" ] && kill -0 "$(cat "$dir/dockerd.pid")" 2>/dev/null && was_running=yes
$engine start
compose() {
  docker compose -p "$project" -f docker/compose.yml -f docker/compose.override.yml -f docker/compose.test.yml "$@"
}
cleanup() {
  local rc=$?
  if [ $rc -ne 0 ]; then
    compose ps -a >&2 || true
    compose logs --no-color --tail 30 >&2 || true
  fi
  compose down -v --remove-orphans >/dev/null 2>&1 || true
  [ "$was_running" = yes ] || $engine stop || rc=1
  log "total $(( $(date +%s) - t0 ))s, exit $rc"
  exit $rc
}
trap cleanup EXIT

# --- 2. backend images ------------------------------------------------------------------
image_exists() { docker image inspect "$1" >/dev/null 2>&1; }
mkdir -p "$cache"
if ! image_exists troupe-test/backends:bookworm; then
  if [ ! -s "$cache/backends.tar" ]; then
    log "debootstrap bookworm with postgresql, rabbitmq-server, python3 (a few minutes, cached)"
    rm -rf "$cache/backends.rootfs"
    debootstrap --variant=minbase --include=postgresql,rabbitmq-server,python3,ca-certificates,procps \
      bookworm "$cache/backends.rootfs" >"$cache/debootstrap.log" 2>&1 || { tail "$cache/debootstrap.log"; die "debootstrap"; }
    tar -C "$cache/backends.rootfs" -cf "$cache/backends.tar" .
    rm -rf "$cache/backends.rootfs"
  fi
  docker import "$cache/backends.tar" troupe-test/backends:bookworm >/dev/null
fi
ctx="$cache/backends-context"
if ! image_exists troupe-test/postgres:local || ! image_exists troupe-test/mongo:local || ! image_exists troupe-test/rabbitmq:local; then
  mkdir -p "$ctx"
  [ -d "$ctx/secantus/secantus" ] ||
    python3 -m pip install -q --disable-pip-version-check --target "$ctx/secantus" SecantusDB==0.7.0b3
  cp docker/test/*.sh docker/test/*.py "$ctx/"
  for b in postgres rabbitmq mongo; do
    log "building troupe-test/$b:local"
    DOCKER_BUILDKIT=0 docker build -q -f docker/test/Dockerfile.backends --target "$b" -t "troupe-test/$b:local" "$ctx" >/dev/null
  done
fi

# --- 3. the Troupe image from the host's binary --------------------------------------------
bin=${TROUPE_BIN:-target/debug/troupe}
[ -x "$bin" ] || cargo build --workspace --bin troupe
tctx=target/docker-context
rm -rf "$tctx"; mkdir -p "$tctx/rootfs/usr/local/bin" "$tctx/rootfs/etc/ssl/certs" "$tctx/rootfs/tmp"
strip -o "$tctx/rootfs/usr/local/bin/troupe" "$bin"
ldd "$bin" | grep -o '/[^ ]*' | while read -r lib; do cp --parents -L "$lib" "$tctx/rootfs/"; done
cp -L /etc/ssl/certs/ca-certificates.crt "$tctx/rootfs/etc/ssl/certs/"
printf 'troupe:x:10001:10001::/data:/sbin/nologin\n' >"$tctx/rootfs/etc/passwd"
printf 'troupe:x:10001:\n' >"$tctx/rootfs/etc/group"
install -d -m 0750 "$tctx/data"  # copied --chown=10001 to /data
chmod 1777 "$tctx/rootfs/tmp"
log "building troupe:test (docker/Dockerfile --target prebuilt)"
DOCKER_BUILDKIT=0 docker build -q -f docker/Dockerfile --target prebuilt -t troupe:test "$tctx" >/dev/null
size=$(docker image inspect troupe:test --format '{{.Size}}')
log "troupe:test is $((size / 1000000)) MB"

# --- 4. up, healthy, contract ---------------------------------------------------------------
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
export TROUPE_IMAGE=troupe:test
export BROKER_PORT FRONTEND_PORT MAILHOG_UI_PORT POSTGRES_HOST_PORT MONGO_HOST_PORT RABBITMQ_HOST_PORT RABBITMQ_UI_PORT MAILHOG_SMTP_PORT
for v in BROKER_PORT FRONTEND_PORT MAILHOG_UI_PORT POSTGRES_HOST_PORT MONGO_HOST_PORT RABBITMQ_HOST_PORT RABBITMQ_UI_PORT MAILHOG_SMTP_PORT; do
  printf -v "$v" '%s' "$(free_port)"
done
export CORS_ALLOWED_ORIGINS="http://127.0.0.1:$FRONTEND_PORT" BROKER_URL="http://127.0.0.1:$BROKER_PORT" CATCHER_URL="http://127.0.0.1:$MAILHOG_UI_PORT"
log "compose up (broker on 127.0.0.1:$BROKER_PORT, console on :$FRONTEND_PORT, inbox on :$MAILHOG_UI_PORT)"
up0=$(date +%s.%N)
compose up -d --no-build --wait --wait-timeout 180 || die "not every service became healthy"
log "every service healthy $(python3 -c "print(round($(date +%s.%N) - $up0, 1))")s after compose up"
python3 scripts/compose_contract.py \
  --broker "http://127.0.0.1:$BROKER_PORT" --console "http://127.0.0.1:$FRONTEND_PORT" \
  --inbox "http://127.0.0.1:$MAILHOG_UI_PORT" --compose "docker compose -p $project -f docker/compose.yml -f docker/compose.override.yml -f docker/compose.test.yml"
log "ok"
