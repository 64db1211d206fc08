"""The load test: thirty members of staff at once against the clinic as
production serves it, on 127.0.0.1, for a bounded time.

    python -m tests.load.run [--users 30] [--duration 60] [--workers N] [--threads N]

`make loadtest` runs it on the embedded services (DATABASE_URL and REDIS_URL
set). In order, each step's output in --out (default var/loadtest/):
1. `manage.py migrate`, `collectstatic` (hashed names, as production serves
   them through whitenoise) and `seed_demo --force`;
2. tests/load/prepare.py: a clinic larger than the demo (5,000 patients,
   about 360 bookings a week for six practitioners, once) and the staff
   accounts with new passwords and authenticator keys (accounts.json);
3. gunicorn with clinic/gunicorn_conf.py (workers and threads as given, or
   the file's), DEBUG off, HTTPS off (plain http on the loopback) and
   two-factor sign-in on; its settings are production's plus the benchmarks'
   anchor page (tests/load/settings.py), a trivial page timed 20 times before
   the load and twice a second during it, in the same run as the pages;
4. Locust, headless, `--users` simulated staff (a third per role, started 10
   a second), who all sign in, then open their pages for `--duration`
   seconds (tests/load/locustfile.py; the sign-in is bounded by five minutes);
5. stops gunicorn, deactivates the accounts, and prints per page: requests,
   failures, requests per second, median and p95 (ms), with the load average
   before and after; saves it as summary.csv and summary.md beside Locust's
   own CSV files.
Exits non-zero when any request failed (or a step did). It adds staff accounts
and patients to the database it is given: the demo's or a scratch one, never
a clinic's.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent.parent
BIN = Path(sys.executable).parent
# Pages the target applies to; the sign-in steps are reported beside them.
SIGN_IN_ROWS = ("sign-in page", "sign-in: password", "sign-in: code")
TARGET_P95_MS = 1000
ANCHOR = "/benchmark-anchor/public/"


def say(message: str) -> None:
    print(f"[loadtest] {message}", flush=True)


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as /proc/loadavg gives them."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def clinic_environment(port: int) -> dict[str, str]:
    """The clinic's settings as `make run` gives them, with the second factor
    required as in production."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "clinic.settings",
        "DEBUG": "False",
        "HTTPS": "False",
        "REQUIRE_STAFF_2FA": "True",
        "ALLOWED_HOSTS": "127.0.0.1",
        "SITE_URL": f"http://127.0.0.1:{port}",
        # Hashed names without pre-compressed copies (compressing takes half
        # a minute); whitenoise serves both the same way.
        "STATICFILES_BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage",
    }


def step(command: list[str], env: dict[str, str], log: Path) -> None:
    """Run one preparing step, its output to `log`; stop the test if it fails."""
    say(" ".join(command[1:] if command[0] == sys.executable else command))
    with log.open("ab") as out:
        done = subprocess.run(command, cwd=BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode:
        raise SystemExit(f"[loadtest] failed ({done.returncode}): see {log}")


def wait_until_up(port: int, process: subprocess.Popen[bytes], *, seconds: float = 60) -> None:
    """Until /healthz answers (any status: a worker or beat missing is not
    the web process's fault); fails when gunicorn exits or time runs out."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"[loadtest] gunicorn exited ({process.returncode})")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/healthz", headers={"Host": "127.0.0.1"})
            conn.getresponse().read()
            return
        except OSError:
            time.sleep(0.3)
    raise SystemExit("[loadtest] gunicorn did not answer within a minute")


def time_anchor(port: int) -> float:
    """One GET of the signed-out anchor page, on a new connection, in ms."""
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", ANCHOR, headers={"Host": "127.0.0.1", "Connection": "close"})
        answer = conn.getresponse()
        answer.read()
    finally:
        conn.close()
    if answer.status != 200:
        raise SystemExit(f"[loadtest] the anchor page answered {answer.status}")
    return (time.perf_counter() - started) * 1000


def anchor_row(name: str, samples: list[float], seconds: float) -> Row:
    """The anchor's samples as a row of the report."""
    ordered = sorted(samples) or [0.0]
    p95 = ordered[max(0, round(0.95 * len(ordered)) - 1)]
    return Row(name, len(samples), 0, len(samples) / seconds if seconds else 0.0,
               statistics.median(ordered), p95, ordered[-1])  # fmt: skip


@contextmanager
def anchor_sampler(port: int, samples: list[float]) -> Iterator[None]:
    """Time the anchor twice a second in a thread for the length of the block."""
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.5):
            try:
                samples.append(time_anchor(port))
            except (OSError, SystemExit):
                samples.append(float("inf"))

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=70)


@contextmanager
def gunicorn(port: int, env: dict[str, str], log: Path, extra: list[str]) -> Iterator[None]:
    """gunicorn as production starts it, stopped (TERM, then KILL) on leaving."""
    command = [str(BIN / "gunicorn"), "clinic.wsgi", "--config", "clinic/gunicorn_conf.py",
               "--bind", f"127.0.0.1:{port}", *extra]  # fmt: skip
    say(" ".join(command[1:]))
    with log.open("ab") as out:
        process = subprocess.Popen(
            command, cwd=BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        wait_until_up(port, process)
        yield
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@dataclass(frozen=True)
class Row:
    """One page's figures from Locust's statistics (times in ms)."""

    name: str
    requests: int
    failures: int
    per_second: float
    median: float
    p95: float
    most: float


def read_stats(path: Path) -> list[Row]:
    """The rows of Locust's `*_stats.csv`, the aggregated one last."""
    rows = []
    with path.open(newline="") as handle:
        for line in csv.DictReader(handle):
            rows.append(
                Row(
                    name=line["Name"],
                    requests=int(line["Request Count"]),
                    failures=int(line["Failure Count"]),
                    per_second=float(line["Requests/s"]),
                    median=float(line["50%"] if line["50%"] != "N/A" else 0),
                    p95=float(line["95%"] if line["95%"] != "N/A" else 0),
                    most=float(line["Max Response Time"]),
                )
            )
    return rows


def verdict(rows: list[Row]) -> list[str]:
    """What keeps the run from passing: any failure (fails the run), and each
    page whose p95 is over the target (reported; on a machine that is not
    otherwise idle, figures vary)."""
    problems = []
    total = next((r for r in rows if r.name == "Aggregated"), None)
    if total is None or total.requests == 0:
        problems.append("no request was made")
    elif total.failures:
        problems.append(f"{total.failures} of {total.requests} requests failed")
    return problems


def slow_pages(rows: list[Row]) -> list[str]:
    return [
        f"{r.name}: p95 {r.p95:.0f} ms"
        for r in rows
        if r.name not in (*SIGN_IN_ROWS, "Aggregated")
        and not r.name.startswith("anchor")
        and r.p95 > TARGET_P95_MS
    ]


def summary_table(rows: list[Row], *, label: str, before: str, after: str) -> str:
    """A Markdown table of the run, pages first, then sign-in, then the total."""
    order = sorted(
        rows,
        key=lambda r: (
            not r.name.startswith("anchor"), r.name == "Aggregated", r.name in SIGN_IN_ROWS, r.name,
        ),
    )  # fmt: skip
    lines = [
        f"{label}; load average before {before}, after {after}",
        "",
        "| page | requests | failures | req/s | median ms | p95 ms | max ms |",
        "|---|---|---|---|---|---|---|",
    ]
    pages = [
        r for r in rows
        if r.name not in (*SIGN_IN_ROWS, "Aggregated") and not r.name.startswith("anchor")
    ]  # fmt: skip
    for r in order:
        if r.name == "Aggregated":
            lines.append(
                f"| all pages | {sum(p.requests for p in pages)} "
                f"| {sum(p.failures for p in pages)} | {sum(p.per_second for p in pages):.1f} "
                "| | | |"
            )
        name = "all requests" if r.name == "Aggregated" else r.name
        lines.append(
            f"| {name} | {r.requests} | {r.failures} | {r.per_second:.1f} | {r.median:.0f} "
            f"| {r.p95:.0f} | {r.most:.0f} |"
        )
    return "\n".join(lines)


def write_summary(rows: list[Row], out: Path, *, label: str, before: str, after: str) -> str:
    table = summary_table(rows, label=label, before=before, after=after)
    (out / "summary.md").write_text(table + "\n")
    with (out / "summary.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["page", "requests", "failures", "req_per_s", "median_ms", "p95_ms",
                         "max_ms", "load_before", "load_after", "setting"])  # fmt: skip
        for r in rows:
            writer.writerow([r.name, r.requests, r.failures, f"{r.per_second:.2f}",
                             f"{r.median:.0f}", f"{r.p95:.0f}", f"{r.most:.0f}",
                             before, after, label])  # fmt: skip
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--users", type=int, default=30)
    parser.add_argument("--duration", type=int, default=60, help="seconds of load")
    parser.add_argument("--workers", type=int, help="gunicorn workers (default: the config's)")
    parser.add_argument("--threads", type=int, help="threads per worker (default: the config's)")
    parser.add_argument("--patients", type=int, default=5_000)
    parser.add_argument("--out", type=Path, default=BASE_DIR / "var" / "loadtest")
    parser.add_argument(
        "--skip-setup", action="store_true", help="no migrate, collectstatic or demo seed"
    )
    args = parser.parse_args(argv)
    if not os.environ.get("DATABASE_URL"):
        parser.error("DATABASE_URL is not set: run it through `make loadtest`")
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "steps.log"
    log.write_text("")
    port = free_port()
    env = clinic_environment(port)
    served = {**env, "DJANGO_SETTINGS_MODULE": "tests.load.settings"}
    python = [sys.executable]
    if not args.skip_setup:
        step([*python, "manage.py", "migrate", "--no-input", "-v", "0"], env, log)
        step([*python, "manage.py", "collectstatic", "--no-input", "-v", "0"], env, log)
        step([*python, "manage.py", "seed_demo", "--force"], env, log)
    accounts = args.out / "accounts.json"
    step([*python, "-m", "tests.load.prepare", "--out", str(accounts),
          "--staff", str(args.users), "--patients", str(args.patients)], env, log)  # fmt: skip
    extra = []
    if args.workers:
        extra += ["--workers", str(args.workers)]
    if args.threads:
        extra += ["--threads", str(args.threads)]
    label = " ".join(extra) or "clinic/gunicorn_conf.py as it is"
    prefix = args.out / "locust"
    try:
        with gunicorn(port, served, args.out / "gunicorn.log", extra):
            time_anchor(port)  # the first request of each worker loads the URLconf
            started = time.monotonic()
            idle = [time_anchor(port) for _ in range(20)]
            idle_seconds = time.monotonic() - started
            loaded: list[float] = []
            before = load_average()
            say(f"{args.users} staff for {args.duration} s ({label}); load average {before}")
            command = [
                str(BIN / "locust"), "-f", "tests/load/locustfile.py", "--headless",
                "--host", f"http://127.0.0.1:{port}", "--users", str(args.users),
                "--spawn-rate", "10", "--run-time", f"{args.duration + 300}s",
                "--stop-timeout", "10",
                "--csv", str(prefix), "--only-summary", "--loglevel", "WARNING",
            ]  # fmt: skip
            locust_env = {**os.environ, "LOADTEST_ACCOUNTS": str(accounts),
                          "LOADTEST_USERS": str(args.users),
                          "LOADTEST_DURATION": str(args.duration)}  # fmt: skip
            with (args.out / "locust.log").open("wb") as out, anchor_sampler(port, loaded):
                started = time.monotonic()
                ran = subprocess.run(
                    command, cwd=BASE_DIR, env=locust_env, stdout=out, stderr=subprocess.STDOUT
                )
                loaded_seconds = time.monotonic() - started
            after = load_average()
    finally:
        step([*python, "-m", "tests.load.prepare", "--close"], env, log)
    rows = read_stats(Path(f"{prefix}_stats.csv"))
    # The sampler runs through the sign-in as well as the pages.
    rows += [anchor_row("anchor, before the load", idle, idle_seconds),
             anchor_row("anchor, during sign-in and pages", loaded, loaded_seconds)]  # fmt: skip
    print(write_summary(rows, args.out, label=label, before=before, after=after))
    for page in slow_pages(rows):
        say(f"over the {TARGET_P95_MS} ms target: {page}")
    problems = verdict(rows)
    if ran.returncode and not problems:
        problems.append(f"Locust exited {ran.returncode}: see {args.out / 'locust.log'}")
    for problem in problems:
        say(f"FAILED: {problem} (failures: {prefix}_failures.csv)")
    say(f"Saved in {args.out}: summary.csv, summary.md, Locust's CSV files and logs")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
