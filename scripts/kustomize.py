#!/usr/bin/env python3
"""Render a kustomization offline, for CI: `scripts/kustomize.py k8s/overlays/dev [OUT_DIR]`.

No registry ships the real kustomize binary for this machine, so this implements the subset
of kustomize that k8s/ uses, with kustomize's meaning, and fails on anything else (so the
manifests cannot silently drift past what is checked):

  resources   files, or directories holding a kustomization.yaml (rendered recursively)
  namespace   set on every namespaced object
  labels      `- pairs: {...}` added to metadata.labels (not to selectors)
  images      `- name, newName, newTag` on every container image
  replicas    `- name, count`
  patches     `- path: file` strategic-merge patches, matched by kind + metadata.name;
              maps merge, lists of maps with `name` merge by name, other lists are replaced

`kubectl apply -k` / `kustomize build` give the same objects. Without OUT_DIR the result is
printed as one multi-document YAML stream; with it, one file per object.
"""
import copy
import os
import sys

import yaml

SUPPORTED = {"apiVersion", "kind", "resources", "namespace", "labels", "images", "replicas", "patches"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PriorityClass", "StorageClass"}


def load_all(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def merge(base, patch):
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            if value is None:
                out.pop(key, None)
            elif key in out:
                out[key] = merge(out[key], value)
            else:
                out[key] = copy.deepcopy(value)
        return out
    if (
        isinstance(base, list)
        and isinstance(patch, list)
        and all(isinstance(i, dict) and "name" in i for i in base + patch)
    ):
        out = [copy.deepcopy(i) for i in base]
        for item in patch:
            match = next((n for n, b in enumerate(out) if b["name"] == item["name"]), None)
            if match is None:
                out.append(copy.deepcopy(item))
            else:
                out[match] = merge(out[match], item)
        return out
    return copy.deepcopy(patch)


def pod_containers(obj):
    spec = obj.get("spec", {})
    if obj.get("kind") == "CronJob":
        spec = spec.get("jobTemplate", {}).get("spec", {})
    pod = spec.get("template", {}).get("spec", {})
    return pod.get("containers", []) + pod.get("initContainers", [])


def build(directory):
    path = os.path.join(directory, "kustomization.yaml")
    with open(path, encoding="utf-8") as f:
        k = yaml.safe_load(f) or {}
    unknown = set(k) - SUPPORTED
    if unknown:
        sys.exit(f"{path}: unsupported kustomize fields {sorted(unknown)} (extend scripts/kustomize.py)")

    objects = []
    for res in k.get("resources", []):
        target = os.path.normpath(os.path.join(directory, res))
        objects += build(target) if os.path.isdir(target) else load_all(target)

    for p in k.get("patches", []):
        if set(p) != {"path"}:
            sys.exit(f"{path}: only `patches: - path: file` is supported, got {p}")
        for patch in load_all(os.path.join(directory, p["path"])):
            key = (patch.get("kind"), patch.get("metadata", {}).get("name"))
            hits = [n for n, o in enumerate(objects) if (o.get("kind"), o["metadata"].get("name")) == key]
            if len(hits) != 1:
                sys.exit(f"{path}: patch {p['path']} matches {len(hits)} objects for {key}")
            objects[hits[0]] = merge(objects[hits[0]], patch)

    for r in k.get("replicas", []):
        hits = [o for o in objects if o["metadata"].get("name") == r["name"] and "replicas" in o.get("spec", {})]
        if not hits:
            sys.exit(f"{path}: replicas: no workload named {r['name']}")
        for o in hits:
            o["spec"]["replicas"] = r["count"]

    for image in k.get("images", []):
        for o in objects:
            for c in pod_containers(o):
                name = c["image"].split("@")[0].rsplit(":", 1)[0] if ":" in c["image"].split("/")[-1] else c["image"]
                if name == image["name"]:
                    c["image"] = f"{image.get('newName', name)}:{image.get('newTag', 'latest')}"

    for entry in k.get("labels", []):
        if set(entry) - {"pairs"}:
            sys.exit(f"{path}: only `labels: - pairs:` is supported")
        for o in objects:
            o["metadata"].setdefault("labels", {}).update(entry["pairs"])

    if "namespace" in k:
        for o in objects:
            if o.get("kind") not in CLUSTER_SCOPED:
                o["metadata"]["namespace"] = k["namespace"]

    seen = set()
    for o in objects:
        key = (o.get("kind"), o["metadata"].get("namespace"), o["metadata"].get("name"))
        if key in seen:
            sys.exit(f"{path}: duplicate object {key}")
        seen.add(key)
    return objects


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    objects = build(sys.argv[1])
    if len(sys.argv) == 2:
        yaml.safe_dump_all(objects, sys.stdout, sort_keys=False)
        return
    out = sys.argv[2]
    os.makedirs(out, exist_ok=True)
    for n, o in enumerate(objects):
        name = f"{n:03d}-{o['kind'].lower()}-{o['metadata']['name']}.yaml"
        with open(os.path.join(out, name), "w", encoding="utf-8") as f:
            yaml.safe_dump(o, f, sort_keys=False)
    print(f"{sys.argv[1]}: {len(objects)} objects -> {out}")


if __name__ == "__main__":
    main()
