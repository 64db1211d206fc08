"""gunicorn's settings for the clinic's web process, wherever it runs.

Read by the Procfile (`make run`), docker-compose.yml's `web`, the Dockerfile's
default command and the load test (`make loadtest`), each of which gives only
`--bind` on its command line: one set of flags, not one per launcher.
Anything given on a command line wins over this file (gunicorn's rule), which
the load test uses to try other worker counts.
"""

# Workers and threads: measured with `make loadtest` (tests/load/), 30 staff
# signed in as the three roles on a 2-core machine (docs/benchmarks.md, "Thirty
# staff at once"). The pages are CPU-bound Python, so more processes than
# cores buys nothing and costs memory; a few threads per process let a
# request's database and Redis waits overlap with another's Python, and a
# slow request (a PDF, a large report) no longer holds up the requests queued
# behind it in the same process.
workers = 2
worker_class = "gthread"
threads = 4

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
