"""Read by every Python process `tests.clock_ahead` starts (it is put first on
PYTHONPATH there): under libfaketime with the monotonic clock left true, the
library's clock_nanosleep treats an absolute monotonic deadline as a moved
one, and `time.sleep` fails with EINVAL. A sleep through select() waits the
same time without that call. Nothing changes outside a moved clock."""

from __future__ import annotations

import os
import select
import time

if "libfaketime" in os.environ.get("LD_PRELOAD", ""):

    def _sleep(seconds: float) -> None:
        if seconds < 0:
            raise ValueError("sleep length must be non-negative")
        select.select([], [], [], seconds)

    time.sleep = _sleep
