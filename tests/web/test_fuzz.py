"""Fuzzing the request body: whatever arrives, the answer is JSON with a 2xx or 4xx status,
never a 500 and never a traceback."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import CONTENT

BASE = json.loads((CONTENT / "tests" / "SAFE-PCP" / "p14-rtx-selected-sulfa-allergy.json").read_text())["request"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
PATHS = [("hook",), ("hookInstance",), ("context",), ("context", "patientId"), ("context", "selections"),
         ("context", "draftOrders"), ("context", "draftOrders", "entry"), ("prefetch",), ("prefetch", "patient"),
         ("prefetch", "observations"), ("prefetch", "medications", "entry"), ("fhirServer",), ("fhirAuthorization",)]


def mutate(body: dict, path: tuple, value) -> dict:
    body = json.loads(json.dumps(body))
    node = body
    for key in path[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[path[-1]] = value
    return body


def check(response) -> None:
    text = response.get_data(as_text=True)
    assert response.status_code < 500, text
    assert "Traceback" not in text
    json.loads(text)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(PATHS), value=json_values)
def test_mutated_requests_never_fail_with_a_server_error(client, path, value):
    check(client.post("/cds-services/safety-order-select", json=mutate(BASE, path, value)))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=json_values)
def test_arbitrary_json_bodies_are_rejected_cleanly(client, body):
    check(client.post("/cds-services/dah-patient-view", json=body))
    check(client.post("/cds-services/dah-patient-view/feedback", json=body))
    check(client.post("/PlanDefinition/dah/$apply", json=body))


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=200))
def test_arbitrary_bytes_are_rejected_cleanly(client, raw):
    check(client.post("/cds-services/dah-patient-view", data=raw, content_type="application/json"))
