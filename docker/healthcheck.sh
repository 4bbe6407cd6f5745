#!/bin/sh
# Container HEALTHCHECK: GET /healthz (or $1) on the HTTP port of whatever PID 1 runs.
# PID 1 is `troupe up` or `troupe serve <service>`; the port comes from that service's
# variable (BROKER_PORT, AUTH_PORT, ...) or its default.
set -eu
path=${1:-/healthz}
service=$(tr '\0' ' ' </proc/1/cmdline | awk '{ print ($2 == "serve") ? $3 : "broker" }')
case "$service" in
  broker)   port=${BROKER_PORT:-8080} ;;
  frontend) port=${FRONTEND_PORT:-8081} ;;
  auth)     port=${AUTH_PORT:-8082} ;;
  logger)   port=${LOGGER_PORT:-8083} ;;
  mailer)   port=${MAILER_PORT:-8084} ;;
  listener) port=${LISTENER_PORT:-8085} ;;
  *) echo "troupe-healthcheck: unknown service '$service'" >&2; exit 1 ;;
esac
exec curl --fail --silent --show-error --max-time 2 -o /dev/null "http://127.0.0.1:${port}${path}"
