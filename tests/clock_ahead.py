"""Run a command, the test suite say, with the clock moved: Python, PostgreSQL
and Redis all read the moved clock, and it keeps ticking.

    python -m tests.clock_ahead [--ahead DAYS | --at "YYYY-MM-DD HH:MM"] -- COMMAND [ARGS...]

`--ahead 365` (the default) moves the clock a year on from now; `--at` sets it
to a moment in the clinic's time zone (CLINIC_TIME_ZONE, Europe/London): a
Saturday, 21:30, the night the clocks change. Debian's libfaketime (the
`faketime` package) is preloaded into this runner, which then starts its own
PostgreSQL (the pgserver wheel, data under var/clock-ahead/, never the server
`make run` or `make test` may have running) and, unless REDIS_URL is given, its
own Redis; both inherit the moved clock, as does COMMAND and every process it
starts (Celery workers, gunicorn). One offset in seconds is used throughout,
so all of them agree to the second. Only the wall clock moves: the monotonic
clock, which measures timeouts, stays true.

Before COMMAND runs, the clock that Python and PostgreSQL read is printed,
and the run stops if either is not where it was asked to be. The exported
CLINIC_CLOCK_AT (seconds since the epoch when the runner started) lets the
tests' conftest check again inside the session.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

BASE_DIR = Path(__file__).resolve().parent.parent
# How far a clock may be from the one asked for: process start-up and the
# server's start take seconds, not minutes.
TOLERANCE = timedelta(minutes=5)
LIBFAKETIME = "libfaketime"
SITE = Path(__file__).resolve().parent / "clock_ahead_site"


def target_of(args: argparse.Namespace) -> float:
    """Seconds since the epoch the moved clock is to read now."""
    if args.at:
        zone = ZoneInfo(os.environ.get("CLINIC_TIME_ZONE") or "Europe/London")
        return datetime.fromisoformat(args.at).replace(tzinfo=zone).timestamp()
    return time.time() + args.ahead * 86400


def preloaded() -> bool:
    return LIBFAKETIME in os.environ.get("LD_PRELOAD", "")


def reexec_under_faketime(offset: int, argv: list[str]) -> None:
    faketime = shutil.which("faketime")
    if faketime is None:
        sys.exit("faketime is missing: apt-get install faketime (make system-deps-test)")
    env = dict(os.environ)
    # Only the wall clock moves. With the monotonic clock moved too, a wait
    # with a timeout (threading's locks and events) would wait the offset
    # itself, a year. libfaketime then mistakes the absolute monotonic
    # deadlines of Python's time.sleep: the sitecustomize beside this file
    # sleeps another way in every Python process started from here.
    env["FAKETIME_DONT_FAKE_MONOTONIC"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(SITE), str(BASE_DIR), env.get("PYTHONPATH", "")])
    )
    # faketime's own `-f` parses the spec; "+Ns" is an offset in seconds.
    os.execve(  # noqa: S606 - the same runner again, under faketime
        faketime,
        [faketime, "-f", f"{offset:+d}s", sys.executable, "-m", "tests.clock_ahead", *argv],
        env,
    )


def database_clock(database_url: str) -> datetime:
    import psycopg

    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT now()").fetchone()
    assert row is not None
    return row[0]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    when = parser.add_mutually_exclusive_group()
    when.add_argument("--ahead", type=float, default=365.0, help="days to move the clock on")
    when.add_argument("--at", help='a local moment, "YYYY-MM-DD HH:MM" in the clinic\'s zone')
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")

    if not preloaded():
        target = target_of(args)
        os.environ["CLINIC_CLOCK_AT"] = str(int(target))
        reexec_under_faketime(round(target - time.time()), argv)

    # Under libfaketime from here on: time.time() reads the moved clock.
    expected = datetime.fromtimestamp(float(os.environ["CLINIC_CLOCK_AT"])).astimezone()
    import clinic.embedded as embedded

    # A PostgreSQL of the moved clock's own: never the one another runner has running.
    embedded.VAR = BASE_DIR / "var" / "clock-ahead"
    embedded.VAR.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    with contextlib.ExitStack() as stack:
        env["DATABASE_URL"], env["DATABASE_OWNER_URL"] = stack.enter_context(
            embedded.embedded_postgres()
        )
        if not env.get("REDIS_URL"):
            env["REDIS_URL"] = stack.enter_context(embedded.embedded_redis("clock-ahead"))
        env.setdefault("SECRET_KEY", embedded.local_secret_key())
        clock_check(expected, env["DATABASE_URL"])
        child = subprocess.Popen(command, env=env)
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, lambda *_: child.terminate())
        try:
            return child.wait()
        finally:
            signal.signal(signal.SIGINT, previous)


def clock_check(expected: datetime, database_url: str) -> None:
    python_now = datetime.now().astimezone()
    database_now = database_clock(database_url)
    zone = ZoneInfo(os.environ.get("CLINIC_TIME_ZONE") or "Europe/London")
    print(
        f"[clock] asked for {expected.astimezone(zone):%Y-%m-%d %H:%M:%S %Z}; "
        f"Python reads {python_now.astimezone(zone):%Y-%m-%d %H:%M:%S %Z}, "
        f"PostgreSQL reads {database_now.astimezone(zone):%Y-%m-%d %H:%M:%S %Z}",
        file=sys.stderr,
        flush=True,
    )
    for who, now in (("Python", python_now), ("PostgreSQL", database_now)):
        if abs(now - expected) > TOLERANCE:
            sys.exit(f"[clock] {who}'s clock is not the one asked for: stopping")


if __name__ == "__main__":
    sys.exit(main())
