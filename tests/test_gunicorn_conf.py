"""Every way the web process starts (make run's Procfile, docker-compose.yml,
the image's default command) runs gunicorn with clinic/gunicorn_conf.py, and
the settings gunicorn ends up with are the clinic's, not its defaults."""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path

import pytest
import yaml
from gunicorn.app.wsgiapp import WSGIApplication
from gunicorn.config import Config

BASE_DIR = Path(__file__).resolve().parent.parent
LAUNCHERS = ["Procfile", "docker-compose.yml", "Dockerfile"]


def gunicorn_command(path: str) -> list[str]:
    """The gunicorn command line of the web process in `path`, as argv."""
    text = (BASE_DIR / path).read_text()
    if path == "Procfile":
        argv = shlex.split(next(line for line in text.splitlines() if line.startswith("web:")))
    elif path == "Dockerfile":
        # The default command, a JSON array possibly continued over lines.
        cmd = text[text.index("\nCMD ") + 5 :]
        argv = json.loads(cmd.replace("\\\n", " ").split("\n")[0])
    else:
        argv = shlex.split(yaml.safe_load(text)["services"]["web"]["command"][-1])
    return argv[argv.index("gunicorn") :]


def gunicorn_settings(path: str, monkeypatch: pytest.MonkeyPatch) -> Config:
    """What gunicorn would run with when started as `path` starts it, from the
    repository's root (the working directory of every launcher): its command
    line, then the configuration file that line names, as gunicorn reads them."""
    monkeypatch.chdir(BASE_DIR)
    monkeypatch.delenv("GUNICORN_CMD_ARGS", raising=False)
    monkeypatch.setattr(sys, "argv", gunicorn_command(path))
    return WSGIApplication("%(prog)s [OPTIONS] [APP_MODULE]").cfg


@pytest.mark.parametrize("path", LAUNCHERS)
def test_each_launcher_reads_the_one_configuration_file(
    path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = gunicorn_command(path)
    assert argv[1] == "clinic.wsgi"
    assert argv[argv.index("--config") + 1] == "clinic/gunicorn_conf.py"
    # Only where it listens differs between launchers.
    flags = [a for a in argv[2:] if a.startswith("--")]
    assert flags == ["--config", "--bind"], f"{path} sets {flags} beside the file"
    config = gunicorn_settings(path, monkeypatch)
    assert config.worker_class_str == "gthread"
    # One worker per core this process may use, at least two (on the 2-core
    # machine measured: 2 workers x 2 threads).
    assert config.workers == max(2, len(os.sched_getaffinity(0)))
    assert config.threads == 2


@pytest.mark.parametrize("path", LAUNCHERS)
def test_gunicorn_limits_request_lines_and_headers(
    path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = gunicorn_settings(path, monkeypatch)
    assert config.limit_request_line == 4094
    assert config.limit_request_fields == 50
    assert config.limit_request_field_size == 8190


@pytest.mark.parametrize("path", LAUNCHERS)
def test_gunicorn_believes_no_forwarded_scheme_itself(
    path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """gunicorn trusts X-Forwarded-Proto/-Ssl/-Protocol from 127.0.0.1 unless
    told otherwise; the clinic leaves that judgement to its own middleware."""
    assert gunicorn_settings(path, monkeypatch).forwarded_allow_ips == []


@pytest.mark.parametrize("path", LAUNCHERS)
def test_the_access_log_has_no_query_strings_and_redacts_link_tokens(
    path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = gunicorn_settings(path, monkeypatch)
    assert config.accesslog == "-"
    assert config.logger_class.__name__ == "RedactingLogger"
    assert "%(U)s" in config.access_log_format
    assert "%(r)s" not in config.access_log_format
    assert "%(q)s" not in config.access_log_format


def test_a_command_line_flag_wins_over_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """The load test tries other worker counts this way."""
    monkeypatch.chdir(BASE_DIR)
    monkeypatch.setattr(
        sys, "argv", ["gunicorn", "clinic.wsgi", "--config", "clinic/gunicorn_conf.py",
                      "--workers", "5", "--threads", "1"],
    )  # fmt: skip
    config = WSGIApplication("%(prog)s [OPTIONS] [APP_MODULE]").cfg
    assert (config.workers, config.threads) == (5, 1)
    assert config.forwarded_allow_ips == []
