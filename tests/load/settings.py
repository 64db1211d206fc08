"""The production settings, plus the benchmarks' anchor page.

The load test's gunicorn runs with these so that, in the same run, it can time
a trivial page (one `SELECT 1` behind the whole middleware stack: the anchor
of clinic/benchmarking.py) before and during the load, and report the pages'
figures beside it. Nothing else differs from clinic/settings.py.
"""

from clinic.settings import *  # noqa: F403

ROOT_URLCONF = "clinic.benchmark_urls"
