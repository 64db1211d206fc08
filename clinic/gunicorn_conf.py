"""gunicorn's settings for the clinic's web process, wherever it runs.

Read by the Procfile (`make run`), docker-compose.yml's `web`, the Dockerfile's
default command and the load test (`make loadtest`), each of which gives only
`--bind` on its command line: one set of flags, not one per launcher.
Anything given on a command line wins over this file (gunicorn's rule), which
the load test uses to try other worker counts.
"""

import os


def _cores() -> int:
    """The cores this process may run on (a container's or taskset's share)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 2


# Workers and threads: chosen with `make loadtest` (tests/load/), 30 staff
# signed in as the three roles for 60 s on a 2-core machine (docs/benchmarks.md,
# "Thirty staff at once"). The pages are CPU-bound Python: one process uses at
# most one core (the GIL), so one worker per core, and at least two so that a
# worker being replaced never leaves the clinic unanswered. Two threads each
# let one request's database waits overlap another's Python. Measured on a
# machine whose other work kept the load average at 9 to 21, every setting
# tried fell within the run-to-run spread, 4.0 to 6.8 pages/s (2x2: 6.8, 4.6,
# 4.0, 4.5; 5x1: 6.8, 5.5, 4.1; 2x4: 4.9, 5.4, 5.3; 3x2 4.7; 2x1 4.2; 3x1
# 4.2), so the choice rests on the above and on memory: each worker is about
# 90 MiB, and each sign-in in progress hashes its password with Argon2 (about
# 100 MiB while it runs; a 2x4 worker was seen at 290 MiB after the sign-ins),
# so threads and workers beyond need are memory the server may not have.
# A command line's --workers/--threads wins over these (how the load test tries others).
workers = max(2, _cores())
worker_class = "gthread"
threads = 2

# Request limits (also the defaults, stated here so that a change is deliberate):
# no request line or header larger than this, no more than 50 headers.
limit_request_line = 4094
limit_request_fields = 50
limit_request_field_size = 8190

# gunicorn itself believes no X-Forwarded-* header from anyone: the clinic's
# own middleware judges them against TRUSTED_PROXIES (clinic/edge.py).
forwarded_allow_ips = ""

# The access log on standard output, without query strings (they can carry
# patient data) and with link tokens in paths redacted by the logger class.
accesslog = "-"
logger_class = "clinic.gunicorn_logging.RedactingLogger"
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(L)ss'
