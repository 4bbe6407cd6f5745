#!/usr/bin/env bash
# Static checks of the deployment files, offline once the tools are installed:
#   - hadolint on docker/Dockerfile
#   - docker/compose.yml (+ compose.override.yml) against the Compose specification and
#     this project's rules (scripts/check_compose.py)
#   - every kustomization under k8s/ rendered by the real kustomize (`kubectl kustomize`)
#     and each object validated against the Kubernetes schemas with
#     `kubernetes-validate --strict`, plus this project's pod rules (probes, resources,
#     restricted securityContext: scripts/check_pods.py)
#   - checkov (settings and skips in .checkov.yaml) over the Dockerfile, compose.yml and the
#     sources under k8s/ (dockerfile and secrets checks) and each overlay's rendered
#     manifests (kubernetes checks): any failed check fails
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
    mkdir -p "$dir"
    # One file per object (group_version_kind_name.yaml), as scripts/check_pods.py reads them.
    "$venv/bin/kubectl" kustomize "$k" -o "$dir"
    log "$k: $(find "$dir" -name '*.yaml' | wc -l) objects rendered by kubectl kustomize"
    "$venv/bin/kubernetes-validate" --strict --quiet "$dir"/*.yaml
    "$py" scripts/check_pods.py "$dir"
  done
  log "kubernetes-validate k8s/overlays/prod/secret.example.yaml"
  "$venv/bin/kubernetes-validate" --strict --quiet k8s/overlays/prod/secret.example.yaml
}

# After check_kubernetes, which leaves each overlay's rendered manifests in $work.
check_checkov() {
  local rendered="$work/checkov" k
  mkdir -p "$rendered"
  for k in k8s/overlays/*; do
    if [ -d "$work/${k//\//_}" ]; then cp -r "$work/${k//\//_}" "$rendered/"; fi
  done
  local files=(docker/Dockerfile docker/compose.yml) f
  while IFS= read -r f; do files+=("$f"); done < <(find k8s -name '*.yaml' | sort)
  log "checkov: dockerfile + secrets over docker/Dockerfile, docker/compose.yml, k8s/"
  # -f, not -d: checkov ignores -f files once a -d is given.
  "$venv/bin/checkov" --config-file .checkov.yaml --framework dockerfile secrets \
    "${files[@]/#/--file=}"
  log "checkov: kubernetes over the rendered overlays ($(cd "$rendered" && echo *))"
  "$venv/bin/checkov" --config-file .checkov.yaml --framework kubernetes -d "$rendered"
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for tool in "$py" "$venv/bin/hadolint" "$venv/bin/kubernetes-validate" "$venv/bin/kubectl" \
  "$venv/bin/checkov"; do
  [ -x "$tool" ] || { log "$tool is missing: run \`make tools\`"; exit 1; }
done
check_dockerfile
check_compose
check_kubernetes
check_checkov
bash -n scripts/check-deploy.sh scripts/services.sh scripts/tools.sh scripts/container-engine.sh scripts/compose-test.sh
log "ok"
