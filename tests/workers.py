"""The test run's parallel processes (pytest-xdist) and what each keeps apart."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

REDIS_DATABASES = 16  # redis-server's default


def redis_url_of_worker(url: str, worker: str) -> str:
    """The Redis URL of pytest-xdist's `worker` ("gw0", "gw1"...): the first
    keeps the URL's database, the next ones take the following numbers (back
    to 0 after 15); `redis://host:port/N`, or `?db=N` on a Unix socket."""
    index = int(worker.removeprefix("gw") or 0)
    if index == 0:
        return url
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    if parts.scheme == "unix" or "db" in query:
        number = (int(query.get("db", 0)) + index) % REDIS_DATABASES
        return urlunsplit(parts._replace(query=urlencode({**query, "db": number})))
    number = (int(parts.path.strip("/") or 0) + index) % REDIS_DATABASES
    return urlunsplit(parts._replace(path=f"/{number}"))
