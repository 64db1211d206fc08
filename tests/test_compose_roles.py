"""docker-compose.yml gives the owner role to the migration step alone."""

from __future__ import annotations

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
        assert "DATABASE_OWNER_URL" not in env, name
        assert "CLINIC_DB_OWNER_PASSWORD" not in str(services[name]), name
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
