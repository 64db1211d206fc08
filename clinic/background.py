"""Handing work to Celery from a request or a sweep.

The database row is the record that work is owed (a PDF queued, say); the
message only wakes a worker. So publishing never waits on a broker that is
down and never fails the caller: it logs, answers False, and the beat sweep
of that kind of row sends it again later.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)


def enqueue(task: Any, *args: Any, label: str) -> bool:
    """Publish `task(*args)` once, without publish retries. `label` names the
    work in the log (ids only, never patient data)."""
    try:
        task.apply_async(args, retry=False)
    except Exception:
        logger.warning("Could not queue %s", label)
        return False
    return True
