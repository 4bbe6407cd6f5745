#!/bin/sh
# Container HEALTHCHECK: GET /healthz (or $1) on the HTTP port of whatever PID 1 runs.
# PID 1 is `troupe up` or `troupe serve <service>` (possibly behind an init such as
# `docker run --init`); the port comes from that service's variable (BROKER_PORT, ...) or its
# default. `troupe up` is checked on the broker's port.
set -eu
path=${1:-/healthz}
service=$(tr '\0' ' ' </proc/1/cmdline |
  awk '{ s = "broker"; for (i = 1; i < NF; i++) if ($i == "serve") { s = $(i + 1); break } print s }')
case "$service" in
  broker)   port=${BROKER_PORT:-8080} ;;
  frontend) port=${FRONTEND_PORT:-8081} ;;
  auth)     port=${AUTH_PORT:-8082} ;;
  logger)   port=${LOGGER_PORT:-8083} ;;
  mailer)   port=${MAILER_PORT:-8084} ;;
  listener) port=${LISTENER_PORT:-8085} ;;
  catcher)  port=${CATCHER_HTTP_PORT:-8025} ;;
  *) echo "troupe-healthcheck: unknown service '$service'" >&2; exit 1 ;;
esac
exec curl --fail --silent --show-error --max-time 2 -o /dev/null "http://127.0.0.1:${port}${path}"
