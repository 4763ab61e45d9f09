"""FHIR servers that fail the service, through the real endpoint: slow on every read, dripping
their answer (body or headers) one byte at a time, answering too much, linking a search page to
itself, and failing with text meant to leak.  Each call is a 412 OperationOutcome in the
service's own words within the configured deadline (CDS_CALL_DEADLINE_SECONDS, 1.5 s here),
while honest calls made at the same time, on other threads against an honest FHIR server, keep
getting their cards promptly.

The servers are real sockets on 127.0.0.1 (tests/fault_servers.py, and the conformance FhirStub
answering the data of tests/fixtures/requests/patient-view-high.json); nothing is mocked.
"""

from __future__ import annotations

import threading
import time

import pytest

from tests import fault_servers as faults
from tests.conformance.helpers import FhirStub, base_request
from tests.conformance.test_prefetch import CaseData
from tests.conftest import T0
from tests.protocol_content import PATIENT_VIEW

SERVICE = PATIENT_VIEW
DEADLINE = 1.5
MARGIN = 0.8  # past the deadline: thread wake-up and the shutdown of a socket, on a shared machine


@pytest.fixture(scope="module")
def app(tmp_path_factory, synthetic_content):
    from service.app import create_app

    db = tmp_path_factory.mktemp("faults") / "f.sqlite3"
    return create_app({"database_url": f"sqlite:///{db}", "call_deadline_seconds": DEADLINE,
                       "fhir_timeout_seconds": 5.0, "fhir_max_response_bytes": 2_000_000},
                      clock=lambda: T0, content=synthetic_content)


@pytest.fixture(scope="module")
def honest_server(app):
    client = app.test_client()
    services = {s["id"]: s for s in client.get("/cds-services").get_json()["services"]}
    request = base_request()
    stub = FhirStub(CaseData(services["proto-patient-view"]["prefetch"], request["prefetch"],
                             request["context"]["patientId"]))
    yield stub
    stub.close()


@pytest.fixture(scope="module")
def baseline(app) -> dict:
    response = app.test_client().post(SERVICE, json=base_request())
    assert response.status_code == 200
    return response.get_json()


def fetching_from(base: str) -> dict:
    """The base case with nothing prefetched: every key is fetched from `base`."""
    body = base_request()
    body["fhirServer"] = base
    del body["prefetch"]
    return body


class HonestCalls(threading.Thread):
    """Calls the service again and again, fetching everything from an honest server, until stopped."""

    def __init__(self, app, base: str):
        super().__init__(daemon=True)
        self.client = app.test_client()
        self.base = base
        self.results: list[tuple[int, dict, float]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            started = time.monotonic()
            response = self.client.post(SERVICE, json=fetching_from(self.base))
            self.results.append((response.status_code, response.get_json(), time.monotonic() - started))


FAULTS = {
    "slow on every read": lambda: faults.slow(0.6),
    "dripping its body": lambda: faults.drip(0.3),
    "dripping its headers": lambda: faults.drip_headers(0.3),
    "answering 10 MB (Content-Length)": lambda: faults.huge(10),
    "answering 10 MB (no Content-Length)": lambda: faults.huge(10, declare_length=False),
    "linking a page to itself": faults.self_linking,
    "failing with text meant to leak": faults.failing,
}
CODES = {"slow on every read": "timeout", "dripping its body": "timeout", "dripping its headers": "timeout",
         "answering 10 MB (Content-Length)": "too-costly", "answering 10 MB (no Content-Length)": "too-costly",
         "linking a page to itself": "exception", "failing with text meant to leak": "exception"}


@pytest.mark.parametrize("fault", FAULTS)
def test_a_failing_fhir_server_is_a_412_within_the_deadline_while_honest_calls_get_their_cards(
        app, honest_server, baseline, fault):
    server = faults.FaultServer(FAULTS[fault]())
    honest = HonestCalls(app, honest_server.base)
    honest.start()
    try:
        started = time.monotonic()
        response = app.test_client().post(SERVICE, json=fetching_from(server.base))
        elapsed = time.monotonic() - started
    finally:
        time.sleep(0.2)
        honest.stop.set()
        honest.join(timeout=10)
        server.close()
    text = response.get_data(as_text=True)
    assert response.status_code == 412, text
    issue = response.get_json()["issue"][0]
    assert response.get_json()["resourceType"] == "OperationOutcome"
    assert issue["code"] == CODES[fault] and issue["expression"][0].startswith("prefetch.")
    assert issue["diagnostics"].startswith("prefetch key '") and "FHIR" in issue["diagnostics"]
    assert "upstream-secret-text" not in text and "Injected" not in text
    assert elapsed < DEADLINE + MARGIN, elapsed
    assert server.requests, "the faulty server was asked"
    assert len(honest.results) >= 1
    for status, body, took in honest.results:
        assert status == 200 and body == baseline
        assert took < 1.0, took


def test_the_slow_server_takes_the_whole_deadline_not_one_read(app):
    """The deadline is for the call: a server answering each read in 0.6 s (well within the per-read
    timeout of 5 s) gets the call's FHIR reads cut at 1.5 s, after three reads."""
    server = faults.FaultServer(faults.slow(0.6))
    try:
        started = time.monotonic()
        response = app.test_client().post(SERVICE, json=fetching_from(server.base))
        elapsed = time.monotonic() - started
    finally:
        server.close()
    assert response.status_code == 412
    assert "did not finish within the 1.5 s this service allows" in response.get_json()["issue"][0]["diagnostics"]
    assert DEADLINE <= elapsed < DEADLINE + MARGIN
    assert len(server.requests) == 3


def test_default_limits_refuse_an_answer_past_20_mb(make_protocol_app):
    app = make_protocol_app()
    server = faults.FaultServer(faults.huge(25, declare_length=False))
    try:
        started = time.monotonic()
        response = app.test_client().post(SERVICE, json=fetching_from(server.base))
    finally:
        server.close()
    assert response.status_code == 412, response.get_data(as_text=True)
    issue = response.get_json()["issue"][0]
    assert issue["code"] == "too-costly" and "20000000 bytes" in issue["diagnostics"]
    assert time.monotonic() - started < 5
