#!/usr/bin/env python3
"""`make chaos`: faults injected into real Troupe processes and real servers, with Jepsen-style
accounting of every write a client was told about.

Each scenario starts the platform (``troupe up``, or one ``troupe serve`` process per service
against PostgreSQL, the MongoDB-wire server, RabbitMQ and the built-in catcher as the SMTP
server), runs client threads that write (broker ``log`` actions with an ``Idempotency-Key``,
``event`` actions with an id, users created on auth, mails through the broker), injects one
fault mid-stream, lets the clients go on, and then reads everything back. A client retries a
write that got no answer, a 5xx or a 429 with the same key, as the API docs tell it to; a mail
is sent once (its Idempotency-Key lives only as long as the mailer process, which the
scenarios kill), so a mail that got no answer is "unknown".

For every kind of write it counts what the clients were told and what was stored:
- **acked**: the client got a 2xx (or a 409 for a user whose earlier attempt had stored it);
- **lost**: acked but not stored;
- **dup**: stored more than once (whether acked or not);
- **unknown**: never acked (the scenario ended while the client still retried, or a mail
  that got no answer); stored or not, both are allowed.
A scenario passes with 0 lost and 0 dup. The table is printed and written between the
``chaos`` markers of docs/reliability.md (``--write-doc``).

Scenarios (``--quick`` runs the first two, shorter, as ``make test`` does):
- up-sigkill / up-sigterm: ``troupe up`` (embedded SQLite stores, the durable in-process
  event queue, the built-in catcher) killed mid-stream, kept down 2 s and restarted on the same data directory.
- serve-sigkill-<service>: split mode, each of broker, auth, logger, mailer, listener killed,
  kept down 2 s and restarted, in turn.
- rabbit-close: every RabbitMQ connection of the platform force-closed twice mid-stream
  (``rabbitmqctl close_all_connections`` on the run's own vhost).
- store-sigstop: the MongoDB-wire server (a private instance) paused with SIGSTOP for 30 s
  (10 s in --quick) mid-stream, then resumed.
- pg-cut: auth reaches PostgreSQL through a TCP proxy that cuts every connection and refuses
  new ones for 10 s.
- slow-net: the broker reaches auth, the logger and the mailer through a fault proxy that
  adds 5-60 ms to each request and resets every connection after 0.2-3 s, whatever is in
  flight on it (a request gone on whose answer never comes back, or one cut half-way).
- disk-full: ``troupe up`` with its data directory on a 24 MiB tmpfs, written until it is full.

Env: TROUPE_BIN (default target/debug/troupe), CHAOS_DOWN_SECS (how long a killed process
stays down before its restart, default 2), TEST_PG_URL (postgres://postgres@127.0.0.1:5432/postgres),
TEST_RABBIT_URL (amqp://guest:guest@127.0.0.1:5672), CHAOS_CLIENTS (default 8), CHAOS_SECS
(default 6; each scenario writes this long before and after its fault).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TROUPE = os.environ.get("TROUPE_BIN", str(ROOT / "target/debug/troupe"))
PG = os.environ.get("TEST_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")
RABBIT = os.environ.get("TEST_RABBIT_URL", "amqp://guest:guest@127.0.0.1:5672")
CLIENTS = int(os.environ.get("CHAOS_CLIENTS", "8"))
SECS = float(os.environ.get("CHAOS_SECS", "6"))
DOWN = float(os.environ.get("CHAOS_DOWN_SECS", "2"))  # how long a killed process stays down
SECRET = "chaos-secret-chaos-secret-chaos-secret!"
ADMIN = {"email": "admin@example.com", "password": "verysecret"}
KINDS = ("log", "event", "user", "mail")
DOC_START, DOC_END = "<!-- chaos:start -->", "<!-- chaos:end -->"


def say(*parts: object) -> None:
    print("[chaos]", *parts, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- HTTP --------------------------------------------------------------------------------


def request(method: str, url: str, body: object | None = None, headers: dict | None = None,
            timeout: float = 5.0) -> tuple[int | None, dict | None]:
    """One request on a fresh connection: (status, JSON body), or (None, None) when there was
    no answer (refused, reset, timed out)."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        data = None if body is None else json.dumps(body).encode()
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        conn.request(method, u.path + (f"?{u.query}" if u.query else ""), body=data, headers=hdrs)
        res = conn.getresponse()
        raw = res.read()
        try:
            return res.status, json.loads(raw) if raw else None
        except ValueError:
            return res.status, None
    except (OSError, http.client.HTTPException):
        return None, None
    finally:
        conn.close()


def wait_for(what: str, probe, within: float = 90.0, proc: "Proc | None" = None) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc is not None and proc.popen.poll() is not None:
            raise SystemExit(f"{proc.name} exited with {proc.popen.returncode} before {what}; log: {proc.log}\n"
                             + proc.tail())
        if probe():
            return
        time.sleep(0.1)
    raise SystemExit(f"timed out after {within:.0f} s waiting for {what}" + (f"; log: {proc.log}\n" + proc.tail()
                                                                              if proc else ""))


def ready(url: str) -> bool:
    return request("GET", url + "/readyz", timeout=2)[0] == 200


# --- processes ---------------------------------------------------------------------------


class Proc:
    """A Troupe process with its own log file; started again with the same arguments."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], work: Path):
        self.name, self.argv, self.env = name, argv, env
        self.log = work / f"{name}.log"
        self.popen = self._spawn()

    def _spawn(self) -> subprocess.Popen:
        out = open(self.log, "ab")
        env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"), **self.env}
        return subprocess.Popen(self.argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def signal(self, sig: int) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        self.popen.wait()

    def terminate(self, within: float = 30) -> int:
        self.signal(signal.SIGTERM)
        try:
            return self.popen.wait(within)
        except subprocess.TimeoutExpired:
            self.kill()
            raise SystemExit(f"{self.name} did not stop within {within} s of SIGTERM")

    def restart(self) -> None:
        if self.popen.poll() is None:
            self.kill()
        self.popen = self._spawn()

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def base_env(data: Path) -> dict[str, str]:
    return {"BIND_ADDRESS": "127.0.0.1", "RUST_LOG": "warn", "TROUPE_DATA_DIR": str(data), "JWT_SECRET": SECRET,
            "BACKOFF_MIN": "50ms", "BACKOFF_MAX": "1s", "REQUEST_TIMEOUT": "3s", "SHUTDOWN_TIMEOUT": "5s",
            "LOGIN_RATE_PER_CLIENT": "off", "LOGIN_RATE_PER_EMAIL": "off", "REQUEST_RATE_PER_CLIENT": "off"}


UP_PORTS = ("BROKER_PORT", "FRONTEND_PORT", "AUTH_PORT", "LOGGER_PORT", "MAILER_PORT", "LISTENER_PORT",
            "LOGGER_GRPC_PORT", "LOGGER_RPC_PORT", "CATCHER_SMTP_PORT", "CATCHER_HTTP_PORT")


@dataclass
class Platform:
    """Where the clients write and where the results are read back."""
    broker: str
    auth: str
    catcher: str
    procs: dict[str, Proc] = field(default_factory=dict)
    cleanup: list = field(default_factory=list)

    def wait_ready(self) -> None:
        for name, proc in self.procs.items():
            url = proc.env.get("_URL")
            if url:
                wait_for(f"{name} ready", lambda u=url: ready(u), proc=proc)

    def stop(self) -> None:
        for proc in reversed(list(self.procs.values())):
            if proc.popen.poll() is None:
                proc.kill()
        for fn in reversed(self.cleanup):
            fn()


def troupe_up(work: Path, data: Path | None = None, extra: dict | None = None) -> Platform:
    env = base_env(data or work / "data")
    env.update({k: str(free_port()) for k in UP_PORTS})
    env.update(extra or {})
    env["_URL"] = f"http://127.0.0.1:{env['BROKER_PORT']}"
    p = Platform(broker=env["_URL"], auth=f"http://127.0.0.1:{env['AUTH_PORT']}",
                 catcher=f"http://127.0.0.1:{env['CATCHER_HTTP_PORT']}")
    p.procs["up"] = Proc("up", [TROUPE, "up"], env, work)
    p.wait_ready()
    return p


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, stdout=subprocess.DEVNULL, timeout=60)


def fresh_pg(run: str) -> str:
    name = f"troupe_chaos_{run}"
    subprocess.run(["psql", PG, "-q", "-c", f'CREATE DATABASE "{name}"'], check=True, stdout=subprocess.DEVNULL,
                   timeout=30)
    u = urllib.parse.urlsplit(PG)
    return urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + name, u.query, ""))


def drop_pg(dsn: str) -> None:
    name = urllib.parse.urlsplit(dsn).path.lstrip("/")
    subprocess.run(["psql", PG, "-q", "-c", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)


class Secantus:
    """A private MongoDB-wire server (SecantusDB, installed by scripts/services.sh), so that
    pausing it disturbs nobody else's tests."""

    def __init__(self, work: Path):
        self.port = free_port()
        exe = shutil.which("secantusd-py")
        if not exe:
            raise SystemExit("secantusd-py is missing: run `make services`")
        self.popen = subprocess.Popen([exe, "--host", "127.0.0.1", "--port", str(self.port), "--storage-path",
                                       str(work / "secantus")], stdout=open(work / "secantus.log", "ab"),
                                      stderr=subprocess.STDOUT, start_new_session=True)
        wait_for("the MongoDB-wire server", lambda: _listening(self.port), within=60)
        self.url = f"mongodb://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.popen.send_signal(signal.SIGCONT)
        self.popen.kill()
        self.popen.wait()


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def split(work: Path, run: str, mongo: str, *, auth_dsn: str | None = None, via_proxy=None) -> Platform:
    """One `troupe serve` per service on real servers; `via_proxy(port)` may put a fault proxy
    in front of auth, the logger and the mailer as the broker sees them."""
    vhost = f"chaos-{run}"
    rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    dsn = auth_dsn or fresh_pg(run)
    env = base_env(work / "data")
    env.update({"DSN": dsn, "MONGO_URL": mongo, "MONGO_DATABASE": f"chaos_{run}",
                "RABBIT_URL": f"{RABBIT}/{vhost}", "DB_TIMEOUT": "2s"})
    ports = {k: free_port() for k in ("AUTH_PORT", "LOGGER_PORT", "LOGGER_GRPC_PORT", "LOGGER_RPC_PORT",
                                      "MAILER_PORT", "LISTENER_PORT", "BROKER_PORT", "CATCHER_SMTP_PORT",
                                      "CATCHER_HTTP_PORT")}
    env.update({k: str(v) for k, v in ports.items()})
    direct = {"AUTH_URL": ports["AUTH_PORT"], "LOGGER_URL": ports["LOGGER_PORT"], "MAILER_URL": ports["MAILER_PORT"],
              "LISTENER_URL": ports["LISTENER_PORT"]}
    for var, port in direct.items():
        env[var] = f"http://127.0.0.1:{port}"
    env["LOGGER_GRPC_URL"] = f"http://127.0.0.1:{ports['LOGGER_GRPC_PORT']}"
    env.update({"MAIL_HOST": "127.0.0.1", "MAIL_PORT": str(ports["CATCHER_SMTP_PORT"]), "MAIL_ENCRYPTION": "none"})
    p = Platform(broker=f"http://127.0.0.1:{ports['BROKER_PORT']}", auth=f"http://127.0.0.1:{ports['AUTH_PORT']}",
                 catcher=f"http://127.0.0.1:{ports['CATCHER_HTTP_PORT']}")
    if not auth_dsn:
        p.cleanup.append(lambda: drop_pg(dsn))
    p.cleanup.append(lambda: rabbitmqctl("delete_vhost", vhost))
    for name, port_var in (("catcher", "CATCHER_HTTP_PORT"), ("auth", "AUTH_PORT"), ("logger", "LOGGER_PORT"),
                           ("mailer", "MAILER_PORT"), ("listener", "LISTENER_PORT"), ("broker", "BROKER_PORT")):
        penv = dict(env, _URL=f"http://127.0.0.1:{env[port_var]}", TROUPE_DATA_DIR=str(work / f"data-{name}"))
        if name == "broker" and via_proxy:
            for var in ("AUTH_URL", "LOGGER_URL", "MAILER_URL"):
                penv[var] = f"http://127.0.0.1:{via_proxy(direct[var])}"
        p.procs[name] = Proc(name, [TROUPE, "serve", name], penv, work)
    p.wait_ready()
    return p


# --- a TCP fault proxy -------------------------------------------------------------------


class FaultProxy:
    """A TCP proxy on its own event loop: `cut()` resets every connection and refuses new ones
    until `mend()`; `delay` (s, a range) is added before each chunk goes on towards the
    target (each request waits that long); `lifetime` (s, a range), when given, is how long a
    connection lives before it is reset, whatever is in flight on it (a request that went on
    and whose answer never comes back, or one cut half-way)."""

    def __init__(self, target_port: int, delay: tuple[float, float] = (0, 0),
                 lifetime: tuple[float, float] | None = None):
        self.target, self.delay, self.lifetime = target_port, delay, lifetime
        self.port = free_port()
        self.down = False
        self.resets = 0
        self.writers: set = set()
        self.loop = asyncio.new_event_loop()
        started = threading.Event()
        threading.Thread(target=self._run, args=(started,), daemon=True).start()
        started.wait(10)

    def _run(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", self.port))
        started.set()
        self.loop.run_forever()

    async def _serve(self, reader, writer) -> None:
        if self.down:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.transport.abort()
            return
        self.writers |= {writer, up_writer}

        async def pipe(src, dst, delayed: bool) -> None:
            try:
                while data := await src.read(65536):
                    if delayed and self.delay[1] > 0:
                        await asyncio.sleep(random.uniform(*self.delay))
                    dst.write(data)
                    await dst.drain()
            except OSError:
                pass
            finally:
                dst.close()

        both = asyncio.gather(pipe(reader, up_writer, True), pipe(up_reader, writer, False))
        try:
            if self.lifetime:
                await asyncio.wait_for(asyncio.shield(both), random.uniform(*self.lifetime))
            else:
                await both
        except asyncio.TimeoutError:
            self.resets += 1
            writer.transport.abort()
            up_writer.transport.abort()
        self.writers -= {writer, up_writer}

    def cut(self) -> None:
        def go():
            self.down = True
            for w in list(self.writers):
                w.transport.abort()
        self.loop.call_soon_threadsafe(go)

    def mend(self) -> None:
        self.loop.call_soon_threadsafe(lambda: setattr(self, "down", False))

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)


# --- clients and accounting --------------------------------------------------------------


class Ledger:
    """What each client was told, per kind and key."""

    def __init__(self):
        self.lock = threading.Lock()
        self.told: dict[str, dict[str, str]] = {k: {} for k in KINDS}
        self.answers = collections.Counter()

    def note(self, kind: str, key: str, outcome: str) -> None:
        with self.lock:
            self.told[kind][key] = outcome

    def answer(self, status: int | None) -> None:
        with self.lock:
            self.answers["none" if status is None else f"{status // 100}xx" if status != 429 else "429"] += 1


def access_token(body: dict) -> str | None:
    """The access token of a login's reply (`token.access_token`)."""
    token = body.get("token")
    return token.get("access_token") if isinstance(token, dict) else token


class Client(threading.Thread):
    """Writes until `writing` clears; retries an unanswered write with its key until
    `retrying` clears."""

    def __init__(self, n: int, run: str, plat: Platform, ledger: Ledger, writing: threading.Event,
                 retrying: threading.Event, mix: dict[str, int]):
        super().__init__(daemon=True)
        self.n, self.run_id, self.plat, self.ledger = n, run, plat, ledger
        self.writing, self.retrying, self.mix = writing, retrying, mix
        self.token: str | None = None

    def login(self) -> None:
        status, body = request("POST", self.plat.broker + "/handle", {"action": "auth", "auth": ADMIN})
        self.ledger.answer(status)
        if status == 202 and body:
            self.token = access_token(body)

    def auth_headers(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def run(self) -> None:
        kinds = [k for k, w in self.mix.items() for _ in range(w)]
        i = 0
        while self.writing.is_set():
            i += 1
            kind = random.choice(kinds)
            key = f"{self.run_id}-{kind}-{self.n}-{i}"
            getattr(self, f"write_{kind}")(key)

    def _until_acked(self, kind: str, key: str, send) -> None:
        backoff = 0.02
        while True:
            status, body = send()
            self.ledger.answer(status)
            if status is not None and 200 <= status < 300:
                return self.ledger.note(kind, key, "acked")
            if status == 409 and kind == "user":
                return self.ledger.note(kind, key, "acked")  # an earlier attempt stored it
            if status == 401 and kind in ("user", "mail"):
                self.login()
            elif status is not None and 400 <= status < 500 and status != 429:
                return self.ledger.note(kind, key, f"refused {status}: {(body or {}).get('message')}")
            if not self.retrying.is_set():
                return self.ledger.note(kind, key, "unknown")
            time.sleep(backoff)
            backoff = min(backoff * 2, 0.5)

    def write_log(self, key: str) -> None:
        body = {"action": "log", "log": {"name": f"chaos-log-{self.run_id}", "data": key}}
        self._until_acked("log", key, lambda: request("POST", self.plat.broker + "/handle", body,
                                                      {"Idempotency-Key": key}))

    def write_event(self, key: str) -> None:
        body = {"action": "event", "event": {"id": key, "name": f"chaos-evt-{self.run_id}", "data": key}}
        self._until_acked("event", key, lambda: request("POST", self.plat.broker + "/handle", body))

    def write_user(self, key: str) -> None:
        if not self.token:
            self.login()
        body = {"email": f"{key}@chaos.example", "password": "chaos-password", "first_name": "Chaos",
                "last_name": str(self.n), "admin": False}
        self._until_acked("user", key, lambda: request("POST", self.plat.auth + "/users", body, self.auth_headers()))

    def write_mail(self, key: str) -> None:
        if not self.token:
            self.login()
        body = {"action": "mail", "mail": {"from": "chaos@example.com", "to": "you@example.com", "subject": key,
                                           "message": "a mail from make chaos"}}
        status, _ = request("POST", self.plat.broker + "/handle", body, self.auth_headers())
        self.ledger.answer(status)
        self.ledger.note("mail", key, "acked" if status is not None and 200 <= status < 300 else "unknown")


def stored(plat: Platform, run: str) -> dict[str, collections.Counter]:
    """How many times each key was stored, per kind, read back through the platform's APIs."""
    out = {k: collections.Counter() for k in KINDS}
    # An admin's token: the split-mode broker's reads need one (READ_AUTH), and so does auth's list.
    token = None
    status, body = request("POST", plat.broker + "/handle", {"action": "auth", "auth": ADMIN}, timeout=30)
    if status == 202:
        token = access_token(body)
    bearer = {"Authorization": f"Bearer {token}"} if token else {}
    for kind, name in (("log", f"chaos-log-{run}"), ("event", f"chaos-evt-{run}")):
        cursor = None
        while True:
            q = {"name": name, "limit": "500", **({"cursor": cursor} if cursor else {})}
            status, body = request("GET", f"{plat.broker}/logs?{urllib.parse.urlencode(q)}", headers=bearer,
                                   timeout=30)
            if status != 200:
                raise SystemExit(f"reading the {kind} entries back: {status} {body}")
            for entry in body["data"]["entries"]:
                out[kind][entry["data"]] += 1
            cursor = body["data"].get("next_cursor")
            if not cursor:
                break
    after = 0
    while True:
        status, body = request("GET", f"{plat.auth}/users?after={after}&limit=100", headers=bearer, timeout=30)
        if status != 200:
            raise SystemExit(f"reading the users back: {status} {body}")
        users = body["data"]
        for u in users:
            if u["email"].endswith("@chaos.example"):
                out["user"][u["email"].split("@")[0]] += 1
        if len(users) < 100:
            break
        after = users[-1]["id"]
    status, body = request("GET", f"{plat.catcher}/api/messages", timeout=30)
    if status != 200:
        raise SystemExit(f"reading the mail back: {status} {body}")
    for m in body["data"]:
        if m["subject"].startswith(run):
            out["mail"][m["subject"]] += 1
    return out


@dataclass
class Row:
    scenario: str
    fault: str
    told: dict
    got: dict
    answers: collections.Counter
    note: str = ""

    def count(self, kind: str) -> dict[str, int]:
        told, got = self.told[kind], self.got[kind]
        acked = [k for k, v in told.items() if v == "acked"]
        return {"acked": len(acked), "lost": sum(1 for k in acked if got[k] == 0),
                "dup": sum(1 for k, n in got.items() if n > 1),
                "unknown": sum(1 for v in told.values() if v == "unknown"),
                "refused": sum(1 for v in told.values() if v.startswith("refused"))}

    def ok(self) -> bool:
        return all(self.count(k)["lost"] == 0 and self.count(k)["dup"] == 0 and self.count(k)["refused"] == 0
                   for k in KINDS)


def drive(name: str, fault_text: str, plat: Platform, fault, run: str,
          mix: dict[str, int] | None = None, secs: float = SECS) -> Row:
    """Clients write for `secs`, `fault()` runs, clients write `secs` more, retries end, then
    every acked write must be stored exactly once (events are waited for: they are stored
    asynchronously, by the listener)."""
    mix = mix or {"log": 6, "event": 3, "user": 1, "mail": 1}
    ledger, writing, retrying = Ledger(), threading.Event(), threading.Event()
    writing.set()
    retrying.set()
    clients = [Client(n, run, plat, ledger, writing, retrying, mix) for n in range(CLIENTS)]
    for c in clients:
        c.start()
    time.sleep(secs)  # the load runs for this long before the fault: a duration, not a wait for state
    note = fault() or ""
    time.sleep(secs)  # and after it
    writing.clear()
    # In-flight writes go on retrying until the platform is back: give them the time a client would.
    deadline = time.monotonic() + 60
    while any(c.is_alive() for c in clients) and time.monotonic() < deadline:
        time.sleep(0.1)
    retrying.clear()
    for c in clients:
        c.join(30)
    plat.wait_ready()
    acked_events = {k for k, v in ledger.told["event"].items() if v == "acked"}
    deadline = time.monotonic() + 90
    while True:
        got = stored(plat, run)
        if acked_events <= set(got["event"]) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    row = Row(name, fault_text, ledger.told, got, ledger.answers, note)
    say(f"{name}: " + ", ".join(f"{k} {row.count(k)}" for k in KINDS) + f"; answers {dict(ledger.answers)} {note}")
    return row


def timed(fn) -> str:
    t = time.monotonic()
    fn()
    return f"ready {time.monotonic() - t:.1f} s after the restart / the fault's end"


# --- scenarios ---------------------------------------------------------------------------


def s_up(work: Path, run: str, sig: int) -> Row:
    plat = troupe_up(work)
    try:
        def fault():
            up = plat.procs["up"]
            if sig == signal.SIGKILL:
                up.kill()
            else:
                code = up.terminate()
                if code != 0:
                    raise SystemExit(f"troupe up exited {code} after SIGTERM\n{up.tail()}")
            time.sleep(DOWN)  # the fault itself: the platform stays down this long
            return timed(lambda: (up.restart(), plat.wait_ready()))
        name = "up-sigkill" if sig == signal.SIGKILL else "up-sigterm"
        return drive(name, f"`troupe up` {signal.Signals(sig).name} mid-stream, restarted on its data", plat, fault, run)
    finally:
        plat.stop()


def s_serve_kill(work: Path, run: str, mongo: str, service: str) -> Row:
    plat = split(work, run, mongo)
    try:
        def fault():
            proc = plat.procs[service]
            proc.kill()
            time.sleep(DOWN)  # the fault itself: the service stays down this long
            return timed(lambda: (proc.restart(), plat.wait_ready()))
        return drive(f"serve-sigkill-{service}", f"`troupe serve {service}` SIGKILL mid-stream, restarted", plat,
                     fault, run)
    finally:
        plat.stop()


def s_rabbit_close(work: Path, run: str, mongo: str) -> Row:
    plat = split(work, run, mongo)
    try:
        def fault():
            for _ in range(2):
                rabbitmqctl("close_all_connections", "--vhost", f"chaos-{run}", "make chaos")
                time.sleep(SECS / 3)  # the second close lands while the first reconnects settle
            return ""
        return drive("rabbit-close", "every RabbitMQ connection force-closed, twice", plat, fault, run,
                     mix={"log": 2, "event": 6, "user": 1, "mail": 1})
    finally:
        plat.stop()


def s_store_stop(work: Path, run: str, pause: float) -> Row:
    mongo = Secantus(work)
    plat = split(work, run, mongo.url)
    plat.cleanup.append(mongo.stop)
    try:
        def fault():
            mongo.popen.send_signal(signal.SIGSTOP)
            time.sleep(pause)  # the fault itself: the store stays paused this long
            mongo.popen.send_signal(signal.SIGCONT)
            return timed(plat.wait_ready)
        return drive("store-sigstop", f"the MongoDB-wire server SIGSTOPped for {pause:.0f} s", plat, fault, run)
    finally:
        plat.stop()


def s_pg_cut(work: Path, run: str, mongo: str) -> Row:
    dsn = fresh_pg(run)
    u = urllib.parse.urlsplit(dsn)
    proxy = FaultProxy(u.port or 5432)
    via = urllib.parse.urlunsplit((u.scheme, f"{u.username or 'postgres'}@127.0.0.1:{proxy.port}", u.path, u.query, ""))
    plat = split(work, run, mongo, auth_dsn=via)
    plat.cleanup += [proxy.close, lambda: drop_pg(dsn)]
    try:
        def fault():
            proxy.cut()
            time.sleep(10)  # the fault itself: PostgreSQL unreachable this long
            proxy.mend()
            return timed(plat.wait_ready)
        return drive("pg-cut", "PostgreSQL cut (connections reset, new ones refused) for 10 s", plat, fault, run,
                     mix={"log": 3, "event": 1, "user": 4, "mail": 1})
    finally:
        plat.stop()


def s_slow_net(work: Path, run: str, mongo: str) -> Row:
    proxies: list[FaultProxy] = []

    def via(port: int) -> int:
        proxies.append(FaultProxy(port, delay=(0.005, 0.06), lifetime=(0.2, 3.0)))
        return proxies[-1].port
    plat = split(work, run, mongo, via_proxy=via)
    plat.cleanup += [p.close for p in proxies]
    try:
        row = drive("slow-net", "broker → auth, logger, mailer: 5-60 ms added to each request, every connection "
                    "reset after 0.2-3 s whatever is in flight", plat, lambda: "", run)
        row.note = f"{sum(p.resets for p in proxies)} connections reset"
        return row
    finally:
        plat.stop()


def s_disk_full(work: Path, run: str) -> Row:
    mnt = work / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mnt)], check=True)
    plat = None
    try:
        plat = troupe_up(work, data=mnt / "data")
        filler = mnt / "filler"

        def fault():
            # Fill what is left of the disk; the platform must refuse, not lie, and recover once
            # the space is back.
            subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=1M", "count=64"], stderr=subprocess.DEVNULL)
            time.sleep(SECS)  # the fault itself: the disk stays full this long
            filler.unlink()
            return timed(plat.wait_ready)
        return drive("disk-full", "the data directory's disk (24 MiB tmpfs) filled for a while, then freed", plat,
                     fault, run)
    finally:
        if plat:
            plat.stop()
        subprocess.run(["umount", "-l", str(mnt)])


# --- report --------------------------------------------------------------------------------


def table(rows: list[Row]) -> str:
    out = ["| scenario | fault | " + " | ".join(f"{k}: acked / lost / dup" for k in KINDS)
           + " | unknown (never acked) | answers the clients got | recovery |",
           "|---|---|" + "---|" * len(KINDS) + "---|---|---|"]
    for r in rows:
        cells = []
        for k in KINDS:
            c = r.count(k)
            cells.append(f"{c['acked']} / **{c['lost']}** / **{c['dup']}**" + (f" ({c['refused']} refused)"
                                                                              if c["refused"] else ""))
        unknown = sum(r.count(k)["unknown"] for k in KINDS)
        answers = ", ".join(f"{k} {v}" for k, v in sorted(r.answers.items()))
        out.append(f"| {r.scenario} | {r.fault} | " + " | ".join(cells) + f" | {unknown} | {answers} | {r.note} |")
    return "\n".join(out)


def write_doc(text: str) -> None:
    doc = ROOT / "docs/reliability.md"
    body = doc.read_text()
    block = f"{DOC_START}\n{text}\n{DOC_END}"
    if DOC_START in body:
        start, end = body.index(DOC_START), body.index(DOC_END) + len(DOC_END)
        body = body[:start] + block + body[end:]
    else:
        body += f"\n## `make chaos`\n\n{block}\n"
    doc.write_text(body)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="the bounded subset `make test` runs")
    ap.add_argument("--write-doc", action="store_true", help="write the table into docs/reliability.md")
    ap.add_argument("scenarios", nargs="*", help="run only these (names as in the table; serve-sigkill for all five)")
    args = ap.parse_args()
    if not Path(TROUPE).exists():
        raise SystemExit(f"{TROUPE} is missing: cargo build -p troupe-http --bin troupe")
    want = set(args.scenarios)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="troupe-chaos-") as tmp:
        work = Path(tmp)

        def go(name: str, fn, *a) -> None:
            if want and name not in want and name.rsplit("-", 1)[0] not in want:
                return
            run = uuid.uuid4().hex[:12]
            d = work / name
            d.mkdir()
            say(f"{name} (run {run})")
            rows.append(fn(d, run, *a))

        go("up-sigkill", s_up, signal.SIGKILL)
        go("up-sigterm", s_up, signal.SIGTERM)
        if not args.quick:
            shared_mongo = os.environ.get("MONGO_URL", "mongodb://127.0.0.1:27017")
            for service in ("broker", "auth", "logger", "mailer", "listener"):
                go(f"serve-sigkill-{service}", s_serve_kill, shared_mongo, service)
            go("rabbit-close", s_rabbit_close, shared_mongo)
            go("store-sigstop", s_store_stop, 30.0)
            go("pg-cut", s_pg_cut, shared_mongo)
            go("slow-net", s_slow_net, shared_mongo)
            go("disk-full", s_disk_full)
    text = (f"Run {started}, {os.cpu_count()} cores (shared), `{Path(TROUPE).relative_to(ROOT) if Path(TROUPE).is_relative_to(ROOT) else TROUPE}`, "
            f"{CLIENTS} clients, {SECS:.0f} s of writes before and after each fault.\n\n" + table(rows) + "\n")
    print(text)
    if args.write_doc:
        write_doc(text)
    bad = [r.scenario for r in rows if not r.ok()]
    if bad:
        print(f"[chaos] FAILED: {', '.join(bad)} lost, duplicated or refused acknowledged writes", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
