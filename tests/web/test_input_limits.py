"""Input limits at the HTTP boundary: whatever a caller sends, the answer is a 4xx OperationOutcome
that says which limit, never a 500 (RecursionError, ValueError, a database that cannot store a
string) and never a value logged or stored whole."""

from __future__ import annotations

import json
import logging

import pytest

from tests.conformance.helpers import base_request, outcome
from tests.protocol_content import ORDER_SELECT, PATIENT_VIEW

SERVICE = PATIENT_VIEW
FEEDBACK = SERVICE + "/feedback"
APPLY = "/PlanDefinition/proto/$apply"
ENDPOINTS = [SERVICE, FEEDBACK, APPLY, "/ActivityDefinition/$apply"]


@pytest.fixture
def make_client(make_protocol_app):
    def make(**config):
        return make_protocol_app(**config).test_client()

    return make


@pytest.fixture
def client(make_client):
    return make_client()


def post_raw(client, path: str, raw: bytes):
    return client.post(path, data=raw, content_type="application/json")


def diagnostics(issues: list[dict]) -> str:
    return " ".join(i["diagnostics"] for i in issues)


# ---- body size ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ENDPOINTS)
def test_a_body_over_the_limit_is_413_before_it_is_parsed(client, path):
    raw = b'{"hook": "' + b"x" * 5_000_001 + b'"}'
    issues = outcome(post_raw(client, path, raw), 413)
    assert issues[0]["code"] == "too-costly"
    assert diagnostics(issues) == "the request body is larger than 5000000 bytes"


def test_the_body_limit_is_configurable(make_client):
    client = make_client(max_request_bytes=2_000)
    body = base_request()
    assert len(json.dumps(body)) > 2_000
    outcome(client.post(SERVICE, json=body), 413)
    assert make_client().post(SERVICE, json=body).status_code == 200


# ---- JSON that parses badly -------------------------------------------------------------------------


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize("raw, said", [
    (b"[" * 10_000 + b"]" * 10_000, "nested more than 64 levels"),
    (b'{"hook": "patient-view", "context": ' + b'{"a": ' * 70 + b"1" + b"}" * 71, "nested more than 64 levels"),
    (b'{"hookInstance": ' + b"1" * 4301 + b"}", "4301 digits"),
    (b'{"feedback": [{"card": "\\ud800", "outcome": "overridden"}]}', "feedback[0].card holds a lone surrogate"),
    (b'{"hookInstance": NaN}', "NaN is not a JSON number"),
    (b'{"hook": "\xff"}', "not UTF-8"),
], ids=["deep-array", "deep-object", "huge-int", "lone-surrogate", "nan", "not-utf8"])
def test_json_past_the_parse_limits_is_400_naming_the_limit(client, path, raw, said):
    issues = outcome(post_raw(client, path, raw), 400)
    assert said in diagnostics(issues)


def test_a_surrogate_pair_is_ordinary_text(client):
    body = base_request()
    body["context"]["userId"] = "Practitioner/\U0001F600"
    assert client.post(SERVICE, data=json.dumps(body), content_type="application/json").status_code == 200


@pytest.mark.parametrize("path", [SERVICE, APPLY])
def test_an_array_past_max_array_items_is_413_naming_it(make_client, path):
    client = make_client(max_array_items=500)
    body = base_request()
    body["prefetch"]["observations"]["entry"] += [{"resource": {"resourceType": "Observation", "status": "final"}}
                                                  ] * 501
    if path == APPLY:
        body = {"resourceType": "Parameters", "parameter": [
            {"name": "subject", "valueString": "Patient/p01"},
            {"name": "data", "resource": body["prefetch"]["observations"]}]}
    issues = outcome(client.post(path, json=body), 413)
    assert issues[0]["code"] == "too-costly" and "at most 500 are accepted" in issues[0]["diagnostics"]
    assert issues[0]["expression"] == (["prefetch.observations.entry"] if path == SERVICE
                                       else ["parameter[1].resource.entry"])


def test_a_prefetch_bundle_of_ten_thousand_entries_is_accepted_and_more_is_413(client):
    body = base_request()
    filler = {"resource": {"resourceType": "Condition", "clinicalStatus": {"text": "x"}}}
    body["prefetch"]["conditions"]["entry"] += [filler] * (10_000 - len(body["prefetch"]["conditions"]["entry"]))
    assert client.post(SERVICE, json=body).status_code == 200
    body["prefetch"]["conditions"]["entry"].append(filler)
    outcome(client.post(SERVICE, json=body), 413)


# ---- hookInstance at the boundary ------------------------------------------------------------------


@pytest.mark.parametrize("instance, said", [
    ("x" * 1_000_000, "hookInstance has 1000000 characters, at most 128 allowed"),
    ("d1577c69\nINFO forged log line", "hookInstance must be an identifier"),
    ("with space", "hookInstance must be an identifier"),
])
def test_an_absurd_hook_instance_is_400_neither_logged_nor_stored_whole(client, caplog, instance, said):
    caplog.set_level(logging.DEBUG)
    response = client.post(SERVICE, json=dict(base_request(), hookInstance=instance))
    issues = outcome(response, 400)
    assert said in diagnostics(issues)
    assert len(response.get_data()) < 2000
    assert "\nINFO forged" not in caplog.text
    assert all(len(r.getMessage()) < 1000 for r in caplog.records)
    store = client.application.extensions["cds"].store
    assert store.rates() == []  # no card recorded


# ---- $apply Parameters of the wrong shapes ------------------------------------------------------------


@pytest.mark.parametrize(
    "parameters, where",
    [
        ({"parameter": {"name": "subject"}}, "Parameters.parameter"),
        ({"parameter": [{"name": ["subject"], "valueString": "Patient/p1"}]}, "Parameters.parameter[0]"),
        ({"parameter": [{"name": 7, "valueString": "Patient/p1"}]}, "Parameters.parameter[0]"),
        ({"parameter": [{"name": "prefetchData", "part": 7}]}, "Parameters.parameter[0].part"),
        ({"parameter": [{"name": "prefetchData", "part": {"name": "key"}}]}, "Parameters.parameter[0].part"),
        ({"parameter": [{"name": "prefetchData", "part": "key"}]}, "Parameters.parameter[0].part"),
        (
            {"parameter": [{"name": "prefetchData", "part": [{"name": ["key"], "valueString": "k"}]}]},
            "Parameters.parameter[0].part",
        ),
        (
            {
                "parameter": [
                    {
                        "name": "prefetchData",
                        "part": [{"name": "key", "valueString": ["k"]}, {"name": "data", "resource": None}],
                    }
                ]
            },
            "Parameters.parameter[0]",
        ),
        (
            {"parameter": [{"name": "subject", "valueString": "Patient/p1"}, {"name": "url", "valueUri": {"x": 1}}]},
            "url",
        ),
    ],
)
@pytest.mark.parametrize("path", ["/PlanDefinition/$apply", "/ActivityDefinition/$apply"])
def test_parameters_of_the_wrong_shape_are_400_naming_where(client, parameters, where, path):
    issues = outcome(client.post(path, json={"resourceType": "Parameters", **parameters}), 400)
    assert issues[0]["expression"] == [where]


# ---- validation answers stay bounded -------------------------------------------------------------------


def test_thousands_of_faults_give_a_bounded_list_of_issues(client):
    body = base_request()
    body["hook"] = "order-select"
    response = client.post(
        ORDER_SELECT,
        json=dict(
            body,
            context=dict(
                body["context"],
                draftOrders={"resourceType": "Bundle", "entry": []},
                selections=[f"X/{i}" for i in range(5000)],
            ),
        ),
    )
    issues = outcome(response, 400)
    assert len(issues) == 21 and issues[-1]["diagnostics"] == "4980 more issue(s) not listed"
    assert len(response.get_data()) < 10_000


def test_fields_of_other_hooks_in_a_context_are_ignored_whatever_their_shape(client):
    """patient-view does not define `selections` or `draftOrders`; sent anyway, in any shape, they
    do not reach the engine as something else (found by the fuzz campaign: `selections: true`)."""
    for selections, drafts in ((True, "x"), ({"a": 1}, [1]), ([5, None], {"entry": 7})):
        body = base_request()
        body["context"] |= {"selections": selections, "draftOrders": drafts}
        assert client.post(SERVICE, json=body).status_code == 200
