#!/usr/bin/env python3
"""`make bench-log`: Troupe's log ingestion against its ceilings, measured in one run.

Every comparison is interleaved A B B A (the thing and its ceiling alternate, so the shared
machine's drift cancels) and quoted as the median of its rounds; ratios first, absolute
figures second. Writes the result between the `bench:log` markers of docs/benchmarks.md and
a PNG chart per scenario under docs/bench/.

Scenarios
- embedded: `troupe up` (SQLite log store, synchronous=FULL). Closed loop at 32 and 256
  connections: the broker's `log` action and the logger's own `POST /log` against a bare
  actix-web server that parses the same body and answers the envelope (`bench_ceiling
  http`), and against the store's own ceiling (`bench_ceiling store`: rows/s straight
  through `LogStore::insert_batch`, batches of the connection count). Open loop (fixed rate,
  latency corrected) at 50 % and 80 % of the closed-loop maximum: p50 / p99 / p99.9.
  CPU-seconds per 1,000 requests, RSS and open FDs before, after and after idle.
- mixed: `troupe up` under `log` (open loop, 50 % of its maximum) alone, then with events,
  mail and logins beside it (logins offered at the bcrypt ceiling of the hashing pool,
  measured in the same run with `bench_ceiling bcrypt`): each route's p99, the `log`
  action's p99 against its p99 alone, the login rate against the ceiling, non-2xx counts.
- telemetry: two `troupe up` side by side, one with tracing (spans, the recent-trace store)
  and the extra metrics on as shipped, one with them off (BENCH_TELEMETRY_OFF, default
  `OTEL_SDK_DISABLED=true TROUPE_METRICS=off`); the broker's `log` action on each, A B B A at
  32 and 256 connections: on / off, and CPU-seconds per 1,000 requests of each.
- split-mongo (when MONGO_URL is set): `troupe serve logger` on the MongoDB-wire server and
  `troupe serve broker`; the broker's `log` action against the store ceiling on that server.

Env: BENCH_SECS (round length, default 8), BENCH_IDLE_SECS (default 30), BENCH_SCENARIOS
(default "embedded mixed telemetry" plus "split-mongo" when MONGO_URL is set), BENCH_BASE_PORT
(default 19000), TROUPE_BIN / CEILING_BIN (default target/release/...).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECS = int(os.environ.get("BENCH_SECS", "8"))
IDLE = int(os.environ.get("BENCH_IDLE_SECS", "30"))
BASE = int(os.environ.get("BENCH_BASE_PORT", "19000"))
TROUPE = os.environ.get("TROUPE_BIN", str(ROOT / "target/release/troupe"))
CEILING = os.environ.get("CEILING_BIN", str(ROOT / "target/release/bench_ceiling"))
# Another build of troupe (e.g. of the previous commit) to compare in the same run.
BEFORE = os.environ.get("TROUPE_BEFORE_BIN")
OHA = os.environ.get("OHA", shutil.which("oha") or str(Path.home() / ".cargo/bin/oha"))
CLK = os.sysconf("SC_CLK_TCK")
LOG_BODY = '{"action":"log","log":{"name":"bench","data":"a log line from the benchmark"}}'
LOGGER_BODY = '{"name":"bench","data":"a log line from the benchmark"}'


def say(*parts: object) -> None:
    print("[bench]", *parts, flush=True)


# --- processes ----------------------------------------------------------------------------


@dataclass
class Proc:
    """A server the benchmark started; stopped (SIGTERM, then SIGKILL) at the end."""

    name: str
    popen: subprocess.Popen
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def cpu(self) -> float:
        """CPU-seconds (user + system) used so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def start(name: str, argv: list[str], env: dict[str, str], work: Path, ready: str | None) -> Proc:
    log = work / f"{name}.log"
    # The platform's own log level (RUST_LOG unset: info, one access line per request), as a
    # user runs it; RUST_LOG passes through when set.
    full = {**os.environ, "BIND_ADDRESS": "127.0.0.1", **env}
    popen = subprocess.Popen(argv, env=full, stdout=log.open("w"), stderr=subprocess.STDOUT)
    proc = Proc(name, popen, log)
    if ready:
        wait_ready(proc, ready)
    return proc


def wait_ready(proc: Proc, url: str, within: float = 60) -> None:
    """Poll `url` until it answers 2xx (a benchmark script may poll; tests never do)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise SystemExit(f"{proc.name} exited: {proc.log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if 200 <= r.status < 300:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{proc.name} not ready at {url} within {within}s: {proc.log.read_text()[-2000:]}")


def post(url: str, body: str, token: str | None = None) -> dict:
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=body.encode(), headers=headers, method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"{}")


# --- load ----------------------------------------------------------------------------------


@dataclass
class Load:
    """One oha run: rate and latency percentiles (ms), status counts."""

    rps: float
    p50: float
    p99: float
    p999: float
    ok: int
    other: int
    cpu_per_1k: float | None = None
    statuses: dict = field(default_factory=dict)


def oha(url: str, body: str, conns: int, secs: int = SECS, rate: float | None = None) -> subprocess.Popen:
    argv = [OHA, "--no-tui", "--output-format", "json", "-z", f"{secs}s", "-c", str(conns),
            "-m", "POST", "-H", "content-type: application/json", "-d", body]
    if rate:
        argv += ["-q", f"{rate:.1f}", "--latency-correction"]
    return subprocess.Popen(argv + [url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(run: subprocess.Popen) -> Load:
    out, err = run.communicate()
    if run.returncode != 0:
        raise SystemExit(f"oha failed: {err[-2000:]}")
    data = json.loads(out)
    pct = data.get("latencyPercentiles", {})
    statuses = {int(k): v for k, v in data.get("statusCodeDistribution", {}).items()}
    ok = sum(v for k, v in statuses.items() if 200 <= k < 300)
    # Requests still in flight when a timed run ends are "aborted due to deadline": not errors.
    errors = sum(v for k, v in data.get("errorDistribution", {}).items() if "deadline" not in k)
    ms = lambda key: 1000 * float(pct.get(key) or "nan")  # noqa: E731
    # Answered-2xx per second of the run: failures do not count as throughput.
    return Load(
        rps=ok / float(data["summary"]["total"]),
        p50=ms("p50"), p99=ms("p99"), p999=ms("p99.9"),
        ok=ok, other=sum(statuses.values()) - ok + errors, statuses=statuses,
    )


def load(url: str, body: str, conns: int, procs: list[Proc] = (), **kw) -> Load:
    """Run oha and, for `procs`, the CPU-seconds they spent per 1,000 answered requests."""
    before = sum(p.cpu() for p in procs)
    result = finish(oha(url, body, conns, **kw))
    if procs and result.ok:
        result.cpu_per_1k = (sum(p.cpu() for p in procs) - before) * 1000 / result.ok
    return result


def ceiling_store(batch: int, env: dict[str, str] | None = None) -> float:
    out = subprocess.run([CEILING, "store", str(SECS), str(batch)], capture_output=True, text=True,
                         env={**os.environ, **(env or {})}, check=True).stdout
    return float(re.search(r"rows_per_sec (\S+)", out).group(1))


def ceiling_bcrypt(threads: int) -> float:
    out = subprocess.run([CEILING, "bcrypt", str(SECS), str(threads)], capture_output=True, text=True,
                         check=True).stdout
    return float(re.search(r"hashes_per_sec (\S+)", out).group(1))


def machine_busy() -> tuple[float, float]:
    """The machine's (busy, total) CPU-seconds so far, all cores, from /proc/stat."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    return (sum(ticks) - idle) / CLK, sum(ticks) / CLK


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def abba(a, b, rounds: int = 2) -> tuple[list, list]:
    """Run `a` and `b` as A B B A (twice by default): each one's results, in order."""
    ra, rb = [], []
    for _ in range(rounds // 2):
        ra.append(a()); rb.append(b()); rb.append(b()); ra.append(a())
    return ra, rb


# --- scenarios -----------------------------------------------------------------------------


def troupe_up(work: Path, port_base: int, extra: dict[str, str] | None = None,
              binary: str = TROUPE) -> tuple[Proc, dict[str, int]]:
    ports = {"BROKER_PORT": port_base, "FRONTEND_PORT": port_base + 1, "AUTH_PORT": port_base + 2,
             "LOGGER_PORT": port_base + 3, "MAILER_PORT": port_base + 4, "LISTENER_PORT": port_base + 5,
             "LOGGER_GRPC_PORT": port_base + 6, "LOGGER_RPC_PORT": port_base + 7,
             "CATCHER_SMTP_PORT": port_base + 8, "CATCHER_HTTP_PORT": port_base + 9}
    env = {k: str(v) for k, v in ports.items()}
    env.update({"TROUPE_DATA_DIR": str(work / f"data-{port_base}"), **(extra or {})})
    proc = start(f"troupe-up-{port_base}", [binary, "up"], env, work, f"http://127.0.0.1:{ports['BROKER_PORT']}/readyz")
    return proc, ports


def scenario_embedded(work: Path) -> dict:
    ceiling_port = BASE + 90
    http = start("ceiling", [CEILING, "http", str(ceiling_port)], {}, work, None)
    troupe, ports = troupe_up(work, BASE)
    broker = f"http://127.0.0.1:{ports['BROKER_PORT']}/handle"
    before_proc, before_url = None, None
    if BEFORE:
        before_proc, before_ports = troupe_up(work, BASE + 60, binary=BEFORE)
        before_url = f"http://127.0.0.1:{before_ports['BROKER_PORT']}/handle"
    logger = f"http://127.0.0.1:{ports['LOGGER_PORT']}/log"
    ceiling = f"http://127.0.0.1:{ceiling_port}/handle"
    finish(oha(ceiling, LOG_BODY, 32, secs=2))  # warm both up
    finish(oha(broker, LOG_BODY, 32, secs=2))
    before = {"rss": troupe.rss_mib(), "fds": troupe.fds()}
    res: dict = {"closed": {}, "open": {}, "before": before}
    for conns in (32, 256):
        say(f"embedded: closed loop, {conns} connections")
        rows: dict[str, list] = {"ceiling": [], "broker": [], "logger": [], "store": [], "before": []}
        for _ in range(2):
            if before_url:
                rows["before"].append(load(before_url, LOG_BODY, conns, [before_proc]))
            rows["ceiling"].append(load(ceiling, LOG_BODY, conns))
            rows["broker"].append(load(broker, LOG_BODY, conns, [troupe]))
            rows["store"].append(ceiling_store(min(conns, 500)))
            rows["logger"].append(load(logger, LOGGER_BODY, conns, [troupe]))
            rows["logger"].append(load(logger, LOGGER_BODY, conns, [troupe]))
            rows["store"].append(ceiling_store(min(conns, 500)))
            rows["broker"].append(load(broker, LOG_BODY, conns, [troupe]))
            rows["ceiling"].append(load(ceiling, LOG_BODY, conns))
            if before_url:
                rows["before"].append(load(before_url, LOG_BODY, conns, [before_proc]))
        res["closed"][conns] = rows
    if before_proc:
        before_proc.stop()
    peak = median([r.rps for r in res["closed"][32]["broker"]])
    for share in (0.5, 0.8):
        say(f"embedded: open loop at {share:.0%} of {peak:.0f} req/s")
        runs = [load(broker, LOG_BODY, 64, rate=peak * share, secs=SECS) for _ in range(2)]
        res["open"][share] = {"rate": peak * share, "runs": runs}
    res["after"] = {"rss": troupe.rss_mib(), "fds": troupe.fds()}
    say(f"embedded: {IDLE} s idle")
    time.sleep(IDLE)
    res["idle"] = {"rss": troupe.rss_mib(), "fds": troupe.fds()}
    for p in (troupe, http):
        p.stop()
    return res


def log_in(broker: str) -> None:
    """The seeded admin (admin@example.com / verysecret, as on the Go platform) logs in."""
    body = json.dumps({"action": "auth", "auth": {"email": "admin@example.com", "password": "verysecret"}})
    if post(broker, body).get("error"):
        raise SystemExit("the seeded admin cannot log in")


def scenario_mixed(work: Path) -> dict:
    threads = max(1, (os.cpu_count() or 2) - 1)
    # One user logging in at the bcrypt ceiling is what the login rate limits refuse (429,
    # no hash): off here, so that the logins reach the hashing pool this scenario measures.
    limits_off = {"LOGIN_RATE_PER_EMAIL": "off", "LOGIN_RATE_PER_CLIENT": "off"}
    troupe, ports = troupe_up(work, BASE + 20, limits_off)
    broker = f"http://127.0.0.1:{ports['BROKER_PORT']}/handle"
    log_in(broker)
    finish(oha(broker, LOG_BODY, 32, secs=2))
    peak = finish(oha(broker, LOG_BODY, 32)).rps
    log_rate = peak * 0.5
    event = '{"action":"event","event":{"name":"bench","data":"an event from the benchmark"}}'
    mail = ('{"action":"mail","mail":{"from":"bench@example.com","to":"you@example.com",'
            '"subject":"bench","message":"a mail from the benchmark"}}')
    login = '{"action":"auth","auth":{"email":"admin@example.com","password":"verysecret"}}'
    res: dict = {"peak": peak, "log_rate": log_rate, "alone": [], "mixed": [], "bcrypt": [], "cpu": []}

    def alone():
        return load(broker, LOG_BODY, 64, rate=log_rate)

    def mixed():
        hashes = res["bcrypt"][-1]
        (busy, total), troupe_cpu = machine_busy(), troupe.cpu()
        runs = {
            "log": oha(broker, LOG_BODY, 64, rate=log_rate),
            "event": oha(broker, event, 16, rate=log_rate * 20 / 70),
            "mail": oha(broker, mail, 8, rate=log_rate * 5 / 70),
            "auth": oha(broker, login, 8, rate=hashes),
        }
        answered = {k: finish(v) for k, v in runs.items()}
        (busy_after, total_after) = machine_busy()
        # Cores busy during the round (its wall time from the ticks of every core): the whole
        # machine (troupe, oha, anything else) and troupe.
        wall = (total_after - total) / (os.cpu_count() or 1)
        res["cpu"].append({"machine": (busy_after - busy) / wall, "troupe": (troupe.cpu() - troupe_cpu) / wall})
        return answered

    say(f"mixed: log at {log_rate:.0f} req/s alone and beside events, mail and logins")
    for _ in range(2):
        res["bcrypt"].append(ceiling_bcrypt(threads))
        res["alone"].append(alone())
        res["mixed"].append(mixed())
        res["mixed"].append(mixed())
        res["alone"].append(alone())
        res["bcrypt"].append(ceiling_bcrypt(threads))
    res["threads"] = threads
    troupe.stop()
    return res


def scenario_telemetry(work: Path) -> dict:
    off = dict(kv.split("=", 1) for kv in
               os.environ.get("BENCH_TELEMETRY_OFF", "OTEL_SDK_DISABLED=true TROUPE_METRICS=off").split())
    on_proc, on_ports = troupe_up(work, BASE + 100)
    off_proc, off_ports = troupe_up(work, BASE + 120, off)
    on_url = f"http://127.0.0.1:{on_ports['BROKER_PORT']}/handle"
    off_url = f"http://127.0.0.1:{off_ports['BROKER_PORT']}/handle"
    finish(oha(on_url, LOG_BODY, 32, secs=2))
    finish(oha(off_url, LOG_BODY, 32, secs=2))
    res: dict = {"off_env": " ".join(f"{k}={v}" for k, v in off.items()), "closed": {}}
    for conns in (32, 256):
        say(f"telemetry: broker log with tracing and metrics on vs off, {conns} connections")
        on, off_rows = abba(lambda: load(on_url, LOG_BODY, conns, [on_proc]),
                            lambda: load(off_url, LOG_BODY, conns, [off_proc]), rounds=4)
        res["closed"][conns] = {"on": on, "off": off_rows}
    for p in (on_proc, off_proc):
        p.stop()
    return res


def scenario_split_mongo(work: Path) -> dict:
    mongo = os.environ["MONGO_URL"]
    db = f"bench{os.getpid()}"
    lport, bport = BASE + 43, BASE + 40
    logger = start("logger", [TROUPE, "serve", "logger"],
                   {"LOGGER_PORT": str(lport), "LOGGER_GRPC_PORT": str(BASE + 44), "LOGGER_RPC_PORT": str(BASE + 45),
                    "MONGO_URL": mongo, "MONGO_DATABASE": db, "TROUPE_DATA_DIR": str(work / "split")},
                   work, f"http://127.0.0.1:{lport}/readyz")
    broker = start("broker", [TROUPE, "serve", "broker"],
                   {"BROKER_PORT": str(bport), "LOGGER_URL": f"http://127.0.0.1:{lport}",
                    "LOGGER_GRPC_URL": f"http://127.0.0.1:{BASE + 44}", "AUTH_URL": "http://127.0.0.1:9",
                    "MAILER_URL": "http://127.0.0.1:9"},
                   work, None)
    wait_ready(broker, f"http://127.0.0.1:{bport}/ping")
    url = f"http://127.0.0.1:{bport}/handle"
    finish(oha(url, LOG_BODY, 32, secs=2))
    say("split-mongo: broker log action against the store ceiling on the same server")
    store, rows = abba(lambda: ceiling_store(32, {"MONGO_URL": mongo}),
                       lambda: load(url, LOG_BODY, 32, [logger, broker]))
    for p in (broker, logger):
        p.stop()
    return {"store": store, "broker": rows}


# --- report --------------------------------------------------------------------------------


def fmt_ms(x: float) -> str:
    return f"{x:.2f}" if x < 10 else f"{x:.0f}"


def report(results: dict, started: str, charts: dict[str, str]) -> str:
    run_line = (f"Run {started}, {os.cpu_count()} cores (shared), release build, rounds of {SECS} s; "
                "each figure is the median of its rounds, taken interleaved A B B A with its ceiling.\n")
    lines = []
    if "embedded" in results:
        e = results["embedded"]
        lines += ["### `troupe up`, embedded SQLite store (`synchronous=FULL`)", "", run_line,
                  "| connections | broker `log` / bare actix | broker `log` / store ceiling | logger `POST /log` / store ceiling "
                  "| broker `log` req/s | logger req/s | bare actix req/s | store rows/s | CPU-s per 1k (broker `log`) | non-2xx |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for conns, rows in e["closed"].items():
            b, l, c = (median([r.rps for r in rows[k]]) for k in ("broker", "logger", "ceiling"))
            s = median(rows["store"])
            cpu = median([r.cpu_per_1k for r in rows["broker"] if r.cpu_per_1k is not None])
            bad = sum(r.other for k in ("broker", "logger") for r in rows[k])
            lines.append(f"| {conns} | **{b / c:.2f}** | **{b / s:.2f}** | {l / s:.2f} | {b:,.0f} | {l:,.0f} | {c:,.0f} "
                         f"| {s:,.0f} | {cpu:.3f} | {bad} |")
        if any(rows["before"] for rows in e["closed"].values()):
            lines += ["", "Against the previous build in the same run (`TROUPE_BEFORE_BIN`), broker `log`:", "",
                      "| connections | this build / previous | this build req/s | previous req/s | previous / bare actix "
                      "| CPU-s per 1k, previous |", "|---|---|---|---|---|---|"]
            for conns, rows in e["closed"].items():
                b, p, c = (median([r.rps for r in rows[k]]) for k in ("broker", "before", "ceiling"))
                cpu = median([r.cpu_per_1k for r in rows["before"] if r.cpu_per_1k is not None])
                lines.append(f"| {conns} | **{b / p:.2f}** | {b:,.0f} | {p:,.0f} | {p / c:.2f} | {cpu:.3f} |")
        lines += ["", "| open loop (broker `log`, 64 connections) | rate | p50 ms | p99 ms | p99.9 ms | non-2xx |",
                  "|---|---|---|---|---|---|"]
        for share, o in e["open"].items():
            runs = o["runs"]
            lines.append(f"| {share:.0%} of the maximum | {o['rate']:,.0f}/s | {fmt_ms(median([r.p50 for r in runs]))} "
                         f"| **{fmt_ms(median([r.p99 for r in runs]))}** | {fmt_ms(median([r.p999 for r in runs]))} "
                         f"| {sum(r.other for r in runs)} |")
        lines += ["", f"RSS {e['before']['rss']:.1f} MiB before the load, {e['after']['rss']:.1f} after, "
                  f"{e['idle']['rss']:.1f} after {IDLE} s idle; open FDs {e['before']['fds']} / {e['after']['fds']} / "
                  f"{e['idle']['fds']}.", "", f"![embedded]({charts['embedded']})", ""]
    if "mixed" in results:
        m = results["mixed"]
        ceiling = median(m["bcrypt"])
        alone = median([r.p99 for r in m["alone"]])
        routes = ("log", "event", "mail", "auth")
        p99 = {k: median([r[k].p99 for r in m["mixed"]]) for k in routes}
        rate = {k: median([r[k].rps for r in m["mixed"]]) for k in routes}
        bad = {k: sum(r[k].other for r in m["mixed"]) for k in routes}
        lines += ["### Mixed load on `troupe up` (open loop)", "", run_line,
                  f"`log` at {m['log_rate']:,.0f}/s (50 % of its {m['peak']:,.0f}/s maximum), `event` at 20/70 and `mail` "
                  f"at 5/70 of that, logins offered at the bcrypt ceiling of the {m['threads']}-thread hashing pool "
                  f"({ceiling:.1f} hashes/s, measured in the same run); login rate limits off "
                  "(`LOGIN_RATE_PER_EMAIL`, `LOGIN_RATE_PER_CLIENT`), so every login reaches the pool.", "",
                  f"- `log` p99 beside the others / alone: **{p99['log'] / alone:.2f}** ({fmt_ms(p99['log'])} ms vs "
                  f"{fmt_ms(alone)} ms)",
                  f"- logins answered / bcrypt ceiling: **{rate['auth'] / ceiling:.2f}** ({rate['auth']:.1f}/s)",
                  *([f"- CPU during the mixed rounds: the machine **{median([c['machine'] for c in m['cpu']]):.2f}** of "
                     f"{os.cpu_count()} cores busy (troupe "
                     f"{median([c['troupe'] for c in m['cpu']]):.2f} of them, the rest the four load generators and "
                     "anything else on the machine)"] if m.get("cpu") else []), "",
                  "| route | answered 2xx/s | p99 ms | non-2xx |", "|---|---|---|---|"]
        for k in routes:
            lines.append(f"| `{k}` | {rate[k]:,.1f} | {fmt_ms(p99[k])} | {bad[k]} |")
        lines += ["", f"![mixed]({charts['mixed']})", ""]
    if "telemetry" in results:
        t = results["telemetry"]
        lines += ["### Tracing and metrics on against off (`troupe up`, broker `log`)", "", run_line,
                  f"Off = `{t['off_env']}`; on = the defaults (a span per request and per actor message, the "
                  "recent-trace store, the metric families); no OTLP endpoint set in either.", "",
                  "| connections | on / off | on req/s | off req/s | CPU-s per 1k on | CPU-s per 1k off | non-2xx |",
                  "|---|---|---|---|---|---|---|"]
        for conns, rows in t["closed"].items():
            on, off = (median([r.rps for r in rows[k]]) for k in ("on", "off"))
            cpu = {k: median([r.cpu_per_1k for r in rows[k] if r.cpu_per_1k is not None]) for k in ("on", "off")}
            bad = sum(r.other for k in ("on", "off") for r in rows[k])
            lines.append(f"| {conns} | **{on / off:.2f}** | {on:,.0f} | {off:,.0f} | {cpu['on']:.3f} | {cpu['off']:.3f} "
                         f"| {bad} |")
        lines.append("")
    if "split-mongo" in results:
        sm = results["split-mongo"]
        b, s = median([r.rps for r in sm["broker"]]), median(sm["store"])
        lines += ["### Split mode on the MongoDB-wire server (32 connections)", "", run_line,
                  f"- broker `log` / store ceiling on the same server: **{b / s:.2f}** ({b:,.0f} req/s vs {s:,.0f} rows/s)",
                  f"- broker `log` / the Go platform's 1,250–1,410 req/s (measured earlier on this machine): "
                  f"**{b / 1330:.1f}×**",
                  f"- CPU-s per 1k (broker + logger): {median([r.cpu_per_1k for r in sm['broker'] if r.cpu_per_1k]):.3f}, "
                  f"non-2xx {sum(r.other for r in sm['broker'])}", ""]
    return "\n".join(lines)


def charts(results: dict, out: Path) -> dict[str, str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    names = {}
    if "embedded" in results:
        e = results["embedded"]
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        kinds = ("ceiling", "broker", "logger")
        labels = ("bare actix", "broker log", "logger /log")
        for i, conns in enumerate(e["closed"]):
            rows = e["closed"][conns]
            vals = [median([r.rps for r in rows[k]]) for k in kinds] + [median(rows["store"])]
            axes[0].bar([x + i * 0.4 for x in range(4)], vals, width=0.4, label=f"{conns} connections")
        axes[0].set_xticks([x + 0.2 for x in range(4)], list(labels) + ["store rows/s"], fontsize=8)
        axes[0].set_title("closed loop: requests/s (median)")
        axes[0].legend(fontsize=8)
        shares = list(e["open"])
        for key, label in (("p50", "p50"), ("p99", "p99"), ("p999", "p99.9")):
            axes[1].plot([f"{s:.0%}" for s in shares],
                         [median([getattr(r, key) for r in e["open"][s]["runs"]]) for s in shares], marker="o", label=label)
        axes[1].set_title("open loop latency, ms (broker log)")
        axes[1].set_xlabel("share of the maximum rate")
        axes[1].legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "embedded.png", dpi=90)
        names["embedded"] = "bench/embedded.png"
    if "mixed" in results:
        m = results["mixed"]
        routes = ("log", "event", "mail", "auth")
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.bar(["log alone"] + [f"{k} (mixed)" for k in routes],
               [median([r.p99 for r in m["alone"]])] + [median([r[k].p99 for r in m["mixed"]]) for k in routes])
        ax.set_yscale("log")
        ax.set_title("p99 latency per route, ms (log scale)")
        fig.tight_layout()
        fig.savefig(out / "mixed.png", dpi=90)
        names["mixed"] = "bench/mixed.png"
    return names


def sections(text: str) -> dict[str, str]:
    """The `### ` sections of a report, by heading (up to a " — " remark)."""
    parts = re.split(r"(?m)^(?=### )", text)
    return {part.splitlines()[0].split(" — ")[0]: part.rstrip() + "\n" for part in parts if part.startswith("### ")}


def write_doc(text: str) -> None:
    """Replace the sections this run measured; keep the others (each says when it was run)."""
    doc = ROOT / "docs/benchmarks.md"
    body = doc.read_text()
    start, end = "<!-- bench:log:start -->", "<!-- bench:log:end -->"
    old = re.search(re.escape(start) + "(.*?)" + re.escape(end), body, flags=re.S)
    merged = sections(old.group(1)) if old else {}
    merged.update(sections(text))
    text = "\n".join(merged.values())
    block = f"{start}\n{text}{end}"
    if start in body:
        body = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: block, body, flags=re.S)
    else:
        body += f"\n## Log ingestion against its ceilings (`make bench-log`)\n\n{block}\n"
    doc.write_text(body)


def main() -> None:
    default = "embedded mixed telemetry" + (" split-mongo" if os.environ.get("MONGO_URL") else "")
    wanted = os.environ.get("BENCH_SCENARIOS", default).split()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    results = {}
    with tempfile.TemporaryDirectory(prefix="troupe-bench-") as tmp:
        work = Path(tmp)
        for name in wanted:
            fn = {"embedded": scenario_embedded, "mixed": scenario_mixed, "telemetry": scenario_telemetry,
                  "split-mongo": scenario_split_mongo}[name]
            results[name] = fn(work / name if (work / name).mkdir() is None else work)
    text = report(results, started, charts(results, ROOT / "docs/bench"))
    print(text)
    write_doc(text)
    json_out = ROOT / "docs/bench/latest.json"
    json_out.write_text(json.dumps(results, default=lambda o: o.__dict__, indent=1))


if __name__ == "__main__":
    sys.exit(main())
