"""One budget for a call's FHIR work (service.fhir.budget) through the real FhirClient against
misbehaving loopback servers (tests/fault_servers.py): the deadline holds whatever the server
does (slow answers, a body or headers dripped one byte at a time, retries), answers past the
size limits are cut off without being read whole, and none of it takes longer than the deadline
plus a small margin."""

from __future__ import annotations

import time

import pytest

from service.errors import FhirServerError, FhirTimeout, FhirTooLarge
from service.fhir.budget import Budget
from service.fhir.client import FhirClient
from service.web.errors import answer
from tests import fault_servers as faults

MARGIN = 0.6  # seconds past the deadline a 412 may take (thread wake-up, socket shutdown)


@pytest.fixture
def serve():
    servers = []

    def make(behaviour):
        server = faults.FaultServer(behaviour)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


def client(server, seconds: float, **options) -> FhirClient:
    budget = Budget(seconds, options.pop("max_call_bytes", None))
    return FhirClient(server.base, access_token="tok", budget=budget, **({"timeout": 5.0, "retries": 0} | options))


def timed(fn):
    started = time.monotonic()
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 (the test inspects it)
        return exc, time.monotonic() - started
    return None, time.monotonic() - started


def test_a_server_slow_on_every_read_is_stopped_by_the_calls_deadline(serve):
    """Each read (0.6 s) is well within the per-read timeout (5 s); the call's 1.5 s are not."""
    server = serve(faults.slow(0.6))
    fhir = client(server, 1.5)
    reads = [f"Observation?patient=p{i}" for i in range(5)]
    error, elapsed = timed(lambda: [fhir.get(url) for url in reads])
    assert isinstance(error, FhirTimeout), error
    assert 1.5 <= elapsed < 1.5 + MARGIN, elapsed
    assert len(server.requests) == 3  # 0.6 + 0.6 + the third cut at 1.5
    assert "did not finish within the 1.5 s" in error.reason


def test_a_body_dripped_one_byte_at_a_time_is_stopped_at_the_deadline(serve):
    """One byte every 0.3 s never trips a per-read timeout of 5 s; the deadline (1 s) ends it."""
    server = serve(faults.drip(0.3))
    error, elapsed = timed(lambda: client(server, 1.0).get("Patient/p1"))
    assert isinstance(error, FhirTimeout), error
    assert 1.0 <= elapsed < 1.0 + MARGIN, elapsed


def test_headers_dripped_one_byte_at_a_time_are_stopped_at_the_deadline(serve):
    """The read of the status line itself never ends on its own: the budget shuts the socket down."""
    server = serve(faults.drip_headers(0.3))
    error, elapsed = timed(lambda: client(server, 1.0).get("Patient/p1"))
    assert isinstance(error, FhirTimeout), error
    assert 1.0 <= elapsed < 1.0 + MARGIN, elapsed


def test_the_per_read_timeout_is_bounded_by_the_time_left(serve):
    server = serve(faults.slow(3.0))
    error, elapsed = timed(lambda: client(server, 0.8, timeout=10.0).get("Patient/p1"))
    assert isinstance(error, FhirTimeout)
    assert elapsed < 0.8 + MARGIN


def test_retries_and_their_backoff_stay_within_the_deadline(serve):
    server = serve(faults.answer(503, {"resourceType": "OperationOutcome"}, delay=0.3))
    error, elapsed = timed(lambda: client(server, 1.0, retries=50).get("Patient/p1"))
    assert isinstance(error, FhirTimeout), error
    assert elapsed < 1.0 + MARGIN
    assert 2 <= len(server.requests) <= 4


def test_an_expired_budget_sends_nothing(serve):
    server = serve(faults.slow(0.0))
    fhir = client(server, 0.0)
    with pytest.raises(FhirTimeout):
        fhir.get("Patient/p1")
    assert server.requests == []


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "no-content-length"])
def test_an_answer_past_the_size_limit_is_refused_without_reading_it_whole(serve, declared):
    server = serve(faults.huge(8, declare_length=declared))
    error, elapsed = timed(lambda: client(server, 10.0, max_response_bytes=1_000_000).search_all("Observation"))
    assert isinstance(error, FhirTooLarge), error
    status, outcome = answer(error)
    assert status == 412 and outcome["issue"][0]["code"] == "too-costly"
    assert "1000000 bytes" in error.reason
    assert elapsed < 2.0


def test_the_bytes_of_all_answers_of_a_call_are_limited_together(serve):
    """Each answer (about 1 MB) is under the per-answer limit; the third one passes the call's 2.5 MB."""
    server = serve(faults.huge(1))
    fhir = client(server, 10.0, max_call_bytes=2_500_000)
    fhir.get("Observation?patient=a")
    fhir.get("Observation?patient=b")
    with pytest.raises(FhirTooLarge):
        fhir.get("Observation?patient=c")


def test_a_self_linking_search_is_a_server_fault_after_one_page(serve):
    server = serve(faults.self_linking())
    with pytest.raises(FhirServerError, match="repeats a page"):
        client(server, 5.0).search_all("Observation?patient=p1")
    assert len(server.requests) == 1


def test_the_budget_deadline_ends_a_read_on_another_thread_without_touching_other_sockets(serve):
    """The budget's timer shuts down only the sockets opened inside its own block: a second call with
    its own budget, running at the same time, is unaffected."""
    import threading

    slow_server, fast_server = serve(faults.drip(0.2)), serve(faults.slow(0.1))
    results = {}

    def honest():
        fhir = client(fast_server, 10.0)
        results["honest"] = [fhir.get(f"Patient/p{i}")["resourceType"] for i in range(12)]

    thread = threading.Thread(target=honest)
    thread.start()
    error, _ = timed(lambda: client(slow_server, 0.5).get("Patient/p1"))
    thread.join()
    assert isinstance(error, FhirTimeout)
    assert results["honest"] == ["Bundle"] * 12
