"""Helpers for the tests of concurrent requests (no tests here): posts sent at
the same instant from threads, each with its own database connection, and the
hidden fields a page hands to the browser."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any

from django.db import connections
from django.test import Client


@dataclass(frozen=True)
class Answer:
    """What one request got back: status, body and redirect target ("" if none)."""

    status: int
    body: str
    location: str


def post_at_once(clients: list[Client], url: str, payloads: list[dict[str, Any]]) -> list[Answer]:
    """Post payloads[i] from clients[i], all released at the same instant by a
    barrier, each thread on its own connection. A crash is an answer with
    status -1 (and the error as its body), never a hang."""
    barrier = threading.Barrier(len(clients))
    answers: list[Answer] = [Answer(0, "", "")] * len(clients)

    def attempt(index: int) -> None:
        try:
            barrier.wait(timeout=60)
            response = clients[index].post(url, payloads[index])
            answers[index] = Answer(
                response.status_code, response.content.decode(), response.get("Location", "")
            )
        except Exception as error:  # a crash must show up as a failure, not a hang
            answers[index] = Answer(-1, repr(error), "")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return answers


def hidden_value(page: str, name: str) -> str:
    """The value of the hidden input `name` the page gives the browser."""
    found = re.search(rf'<input type="hidden" name="{re.escape(name)}" value="([^"]*)"', page)
    assert found is not None, f"no hidden {name} on the page"
    return found.group(1)
