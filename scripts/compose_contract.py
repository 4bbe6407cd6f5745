#!/usr/bin/env python3
"""The COMPAT contract against the compose stack, through its published ports only.

Run by scripts/compose-test.sh once every container is healthy. Each check prints one line;
the first failure stops the run with what was expected and what came back.

  login (auth action), reads and mail refused without a token (401), `log` read back through
  the broker with the token, `POST /log-grpc`, mail landing in
  the catcher's inbox the console reads, an event through RabbitMQ stored by the listener,
  the console page pointing at the broker; then the logger container's process is killed:
  the broker answers 503 `logger unavailable` meanwhile, and the restart policy brings it
  back (healthy, `log` 202 again).
"""
import argparse
import json
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid


def fail(what, detail):
    print(f"compose-contract: FAILED: {what}\n  {detail}", file=sys.stderr)
    sys.exit(1)


def request(method, url, body=None, timeout=10, token=None):
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as res:
            return res.status, res.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except (urllib.error.URLError, OSError) as e:
        return 0, str(e)


def as_json(text):
    try:
        return json.loads(text)
    except ValueError:
        return {"raw": text}


def eventually(what, fn, secs=30):
    deadline = time.monotonic() + secs
    last = None
    while time.monotonic() < deadline:
        ok, last = fn()
        if ok:
            return last
        time.sleep(0.5)
    fail(what, f"not within {secs}s; last: {last}")


def ok(msg):
    print(f"compose-contract: ok  {msg}")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--broker", required=True)
    p.add_argument("--console", required=True)
    p.add_argument("--inbox", required=True)
    p.add_argument("--compose", required=True, help="the docker compose command line of the stack")
    a = p.parse_args()
    compose = shlex.split(a.compose)
    handle = f"{a.broker}/handle"

    signed_in = {}  # the seeded admin's access token, once logged in

    def act(body, token=None):
        status, text = request("POST", handle, body, token=token)
        return status, as_json(text)

    def accepted(what, body, message, token=None):
        """The action answers 202 with `message`; its envelope."""
        status, reply = act(body, token)
        if (status, reply.get("message")) != (202, message):
            fail(what, f"{status} {reply}")
        return reply

    def stored(name, secs=30):
        def look():
            status, text = request("GET", f"{a.broker}/logs?name={name}", token=signed_in["token"])
            entries = (as_json(text).get("data") or {}).get("entries") or []
            return status == 200 and bool(entries), entries[0] if entries else f"{status} {text[:300]}"

        return eventually(f"a log entry named {name} readable through the broker's GET /logs", look, secs)

    status, text = request("POST", a.broker)
    if (status, as_json(text).get("message")) != (200, "Hit the broker"):
        fail("POST / on the broker", f"{status} {text}")
    ok("broker answers (Hit the broker)")

    login = {"action": "auth", "auth": {"email": "admin@example.com", "password": "verysecret"}}
    body = accepted("login of the seeded user (auth action, PostgreSQL)", login, "Authenticated!")
    ok("login: auth action 202 Authenticated! (user in PostgreSQL)")
    signed_in["token"] = (body.get("token") or {}).get("access_token")

    # Secure defaults in the stack: reads and mail (MAIL_HOST is set) need a token.
    status, text = request("GET", f"{a.broker}/logs")
    if status != 401:
        fail("GET /logs without a token is 401 on serve broker", f"{status} {text[:300]}")
    status, body = act({"action": "mail", "mail": {"to": "you@there.com", "subject": "no token", "message": "x"}})
    if status != 401:
        fail("the mail action without a token is 401 (MAIL_HOST set)", f"{status} {body}")
    ok("GET /logs and the mail action without a token: 401")

    name = f"compose-log-{uuid.uuid4().hex}"
    accepted("log action", {"action": "log", "log": {"name": name, "data": "via rpc"}}, f"Processed payload via RPC: {name}")
    entry = stored(name)
    if entry.get("data") != "via rpc":
        fail("log entry read back", entry)
    ok("log action 202, entry read back from MongoDB-wire through the broker")

    name = f"compose-grpc-{uuid.uuid4().hex}"
    status, text = request("POST", f"{a.broker}/log-grpc", {"log": {"name": name, "data": "via grpc"}})
    if (status, as_json(text).get("message")) != (202, "logged"):
        fail("POST /log-grpc", f"{status} {text}")
    stored(name)
    ok("/log-grpc 202 logged, entry read back")

    subject = f"compose {uuid.uuid4().hex}"
    mail = {"from": "me@example.com", "to": "you@there.com", "subject": subject, "message": "Hello world!"}
    accepted("mail action", {"action": "mail", "mail": mail}, "Message sent to you@there.com", signed_in["token"])

    def inbox():
        status, text = request("GET", f"{a.inbox}/api/messages")
        return status == 200 and subject in text, f"{status} {text[:300]}"

    eventually(f"the mail {subject!r} in the catcher's inbox ({a.inbox}/api/messages)", inbox)
    ok("mail action 202, the mail is in the inbox the console reads")

    name = f"compose-event-{uuid.uuid4().hex}"
    event = {"action": "event", "event": {"name": name, "data": "through rabbitmq", "level": "warning"}}
    accepted("event action", event, f"Event published: {name}")
    entry = stored(name)
    if entry.get("service") != "listener":
        fail("the event stored by the listener", entry)
    ok("event 202, consumed from RabbitMQ and stored by the listener")

    status, page = request("GET", a.console)
    if status != 200 or "data-broker=" not in page or a.broker.rsplit(":", 1)[1] not in page:
        fail("the console page points at the broker", f"{status} {page[:300]}")
    ok("console page served, pointing at the broker's published port")

    # A crash: SIGKILL the logger container's process from the host; the restart policy
    # (unless-stopped) starts it again. `docker kill` would count as a manual stop.
    cid = subprocess.run(compose + ["ps", "-q", "logger-service"], capture_output=True, text=True, check=True).stdout.strip()
    pid = subprocess.run(["docker", "inspect", "-f", "{{.State.Pid}}", cid], capture_output=True, text=True, check=True).stdout.strip()
    t0 = time.monotonic()
    subprocess.run(["kill", "-KILL", pid], check=True)

    def unavailable():
        status, body = act({"action": "log", "log": {"name": "while-down", "data": "x"}})
        return (status, body.get("message")) == (503, "logger unavailable"), f"{status} {body}"

    eventually("the broker answering 503 `logger unavailable` while the logger is down", unavailable, 10)
    ok("logger killed: the broker answers 503 logger unavailable")

    def healthy():
        out = subprocess.run(["docker", "inspect", "-f", "{{.State.Health.Status}} {{.RestartCount}}", cid], capture_output=True, text=True).stdout.split()
        return out[:1] == ["healthy"] and out[1:] != ["0"], out

    eventually("the logger container restarted by its policy and healthy again", healthy, 60)
    name = f"compose-back-{uuid.uuid4().hex}"
    eventually(
        "the broker serving `log` through the restarted logger",
        lambda: (act({"action": "log", "log": {"name": name, "data": "back"}})[0] == 202, name),
        30,
    )
    stored(name)
    ok(f"logger restarted by the restart policy, healthy and serving again after {time.monotonic() - t0:.1f}s")
    print("compose-contract: all checks passed")


if __name__ == "__main__":
    main()
