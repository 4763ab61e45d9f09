"""Serving that a slow client cannot hold (service.serving): the real `dah-cds serve` (gunicorn,
gthread workers, the project's settings) on a loopback port, with clients that send their
request one byte at a time.  An honest call is answered at once while they trickle; each slow
client gets a 408 OperationOutcome after CDS_REQUEST_READ_TIMEOUT_SECONDS of waiting and its
thread is free again."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conformance.helpers import base_request
from tests.processes import stop_process
from tests.protocol_content import CONTENT, PATIENT_VIEW

READ_TIMEOUT = 2.0
SERVICE = PATIENT_VIEW


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def serve(tmp_path):
    started = []

    def start(**env) -> int:
        port = free_port()
        environ = {k: v for k, v in os.environ.items() if not k.startswith("CDS_")}
        environ.update({"CDS_HOST": "127.0.0.1", "CDS_PORT": str(port), "CDS_LOG_LEVEL": "WARNING",
                        "CDS_DATABASE_URL": f"sqlite:///{tmp_path / f'serve-{port}.sqlite3'}",
                        "CDS_REQUEST_READ_TIMEOUT_SECONDS": str(READ_TIMEOUT), "CDS_CONTENT_DIR": str(CONTENT), **env})
        process = subprocess.Popen([str(Path(sys.executable).parent / "dah-cds"), "serve"], env=environ,
                                   stdout=subprocess.DEVNULL, stderr=open(tmp_path / f"serve-{port}.log", "wb"))
        started.append(process)
        deadline = time.monotonic() + 120  # generous: loading the content takes seconds of CPU on a busy machine
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/cds-services", timeout=1).read()
                return port
            except OSError:
                assert process.poll() is None, (tmp_path / f"serve-{port}.log").read_text()
                time.sleep(0.2)
        raise AssertionError("dah-cds serve did not answer within 120 s")

    yield start
    for process in started:
        stop_process(process, signal.SIGINT, 10, 10)  # quick shutdown


def request_bytes() -> tuple[bytes, bytes]:
    body = json.dumps(base_request()).encode()
    head = (f"POST {SERVICE} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    return head, body


class SlowClient(threading.Thread):
    """Sends its request (the body, or `headers_too`) one byte every `every` seconds until answered."""

    def __init__(self, port: int, every: float = 1.0, headers_too: bool = False):
        super().__init__(daemon=True)
        self.port, self.every, self.headers_too = port, every, headers_too
        self.answer = b""
        self.elapsed = None
        self.sent = 0

    def run(self) -> None:
        head, body = request_bytes()
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", self.port)) as sock:
            if not self.headers_too:
                sock.sendall(head)
            data = head + body if self.headers_too else body
            sock.settimeout(self.every)
            for i in range(len(data)):
                try:
                    sock.send(data[i:i + 1])
                    self.sent += 1
                    chunk = sock.recv(65536)
                    self.answer += chunk
                    break  # answered (or closed)
                except TimeoutError:
                    continue
                except OSError:
                    break
            sock.settimeout(5)
            try:
                while chunk := sock.recv(65536):
                    self.answer += chunk
            except OSError:
                pass
        self.elapsed = time.monotonic() - started


def honest_call(port: int) -> tuple[int, dict, float]:
    started = time.monotonic()
    request = urllib.request.Request(f"http://127.0.0.1:{port}{SERVICE}", data=json.dumps(base_request()).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read()), time.monotonic() - started


def test_slow_clients_do_not_stall_an_honest_call_and_are_cut_off_at_the_read_timeout(serve):
    port = serve()
    slow = [SlowClient(port), SlowClient(port), SlowClient(port, headers_too=True)]
    for client in slow:
        client.start()
    time.sleep(1.2)  # every slow client has a thread and is trickling
    status, body, elapsed = honest_call(port)
    assert status == 200 and "cards" in body
    assert elapsed < 1.0, elapsed
    for client in slow:
        client.join(timeout=READ_TIMEOUT + 5)
        assert client.answer.startswith(b"HTTP/1.1 408 "), client.answer[:200]
        assert b"Connection: close" in client.answer
        outcome = json.loads(client.answer.split(b"\r\n\r\n", 1)[1])
        assert outcome["resourceType"] == "OperationOutcome" and outcome["issue"][0]["code"] == "timeout"
        assert READ_TIMEOUT - 0.1 <= client.elapsed < READ_TIMEOUT + 1.5, client.elapsed
        assert client.sent < 10


def test_more_slow_clients_than_threads_hold_them_only_for_the_read_timeout(serve):
    """One worker with two threads, three slow clients: the honest call waits for a thread, which the
    read timeout frees; it never waits for the slow clients to finish."""
    port = serve(CDS_WORKERS="1", CDS_THREADS="2")
    slow = [SlowClient(port) for _ in range(3)]
    for client in slow:
        client.start()
    time.sleep(0.5)
    status, _, elapsed = honest_call(port)
    assert status == 200
    assert elapsed < READ_TIMEOUT + 1.5, elapsed
    for client in slow:
        client.join(timeout=2 * READ_TIMEOUT + 5)
        assert client.answer.startswith(b"HTTP/1.1 408 "), client.answer[:200]
