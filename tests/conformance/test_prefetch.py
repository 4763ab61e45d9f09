"""Prefetch and FHIR resource access (CDS Hooks 2.0 §Providing FHIR Resources to a CDS Service,
§Prefetch Template, §FHIR Resource Access) through the real endpoint, against a REAL local
HTTP FHIR stub (stdlib http.server on a free 127.0.0.1 port; nothing is mocked).

The base call is tests/fixtures/requests/patient-view-high.json on `proto-patient-view`, the
synthetic content of tests/fixtures/content/ (the protocol does not depend on the guidance): its
`PROTO-HIGH` card fires on the level observations of the `observations` key.  The stub answers
the queries of the service's discovered prefetch templates (matched on path and `patient`
parameter) from that case's prefetch values, and records every request it gets with its headers.
The EHR's access token must reach the stub as `Authorization: Bearer` on every request and must
never appear in a log line or a response body.
"""

from __future__ import annotations

import logging
import socket
import time
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.conformance.helpers import FhirStub, Seen, outcome, outcome_body, searchset
from tests.protocol_content import PATIENT_VIEW, patient_view_request

SERVICE = PATIENT_VIEW
RULE = "PROTO-HIGH"  # fires on the level observations of `observations`
TOKEN = f"tok-{uuid.uuid4().hex}-secret"
AUTH = {"access_token": TOKEN, "token_type": "Bearer", "expires_in": 300, "scope": "user/*.read",
        "subject": "dah-cds"}


# ---- the FHIR stub's data ------------------------------------------------------------------------


class CaseData:
    """Answers the discovered prefetch queries of proto-patient-view from the base case's prefetch."""

    def __init__(self, templates: dict[str, str], prefetch: dict, patient_id: str):
        self.prefetch = prefetch
        self.routes: dict[tuple[str, str | None], str] = {}
        for key, template in templates.items():
            if "{{context.patientId}}" not in template:
                continue  # e.g. the encounter read: no encounterId in the case's context
            parts = urlsplit(template.replace("{{context.patientId}}", patient_id))
            patient = parse_qs(parts.query).get("patient", [None])[0]
            self.routes[(parts.path, patient)] = key

    def key_of(self, seen: Seen) -> str | None:
        return self.routes.get((seen.path, seen.query.get("patient", [None])[0]))

    def __call__(self, seen: Seen):
        key = self.key_of(seen)
        if key is None:
            return 404, outcome_body("not-found", f"no route for {seen.path}"), 0
        value = self.prefetch[key]
        if value is None or value.get("resourceType") != "Bundle":
            return (200, value, 0) if value is not None else (404, outcome_body("not-found", key), 0)
        return 200, searchset(value.get("entry", [])), 0


# ---- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def no_token_in_logs(caplog):
    """Every test: no log record of its setup or call phase (DEBUG included) holds the token."""
    caplog.set_level(logging.DEBUG)
    yield caplog
    for phase in ("setup", "call"):
        for record in caplog.get_records(phase):
            text = record.getMessage() + (record.exc_text or "")
            assert TOKEN not in text, f"the access token leaked into the log: {record.name}"


@pytest.fixture
def client(make_protocol_app):
    return make_protocol_app(fhir_retries=0).test_client()


@pytest.fixture
def templates(client) -> dict[str, str]:
    services = {s["id"]: s for s in client.get("/cds-services").get_json()["services"]}
    return services["proto-patient-view"]["prefetch"]


@pytest.fixture
def case_data(templates) -> CaseData:
    request = base_request()
    assert templates.keys() == request["prefetch"].keys() | {"encounter"}  # no encounterId: nothing to send
    return CaseData(templates, base_request()["prefetch"], request["context"]["patientId"])


def base_request() -> dict:
    return patient_view_request()


def call(client, body: dict):
    response = client.post(SERVICE, json=body)
    assert TOKEN not in response.get_data(as_text=True), "the access token leaked into the response"
    return response


def with_server(base: str, drop=(), **prefetch) -> dict:
    """The base request pointed at `base` with the token, without the `drop` keys, with overrides."""
    body = base_request()
    body["fhirServer"] = base
    body["fhirAuthorization"] = dict(AUTH)
    for key in drop:
        del body["prefetch"][key]
    body["prefetch"].update(prefetch)
    return body


def topics(response) -> list[str]:
    return [c["source"]["topic"]["code"] for c in response.get_json()["cards"]]


@pytest.fixture
def baseline(client) -> dict:
    """The response to the case with all of its data prefetched and no fhirServer."""
    response = call(client, base_request())
    assert response.status_code == 200 and RULE in topics(response)
    return response.get_json()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def assert_bearer(stub: FhirStub):
    assert stub.seen
    for seen in stub.seen:
        assert seen.headers.get("Authorization") == f"Bearer {TOKEN}", seen
        assert seen.headers.get("Accept") == "application/fhir+json", seen


# ---- keys present, null, missing ----------------------------------------------------------------


def test_prefetch__keys_sent_are_used_and_nothing_is_fetched(client, stubs, case_data, baseline):
    """cds-hooks_2.0#28 (MAY): "FHIR resources MAY be obtained [by the service] by passing
    'prefetched' data from the CDS Client to the CDS Service in the service call."  Every key
    present -> the cards of the prefetched data, and the FHIR server is never asked."""
    stub = stubs(case_data)
    response = call(client, with_server(stub.base))
    assert response.status_code == 200
    assert response.get_json() == baseline
    assert stub.seen == []


def test_prefetch__key_sent_as_null_means_no_data_and_is_not_fetched(client, stubs, case_data):
    """§Prefetch Template (2.0.1): "If the CDS Client has no data to populate a template prefetch
    key, the prefetch template key MUST have a value of null."  A null key is the client's answer
    "no data": used as such (PROTO-HIGH has no level to fire on), not fetched."""
    stub = stubs(case_data)
    response = call(client, with_server(stub.base, observations=None))
    assert response.status_code == 200
    assert RULE not in topics(response)
    assert stub.seen == []


def test_fhir_resource_access__missing_key_is_fetched_with_the_bearer_token(client, stubs, case_data, baseline):
    """cds-hooks_2.0#60 (MAY) use fhirServer beyond prefetch; cds-hooks_2.0#61 (SHALL): "CDS Hooks
    requires that CDS Services present a valid access token to the FHIR server with each API
    call".  The missing `observations` key is rendered from its discovered template, fetched
    once with `Authorization: Bearer <token>`, and gives the same cards as prefetch."""
    stub = stubs(case_data)
    response = call(client, with_server(stub.base, drop=["observations"]))
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == baseline
    assert stub.paths() == ["Observation"]
    assert stub.seen[0].query["patient"] == ["p01"]
    assert stub.seen[0].query["code"][0].startswith("http://example.org/fhir/CodeSystem/proto-observation|level")
    assert_bearer(stub)


def test_providing_fhir_resources__same_cards_from_prefetch_or_fhir_server(
    client, stubs, case_data, baseline, templates
):
    """cds-hooks_2.0#34 (SHOULD): "CDS Services should be capable of accessing FHIR resources via
    either prefetch or from the CDS Client's FHIR server."  With no prefetch at all, every key
    with a renderable template is fetched (the patient by read, the rest by search) and the
    response is the one prefetch gives."""
    stub = stubs(case_data)
    body = with_server(stub.base)
    del body["prefetch"]
    response = call(client, body)
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == baseline
    fetched = sorted(case_data.key_of(s) for s in stub.seen)
    assert fetched == sorted(k for k in templates if k != "encounter")  # no encounterId: nothing to read
    assert "Patient/p01" in stub.paths()
    assert_bearer(stub)


def test_prefetch_template__operation_outcome_is_missing_and_fetched(client, stubs, case_data, baseline):
    """cds-hooks_2.0#52 (SHOULD): "CDS Services SHOULD check any prefetched data for the existence
    of OperationOutcomes."  A key holding an OperationOutcome (the client could not run the
    query) counts as missing: it is fetched, and the result is the full one."""
    stub = stubs(case_data)
    failed = outcome_body("too-costly", "the EHR could not run this prefetch")
    response = call(client, with_server(stub.base, observations=failed))
    assert response.status_code == 200
    assert response.get_json() == baseline
    assert stub.paths() == ["Observation"]
    assert_bearer(stub)


def test_prefetch__operation_outcome_answered_by_the_server_is_no_data(client, stubs, case_data):
    """cds-hooks_2.0#52 (SHOULD) applied to fetched data: a 200 OperationOutcome from the FHIR
    server is not data; the key is empty and the call goes on."""
    stub = stubs(lambda seen: (200, outcome_body("informational", "nothing here"), 0))
    response = call(client, with_server(stub.base, drop=["observations"]))
    assert response.status_code == 200
    assert RULE not in topics(response)
    assert stub.paths() == ["Observation"]


# ---- paging --------------------------------------------------------------------------------------


def paged_observations(case_data: CaseData, next_base: str):
    """Observation search in 3 pages; the level results (which PROTO-HIGH needs) on page 3."""
    entries = case_data.prefetch["observations"]["entry"]
    late = [e for e in entries if e["resource"]["code"]["coding"][0]["code"] == "level"]
    early = [e for e in entries if e not in late]
    pages = {1: early[:3], 2: early[3:], 3: late}
    assert all(pages.values()) and len(late) == 3

    def answer(seen: Seen):
        if seen.path != "Observation":
            return case_data(seen)
        page = int(seen.query.get("_page", ["1"])[0])
        following = f"{next_base}/Observation?patient=p01&_page={page + 1}" if page < 3 else None
        return 200, searchset(pages[page], following), 0

    return answer


def test_fhir_resource_access__searchset_next_pages_are_followed_and_merged(client, stubs, case_data, baseline):
    """cds-hooks_2.0#61 (SHALL): "present a valid access token to the FHIR server with each API
    call".  A searchset with `next` links (3 pages) is followed to the end on the same server,
    each page requested with the bearer token; the merged entries drive the cards (the
    level results that make PROTO-HIGH fire are on page 3)."""
    holder = {}
    stub = stubs(lambda seen: holder["answer"](seen))
    holder["answer"] = paged_observations(case_data, stub.base)
    response = call(client, with_server(stub.base, drop=["observations"]))
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == baseline
    assert [(s.path, s.query.get("_page")) for s in stub.seen] == [("Observation", None), ("Observation", ["2"]),
                                                                  ("Observation", ["3"])]
    assert_bearer(stub)


def test_fhir_resource_access__next_link_to_another_origin_is_not_followed(client, stubs, case_data, no_token_in_logs):
    """cds-hooks_2.0#61: the token is presented to *the* FHIR server, and §Passing the Access Token:
    it "MUST be treated as a transient value".  A `next` link to another origin (here another
    port) is not followed, so that server never sees the token; the call answers with the data
    of the first page (without page 3, PROTO-HIGH has nothing to fire on) and logs why."""
    foreign = stubs(lambda seen: (200, searchset([]), 0))
    holder = {}
    stub = stubs(lambda seen: holder["answer"](seen))
    holder["answer"] = paged_observations(case_data, foreign.base)
    response = call(client, with_server(stub.base, drop=["observations"]))
    assert response.status_code == 200
    assert RULE not in topics(response)
    assert "data-incomplete" in topics(response)  # the missing pages are said on a card, never silent
    assert foreign.seen == []
    assert stub.paths() == ["Observation"]
    assert "not followed" in no_token_in_logs.text


def test_fhir_resource_access__pages_past_the_limit_are_said_on_a_warning_card(make_protocol_app, stubs, case_data):
    """Data cut short must not look complete: with CDS_FHIR_MAX_PAGES=2 and a 3-page search, the
    call answers with what it read plus one warning card naming the data that was cut short."""
    holder = {}
    stub = stubs(lambda seen: holder["answer"](seen))
    holder["answer"] = paged_observations(case_data, stub.base)
    client = make_protocol_app(fhir_retries=0, fhir_max_pages=2).test_client()
    response = call(client, with_server(stub.base, drop=["observations"]))
    assert response.status_code == 200, response.get_json()
    notices = [c for c in response.get_json()["cards"] if c["source"]["topic"]["code"] == "data-incomplete"]
    assert len(notices) == 1 and notices[0]["indicator"] == "warning"
    assert "observations" in notices[0]["detail"]
    assert RULE not in topics(response)  # its level data was on the page not read
    assert [s.query.get("_page") for s in stub.seen] == [None, ["2"]]


def test_fhir_resource_access__complete_data_has_no_incomplete_notice(client, baseline):
    assert all(c["source"]["topic"]["code"] != "data-incomplete" for c in baseline["cards"])


# ---- the server cannot supply the data -> 412 ------------------------------------------------------


def test_prefetch_template__server_down_is_412(make_protocol_app):
    """cds-hooks_2.0#54 (SHALL): unable to obtain required data because it cannot access the FHIR
    server -> 412 Precondition Failed (connection refused, after the configured retries); the
    OperationOutcome names the prefetch key the EHR could send instead."""
    client = make_protocol_app(fhir_retries=1).test_client()
    started = time.perf_counter()
    issues = outcome(call(client, with_server(f"http://127.0.0.1:{closed_port()}/fhir", drop=["observations"])), 412)
    assert issues[0]["code"] == "transient"
    assert "unreachable" in issues[0]["diagnostics"]
    assert issues[0]["expression"] == ["prefetch.observations"]
    assert time.perf_counter() - started < 5


def test_prefetch_template__server_refusing_the_token_is_412(client, stubs):
    """cds-hooks_2.0#54 (SHALL): "If the CDS Service is unable to obtain required data because it
    cannot access the FHIR server … the service SHALL respond with an HTTP 412".  The FHIR server
    answers 401 to the token -> 412 (issue code `security`), naming the key."""
    stub = stubs(lambda seen: (401, outcome_body("login", "invalid token"), 0))
    issues = outcome(call(client, with_server(stub.base, drop=["observations"])), 412)
    assert issues[0]["code"] == "security"
    assert issues[0]["expression"] == ["prefetch.observations"]
    assert stub.paths() == ["Observation"]
    assert_bearer(stub)


def test_prefetch_template__server_error_echoing_the_token_is_412_without_it(client, stubs, no_token_in_logs):
    """cds-hooks_2.0#54 and §Passing the Access Token ("the access token MUST be treated as a
    transient value"): a failing server that echoes the Authorization header in its
    OperationOutcome gives a 412 that says what failed in the service's own words: the server's
    text is not passed on at all (it is in the log, the token scrubbed from it; the autouse
    fixture checks the log holds no token)."""
    stub = stubs(lambda seen: (500, outcome_body("exception", f"boom for {seen.headers.get('Authorization')}"), 0))
    response = call(client, with_server(stub.base, drop=["observations"]))
    issues = outcome(response, 412)
    assert issues[0]["code"] == "exception"
    assert issues[0]["diagnostics"] == "prefetch key 'observations': the FHIR server answered HTTP 500"
    assert "boom" not in response.get_data(as_text=True)
    assert "boom for Bearer ***" in no_token_in_logs.text


def test_prefetch_template__slow_server_is_412_within_the_timeout(make_protocol_app, stubs, case_data):
    """cds-hooks_2.0#54 and #27 (respond quickly): a FHIR server slower than
    `fhir_timeout_seconds` (0.3 s here) is a 412 `timeout`, answered long before the server
    would have answered."""
    client = make_protocol_app(fhir_timeout_seconds=0.3, fhir_retries=0).test_client()
    stub = stubs(lambda seen: (*case_data(seen)[:2], 2.0))
    started = time.perf_counter()
    issues = outcome(call(client, with_server(stub.base, drop=["observations"])), 412)
    elapsed = time.perf_counter() - started
    assert issues[0]["code"] == "timeout"
    assert issues[0]["expression"] == ["prefetch.observations"]
    assert elapsed < 1.5, elapsed


def test_prefetch_template__no_prefetch_and_no_fhir_server_is_412_naming_the_key(client):
    """cds-hooks_2.0#54 (SHALL): a key missing and no fhirServer to fetch it from -> 412 naming the key."""
    body = base_request()
    del body["prefetch"]["observations"]
    issues = outcome(call(client, body), 412)
    assert issues[0]["expression"] == ["prefetch.observations"]
    assert "observations" in issues[0]["diagnostics"]


# ---- the token stays secret ---------------------------------------------------------------------


def test_fhir_resource_access__token_never_logged_or_echoed(client, stubs, case_data, no_token_in_logs):
    """§Passing the Access Token: "the access token MUST be treated as a transient value by the CDS
    Service".  Over a fetch, a refused token and an invalid request that carries it, the token
    reaches the FHIR server and nothing else: not a log line (DEBUG included), not a body."""
    stub = stubs(case_data)
    assert call(client, with_server(stub.base, drop=["observations", "conditions"])).status_code == 200
    refusing = stubs(lambda seen: (403, outcome_body("forbidden", "no"), 0))
    outcome(call(client, with_server(refusing.base, drop=["observations"])), 412)
    bad = with_server(stub.base)
    bad["fhirAuthorization"]["token_type"] = TOKEN  # invalid, and it must not be echoed
    bad["hookInstance"] = 7
    outcome(call(client, bad), 400)
    assert_bearer(stub)
    assert f"GET {stub.base}/Observation" in no_token_in_logs.text  # the log was captured
    assert TOKEN not in no_token_in_logs.text
