#!/usr/bin/env bash
# Contract fuzzing: run schemathesis (PyPI, pinned) against a service's OpenAPI document,
# with every check, a fixed seed and a bounded number of examples, so a run is repeatable
# and fits CI. Usage: scripts/schemathesis.sh URL/openapi.json [extra `st run` options]
# Installs schemathesis on first use into its own virtualenv under .tools/ (TROUPE_TOOLS),
# apart from the lint tools' so neither's pins constrain the other's; idempotent.
# Settings (seed, examples, phases): scripts/schemathesis.toml. Used by the API test
# `openapi::schemathesis_finds_no_failure_on_any_service` (so `make test` runs it).
log_tag=schemathesis
# shellcheck source=scripts/tools-env.sh
. "$(dirname "$0")/tools-env.sh"
requirement=schemathesis==4.32.5
st_venv="$tools/schemathesis"
stamp="$st_venv/.installed"

if ! { [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$requirement" ] && [ -x "$st_venv/bin/st" ]; }; then
  log "installing $requirement into $st_venv"
  mkdir -p "$tools"
  # One install at a time when several test processes start together.
  exec 9>"$tools/.schemathesis.lock"
  flock 9
  if ! { [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$requirement" ]; }; then
    python3 -m venv --clear "$st_venv"
    "$st_venv/bin/pip" install --quiet --disable-pip-version-check "$requirement"
    printf '%s' "$requirement" >"$stamp"
  fi
  exec 9>&-
fi

[ $# -ge 1 ] || { log "usage: $0 URL/openapi.json [st run options]"; exit 2; }
exec "$st_venv/bin/st" --config-file scripts/schemathesis.toml --no-color run --checks all "$@"
