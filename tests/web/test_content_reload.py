"""Content reload on the running service (service.serving, service.content.watch): the real
`dah-cds serve` (gunicorn master, two gthread workers) on a loopback port, serving a copy of the
synthetic content.  A broken edit, reloaded by SIGHUP or seen by the folder watch, keeps the
previous content answering and shows at GET /status/content; a worker started while the edit is
broken serves the last good content; the fixed edit is then served.  The master never exits."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT, SYNTHETIC
from tests.processes import stop_process

SERVICE = "/cds-services/proto-patient-view"
REQUEST = ROOT / "tests" / "fixtures" / "requests" / "patient-view-high.json"
PLAN = "PlanDefinition-proto.json"
WORKERS = 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    def __init__(self, process: subprocess.Popen, port: int, folder: Path, log: Path):
        self.process, self.port, self.folder, self.log = process, port, folder, log

    def get(self, path: str) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as response:
            return json.loads(response.read())

    def level_card(self) -> str:
        """The summary of the card the edits change (the case also gets a card about its problems)."""
        return next(s for s in self.summaries() if s.startswith("The level is high"))

    def summaries(self) -> list[str]:
        body = REQUEST.read_bytes()
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{SERVICE}", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=20) as response:
            return [card["summary"] for card in json.loads(response.read())["cards"]]

    def alive(self) -> None:
        assert self.process.poll() is None, "the service stopped:\n" + self.log.read_text()[-3000:]

    def settled(self, predicate, what: str, timeout: float = 60) -> dict:
        """Status answers until `predicate` holds for enough answers in a row that every worker gave one."""
        deadline, streak, status = time.monotonic() + timeout, 0, {}
        while time.monotonic() < deadline:
            self.alive()
            status = self.get("/status/content")
            streak = streak + 1 if predicate(status) else 0
            if streak >= 4 * WORKERS:
                return status
            time.sleep(0.1)
        raise AssertionError(f"{what}: not reached within {timeout} s; last status {status}")

    def workers(self) -> list[int]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in children.read_text().split()] if children.exists() else []


@pytest.fixture
def serve(tmp_path):
    started: list[subprocess.Popen] = []

    def start(**env) -> Served:
        folder = tmp_path / "content"
        shutil.copytree(SYNTHETIC, folder)
        port = free_port()
        log = tmp_path / f"serve-{port}.log"
        environ = {k: v for k, v in os.environ.items() if not k.startswith("CDS_")}
        environ.update({"CDS_HOST": "127.0.0.1", "CDS_PORT": str(port), "CDS_CONTENT_DIR": str(folder),
                        "CDS_WORKERS": str(WORKERS), "CDS_THREADS": "2",
                        "CDS_DATABASE_URL": f"sqlite:///{tmp_path / 'feedback.sqlite3'}", **env})
        process = subprocess.Popen([str(Path(sys.executable).parent / "dah-cds"), "serve"], env=environ,
                                   stdout=subprocess.DEVNULL, stderr=open(log, "wb"))
        started.append(process)
        served = Served(process, port, folder, log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                served.get("/status/content")
                return served
            except OSError:
                served.alive()
                time.sleep(0.2)
        raise AssertionError("dah-cds serve did not answer within 60 s")

    yield start
    for process in started:
        stop_process(process, signal.SIGINT, 15, 15)


def high_action(plan: dict) -> int:
    """The index of the action the edits change (id `high`, the card "The level is high")."""
    return next(i for i, action in enumerate(plan["action"]) if action["id"] == "high")


def edit_plan(folder: Path, title: str, condition: str = "%highLevels.exists()") -> None:
    path = folder / PLAN
    plan = json.loads(path.read_text(encoding="utf-8"))
    action = plan["action"][high_action(plan)]
    action["title"] = title
    action["condition"][0]["expression"]["expression"] = condition
    path.write_text(json.dumps(plan, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def test_sighup_with_a_broken_edit_keeps_serving_the_previous_content_then_serves_the_fix(serve):
    served = serve(CDS_CONTENT_WATCH_SECONDS="0")  # no polling: only the signal reloads
    assert served.level_card() == "The level is high"
    first = served.settled(lambda s: s["version"] and s["lastError"] is None, "started")

    edit_plan(served.folder, "The level is high (edited)", condition="%highLevels.exists() and")  # a FHIRPath typo
    served.process.send_signal(signal.SIGHUP)
    status = served.settled(lambda s: s["lastError"] is not None, "the broken edit is reported")
    assert status["version"] == first["version"], "the previous content is still the one served"
    [error] = status["lastError"]["errors"]
    where = high_action(json.loads((served.folder / PLAN).read_text(encoding="utf-8")))
    assert (error["file"], error["path"]) == (PLAN, f"PlanDefinition.action[{where}].condition[0].expression")
    for _ in range(2 * WORKERS):
        assert served.level_card() == "The level is high"
    served.alive()
    assert "content reload refused: PlanDefinition-proto.json" in served.log.read_text()

    edit_plan(served.folder, "The level is high (edited)")
    served.process.send_signal(signal.SIGHUP)
    fixed = served.settled(lambda s: s["lastError"] is None and s["version"] != first["version"], "the fix served")
    assert fixed["services"] == first["services"]
    for _ in range(2 * WORKERS):
        assert served.level_card() == "The level is high (edited)"


def test_a_file_change_is_seen_and_a_worker_replaced_while_the_edit_is_broken_serves_the_last_good(serve):
    served = serve(CDS_CONTENT_WATCH_SECONDS="0.3")
    first = served.settled(lambda s: s["version"] and s["lastError"] is None, "started")

    edit_plan(served.folder, "The level is high (edited)", condition="%highLevels.exists() and")
    served.settled(lambda s: s["lastError"] is not None, "the broken edit is seen without a signal")

    workers = served.workers()
    assert len(workers) == WORKERS
    os.kill(workers[0], signal.SIGKILL)  # gunicorn starts a new worker; the folder is broken meanwhile
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (len(served.workers()) < WORKERS or workers[0] in served.workers()):
        time.sleep(0.2)
    served.alive()
    status = served.settled(lambda s: s["lastError"] is not None, "every worker reports the error")
    assert status["version"] == first["version"]
    for _ in range(2 * WORKERS):
        assert served.level_card() == "The level is high"

    edit_plan(served.folder, "The level is high (edited)")
    served.settled(lambda s: s["lastError"] is None and s["version"] != first["version"], "the fix served")
    assert served.level_card() == "The level is high (edited)"
