"""What operators read (service.web.ops, service.metrics, service.logcontext), in process: /health,
/ready (503 naming what is not ready), /metrics changed by a hook call and kept to this machine,
the request id echoed and on every log line of the call with its hookInstance, JSON log lines,
and the cost of recording a call's metrics."""

from __future__ import annotations

import dataclasses
import json
import logging
import socket
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine

from service import logcontext, metrics
from tests.conformance.helpers import base_request, minimal_request
from tests.protocol_content import PATIENT_VIEW


def sample(client, name: str, **labels) -> float:
    """The value of one sample of GET /metrics (0 when absent)."""
    response = client.get("/metrics")
    assert response.status_code == 200
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return 0.0


@pytest.fixture
def client(app):
    return app.test_client()


def test_health_answers_without_consulting_anything(client, app):
    app.extensions["cds"].store.engine = create_engine("sqlite:////nonexistent-dir/x/feedback.sqlite3")
    response = client.get("/health")
    assert response.status_code == 200 and response.get_json() == {"status": "up"}


def test_ready_when_content_is_loaded_and_the_database_answers(client):
    response = client.get("/ready")
    assert response.status_code == 200
    assert response.get_json()["status"] == "ready" and response.get_json()["services"] >= 3


def test_ready_is_503_naming_the_database_without_its_url(client, app):
    app.extensions["cds"].store.engine = create_engine("sqlite:////nonexistent-dir/x/feedback.sqlite3")
    response = client.get("/ready")
    assert response.status_code == 503
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert [i["expression"] for i in outcome["issue"]] == [["database"]]
    assert "nonexistent" not in response.get_data(as_text=True)


def test_ready_is_503_naming_the_content_when_no_service_is_loaded(client, app):
    rt = app.extensions["cds"]
    rt.content = dataclasses.replace(rt.content, services={})
    response = client.get("/ready")
    assert response.status_code == 503
    assert [i["expression"] for i in response.get_json()["issue"]] == [["content"]]


def test_probes_need_no_token_with_trusted_clients_and_a_hook_call_still_does(tmp_path, synthetic_content):
    from tests.conftest import T0
    from tests.trust_helpers import es384_key, trusted_client_factory

    client = trusted_client_factory(tmp_path, synthetic_content, "https://ehr.example.org", es384_key(), T0)([])
    assert client.get("/health").status_code == 200
    assert client.get("/ready").status_code == 200
    assert client.get("/metrics").status_code == 200
    assert client.post(PATIENT_VIEW, json=base_request()).status_code == 401


def test_a_hook_call_changes_the_metrics(client):
    before_cards = sample(client, "cds_cards_total", rule="PROTO-HIGH", indicator="warning")
    before_calls = sample(client, "cds_requests_total", service="proto-patient-view", status="200")
    response = client.post(PATIENT_VIEW, json=base_request())
    assert response.status_code == 200
    assert "PROTO-HIGH" in [c["source"]["topic"]["code"] for c in response.get_json()["cards"]]
    assert sample(client, "cds_cards_total", rule="PROTO-HIGH", indicator="warning") == before_cards + 1
    assert sample(client, "cds_requests_total", service="proto-patient-view", status="200") == before_calls + 1
    assert sample(client, "cds_request_duration_seconds_count", service="proto-patient-view", status="200") >= 1
    version = client.application.extensions["cds"].content_status.version  # as GET /status/content says
    assert sample(client, "cds_content_info", version=version) == 1
    assert sample(client, "cds_content_services") >= 3


def test_an_unknown_service_is_counted_under_one_label(client):
    before = sample(client, "cds_requests_total", service="unknown", status="404")
    assert client.post("/cds-services/no-such-\u00e9-service", json=base_request()).status_code == 404
    assert sample(client, "cds_requests_total", service="unknown", status="404") == before + 1


def test_metrics_are_served_to_this_machine_only_unless_configured(make_protocol_app):
    remote = {"REMOTE_ADDR": "10.1.2.3"}
    closed = make_protocol_app().test_client()
    assert closed.get("/metrics", environ_base=remote).status_code == 403
    assert closed.get("/health", environ_base=remote).status_code == 200
    opened = make_protocol_app(metrics_public=True).test_client()
    response = opened.get("/metrics", environ_base=remote)
    assert response.status_code == 200 and "cds_requests_total" in response.get_data(as_text=True)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def records(caplog):
    caplog.set_level(logging.DEBUG)
    caplog.handler.addFilter(logcontext.ContextFilter())
    return caplog


def test_request_id_is_echoed_and_on_every_line_of_the_call_with_its_hook_instance(make_protocol_app, records):
    """A call whose data cannot be fetched: the FHIR fetch lines, the 412 line and the access line all
    carry the caller's request id and the call's hookInstance."""
    client = make_protocol_app(fhir_retries=1).test_client()
    body = minimal_request("patient-view")
    body["prefetch"] = {}
    body["fhirServer"] = f"http://127.0.0.1:{_closed_port()}/fhir"
    body["hookInstance"] = "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea"
    response = client.post(PATIENT_VIEW, json=body, headers={"X-Request-ID": "lb-7f3a.42"})
    assert response.status_code == 412
    assert response.headers["X-Request-ID"] == "lb-7f3a.42"
    mine = [r for r in records.records if getattr(r, "request_id", None) == "lb-7f3a.42"]
    by_logger = {r.name for r in mine}
    assert {"service.fhir", "service.web", "service.access"} <= by_logger, by_logger
    assert all(r.hook_instance == "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea" for r in mine
               if r.name in ("service.fhir", "service.web"))
    assert any(r.getMessage().startswith("412 ") for r in mine)
    # The next request does not inherit this one's context.
    client.get("/health")
    last = [r for r in records.records if r.name == "service.access"][-1]
    assert last.request_id != "lb-7f3a.42" and last.hook_instance is None


@pytest.mark.parametrize("header", [None, "", "x" * 129, "two words", "a\r\nInjected: 1", "\u00e9t\u00e9"])
def test_an_unusable_request_id_is_replaced_by_a_generated_one(client, header):
    headers = {} if header is None else {"X-Request-ID": header}
    try:
        response = client.get("/health", headers=headers)
    except ValueError:  # werkzeug itself refuses a header with a line break
        assert "\n" in (header or "")
        return
    echoed = response.headers["X-Request-ID"]
    assert echoed != header and len(echoed) == 32 and int(echoed, 16) >= 0


def test_json_lines_are_one_event_each_with_the_call_context(records, make_protocol_app):
    client = make_protocol_app().test_client()
    response = client.post(PATIENT_VIEW, json=base_request(), headers={"X-Request-ID": "req-1"})
    assert response.status_code == 200
    formatter = logcontext.JsonFormatter()
    call_line = next(r for r in records.records if r.name == "service.calls" and "cards=" in r.getMessage())
    event = json.loads(formatter.format(call_line))
    assert event["request_id"] == "req-1" and event["hookInstance"] == base_request()["hookInstance"]
    assert event["level"] == "INFO" and event["logger"] == "service.calls" and "\n" not in formatter.format(call_line)
    text = logcontext.TextFormatter().format(call_line)
    assert f"[rid=req-1 hookInstance={base_request()['hookInstance']}]" in text


def test_no_token_reaches_a_log_line(records, make_protocol_app):
    client = make_protocol_app(fhir_retries=0).test_client()
    body = minimal_request("patient-view")
    body["prefetch"] = {}
    body["fhirServer"] = f"http://127.0.0.1:{_closed_port()}/fhir"
    body["fhirAuthorization"] = {"access_token": "SECRET-TOKEN-123", "token_type": "Bearer", "expires_in": 300,
                                 "scope": "patient/*.read", "subject": "cds"}
    assert client.post(PATIENT_VIEW, json=body).status_code == 412
    formatter = logcontext.JsonFormatter()
    assert records.records and not any("SECRET-TOKEN-123" in formatter.format(r) for r in records.records)


def test_configure_writes_json_lines_to_its_stream(tmp_path):
    import io

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    root.handlers[:] = []
    stream = io.StringIO()
    try:
        logcontext.configure("INFO", "json", stream)
        tokens = logcontext.bind_request("r-9")
        logcontext.bind_hook_instance("h\n1")
        logging.getLogger("service.test").info("hello\nworld")
        logcontext.reset(tokens)
        logging.getLogger("service.test").debug("not at INFO")
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    event = json.loads(lines[0])
    assert event["message"] == "hello\\nworld" and event["request_id"] == "r-9" and event["hookInstance"] == "h\\n1"


def test_recording_a_call_costs_a_few_microseconds():
    cards = [{"indicator": "warning", "source": {"topic": {"code": "PROTO-HIGH"}}}] * 3
    rounds = 2000
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(rounds):
            metrics.request_done("proto-patient-view", 200, 0.012)
            metrics.cards_answered(cards)
        best = min(best, (time.perf_counter() - started) / rounds)
    print(f"metrics per call: {best * 1e6:.1f} us")
    assert best < 50e-6  # typically 3-6 us idle; generous for a loaded machine


def test_a_failed_fhir_fetch_is_timed_and_counted(make_protocol_app):
    client = make_protocol_app(fhir_retries=0).test_client()
    before = sample(client, "cds_fhir_request_failures_total", method="GET", reason="FhirUnavailable")
    timed = sample(client, "cds_fhir_request_duration_seconds_count", method="GET")
    body = minimal_request("patient-view")
    body["prefetch"] = {}
    body["fhirServer"] = f"http://127.0.0.1:{_closed_port()}/fhir"
    assert client.post(PATIENT_VIEW, json=body).status_code == 412
    assert sample(client, "cds_fhir_request_failures_total", method="GET", reason="FhirUnavailable") > before
    assert sample(client, "cds_fhir_request_duration_seconds_count", method="GET") > timed


def test_a_failed_content_reload_is_counted_and_the_content_kept(client, app):
    from service.content.fhir_source import FhirContentSource
    from service.fhir.client import FhirClient

    rt = app.extensions["cds"]
    served = rt.content
    failed = sample(client, "cds_content_reloads_total", result="failed")
    source = FhirContentSource(FhirClient(f"http://127.0.0.1:{_closed_port()}/fhir", retries=0, timeout=2))
    assert source.refresh(rt) is False
    assert rt.content is served
    assert sample(client, "cds_content_reloads_total", result="failed") == failed + 1
