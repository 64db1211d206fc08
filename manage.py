#!/usr/bin/env python
"""Django's command-line utility for administrative tasks.

Without DATABASE_URL / REDIS_URL (a developer's machine), the command runs
inside clinic.embedded, which starts the embedded PostgreSQL and Redis under
var/ for it, as `make run` does. Production always sets both URLs.
"""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clinic.settings")
    if not os.environ.get("DATABASE_URL") or not os.environ.get("REDIS_URL"):
        from clinic.embedded import main as with_embedded_services

        sys.exit(with_embedded_services(["--name", "run", "--", sys.executable, *sys.argv]))
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
