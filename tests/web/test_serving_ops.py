"""Operations under the real `dah-cds serve` (gunicorn, 2 workers): the metrics of calls answered by
either worker add up in one `GET /metrics`, the log is JSON lines with the request id and the
hookInstance, and the start says "ready" with the number of services and the content version."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conformance.helpers import base_request
from tests.processes import stop_process
from tests.protocol_content import CONTENT, PATIENT_VIEW

START_SECONDS = 120  # a loaded machine starts gunicorn and its workers slowly


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_health(port: int, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).read()
            return
        except OSError:
            assert process.poll() is None, log.read_text(errors="replace")
            time.sleep(0.3)
    raise AssertionError(f"dah-cds serve did not answer /health within {START_SECONDS} s")


def stop(process: subprocess.Popen) -> None:
    stop_process(process, signal.SIGTERM, 30, 30)


@pytest.fixture
def served(tmp_path):
    port = free_port()
    log = tmp_path / "serve.log"
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CDS_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    environ.update({"CDS_HOST": "127.0.0.1", "CDS_PORT": str(port), "CDS_WORKERS": "2", "CDS_THREADS": "2",
                    "CDS_LOG_FORMAT": "json", "CDS_CONTENT_DIR": str(CONTENT), "CDS_DATA_DIR": str(tmp_path / "data")})
    before = set(Path(tempfile.gettempdir()).glob("dah-cds-metrics-*"))
    folders: set[Path] = set()
    with open(log, "ab") as err:  # O_APPEND: each process's line lands whole
        process = subprocess.Popen([str(Path(sys.executable).parent / "dah-cds"), "serve"], env=environ,
                                   stdout=subprocess.DEVNULL, stderr=err)
    try:
        wait_for_health(port, process, log)
        folders = set(Path(tempfile.gettempdir()).glob("dah-cds-metrics-*")) - before
        assert folders, "the master made its metrics directory"
        yield port, log, process, folders
    finally:
        stop(process)
    assert not any(folder.exists() for folder in folders), "the master removes its metrics directory when it stops"


def call(port: int, request_id: str) -> tuple[int, str]:
    """One hook call on a new connection (so the two workers share the calls)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("POST", PATIENT_VIEW, body=json.dumps(base_request()),
                           headers={"Content-Type": "application/json", "X-Request-ID": request_id})
        response = connection.getresponse()
        response.read()
        return response.status, response.headers["X-Request-ID"]
    finally:
        connection.close()


def metric(port: int, name: str, **labels) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30).read().decode()
    return sum(s.value for family in text_string_to_metric_families(text) for s in family.samples
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def test_two_workers_share_one_set_of_metrics_and_log_json_lines(served):
    port, log, _, _ = served
    calls = 8
    for n in range(calls):
        assert call(port, f"req-{n}") == (200, f"req-{n}")
    assert metric(port, "cds_requests_total", service="proto-patient-view", status="200") == calls
    assert metric(port, "cds_cards_total", rule="PROTO-HIGH", indicator="warning") == calls
    assert metric(port, "cds_content_info") == 1  # one version, the same in both workers

    time.sleep(0.5)
    events = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    per_call = [e for e in events if e["logger"] == "service.calls" and "cards=" in e["message"]]
    assert sorted(e["request_id"] for e in per_call) == sorted(f"req-{n}" for n in range(calls))
    assert {e["hookInstance"] for e in per_call} == {base_request()["hookInstance"]}
    ready = [e for e in events if e["logger"] == "service.app" and e["message"].startswith("ready:")]
    assert len(ready) == 2, "one ready line per worker"
    assert "CDS services, content version" in ready[0]["message"]
    booting = [e for e in events if e["logger"] == "gunicorn.error"]
    assert booting, "gunicorn's own lines are JSON too"
    assert all(not line.strip() or line.startswith("{") for line in log.read_text().splitlines())


def test_a_worker_that_dies_leaves_no_live_metrics_behind(served):
    port, _, master, folders = served
    children = Path(f"/proc/{master.pid}/task/{master.pid}/children")
    if not children.exists():
        pytest.skip("this kernel does not list a process's children")
    deadline = time.monotonic() + START_SECONDS
    while len([f for folder in folders for f in folder.glob("gauge_live*.db")]) < 2:  # both workers loaded
        assert time.monotonic() < deadline, "the two workers did not both load their content"
        time.sleep(0.3)
    workers = [int(pid) for pid in children.read_text().split()]
    assert len(workers) == 2
    victim = workers[0]
    mine = [folder for folder in folders if list(folder.glob(f"gauge_live*_{victim}.db"))]
    assert len(mine) == 1, "each worker keeps its live gauges in its own file, in its master's directory"
    folder = mine[0]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + START_SECONDS
    while list(folder.glob(f"gauge_live*_{victim}.db")):
        assert time.monotonic() < deadline, "the dead worker's live gauges were not removed"
        time.sleep(0.2)
    while len([p for p in children.read_text().split() if int(p) != victim]) < 2:
        assert time.monotonic() < deadline, "gunicorn did not start a new worker"
        time.sleep(0.2)
    deadline = time.monotonic() + START_SECONDS
    while metric(port, "cds_content_services") == 0 or len(list(folder.glob("gauge_live*.db"))) < 2:
        assert time.monotonic() < deadline, "the new worker did not load its content"
        time.sleep(0.5)
    assert metric(port, "cds_content_info") == 1
