#!/usr/bin/env python3
"""Validate docker/compose.yml (alone, and with docker/compose.override.yml) offline.

1. Interpolate `${VAR}`, `${VAR:-default}`, ... as `docker compose` does, with the values of
   .env.example (so the defaults are what is checked).
2. Parse the result with compose-spec (the compose_spec Rust library: the Compose
   specification's types, unknown keys rejected).
3. Check what this project promises: every service has a healthcheck and a restart policy,
   every depends_on waits for a healthy service, the Go platform's hostnames and ports
   (docs/compat.md) exist, named volumes are declared, no secret has a literal value in
   compose.yml, every variable the files use is documented in .env.example, and every
   variable of .env.example is described in docs/deploy.md.

Usage: scripts/check_compose.py [REPO_ROOT]
"""
import json
import os
import re
import sys

import yaml
from compose_spec import PyCompose

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASE = os.path.join(ROOT, "docker", "compose.yml")
OVERRIDE = os.path.join(ROOT, "docker", "compose.override.yml")
TEST = os.path.join(ROOT, "docker", "compose.test.yml")
ENV_EXAMPLE = os.path.join(ROOT, ".env.example")

# hostname -> container ports it must listen on (docs/compat.md), plus the Troupe services' HTTP ports.
HOSTS = {
    "broker-service": [8080],
    "authentication-service": [8082],
    "logger-service": [8083, 5001, 50001],
    "mailer-service": [8084],
    "listener-service": [8085],
    "front-end": [8081],
    "postgres": [5432],
    "mongo": [27017],
    "rabbitmq": [5672],
    "mailhog": [1025, 8025],
}
SECRETS = ["JWT_SECRET", "POSTGRES_PASSWORD", "MONGO_PASSWORD", "MAIL_PASSWORD", "MONGO_INITDB_ROOT_PASSWORD"]

errors = []


def fail(msg):
    errors.append(msg)


def env_example():
    """Variables of .env.example: set ones with their value, commented ones documented only."""
    values, documented = {}, set()
    for line in open(ENV_EXAMPLE, encoding="utf-8"):
        m = re.match(r"^\s*(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$", line.rstrip("\n"))
        if m:
            documented.add(m.group(2))
            if not m.group(1):
                values[m.group(2)] = m.group(3)
    return values, documented


VAR = re.compile(r"\$(\$|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])((?:[^{}]|\{[^{}]*\})*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


def interpolate(text, env, used):
    def sub(m):
        if m.group(1) == "$":
            return "$"
        name = m.group(2) or m.group(5)
        used.add(name)
        op, arg = m.group(3), m.group(4) or ""
        value = env.get(name)
        unset = value is None or (op and op.startswith(":") and value == "")
        if op in (":-", "-"):
            return interpolate(arg, env, used) if unset else value
        if op in (":?", "?"):
            if unset:
                fail(f"required variable {name} has no value in .env.example: {arg}")
                return "x"
            return value
        if op in (":+", "+"):
            return "" if unset else interpolate(arg, env, used)
        return value or ""

    return VAR.sub(sub, text)


def load(path, env, used):
    raw = open(path, encoding="utf-8").read()
    return yaml.safe_load(interpolate(raw, env, used))


def merge(a, b):
    if isinstance(a, dict) and isinstance(b, dict):
        out = dict(a)
        for k, v in b.items():
            # Compose replaces these lists instead of merging them.
            out[k] = merge(a[k], v) if k in a and k not in ("test", "command", "entrypoint") else v
        return out
    if isinstance(a, list) and isinstance(b, list):
        return a + [x for x in b if x not in a]
    return b


def validate(name, doc):
    try:
        PyCompose.from_json(json.dumps(doc))
    except ValueError as e:
        fail(f"{name}: not a valid Compose file: {e}")


def check_policy(doc, literal):
    services = doc.get("services", {})
    for host, ports in HOSTS.items():
        svc = services.get(host)
        if svc is None:
            fail(f"compose.yml: no service `{host}` (docs/compat.md hostname)")
            continue
        if svc.get("hostname", host) != host:
            fail(f"{host}: hostname is {svc.get('hostname')}")
        exposed = {int(str(p).split(":")[-1].split("/")[0]) for p in svc.get("expose", []) + svc.get("ports", [])}
        for port in ports:
            if port not in exposed:
                fail(f"{host}: port {port} is neither exposed nor published")
    for name, svc in services.items():
        if "healthcheck" not in svc:
            fail(f"{name}: no healthcheck")
        if svc.get("restart") not in ("unless-stopped", "always", "on-failure"):
            fail(f"{name}: no restart policy")
        for dep, cond in (svc.get("depends_on") or {}).items():
            if not isinstance(cond, dict) or cond.get("condition") != "service_healthy":
                fail(f"{name}: depends_on {dep} does not wait for service_healthy")
            elif "healthcheck" not in services.get(dep, {}):
                fail(f"{name}: depends_on {dep}, which has no healthcheck")
        for vol in svc.get("volumes", []):
            source = str(vol).split(":")[0]
            if not source.startswith((".", "/")) and source not in (doc.get("volumes") or {}):
                fail(f"{name}: volume {source} is not declared")
        env = svc.get("environment") or {}
        for key in SECRETS:
            if key in env and "${" not in str(literal.get(name, {}).get(key, "${")):
                fail(f"{name}: {key} has a literal value in compose.yml")


def main():
    values, documented = env_example()
    used = set()
    base = load(BASE, values, used)
    override = load(OVERRIDE, values, used)
    validate("docker/compose.yml", base)
    validate("docker/compose.yml + compose.override.yml", merge(base, override))
    test = load(TEST, values, used)
    validate("docker/compose.yml + compose.override.yml + compose.test.yml", merge(merge(base, override), test))
    for name, svc in test.get("services", {}).items():
        if name not in base["services"]:
            fail(f"compose.test.yml: service {name} is not in compose.yml")
        if svc.get("pull_policy") != "never":
            fail(f"compose.test.yml: {name} may pull (pull_policy is not never)")
    literal = {n: (s.get("environment") or {}) for n, s in yaml.safe_load(open(BASE, encoding="utf-8"))["services"].items()}
    check_policy(base, literal)
    container_only = set()
    for name in sorted(used - documented - container_only):
        fail(f".env.example does not document {name}, which the compose files use")
    deploy_doc = open(os.path.join(ROOT, "docs", "deploy.md"), encoding="utf-8").read()
    for name in sorted(documented):
        if f"`{name}`" not in deploy_doc and f"{name}`" not in deploy_doc:
            fail(f"docs/deploy.md does not describe {name} (documented in .env.example)")
    for e in errors:
        print(f"compose: {e}", file=sys.stderr)
    if errors:
        sys.exit(1)
    print(f"compose: ok ({len(base['services'])} services, {len(used)} variables, all documented)")


if __name__ == "__main__":
    main()
