"""The container files, checked without Docker (this machine has no engine or compose plugin).

- docker-compose.yml (PyYAML): the services, a health check on the service's `/health`, the one-shot
  `migrate` service running `dah-cds migrate` after PostgreSQL is healthy, and the service started
  only once migrations completed.
- Dockerfile: its `CMD` run on this machine with its `ENV` (paths under `WORKDIR` mapped to this
  checkout, `CDS_DATA_DIR` to a fresh folder created as the image creates it): it boots with its
  defaults, answers `/health` (the image's own `HEALTHCHECK` command passes), writes its database in
  the data directory, and logs JSON lines with an access line.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from tests.processes import stop_process

START_SECONDS = 120  # the clinical content and two workers, on a loaded machine


# ---- Dockerfile -----------------------------------------------------------------------------------


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    logical, current = [], ""
    for line in path.read_text(encoding="utf-8").splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1].strip()) for text in logical]


def dockerfile_env(steps: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction, args in steps:
        if instruction == "ENV":
            for pair in shlex.split(args):
                key, _, value = pair.partition("=")
                env[key] = value
    return env


def only(steps: list[tuple[str, str]], instruction: str) -> str:
    found = [args for name, args in steps if name == instruction]
    assert found, f"no {instruction} in the Dockerfile"
    return found[-1]


STEPS = instructions(ROOT / "Dockerfile")


def test_the_image_keeps_its_state_in_a_data_dir_its_user_owns():
    env = dockerfile_env(STEPS)
    user = only(STEPS, "USER")
    data_dir = env["CDS_DATA_DIR"]
    assert "site-packages" not in data_dir and "CDS_DATABASE_URL" not in env
    created = [args for name, args in STEPS if name == "RUN" and data_dir in args]
    assert any(re.search(rf"install -d -o {user} -g {user} .*{re.escape(data_dir)}", args) for args in created)
    assert json.loads(only(STEPS, "VOLUME")) == [data_dir]
    assert env["CDS_WORKERS"].isdigit() and env["CDS_THREADS"].isdigit()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def image_environment(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """The Dockerfile's ENV as this machine can run it, and the data directory."""
    workdir = only(STEPS, "WORKDIR")
    env = dockerfile_env(STEPS)
    data_dir = tmp_path / "data-dir"
    data_dir.mkdir(mode=0o750)  # as the image's `install -d` does
    mapped = {}
    for key, value in env.items():
        if key == "CDS_DATA_DIR":
            value = str(data_dir)
        elif value == workdir or value.startswith(workdir + "/"):
            value = str(ROOT) + value[len(workdir):]
        mapped[key] = value
    return mapped, data_dir


def test_the_image_command_boots_with_its_defaults_and_answers_health(tmp_path):
    from tests.trust_helpers import es384_key, jwks, write_clients

    env, data_dir = image_environment(tmp_path)
    assert env["CDS_HOST"] == "0.0.0.0"  # so it needs trusted clients, as `docker run` does
    port = free_port()
    clients = write_clients(tmp_path / "clients.json", {"iss": "https://ehr.example.org", "jwks": jwks(es384_key()),
                                                        "fhirServers": []})
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CDS_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    environ.update(env)
    environ.update({"CDS_PORT": str(port), "CDS_TRUSTED_CLIENTS": clients, "PATH": str(Path(sys.executable).parent)
                    + os.pathsep + environ.get("PATH", "")})
    command = json.loads(only(STEPS, "CMD"))
    log = tmp_path / "image.log"
    with open(log, "ab") as err:  # O_APPEND: each process's line lands whole
        process = subprocess.Popen(command, env=environ, stdout=subprocess.DEVNULL, stderr=err, cwd=tmp_path)
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            try:
                answer = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).read())
                break
            except OSError:
                assert process.poll() is None, log.read_text(errors="replace")
                assert time.monotonic() < deadline, f"no /health within {START_SECONDS} s"
                time.sleep(0.5)
        assert answer == {"status": "up"}
        healthcheck = only(STEPS, "HEALTHCHECK")
        probe = json.loads(healthcheck[healthcheck.index("CMD") + 3:].strip())
        assert subprocess.run(probe, env=environ, timeout=60).returncode == 0
        ready = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=30).read())
        assert ready["status"] == "ready" and ready["services"] > 0
        assert (data_dir / "feedback.sqlite3").is_file()
        workers = int(env["CDS_WORKERS"])
        while log.read_text(errors="replace").count('"ready: ') < workers:  # every worker booted before the stop
            assert time.monotonic() < deadline + START_SECONDS, f"not all {workers} workers said ready"
            time.sleep(0.5)
    finally:
        stop_process(process, signal.SIGTERM, 30, 30)
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    assert all(line.startswith("{") for line in lines), "\n".join(lines)
    events = [json.loads(line) for line in lines]
    assert any(e["logger"] == "service.access" and "/health 200" in e["message"] for e in events)
    assert any(e["logger"] == "service.app" and e["message"].startswith("ready:") for e in events)


# ---- docker-compose.yml ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))


def test_compose_has_the_services_of_the_stack(compose):
    assert set(compose["services"]) == {"db", "migrate", "cds", "proxy", "hapi"}
    assert compose["services"]["cds"]["environment"]["CDS_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert compose["services"]["migrate"]["environment"] == {"CDS_DATABASE_URL":
                                                             compose["services"]["cds"]["environment"]
                                                             ["CDS_DATABASE_URL"]}


def test_compose_migrates_once_before_the_service_starts(compose):
    services = compose["services"]
    migrate = services["migrate"]
    assert migrate["command"] == ["dah-cds", "migrate"] and migrate["build"] == "."
    assert migrate.get("restart") == "no"
    assert migrate["depends_on"] == {"db": {"condition": "service_healthy"}}
    assert services["cds"]["depends_on"] == {"db": {"condition": "service_healthy"},
                                             "migrate": {"condition": "service_completed_successfully"}}


def test_compose_health_checks(compose):
    services = compose["services"]
    for name in ("cds", "proxy", "db", "hapi"):
        check = services[name]["healthcheck"]
        assert check["test"][0] in ("CMD", "CMD-SHELL") and check["retries"] >= 3, name
    cds_check = " ".join(services["cds"]["healthcheck"]["test"])
    assert "127.0.0.1:8080/health" in cds_check and "/cds-services" not in cds_check
    assert "ports" not in services["cds"], "the service is reached through the proxy only"
    assert services["proxy"]["ports"] == ["127.0.0.1:8080:80"]


def test_compose_puts_the_service_behind_a_buffering_proxy(compose):
    proxy = compose["services"]["proxy"]
    assert proxy["depends_on"] == {"cds": {"condition": "service_healthy"}}
    [mount] = proxy["volumes"]
    conf = (ROOT / mount.split(":")[0]).read_text(encoding="utf-8")
    assert "proxy_pass http://cds:8080;" in conf and "proxy_request_buffering on;" in conf
    assert "location = /metrics" in conf  # not served through the proxy
    assert compose["services"]["cds"]["environment"]["CDS_PUBLIC_BASE_URL"] == "http://localhost:8080"


def test_every_service_that_waits_names_a_service_of_the_file(compose):
    services = compose["services"]
    for name, service in services.items():
        for needed, how in (service.get("depends_on") or {}).items():
            assert needed in services, f"{name} depends on {needed}"
            if how["condition"] == "service_healthy":
                assert "healthcheck" in services[needed], f"{name} waits for {needed} to be healthy"
