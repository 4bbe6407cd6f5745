#!/usr/bin/env python3
"""`make bench-logins`: what wrong logins cost the server once they are over the limit.

Starts ``troupe up`` (embedded defaults, ``LOGIN_RATE_PER_EMAIL`` at its default ``10/1m``,
the per-client limit off so that only the per-e-mail one acts), sends ``BENCH_LOGINS`` (200)
wrong logins for one e-mail in a row through the broker, and reads the process's CPU time
(``/proc/<pid>/stat``: user + system, every thread, bcrypt's blocking threads included)
before the first attempt, after the burst and after the last. Prints the answers (how many
401, how many 429, the first ``Retry-After``) and the CPU time per attempt checked (bcrypt)
and per attempt refused (429); the ratio is the figure, quoted in docs/benchmarks.md.

``TROUPE_BIN`` picks the binary (default ``target/debug/troupe``; bcrypt is built with
``opt-level = 3`` in the dev profile too, so its cost is the release one).
"""

import http.client
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import chaos  # noqa: E402  (its process helpers: troupe_up, Platform)

LOGINS = int(os.environ.get("BENCH_LOGINS", "200"))
BURST = 10  # LOGIN_RATE_PER_EMAIL's default burst


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid`, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrong_login(broker: str) -> tuple[int, str | None]:
    """One wrong login through the broker: (status, Retry-After)."""
    host, port = broker.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    body = {"action": "auth", "auth": {"email": chaos.ADMIN["email"], "password": "not the password"}}
    try:
        conn.request("POST", "/handle", body=json.dumps(body), headers={"Content-Type": "application/json"})
        res = conn.getresponse()
        res.read()
        return res.status, res.getheader("Retry-After")
    finally:
        conn.close()


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="troupe-bench-logins-") as work:
        extra = {"LOGIN_RATE_PER_EMAIL": "10/1m", "LOGIN_RATE_PER_CLIENT": "off"}
        platform = chaos.troupe_up(Path(work), extra=extra)
        pid = platform.procs["up"].popen.pid
        try:
            statuses, retry_after = [], None
            start = cpu_seconds(pid)
            for n in range(LOGINS):
                status, retry = wrong_login(platform.broker)
                statuses.append(status)
                if status == 429 and retry_after is None:
                    retry_after = retry
                if n + 1 == BURST:
                    after_burst = cpu_seconds(pid)
            end = cpu_seconds(pid)
        finally:
            platform.stop()
    checked, refused = statuses.count(401), statuses.count(429)
    first_429 = statuses.index(429) + 1 if refused else None
    burst_cpu, rest_cpu = after_burst - start, end - after_burst
    per_checked = burst_cpu / BURST * 1000
    per_refused = rest_cpu / max(LOGINS - BURST, 1) * 1000
    print(f"[bench-logins] {LOGINS} wrong logins for one e-mail: {checked} x 401, {refused} x 429 "
          f"(first 429 at attempt {first_429}, Retry-After {retry_after} s), other {LOGINS - checked - refused}")
    print(f"[bench-logins] server CPU: first {BURST} attempts {burst_cpu:.2f} s ({per_checked:.1f} ms each, "
          f"bcrypt), next {LOGINS - BURST} {rest_cpu:.2f} s ({per_refused:.2f} ms each); "
          f"a refused attempt costs {per_refused / per_checked:.3f} of a checked one")
    if refused == 0 or first_429 != BURST + 1:
        raise SystemExit("[bench-logins] the limit did not act after the burst")


if __name__ == "__main__":
    main()
