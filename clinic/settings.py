"""Settings for the clinic, read from the environment (one module).

Defaults are safe for production: DEBUG off, HTTPS-only cookies, two-factor
authentication required for staff. `make run` turns on the demo conveniences
explicitly through environment variables; every variable is listed and
explained in `.env.example`.
"""

import hashlib
import hmac
import ipaddress
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# --- Core -------------------------------------------------------------------
DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# The clinic's name, address, phone, email, opening hours, reminder times,
# quiet hours and the validity of histories and allergy readings are the
# clinic's settings, kept in the database and changed by a manager on the
# settings page (clinic/clinic_settings.py), not here.
# HTTPS=False is for plain-http development on localhost only.
HTTPS = env.bool("HTTPS", default=True)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "crispy_forms",
    "crispy_bootstrap5",
    "django_htmx",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    # Backup codes: ten one-time codes for a lost phone (clinic/staff.py).
    "django_otp.plugins.otp_static",
    "phonenumber_field",
    "csp",
    "clinic",
    "patients",
    "consent",
    "treatments",
]

MIDDLEWARE = [
    # First: X-Forwarded-* count only from TRUSTED_PROXIES (clinic/proxies.py).
    "clinic.edge.ForwardedHeadersMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "clinic.middleware.RequestContextMiddleware",
    # The clinic's settings read at most once a request (clinic/clinic_settings.py).
    "clinic.clinic_settings.ClinicSettingsScopeMiddleware",
    # Before anything reads a body: too large is refused unread (413).
    "clinic.edge.RequestBodyLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "clinic.middleware.SessionTimeoutMiddleware",
    "clinic.middleware.StaffTwoFactorMiddleware",
    "clinic.middleware.AccessPolicyMiddleware",
    # Old addresses of a merged patient record redirect to the record that stays.
    "patients.middleware.MergedPatientMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # A service's refusal that a view did not catch is a 4xx page, never a 500.
    "clinic.refusals.RefusalMiddleware",
    "clinic.middleware.NoStoreMiddleware",
    # Last, so that it sees the credentials the login view passed on.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "clinic.urls"
WSGI_APPLICATION = "clinic.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "csp.context_processors.nonce",
                "clinic.context_processors.clinic",
            ],
            # The clinic's date and time formats (clinic/dates.py) on every template.
            "builtins": ["clinic.templatetags.clinic_dates"],
        },
    },
]

# --- Database and Redis -------------------------------------------------------
# `make run` and `make test` start embedded PostgreSQL and Redis under var/
# and export these two URLs when they are not set.
DATABASES = {"default": env.db_url("DATABASE_URL")}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASES["default"].setdefault("OPTIONS", {})
# Fail fast instead of hanging when the database is unreachable.
DATABASES["default"]["OPTIONS"].setdefault("connect_timeout", 5)
if env.str("DATABASE_SSLMODE", default=""):
    DATABASES["default"]["OPTIONS"]["sslmode"] = env.str("DATABASE_SSLMODE")

# The owner role: owns the tables and runs the migrations (clinic/dbroles.py).
# DATABASE_URL is the application role, which owns nothing.
DATABASE_OWNER = (
    env.db_url("DATABASE_OWNER_URL") if env.str("DATABASE_OWNER_URL", default="") else None
)

# The audit trail's hash chain (clinic/auditchain.py): the key of its links, not
# kept in the database (by default derived from SECRET_KEY; give it its own value
# in production, to web, worker and beat only), and the file outside the
# database where the sealer writes the chain's head.
AUDIT_CHAIN_KEY = (
    env.str("AUDIT_CHAIN_KEY", default="")
    or hmac.new(SECRET_KEY.encode(), b"clinic.audit-chain", hashlib.sha256).hexdigest()
)
AUDIT_CHAIN_HEAD_FILE = env.str(
    "AUDIT_CHAIN_HEAD_FILE", default=str(BASE_DIR / "var" / "audit-chain-head")
)
# How long the audit trail is kept, in months: at least as long as the clinical
# records whose reads and changes it records (8 years after the last treatment
# is the usual floor; confirm with the clinic's indemnity insurer). Nothing is
# deleted today: docs/architecture.md ("Audit trail") says how events older
# than this are archived, from a sealed head, so audit_verify still passes.
AUDIT_RETENTION_MONTHS = env.int("AUDIT_RETENTION_MONTHS", default=96)

REDIS_URL = env.str("REDIS_URL")

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "clinic",
        "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
    }
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Accounts, passwords, two-factor ------------------------------------------
AUTH_USER_MODEL = "clinic.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

AUTHENTICATION_BACKENDS = [
    # Axes first: it refuses a locked-out account before the password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

# Every member of staff must set up two-factor authentication (off only for the
# demo run, where it is optional); whoever has set it up confirms a code at every
# sign-in either way (clinic.middleware.StaffTwoFactorMiddleware).
REQUIRE_STAFF_2FA = env.bool("REQUIRE_STAFF_2FA", default=True)


def _otp_issuer(device: object) -> str:
    """The clinic's name as the authenticator app shows it (the settings' own)."""
    from clinic.clinic_settings import current

    return current().clinic_name


OTP_TOTP_ISSUER = _otp_issuer

# django-axes: lock an account after repeated failures, for a while, not for ever.
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("LOGIN_LOCKOUT_MINUTES", default=15))
# The lock holds an account *from one address*: a stranger's wrong passwords
# never lock out the staff, who share the clinic's address. One address trying
# many accounts meets a higher ceiling (clinic/signin.py).
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
LOGIN_ADDRESS_FAILURE_LIMIT = env.int("LOGIN_ADDRESS_FAILURE_LIMIT", default=100)
# The clinic's own connection (its NAT address, its networks): no per-address
# ceiling there, since a stranger on the guest Wi-Fi shares it with the staff.
CLINIC_NETWORKS = env.list("CLINIC_NETWORKS", default=[])
for _network in CLINIC_NETWORKS:
    ipaddress.ip_network(_network, strict=False)  # a mistyped entry stops start-up
AXES_HANDLER = "clinic.signin.SignInLockHandler"
# The client's address, trusting X-Forwarded-For only from TRUSTED_PROXIES.
AXES_CLIENT_IP_CALLABLE = "clinic.proxies.lockout_ip"
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_HTTP_RESPONSE_CODE = 429
AXES_VERBOSE = False
AXES_SENSITIVE_PARAMETERS = ["password", "otp_token"]

# --- Sessions and cookies -------------------------------------------------------
SESSION_IDLE_TIMEOUT = timedelta(minutes=env.int("SESSION_IDLE_TIMEOUT_MINUTES", default=15))
# Absolute session lifetime, whatever the activity.
SESSION_COOKIE_AGE = env.int("SESSION_ABSOLUTE_HOURS", default=10) * 3600
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True
CSRF_COOKIE_SAMESITE = "Lax"
CSRF_FAILURE_VIEW = "clinic.views.csrf_failure"
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
if HTTPS:
    # The __Host- prefix pins the cookie to this host, path / and HTTPS.
    SESSION_COOKIE_NAME = "__Host-sessionid"
    CSRF_COOKIE_NAME = "__Host-csrftoken"

# --- HTTPS and headers ----------------------------------------------------------
SECURE_SSL_REDIRECT = HTTPS
SECURE_HSTS_SECONDS = 31_536_000 if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
# The reverse proxies whose X-Forwarded-For and X-Forwarded-Proto are believed:
# addresses or networks, as the clinic sees them (REMOTE_ADDR). Empty: none.
# No SECURE_PROXY_SSL_HEADER: Django would believe that header from anyone;
# clinic.edge.ForwardedHeadersMiddleware believes it from these only.
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=[])
for _proxy in TRUSTED_PROXIES:
    ipaddress.ip_network(_proxy, strict=False)  # a mistyped entry stops start-up

# --- Request sizes -----------------------------------------------------------------
# Bodies over these are refused with 413 before they are read (clinic/edge.py).
# Forms (a drawn signature is at most 512 KB) stay far below the general limit;
# Django's own DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB of form fields) still applies.
REQUEST_BODY_MAX_BYTES = env.int("REQUEST_BODY_MAX_BYTES", default=3 * 1024 * 1024)
# Routes that take a file: a photo (15 MB at most, checked again by the view, which
# answers a photo between 15 and 20 MB on its own page with the form kept).
UPLOAD_BODY_MAX_BYTES = env.int("UPLOAD_BODY_MAX_BYTES", default=20 * 1024 * 1024)
# The patient import's upload (10 MB at most, checked again by its page).
UPLOAD_ROUTES = frozenset(
    {"patients:photos", "treatments:allergy_test_read", "patients:import_list"}
)

# Content Security Policy: scripts and styles only from our own static files.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    }
}

# --- Internationalisation and time ------------------------------------------
LANGUAGE_CODE = "en-gb"
TIME_ZONE = env.str("CLINIC_TIME_ZONE", default="Europe/London")
USE_I18N = True
USE_TZ = True

# --- Static and media files ---------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# Third-party front-end packages come from the npm registry (package.json),
# installed into node_modules at install time and served from here.
STATICFILES_DIRS = [
    BASE_DIR / "static",
    ("vendor/bootstrap", BASE_DIR / "node_modules" / "bootstrap" / "dist"),
    ("vendor/htmx", BASE_DIR / "node_modules" / "htmx.org" / "dist"),
    ("vendor/chartjs", BASE_DIR / "node_modules" / "chart.js" / "dist"),
]
STORAGES = {
    # Patient files live outside the web root and are served only by views
    # that check access; nothing under MEDIA_ROOT is ever served directly.
    "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": env.path("MEDIA_ROOT", default=BASE_DIR / "var" / "media")},
    },
    "staticfiles": {
        "BACKEND": env.str(
            "STATICFILES_BACKEND",
            default="whitenoise.storage.CompressedManifestStaticFilesStorage",
        )
    },
}
MEDIA_ROOT = STORAGES["default"]["OPTIONS"]["location"]

# --- Backups (clinic/backup.py) ------------------------------------------------
# Where `manage.py backup` writes its archives (health records: an encrypted volume).
BACKUP_DIR = env.path("BACKUP_DIR", default=BASE_DIR / "var" / "backups")
# Kept: the newest archive of each of the last N days and of each of the last N weeks.
BACKUP_KEEP_DAILY = env.int("BACKUP_KEEP_DAILY", default=14)
BACKUP_KEEP_WEEKLY = env.int("BACKUP_KEEP_WEEKLY", default=8)
# The age public keys (age1..., comma-separated) every archive is encrypted to;
# their private keys are kept off the server (restore --identity FILE).
BACKUP_AGE_RECIPIENTS = env.list("BACKUP_AGE_RECIPIENTS", default=[])
# With no recipients, backups are refused unless DEBUG or this is True: plain
# archives, for a demo only.
BACKUP_ALLOW_PLAINTEXT = env.bool("BACKUP_ALLOW_PLAINTEXT", default=False)
# The folder of pg_dump, pg_restore and psql of the server's major version; unset:
# found (the embedded server's own, /usr/lib/postgresql/N/bin, then the PATH).
POSTGRES_BIN_DIR = env.str("POSTGRES_BIN_DIR", default="")

# --- Forms ------------------------------------------------------------------------
CRISPY_ALLOWED_TEMPLATE_PACKS = "bootstrap5"
CRISPY_TEMPLATE_PACK = "bootstrap5"
PHONENUMBER_DEFAULT_REGION = env.str("PHONE_DEFAULT_REGION", default="GB")

# --- Email ----------------------------------------------------------------------
EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="clinic@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# Seconds the SMTP backend waits for the mail server (connecting, and each
# answer): a server that accepts and never answers cannot hold a worker.
EMAIL_TIMEOUT = env.float("EMAIL_TIMEOUT", default=10.0)

# --- Celery -----------------------------------------------------------------------
CELERY_BROKER_URL = REDIS_URL
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {"socket_connect_timeout": 2, "socket_timeout": 5}
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_ENABLE_UTC = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Every task has time limits, in seconds: the soft one raises
# SoftTimeLimitExceeded inside the task (which records what it did), the hard
# one kills the worker process. The defaults are generous for the PDF renders
# (WeasyPrint takes seconds to tens of seconds a document); the message
# dispatch ticks have their own, shorter ones (clinic/celery.py).
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=300)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=360)
MESSAGE_TASK_SOFT_TIME_LIMIT = env.int("MESSAGE_TASK_SOFT_TIME_LIMIT", default=90)
MESSAGE_TASK_TIME_LIMIT = env.int("MESSAGE_TASK_TIME_LIMIT", default=120)
if not (
    0 < CELERY_TASK_SOFT_TIME_LIMIT < CELERY_TASK_TIME_LIMIT
    and 0 < MESSAGE_TASK_SOFT_TIME_LIMIT < MESSAGE_TASK_TIME_LIMIT
):
    raise ImproperlyConfigured("Each soft time limit must be positive and below its hard one.")
# A reminder or notice claimed for sending is taken by no other tick for this
# long. Longer than the dispatch task's hard time limit, so a live worker
# always records its outcome first: only a dead worker's rows are taken again.
MESSAGE_CLAIM_LEASE = timedelta(
    seconds=env.int("MESSAGE_CLAIM_LEASE_SECONDS", default=MESSAGE_TASK_TIME_LIMIT + 60)
)
if timedelta(seconds=MESSAGE_TASK_TIME_LIMIT) >= MESSAGE_CLAIM_LEASE:
    raise ImproperlyConfigured("MESSAGE_CLAIM_LEASE_SECONDS must exceed MESSAGE_TASK_TIME_LIMIT.")
CELERY_BEAT_SCHEDULE_FILENAME = str(
    env.path("CELERY_BEAT_SCHEDULE_FILE", default=BASE_DIR / "var" / "celerybeat-schedule")
)
# A worker or beat is reported down when its last heartbeat is older than this.
HEARTBEAT_STALE_AFTER = timedelta(seconds=env.int("HEARTBEAT_STALE_SECONDS", default=120))

# --- Clinical rules --------------------------------------------------------------
# How long a medical history and a negative allergy reading stay valid are
# the clinic's settings (clinic/clinic_settings.py).
# A session may be completed from this many minutes before its booked start
# (the patient is early), never earlier and never for a later day.
SESSION_COMPLETE_EARLY_MINUTES = env.int("SESSION_COMPLETE_EARLY_MINUTES", default=15)
# Bookings (and closures) reach at most this many days ahead of today.
BOOKING_HORIZON_DAYS = env.int("BOOKING_HORIZON_DAYS", default=730)

# --- Reminders, messages and patient links -----------------------------------------
# The hours before a session that patients are reminded, and the quiet hours
# when no message reaches them, are the clinic's settings (clinic/clinic_settings.py).
# Reminders sent per transaction. A worker killed mid-batch resends at most
# this many (with the same idempotency key); smaller is safer, larger faster.
REMINDER_BATCH_SIZE = env.int("REMINDER_BATCH_SIZE", default=20)
# Text messages: a dotted path to a backend class, and the HTTP provider's settings.
SMS_BACKEND = env.str("SMS_BACKEND", default="treatments.sms.ConsoleBackend")
SMS_FILE_PATH = env.path("SMS_FILE_PATH", default=BASE_DIR / "var" / "sms")
SMS_PROVIDER_URL = env.str("SMS_PROVIDER_URL", default="")
SMS_PROVIDER_TOKEN = env.str("SMS_PROVIDER_TOKEN", default="")
SMS_SENDER = env.str("SMS_SENDER", default="Clinic")
SMS_TIMEOUT_SECONDS = env.float("SMS_TIMEOUT_SECONDS", default=10.0)
# The address patients reach the clinic at, for links in emails
# (`make run` sets it from PORT).
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000")
# Password-reset and portal sign-in emails asked for on the public pages, per
# hour: per address typed and per client address. Past either, the page
# answers as usual and no email goes.
SIGN_IN_MAIL_LIMIT_PER_EMAIL = env.int("SIGN_IN_MAIL_LIMIT_PER_EMAIL", default=5)
SIGN_IN_MAIL_LIMIT_PER_ADDRESS = env.int("SIGN_IN_MAIL_LIMIT_PER_ADDRESS", default=20)
# Days an emailed document link works; minutes a portal sign-in link works.
DOWNLOAD_LINK_DAYS = env.int("DOWNLOAD_LINK_DAYS", default=7)
PORTAL_LOGIN_LINK_MINUTES = env.int("PORTAL_LOGIN_LINK_MINUTES", default=30)

# --- Demo data --------------------------------------------------------------------
DEMO_PASSWORD = env.str("DEMO_PASSWORD", default="")

# --- Logging ----------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "clinic.logfilters.RequestIdFilter"},
        # Link tokens travel in paths: a line quoting one gets "[token]" instead.
        "redact_secrets": {"()": "clinic.logfilters.RedactSecretPaths"},
    },
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"}
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["request_id", "redact_secrets"],
        }
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        # Request lines can carry query strings; keep them out of the logs.
        "django.request": {"level": "ERROR"},
        # A refused CSRF check names the path, which may be a link with its token.
        "django.security.csrf": {"filters": ["redact_secrets"]},
        "axes": {"level": "WARNING"},
        # Rendering steps of every PDF: noise at INFO.
        "weasyprint": {"level": "WARNING"},
        "fontTools": {"level": "WARNING"},
    },
}
