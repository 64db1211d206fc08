"""The shared pieces of background documents: publishing that never fails the
caller, and files replaced in one step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.files.storage import FileSystemStorage

from clinic.background import enqueue
from clinic.pdf import store_replacing


class _Task:
    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.sent: list[tuple[Any, ...]] = []

    def apply_async(self, args: tuple[Any, ...], retry: bool) -> None:
        assert retry is False  # a request never waits on publish retries
        if self.error is not None:
            raise self.error
        self.sent.append(args)


def test_enqueue_publishes_once_and_says_so() -> None:
    task = _Task()
    assert enqueue(task, 42, label="document 42") is True
    assert task.sent == [(42,)]


def test_enqueue_with_the_broker_down_logs_and_answers_false(
    caplog: pytest.LogCaptureFixture,
) -> None:
    task = _Task(ConnectionRefusedError("no broker"))
    assert enqueue(task, 7, label="document 7") is False
    assert "Could not queue document 7" in caplog.text


def test_store_replacing_keeps_one_file_at_the_same_name(tmp_path: Path) -> None:
    storage = FileSystemStorage(location=tmp_path)
    store_replacing(storage, "documents/a.pdf", b"first")
    store_replacing(storage, "documents/a.pdf", b"second")
    assert (tmp_path / "documents" / "a.pdf").read_bytes() == b"second"
    assert sorted(p.name for p in (tmp_path / "documents").iterdir()) == ["a.pdf"]
