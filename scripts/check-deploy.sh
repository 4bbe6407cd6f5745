#!/usr/bin/env bash
# Static checks of the deployment files, offline once the tools are installed:
#   - hadolint on docker/Dockerfile
#   - docker/compose.yml (+ compose.override.yml) against the Compose specification and
#     this project's rules (scripts/check_compose.py)
#   - every kustomization under k8s/ rendered (scripts/kustomize.py) and each object
#     validated against the Kubernetes schemas with `kubernetes-validate --strict`, plus
#     this project's pod rules (probes, resources, restricted securityContext)
#   - shell syntax of the deploy scripts
# The tools come from scripts/tools.sh (`make tools`, a prerequisite of `make check-deploy`)
# in .tools/ (TROUPE_TOOLS). Used by `make check-deploy`, hence `make test` and CI.
log_tag=check-deploy
# shellcheck source=scripts/tools-env.sh
. "$(dirname "$0")/tools-env.sh"
py="$venv/bin/python"

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
for tool in "$py" "$venv/bin/hadolint" "$venv/bin/kubernetes-validate"; do
  [ -x "$tool" ] || { log "$tool is missing: run \`make tools\`"; exit 1; }
done
check_dockerfile
check_compose
check_kubernetes
bash -n scripts/check-deploy.sh scripts/services.sh scripts/tools.sh
log "ok"
