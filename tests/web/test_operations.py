"""PlanDefinition/$apply and ActivityDefinition/$apply over HTTP, on the synthetic content
(tests/fixtures/content/: plan `proto`, activity `proto-recheck`)."""

from __future__ import annotations

import json

import pytest

from tests.protocol_content import PATIENT_VIEW_RULES, patient_view_request

REQUEST = patient_view_request()
PREFETCH = REQUEST["prefetch"]
SUBJECT = "Patient/" + REQUEST["context"]["patientId"]
RECHECK = "http://example.org/fhir/ActivityDefinition/proto-recheck"
# No `hook` parameter: every action of the plan is applied, the order hooks' PROTO-ORDER too (PROTO-DOSE
# has no draft order to run on).
ALL_RULES = [*PATIENT_VIEW_RULES, "PROTO-ORDER"]


def parameters(*params) -> dict:
    return {"resourceType": "Parameters", "parameter": list(params)}


def prefetch_parts() -> list[dict]:
    return [{"name": "prefetchData", "part": [{"name": "key", "valueString": key}, {"name": "data", "resource": value}]}
            for key, value in PREFETCH.items() if value is not None]


def data_bundle() -> dict:
    resources = [PREFETCH["patient"]]
    for value in PREFETCH.values():
        if value and value.get("resourceType") == "Bundle":
            resources += [e["resource"] for e in value["entry"]]
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources]}


def rule_ids(care_plan: dict) -> list[str]:
    group = next(r for r in care_plan["contained"] if r["resourceType"] == "RequestGroup")
    return [a["code"][0]["coding"][0]["code"] for a in group.get("action", [])]


def test_plan_apply_with_prefetch_data_returns_a_careplan(client):
    body = parameters({"name": "subject", "valueString": SUBJECT}, {"name": "hook", "valueCode": "patient-view"},
                      *prefetch_parts())
    response = client.post("/PlanDefinition/proto/$apply", json=body)
    assert response.status_code == 200, response.get_json()
    plan = response.get_json()
    assert plan["resourceType"] == "CarePlan" and plan["subject"] == {"reference": SUBJECT}
    assert rule_ids(plan) == PATIENT_VIEW_RULES
    group = plan["contained"][0]
    assert plan["activity"] == [{"reference": {"reference": "#" + group["id"]}}]
    card = next(a for a in group["action"] if a["code"][0]["coding"][0]["code"] == "PROTO-HIGH")
    assert (card["title"], card["priority"], card["selectionBehavior"]) == ("The level is high", "urgent", "any")
    assert [a["title"] for a in card["action"]] == ["Order a recheck", "Order a recheck tomorrow"]
    refs = [a["resource"]["reference"][1:] for a in card["action"]]
    contained = {r["id"]: r for r in plan["contained"][1:]}
    assert [(contained[r]["resourceType"], contained[r]["instantiatesCanonical"]) for r in refs] == [
        ("ServiceRequest", [RECHECK]), ("ServiceRequest", [RECHECK])]
    assert all(contained[r]["subject"] == {"reference": SUBJECT} for r in refs)
    from fhir.resources.R4B.careplan import CarePlan

    CarePlan.model_validate(plan)


def test_plan_apply_with_a_data_bundle_gives_the_same_actions(client):
    body = parameters({"name": "subject", "valueString": SUBJECT}, {"name": "data", "resource": data_bundle()})
    plan = client.post("/PlanDefinition/$apply", json=dict(body, parameter=body["parameter"] + [
        {"name": "url", "valueUri": "http://example.org/fhir/PlanDefinition/proto"}])).get_json()
    with_prefetch = client.post("/PlanDefinition/proto/$apply", json=parameters(
        {"name": "subject", "valueString": SUBJECT}, *prefetch_parts())).get_json()
    assert rule_ids(plan) == rule_ids(with_prefetch) == ALL_RULES


def test_trace_is_returned_on_request(client):
    body = parameters({"name": "subject", "valueString": SUBJECT}, *prefetch_parts())
    plan = client.post("/PlanDefinition/proto/$apply?_trace=true", json=body).get_json()
    trace = json.loads(plan["extension"][0]["valueString"])
    entry = next(a for a in trace["actions"] if a["action"] == "high")
    assert entry["applied"] is True and entry["conditions"][0]["result"] is True
    assert entry["conditions"][0]["resources"] == ["Observation/o5", "Observation/o6", "Observation/o7"]
    untraced = client.post("/PlanDefinition/proto/$apply", json=body).get_json()
    assert "extension" not in untraced


def test_activity_apply_returns_the_resource(client):
    body = parameters({"name": "subject", "valueString": SUBJECT})
    resource = client.post("/ActivityDefinition/proto-recheck/$apply", json=body).get_json()
    assert resource["resourceType"] == "ServiceRequest" and resource["subject"] == {"reference": SUBJECT}
    assert resource["instantiatesCanonical"] == [RECHECK] and resource["intent"] == "proposal"
    assert resource["code"]["text"] == "Recheck the level"
    assert resource["occurrenceTiming"] == {"repeat": {"count": 2, "frequency": 1, "period": 1, "periodUnit": "d"}}


@pytest.mark.parametrize(
    "body,status,needle",
    [
        ({"resourceType": "Patient"}, 400, "Parameters"),
        ({"resourceType": "Parameters", "parameter": [{"name": "subject", "valueString": "nope"}]}, 400, "subject"),
        ({"resourceType": "Parameters", "parameter": []}, 400, "subject"),
        (
            {
                "resourceType": "Parameters",
                "parameter": [{"name": "prefetchData", "part": [{"name": "key", "valueString": "x"}]}],
            },
            400,
            "prefetchData",
        ),
        (
            {
                "resourceType": "Parameters",
                "parameter": [
                    {"name": "subject", "valueString": "Patient/1"},
                    {"name": "subject", "valueString": "Patient/2"},
                ],
            },
            400,
            "only once",
        ),
        (
            {
                "resourceType": "Parameters",
                "parameter": [
                    {"name": "subject", "valueString": "Patient/1"},
                    {"name": "data", "resource": {"resourceType": "Patient"}},
                ],
            },
            400,
            "data",
        ),
    ],
)
def test_bad_parameters_are_400_naming_the_parameter(client, body, status, needle):
    response = client.post("/PlanDefinition/proto/$apply", json=body)
    assert response.status_code == status
    issue = response.get_json()["issue"][0]
    assert needle in issue["diagnostics"] + " ".join(issue.get("expression", []))


def test_unknown_plan_is_404(client):
    body = parameters({"name": "subject", "valueString": SUBJECT})
    assert client.post("/PlanDefinition/nope/$apply", json=body).status_code == 404
    assert client.post("/ActivityDefinition/nope/$apply", json=body).status_code == 404


def test_type_level_apply_needs_url(client):
    response = client.post("/PlanDefinition/$apply", json=parameters({"name": "subject", "valueString": SUBJECT}))
    assert response.status_code == 400 and "url" in response.get_json()["issue"][0]["diagnostics"]


def test_use_server_data_fetches_from_the_data_endpoint(client):
    """useServerData + dataEndpoint (CPG $apply): data comes from that FHIR server, queried with
    the plan's prefetch templates; the result equals the one with all data given."""
    from tests.conformance.helpers import FhirStub

    by_type = {value["resourceType"] if value.get("resourceType") != "Bundle" else
               (value["entry"][0]["resource"]["resourceType"] if value.get("entry") else key): value
               for key, value in PREFETCH.items() if value is not None}

    def answer(seen):
        rtype = seen.path.split("/")[0]
        value = by_type.get(rtype)
        if value is None:
            return 200, {"resourceType": "Bundle", "type": "searchset", "entry": []}, 0
        return 200, value, 0

    stub = FhirStub(answer)
    try:
        body = parameters({"name": "subject", "valueString": SUBJECT}, {"name": "useServerData", "valueBoolean": True},
                          {"name": "dataEndpoint", "resource": {"resourceType": "Endpoint", "status": "active",
                                                                "address": stub.base}})
        fetched = client.post("/PlanDefinition/proto/$apply", json=body).get_json()
    finally:
        stub.close()
    given = client.post("/PlanDefinition/proto/$apply", json=parameters(
        {"name": "subject", "valueString": SUBJECT}, *prefetch_parts())).get_json()
    assert rule_ids(fetched) == rule_ids(given) == ALL_RULES
    assert "Patient/" + SUBJECT.split("/")[1] in stub.urls()


def test_use_server_data_needs_an_endpoint_address(client):
    body = parameters({"name": "subject", "valueString": SUBJECT}, {"name": "useServerData", "valueBoolean": True})
    response = client.post("/PlanDefinition/proto/$apply", json=body)
    assert response.status_code == 400 and "dataEndpoint" in response.get_json()["issue"][0]["diagnostics"]
