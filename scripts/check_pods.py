#!/usr/bin/env python3
"""Project rules for rendered Kubernetes objects (one YAML file per object in DIR).

Every Troupe Deployment (label app.kubernetes.io/part-of=troupe, image `troupe`) must have:
liveness on /healthz, readiness on /readyz, CPU and memory requests and limits, the
restricted securityContext (runAsNonRoot, seccomp RuntimeDefault, no privilege escalation,
read-only root filesystem, ALL capabilities dropped), a PodDisruptionBudget, and no secret
value in its environment. broker and listener must have a HorizontalPodAutoscaler, and a
Deployment's secretKeyRefs must name keys that exist in the overlay's Secret, if it has one.

Usage: scripts/check_pods.py DIR
"""
import glob
import os
import sys

import yaml

objs = [yaml.safe_load(open(f, encoding="utf-8")) for f in sorted(glob.glob(os.path.join(sys.argv[1], "*.yaml")))]
errors = []
by_kind = {}
for o in objs:
    by_kind.setdefault(o["kind"], []).append(o)

secret_keys = None
for s in by_kind.get("Secret", []):
    if s["metadata"]["name"] == "troupe-secrets":
        secret_keys = set(s.get("stringData", {})) | set(s.get("data", {}))

pdb_targets = {p["spec"]["selector"]["matchLabels"].get("app.kubernetes.io/name") for p in by_kind.get("PodDisruptionBudget", [])}
hpa_targets = {h["spec"]["scaleTargetRef"]["name"] for h in by_kind.get("HorizontalPodAutoscaler", [])}

troupe = [d for d in by_kind.get("Deployment", []) if any("troupe" in c["image"].split("/")[-1] for c in d["spec"]["template"]["spec"]["containers"])]
for d in troupe:
    name = d["metadata"]["name"]
    pod = d["spec"]["template"]["spec"]
    psc = pod.get("securityContext", {})
    if not psc.get("runAsNonRoot") or psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        errors.append(f"{name}: pod securityContext is not restricted")
    for c in pod["containers"]:
        where = f"{name}/{c['name']}"
        if c.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/healthz":
            errors.append(f"{where}: liveness probe is not GET /healthz")
        if c.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/readyz":
            errors.append(f"{where}: readiness probe is not GET /readyz")
        res = c.get("resources", {})
        for part in ("requests", "limits"):
            if not {"cpu", "memory"} <= set(res.get(part, {})):
                errors.append(f"{where}: missing {part} for cpu and memory")
        sc = c.get("securityContext", {})
        if sc.get("allowPrivilegeEscalation") is not False or sc.get("readOnlyRootFilesystem") is not True:
            errors.append(f"{where}: privilege escalation allowed or root filesystem writable")
        if sc.get("capabilities", {}).get("drop") != ["ALL"]:
            errors.append(f"{where}: capabilities not dropped")
        for e in c.get("env", []):
            if "value" in e and any(w in e["name"] for w in ("SECRET", "PASSWORD", "DSN")):
                errors.append(f"{where}: {e['name']} has a literal value; use the Secret")
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref and secret_keys is not None and ref["key"] not in secret_keys and not ref.get("optional"):
                errors.append(f"{where}: Secret troupe-secrets has no key {ref['key']}")
    if name not in pdb_targets:
        errors.append(f"{name}: no PodDisruptionBudget")
for name in ("broker", "listener"):
    if name not in hpa_targets:
        errors.append(f"{name}: no HorizontalPodAutoscaler")

for e in errors:
    print(f"k8s ({sys.argv[1]}): {e}", file=sys.stderr)
if errors:
    sys.exit(1)
print(f"k8s: {len(objs)} objects, {len(troupe)} Troupe deployments follow the rules")
