"""Serving hygiene: security headers on every response, CORS origins by configuration with safe
defaults (never the caller's origin repeated for "*", never `null`), the trace only where
allowed, and log lines that a caller cannot forge or flood."""

from __future__ import annotations

import logging
import re

import pytest

from service.errors import ConfigurationError
from tests.conformance.helpers import base_request
from tests.conftest import T0
from tests.protocol_content import PATIENT_VIEW
from tests.trust_helpers import claims, es384_key, jwks, sign, write_clients

SERVICE = PATIENT_VIEW
ISS = "https://ehr.example.org"
KEY = es384_key()
EHR_ORIGIN = "https://ehr.example.org"


@pytest.fixture
def make_client(tmp_path, make_protocol_app):
    def make(trusted: bool = False, **config):
        cfg = {"fhir_retries": 0, **config}
        if trusted:
            cfg["trusted_clients"] = write_clients(tmp_path / "clients.json", {"iss": ISS, "jwks": jwks(KEY),
                                                                               "fhirServers": []})
        return make_protocol_app(**cfg).test_client()

    return make


def bearer(path: str = SERVICE) -> dict:
    return {"Authorization": "Bearer " + sign(KEY, claims(ISS, "http://localhost" + path, T0.timestamp()))}


# ---- security headers ----------------------------------------------------------------------------


def test_every_response_carries_the_security_headers(make_client):
    client = make_client()
    json_answers = {
        "discovery": client.get("/cds-services"),
        "cards": client.post(SERVICE, json=base_request()),
        "400": client.post(SERVICE, json={}),
        "404 service": client.post("/cds-services/nope", json={}),
        "404 route": client.get("/nowhere"),
        "405": client.delete("/cds-services"),
        "412": client.post(SERVICE, json=dict(base_request(), prefetch={})),
        "413": client.post(SERVICE, data=b"x" * 5_000_001, content_type="application/json"),
        "415": client.post(SERVICE, data="x", content_type="text/plain"),
        "$apply": client.post("/PlanDefinition/proto/$apply", json={"resourceType": "Parameters"}),
    }
    for name, response in json_answers.items():
        assert response.mimetype == "application/json" or response.mimetype.endswith("+json"), name
        assert response.headers["X-Content-Type-Options"] == "nosniff", name
        assert response.headers["Cache-Control"] == "no-store", name
        assert response.headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'", name
    page = client.get("/guidance")
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Content-Security-Policy"] == "default-src 'none'; style-src 'unsafe-inline'"
    assert page.headers["Referrer-Policy"] == "no-referrer"


# ---- CORS --------------------------------------------------------------------------------------------


def preflight(client, origin: str):
    return client.open(SERVICE, method="OPTIONS", headers={"Origin": origin, "Access-Control-Request-Method": "POST",
                                                           "Access-Control-Request-Headers": "authorization"})


@pytest.mark.parametrize("origin", [EHR_ORIGIN, "null", "https://evil.example"])
def test_open_mode_allows_any_origin_with_a_literal_star_never_repeating_the_origin(make_client, origin):
    client = make_client()
    for response in (preflight(client, origin), client.post(SERVICE, json=base_request(), headers={"Origin": origin})):
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        assert "Access-Control-Allow-Credentials" not in response.headers


@pytest.mark.parametrize("origin", [EHR_ORIGIN, "null", "https://sandbox.cds-hooks.org"])
def test_with_trusted_clients_no_origin_is_allowed_unless_configured(make_client, origin):
    client = make_client(trusted=True)
    for response in (preflight(client, origin), client.get("/cds-services", headers={"Origin": origin}),
                     client.post(SERVICE, json=base_request(), headers={"Origin": origin, **bearer()})):
        assert "Access-Control-Allow-Origin" not in response.headers


def test_configured_origins_are_answered_exactly_and_null_never(make_client):
    client = make_client(trusted=True, cors_origins=f"{EHR_ORIGIN}, http://localhost:3000")
    for origin, allowed in ((EHR_ORIGIN, True), ("http://localhost:3000", True), ("null", False),
                            ("https://ehr.example.org.evil.example", False), ("https://EVIL.example", False)):
        response = client.get("/cds-services", headers={"Origin": origin})
        assert (response.headers.get("Access-Control-Allow-Origin") == origin) is allowed, origin
        if not allowed:
            assert "Access-Control-Allow-Origin" not in response.headers


@pytest.mark.parametrize("setting, said", [
    ("null", "must not list null"), ("https://ehr.example.org, null", "must not list null"),
    ("https://ehr.example.org/", "is not an origin"), ("ehr.example.org", "is not an origin"),
    ("https://ehr.example.org/path", "is not an origin"), ("*, https://ehr.example.org", "either *"),
])
def test_an_unsafe_cors_setting_stops_the_start(make_client, setting, said):
    with pytest.raises(ConfigurationError, match=re.escape(said)):
        make_client(cors_origins=setting)


def test_an_empty_setting_means_no_origin_even_in_open_mode(make_client):
    response = make_client(cors_origins="").get("/cds-services", headers={"Origin": EHR_ORIGIN})
    assert "Access-Control-Allow-Origin" not in response.headers


# ---- trace only where allowed ------------------------------------------------------------------------


def traced(response) -> bool:
    from cards.render import TRACE_EXTENSION
    from service.operations import TRACE_EXTENSION as APPLY_TRACE

    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    if "cards" in body:
        return TRACE_EXTENSION in body.get("extension", {})
    return any(e.get("url") == APPLY_TRACE for e in body.get("extension", []))


def apply_body() -> dict:
    return {"resourceType": "Parameters", "parameter": [{"name": "subject", "valueString": "Patient/p01"}]}


@pytest.mark.parametrize("trusted, allowed, shown", [
    (False, None, True), (True, None, False), (True, True, True), (False, False, False)],
    ids=["open-default", "trusted-default", "trusted-allowed", "open-refused"])
def test_the_trace_is_shown_only_where_allowed(make_client, trusted, allowed, shown):
    client = make_client(trusted=trusted, **({} if allowed is None else {"trace_allowed": allowed}))
    auth = (lambda path: bearer(path)) if trusted else (lambda path: {})
    assert traced(client.post(SERVICE + "?_trace=true", json=base_request(), headers=auth(SERVICE))) is shown
    assert traced(client.post(SERVICE, json=base_request(), headers={"X-CDS-Trace": "true", **auth(SERVICE)})) is shown
    path = "/PlanDefinition/proto/$apply"
    assert traced(client.post(path + "?_trace=true", json=apply_body(), headers=auth(path))) is shown


def test_trace_default_is_also_only_where_allowed(make_client):
    client = make_client(trusted=True, trace_default=True)
    assert not traced(client.post(SERVICE, json=base_request(), headers=bearer()))


# ---- log lines ----------------------------------------------------------------------------------------


NASTY = "a\nFORGED 2026-03-01 INFO service.calls ok\r\x1b[2J" + "z" * 1_000_000


def test_no_request_value_reaches_the_log_or_the_answer_as_a_new_line_or_whole(make_client, caplog):
    caplog.set_level(logging.DEBUG)
    client = make_client()
    body = base_request()
    answers = [
        client.post(SERVICE, json=dict(body, hookInstance=NASTY)),
        client.post(SERVICE, json=dict(body, fhirServer="http://x/" + NASTY)),
        client.post(SERVICE, json=dict(body, hook=NASTY)),
        client.post(SERVICE, json=dict(body, context=dict(body["context"], patientId=NASTY))),
        client.post("/cds-services/" + NASTY.replace("/", ""), json=body),
        client.get("/guidance/" + NASTY.replace("/", "")),
        client.post(SERVICE + "/feedback", json={"feedback": [{"card": NASTY, "outcome": "overridden",
                                                               "outcomeTimestamp": "2026-03-01T12:00:00Z"}]}),
        client.post("/PlanDefinition/$apply", json={"resourceType": "Parameters", "parameter": [
            {"name": "url", "valueUri": NASTY}, {"name": "subject", "valueString": "Patient/p1"}]}),
        client.post("/PlanDefinition/$apply", json={"resourceType": "Parameters", "parameter": [
            {"name": NASTY, "valueString": "x"}, {"name": NASTY, "valueString": "y"}]}),
        client.post("/safety-order-select".join(["/cds-services", ""]), json=dict(
            body, hook="order-select", context=dict(body["context"], selections=[NASTY], draftOrders={
                "resourceType": "Bundle", "type": "collection", "entry": []}))),
        make_client(trusted=True).post(SERVICE, json=body, headers={"Authorization": "Bearer " + "z" * 9000}),
    ]
    for answer in answers:
        assert 400 <= answer.status_code < 500 and len(answer.get_data()) < 3000, answer.get_data()[:300]
    records = [r for r in caplog.records if r.name.startswith("service")]
    assert len(records) >= len(answers)
    for record in records:
        message = record.getMessage()
        assert "\n" not in message and "\r" not in message and "\x1b" not in message, message[:300]
        assert len(message) < 2500, (record.name, message[:300])
