"""A fuzz campaign on every POST endpoint (hook services, feedback, PlanDefinition/$apply and
ActivityDefinition/$apply): valid bodies with one part replaced by anything JSON can hold,
arbitrary JSON documents, JSON text past the parser's limits (nesting, integer size, lone
surrogates, NaN), and arbitrary bytes.  Whatever arrives, the answer is a 2xx or 4xx with a
JSON body (an OperationOutcome for errors), never a 5xx and never a traceback.  The campaign
counts the bodies it sends: at least 2,000 in all.  The service runs the synthetic content
(tests/fixtures/content/: a for-each over the drafts with an update and a replacement, value
comparisons, ValueSet membership), so the valid bodies reach the engine and the card renderer.
"""

from __future__ import annotations

import copy
import json
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.protocol_content import ORDER_SELECT, PATIENT_VIEW, order_request, patient_view_request

HOOK_CASE = {"service": ORDER_SELECT, "request": order_request("order-select")}
PV_CASE = {"service": PATIENT_VIEW, "request": patient_view_request()}
ENDPOINTS = [ORDER_SELECT, PATIENT_VIEW, PATIENT_VIEW + "/feedback", "/PlanDefinition/proto/$apply",
             "/PlanDefinition/$apply", "/ActivityDefinition/proto-recheck/$apply", "/ActivityDefinition/$apply"]
SENT: Counter = Counter()
CAMPAIGN = {"hook", "feedback", "apply", "documents", "past-limits", "bytes"}
RAN: set[str] = set()

ODD_STRINGS = ["\ud800", "x\udfffy", "\u0000", "a\nb\r\x1b[2J", "\u2028", "9" * 300, "Patient/../x", "%00",
               "http://user:pw@127.0.0.1:9/fhir", "{{context.patientId}}", "x" * 5000, ""]
leaves = (st.none() | st.booleans() | st.integers() | st.integers(min_value=-(10 ** 300), max_value=10 ** 300)
          | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20) | st.sampled_from(ODD_STRINGS))
json_values = st.recursive(
    leaves,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10) | st.sampled_from(
        ["resourceType", "entry", "resource", "name", "part", "valueString", "id", "reference", "\ud800"]),
        children, max_size=4),
    max_leaves=20,
)

HOOK_PATHS = [
    ("hook",),
    ("hookInstance",),
    ("context",),
    ("context", "patientId"),
    ("context", "userId"),
    ("context", "selections"),
    ("context", "selections", 0),
    ("context", "draftOrders"),
    ("context", "draftOrders", "entry"),
    ("context", "draftOrders", "entry", 0, "resource"),
    ("prefetch",),
    ("prefetch", "patient"),
    ("prefetch", "observations"),
    ("prefetch", "encounter"),
    ("prefetch", "observations", "entry", 4, "resource", "valueQuantity"),
    ("prefetch", "conditions", "entry", 0),
    ("prefetch", "conditions", "link"),
    ("fhirServer",),
    ("fhirAuthorization",),
    ("fhirAuthorization", "access_token"),
    ("extension",),
    (),
]
FEEDBACK_PATHS = [("feedback",), ("feedback", 0), ("feedback", 0, "card"), ("feedback", 0, "outcome"),
                  ("feedback", 0, "outcomeTimestamp"), ("feedback", 0, "acceptedSuggestions"),
                  ("feedback", 0, "acceptedSuggestions", 0), ("feedback", 0, "acceptedSuggestions", 0, "id"),
                  ("feedback", 0, "overrideReason"), ("feedback", 0, "overrideReason", "reason"),
                  ("feedback", 0, "overrideReason", "userComment"), ("feedback", 1), ()]
APPLY_PATHS = [
    ("resourceType",),
    ("parameter",),
    ("parameter", 0),
    ("parameter", 0, "name"),
    ("parameter", 0, "valueString"),
    ("parameter", 1, "valueCode"),
    ("parameter", 2, "part"),
    ("parameter", 2, "part", 0),
    ("parameter", 2, "part", 0, "name"),
    ("parameter", 2, "part", 0, "valueString"),
    ("parameter", 2, "part", 1, "resource"),
    ("parameter", 3, "resource"),
    ("parameter", 3, "resource", "entry"),
    ("parameter", 4),
    ("parameter", 4, "name"),
    ("parameter", 5, "valueBoolean"),
    (),
]


@pytest.fixture
def client(make_protocol_app):
    return make_protocol_app(fhir_retries=0, call_deadline_seconds=1.0, fhir_timeout_seconds=0.5).test_client()


def mutate(body, path: tuple, value):
    """`body` with the value at `path` replaced (missing containers created; an index past the end appends)."""
    if not path:
        return copy.deepcopy(value)
    body = copy.deepcopy(body)
    node = body
    for key, following in zip(path[:-1], path[1:], strict=True):
        fresh = [] if isinstance(following, int) else {}
        if isinstance(node, list):
            while len(node) <= key:
                node.append(fresh)
            if not isinstance(node[key], (dict, list)):
                node[key] = fresh
            node = node[key]
        else:
            if not isinstance(node.get(key), (dict, list)):
                node[key] = fresh
            node = node[key]
    last = path[-1]
    if isinstance(node, list):
        if not isinstance(last, int):
            node.append(value)
        elif last < len(node):
            node[last] = value
        else:
            node.append(value)
    elif isinstance(last, int):
        node[str(last)] = value
    else:
        node[last] = value
    return body


def encode(body) -> bytes:
    return json.dumps(body).encode()  # NaN, Infinity and lone surrogates (as \\ud800) go out as JSON text


def check(client, path: str, raw: bytes, kind: str) -> None:
    SENT[kind] += 1
    response = client.post(path, data=raw, content_type="application/json")
    text = response.get_data(as_text=True)
    assert response.status_code < 500, (path, raw[:300], text[:500])
    assert "Traceback" not in text
    answer = json.loads(text)
    if response.status_code >= 400:
        assert answer["resourceType"] == "OperationOutcome" and answer["issue"], answer


def apply_body() -> dict:
    prefetch = PV_CASE["request"]["prefetch"]
    return {"resourceType": "Parameters", "parameter": [
        {"name": "subject", "valueString": "Patient/" + PV_CASE["request"]["context"]["patientId"]},
        {"name": "hook", "valueCode": "patient-view"},
        {"name": "prefetchData", "part": [{"name": "key", "valueString": "observations"},
                                          {"name": "data", "resource": prefetch["observations"]}]},
        {"name": "data", "resource": {"resourceType": "Bundle", "type": "collection",
                                      "entry": [{"resource": prefetch["patient"]}]}},
        {"name": "practitioner", "valueString": "Practitioner/u1"},
        {"name": "useServerData", "valueBoolean": False}]}


def campaign(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@campaign(500)
@given(case=st.sampled_from([HOOK_CASE, PV_CASE]), path=st.sampled_from(HOOK_PATHS), value=json_values)
def test_hook_calls_with_one_part_replaced(client, case, path, value):
    check(client, case["service"], encode(mutate(case["request"], path, value)), "hook")
    RAN.add("hook")


@pytest.fixture
def issued(client) -> dict:
    cards = client.post(PATIENT_VIEW, json=PV_CASE["request"]).get_json()["cards"]
    card = next(c for c in cards if c.get("suggestions"))
    return {"feedback": [
        {"card": card["uuid"], "outcome": "accepted", "outcomeTimestamp": "2026-03-01T12:05:00Z",
         "acceptedSuggestions": [{"id": card["suggestions"][0]["uuid"]}]},
        {"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-03-01T12:06:00Z",
         "overrideReason": {"reason": {"code": "x", "system": "http://example.org"}, "userComment": "no"}}]}


@campaign(400)
@given(path=st.sampled_from(FEEDBACK_PATHS), value=json_values)
def test_feedback_with_one_part_replaced(client, issued, path, value):
    check(client, PATIENT_VIEW + "/feedback", encode(mutate(issued, path, value)), "feedback")
    RAN.add("feedback")


@campaign(500)
@given(endpoint=st.sampled_from(ENDPOINTS[3:]), path=st.sampled_from(APPLY_PATHS), value=json_values)
def test_apply_parameters_with_one_part_replaced(client, endpoint, path, value):
    check(client, endpoint, encode(mutate(apply_body(), path, value)), "apply")
    RAN.add("apply")


@campaign(80)
@given(body=json_values)
def test_arbitrary_json_documents(client, body):
    raw = encode(body)
    for endpoint in ENDPOINTS:
        check(client, endpoint, raw, "documents")
    RAN.add("documents")


past_limits = st.one_of(
    st.integers(min_value=65, max_value=3000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(min_value=65, max_value=200).map(lambda n: b'{"hook": ' + b'{"a": ' * n + b"1" + b"}" * (n + 1)),
    st.integers(min_value=4301, max_value=20000).map(lambda n: b'{"hookInstance": ' + b"7" * n + b"}"),
    st.sampled_from([b'{"feedback": [{"card": "\\ud800"}]}', b'{"hookInstance": "\\udc00"}', b'{"\\ud83d": 1}',
                     b'{"hookInstance": NaN}', b'{"x": -Infinity}', b'{"x": 1e99999}', b"\xef\xbb\xbf{}",
                     b'{"resourceType": "Parameters", "parameter": [{"name": "prefetchData", "part": 5}]}',
                     b'{"resourceType": "Parameters", "parameter": [{"name": {"a": 1}}]}',
                     b'{"resourceType": "Parameters", "parameter": "subject"}']),
)


@campaign(60)
@given(raw=past_limits)
def test_json_text_past_the_parse_limits(client, raw):
    for endpoint in ENDPOINTS:
        check(client, endpoint, raw, "past-limits")
    RAN.add("past-limits")


@campaign(60)
@given(raw=st.binary(max_size=200) | st.text(max_size=100).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_arbitrary_bytes(client, raw):
    for endpoint in ENDPOINTS:
        check(client, endpoint, raw, "bytes")
    RAN.add("bytes")


def test_the_campaign_sent_at_least_2000_bodies():
    if RAN != CAMPAIGN:
        pytest.skip("only part of the campaign ran")
    assert sum(SENT.values()) >= 2000, SENT
