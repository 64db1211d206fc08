"""docker-compose.yml gives the owner role to the migration step alone."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

BASE_DIR = Path(__file__).resolve().parent.parent


def compose() -> dict[str, Any]:
    return yaml.safe_load((BASE_DIR / "docker-compose.yml").read_text())


def test_web_worker_and_beat_connect_as_the_application_role_only() -> None:
    services = compose()["services"]
    for name in ("web", "worker", "beat"):
        env = services[name]["environment"]
        assert env["DATABASE_URL"].startswith("postgres://clinic_app:"), name
        # Blank, over whatever .env (their env_file) says.
        assert env["DATABASE_OWNER_URL"] == "", name
        assert "${CLINIC_DB_OWNER_PASSWORD" not in str(services[name]), name
        assert services[name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }


def test_the_migrate_step_runs_as_the_owner_and_nothing_else_migrates() -> None:
    services = compose()["services"]
    migrate = services["migrate"]
    assert migrate["environment"]["DATABASE_OWNER_URL"].startswith("postgres://clinic_owner:")
    assert migrate["command"] == ["python", "manage.py", "migrate", "--noinput"]
    # The owner of the tables does not hold the audit chain's key.
    assert migrate["environment"]["AUDIT_CHAIN_KEY"] == ""
    assert services["worker"]["environment"]["AUDIT_CHAIN_KEY"].startswith("${AUDIT_CHAIN_KEY:?")
    for name in ("web", "worker", "beat"):
        assert "migrate" not in str(services[name].get("command", "")), name


def test_the_database_volume_is_made_with_both_roles_and_neither_is_superuser() -> None:
    spec = compose()
    script = spec["configs"]["clinic-roles"]["content"]
    assert {
        "source": "clinic-roles",
        "target": "/docker-entrypoint-initdb.d/10-clinic-roles.sh",
    } in (spec["services"]["db"]["configs"])
    for role in ("clinic_owner", "clinic_app"):
        line = next(line for line in script.splitlines() if f"CREATE ROLE {role}" in line)
        assert "NOSUPERUSER" in line
        assert "NOCREATEROLE" in line
    assert "ALTER DATABASE clinic OWNER TO clinic_owner" in script


# --- What .env gives the containers ------------------------------------------------

APP_SERVICES = ("web", "worker", "beat")

# Variables of .env.example that are deliberately kept from web, worker and beat:
# the superuser's password (the db service only) and the owner role's (the db
# service, which makes the role, and the migrate step, which connects as it).
OWNER_ONLY = {
    "POSTGRES_PASSWORD": {"db"},
    "CLINIC_DB_OWNER_PASSWORD": {"db"},
    "DATABASE_OWNER_URL": {"migrate"},
}

_ASSIGNMENT = re.compile(r"^#?\s*([A-Z][A-Z0-9_]*)=")
_REFERENCE = re.compile(r"\$\{([A-Z][A-Z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def env_example_names() -> list[str]:
    """Every variable .env.example lists, set or shown commented out."""
    names: list[str] = []
    for line in (BASE_DIR / ".env.example").read_text().splitlines():
        match = _ASSIGNMENT.match(line)
        if match and match.group(1) not in names:
            names.append(match.group(1))
    return names


def a_dot_env() -> dict[str, str]:
    """A filled-in .env: every variable of .env.example with a value of its own."""
    return {name: f"value-of-{name.lower()}" for name in env_example_names()}


def interpolate(value: Any, dot_env: dict[str, str]) -> str:
    """Compose's interpolation of one environment value from the .env file."""

    def substitute(match: re.Match[str]) -> str:
        name, operator, argument = match.groups()
        given = dot_env.get(name)
        if operator in (":-", "-"):
            unset = given is None or (operator == ":-" and given == "")
            return argument if unset else str(given)
        if operator in (":?", "?") and (given is None or (operator == ":?" and given == "")):
            raise AssertionError(f"compose refuses to start without {name}: {argument}")
        return "" if given is None else str(given)

    text = "" if value is None else str(value)
    return _REFERENCE.sub(substitute, text.replace("$$", "\0")).replace("\0", "$")


def container_env(service: dict[str, Any], dot_env: dict[str, str]) -> dict[str, str]:
    """The environment compose gives a service's container: the env_file's
    variables (.env), then `environment` over them."""
    files = service.get("env_file") or []
    files = [files] if isinstance(files, str | dict) else files
    result: dict[str, str] = {}
    for entry in files:
        path = entry["path"] if isinstance(entry, dict) else entry
        assert path == ".env", f"an env_file other than .env: {path}"
        result.update(dot_env)
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    for name, value in environment.items():
        result[name] = interpolate(value, dot_env)
    return result


def test_every_variable_of_the_env_example_reaches_web_worker_and_beat() -> None:
    """A setting written in .env (SITE_URL, SMS_*, LOGIN_*...)
    reaches the processes that read it, not only the variables compose names."""
    services = compose()["services"]
    dot_env = a_dot_env()
    for name in APP_SERVICES:
        env = container_env(services[name], dot_env)
        missing = [
            variable
            for variable in env_example_names()
            if variable not in OWNER_ONLY and not env.get(variable)
        ]
        assert missing == [], f"{name} never sees {missing}"
        for variable in ("SITE_URL", "CLINIC_TIME_ZONE", "SMS_BACKEND", "LOGIN_FAILURE_LIMIT"):
            assert env[variable] == dot_env[variable], (name, variable)


def test_the_owner_and_superuser_passwords_never_reach_web_worker_or_beat() -> None:
    services = compose()["services"]
    dot_env = a_dot_env()
    for name in APP_SERVICES:
        values = " ".join(container_env(services[name], dot_env).values())
        for variable in OWNER_ONLY:
            assert dot_env[variable] not in values, (name, variable)
    migrate = container_env(services["migrate"], dot_env)
    assert dot_env["CLINIC_DB_OWNER_PASSWORD"] in migrate["DATABASE_OWNER_URL"]
    assert migrate["AUDIT_CHAIN_KEY"] == ""
    assert dot_env["POSTGRES_PASSWORD"] not in " ".join(migrate.values())


def test_what_is_kept_on_a_volume_stays_there_whatever_the_env_says() -> None:
    """.env cannot move media, the chain's head or beat's state off the volumes."""
    services = compose()["services"]
    dot_env = a_dot_env()
    kept = {
        "web": ("MEDIA_ROOT", "AUDIT_CHAIN_HEAD_FILE"),
        "worker": ("MEDIA_ROOT", "AUDIT_CHAIN_HEAD_FILE"),
        "beat": ("CELERY_BEAT_SCHEDULE_FILE",),
    }
    for name, variables in kept.items():
        env = container_env(services[name], dot_env)
        mounts = [volume.split(":")[1] for volume in services[name]["volumes"]]
        for variable in variables:
            path = env[variable]
            assert any(path == m or path.startswith(m.rstrip("/") + "/") for m in mounts), (
                name,
                variable,
                path,
            )
