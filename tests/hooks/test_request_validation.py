"""Request and feedback validation (service.hooks.validation) against synthetic bodies and the
published CDS Hooks examples under ../shared/external/cds-hooks-examples (skipped when absent)."""

from __future__ import annotations

import copy
import json

import pytest

from service.errors import InvalidRequest
from service.hooks.validation import SUPPORTED_HOOKS, validate_feedback, validate_request
from service.web.errors import answer
from tests.conftest import shared_path

HOOK_INSTANCE = "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea"
# sandbox-captured/ has loopback base URLs replaced by placeholders (see its README); put one back.
PLACEHOLDERS = {"{FHIR_BASE}": "http://127.0.0.1:8080/fhir", "{CDS_BASE}": "http://127.0.0.1:5000"}


def example(name: str):
    """An example file; for captured traffic, its `body`, with URL placeholders filled in."""
    text = shared_path("external", "cds-hooks-examples", *name.split("/")).read_text(encoding="utf-8")
    for placeholder, url in PLACEHOLDERS.items():
        text = text.replace(placeholder, url)
    data = json.loads(text)
    return data["body"] if isinstance(data, dict) and "body" in data and "jwt_header" in data else data


def draft_bundle() -> dict:
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": {"resourceType": "MedicationRequest", "id": "rx1", "status": "draft",
                                "intent": "order", "subject": {"reference": "Patient/p1"}}}],
    }


MINIMAL = {
    "patient-view": {"userId": "Practitioner/u1", "patientId": "p1"},
    "order-select": {"userId": "Practitioner/u1", "patientId": "p1", "selections": ["MedicationRequest/rx1"],
                     "draftOrders": draft_bundle()},
    "order-sign": {"userId": "Practitioner/u1", "patientId": "p1", "draftOrders": draft_bundle()},
}


def minimal(hook: str) -> dict:
    return {"hook": hook, "hookInstance": HOOK_INSTANCE, "context": copy.deepcopy(MINIMAL[hook])}


def rejected(body, hook: str) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as info:
        validate_request(body, hook)
    return info.value


def expressions(error: InvalidRequest) -> list[str]:
    return [e for issue in error.issues for e in issue.expression]


# ---- synthetic requests ---------------------------------------------------------------------


@pytest.mark.parametrize("hook", SUPPORTED_HOOKS)
def test_minimal_request_is_accepted(hook):
    validate_request(minimal(hook), hook)


@pytest.mark.parametrize("field", ["hook", "hookInstance", "context"])
def test_missing_top_level_field_is_required_at_its_path(field):
    body = minimal("patient-view")
    del body[field]
    error = rejected(body, "patient-view")
    assert answer(error)[0] == 400
    assert [(i.code, i.expression) for i in error.issues] == [("required", (field,))]


@pytest.mark.parametrize("hook,field", [(h, f) for h in SUPPORTED_HOOKS for f in MINIMAL[h]])
def test_missing_context_field_is_required_at_its_path(hook, field):
    body = minimal(hook)
    del body["context"][field]
    error = rejected(body, hook)
    assert ("required", (f"context.{field}",)) in [(i.code, i.expression) for i in error.issues]
    assert f"context.{field} is required" in error.message


def test_all_errors_are_reported_together():
    body = minimal("order-select")
    body["hookInstance"] = 42
    body["context"]["userId"] = "u1"
    body["context"]["selections"] = ["MedicationRequest/rx1", 7]
    del body["context"]["patientId"]
    error = rejected(body, "order-select")
    assert expressions(error) == ["hookInstance", "context.patientId", "context.selections[1]", "context.userId"]
    assert {i.code for i in error.issues} == {"value", "required"}
    assert "and 3 more" in error.message


def test_wrong_hook_names_the_hook():
    body = minimal("patient-view")
    error = rejected(body, "order-sign")
    assert expressions(error) == ["hook"]
    assert "answers hook 'order-sign', not 'patient-view'" in error.message


def test_wrong_hook_names_the_service_when_given():
    with pytest.raises(InvalidRequest, match="service 'dah' answers hook 'order-sign', not 'patient-view'"):
        validate_request(minimal("patient-view"), "order-sign", service="dah")


def test_unknown_service_hook_is_rejected():
    error = rejected(minimal("patient-view"), "appointment-book")
    assert [(i.code, i.expression) for i in error.issues] == [("not-supported", ("hook",))]


@pytest.mark.parametrize("body", [None, [], "patient-view", 3, True])
def test_non_object_body_is_rejected(body):
    error = rejected(body, "patient-view")
    assert error.issues[0].code == "structure"
    assert "must be a JSON object" in error.message


def test_selection_not_in_draft_orders_is_rejected():
    body = minimal("order-select")
    body["context"]["selections"] = ["MedicationRequest/rx1", "ServiceRequest/rx1"]
    error = rejected(body, "order-select")
    assert expressions(error) == ["context.selections[1]"]
    assert "'ServiceRequest/rx1' is not an entry of context.draftOrders" in error.message


@pytest.mark.parametrize("selections,path", [([], "context.selections"), (["rx1"], "context.selections[0]"),
                                             ("MedicationRequest/rx1", "context.selections")])
def test_malformed_selections_are_rejected(selections, path):
    body = minimal("order-select")
    body["context"]["selections"] = selections
    assert path in expressions(rejected(body, "order-select"))


def test_draft_orders_must_be_a_bundle():
    body = minimal("order-sign")
    body["context"]["draftOrders"] = {"resourceType": "MedicationRequest", "id": "rx1"}
    error = rejected(body, "order-sign")
    assert expressions(error) == ["context.draftOrders.resourceType"]


def test_lenient_on_ehr_fhir_data():
    """A draftOrders Bundle without type, and a MedicationRequest.category object (R4 wants an
    array) without medication[x], are what the sandbox sends: accepted."""
    body = minimal("order-select")
    del body["context"]["draftOrders"]["type"]
    body["context"]["draftOrders"]["entry"][0]["resource"].update(category={"coding": [{"code": "community"}]})
    validate_request(body, "order-select")


@pytest.mark.parametrize("patch,path", [
    ({"fhirServer": "fhir.example.org"}, "fhirServer"),
    ({"prefetch": {"patient": "Patient/p1"}}, "prefetch.patient"),
    ({"prefetch": []}, "prefetch"),
    ({"extension": "x"}, "extension"),
    ({"context": []}, "context"),
    ({"hook": ""}, "hook"),
    ({"hookInstance": ""}, "hookInstance"),
])
def test_bad_top_level_values_are_rejected_at_their_path(patch, path):
    body = minimal("patient-view") | patch
    assert expressions(rejected(body, "patient-view")) == [path]


def test_prefetch_null_and_extra_fields_are_accepted():
    body = minimal("patient-view") | {"prefetch": {"patient": None, "obs": {"resourceType": "Bundle"}},
                                      "somethingNew": 1}
    body["context"]["somethingNew"] = True
    validate_request(body, "patient-view")


def test_fhir_authorization_requires_its_fields_and_a_fhir_server():
    body = minimal("patient-view") | {"fhirAuthorization": {"access_token": "tok-123"}}
    error = rejected(body, "patient-view")
    assert expressions(error) == ["fhirServer", "fhirAuthorization.token_type", "fhirAuthorization.expires_in",
                                  "fhirAuthorization.scope", "fhirAuthorization.subject"]
    assert {i.code for i in error.issues} == {"required"}


def test_fhir_authorization_values_are_never_echoed():
    auth = {"access_token": ["tok-secret"], "token_type": "MAC-secret", "expires_in": 300, "scope": "s",
            "subject": "svc"}
    body = minimal("patient-view") | {"fhirServer": "https://ehr.example.org/fhir", "fhirAuthorization": auth}
    error = rejected(body, "patient-view")
    assert expressions(error) == ["fhirAuthorization.access_token", "fhirAuthorization.token_type"]
    assert "secret" not in json.dumps(answer(error)[1])


def test_operation_outcome_lists_every_issue():
    body = minimal("order-sign")
    del body["context"]["userId"], body["context"]["draftOrders"]
    outcome = answer(rejected(body, "order-sign"))[1]
    assert outcome["resourceType"] == "OperationOutcome"
    assert [i["expression"] for i in outcome["issue"]] == [["context.userId"], ["context.draftOrders"]]
    assert all(i["severity"] == "error" and i["code"] == "required" for i in outcome["issue"])


# ---- the published examples -------------------------------------------------------------------

REQUEST_EXAMPLES = [
    "spec-2.0.1/02-hook-request-patient-view.json",
    "spec-3.0.0-ballot/02-hook-request-patient-view.json",
    "spec-3.0.0-ballot/04-hook-request-order-sign-paginated-prefetch.json",
    "sandbox-captured/patient-view-request.json",
    "sandbox-captured/order-select-request.json",
    "sandbox-captured/order-sign-request.json",
    "crd-test-kit/order_select_hook_request.json",
    "crd-test-kit/order_sign_hook_request.json",
]

# Contexts only: wrapped in a request.  DSTU2/STU3 ones are accepted too: the protocol is
# FHIR-version agnostic and only the context envelope is validated (their MedicationOrder etc.
# simply match no R4 rule in the engine).
CONTEXT_EXAMPLES = [
    ("patient-view", "hook-library/patient-view-context-example1.json"),
    ("patient-view", "hook-library/patient-view-context-example2.json"),
    ("order-select", "hook-library/order-select-context-r4.json"),
    ("order-select", "hook-library/order-select-context-stu3.json"),
    ("order-select", "hook-library/order-select-context-dstu2.json"),
    ("order-sign", "hook-library/order-sign-context-r4.json"),
    ("order-sign", "hook-library/order-sign-context-stu3.json"),
    ("order-sign", "hook-library/order-sign-context-dstu2.json"),
]

FEEDBACK_EXAMPLES = [
    "spec-2.0.1/21-feedback-accepted.json",
    "spec-2.0.1/22-feedback-overridden-without-reason.json",
    "spec-2.0.1/23-feedback-overridden-with-reason.json",
    "spec-3.0.0-ballot/24-feedback-accepted.json",
    "spec-3.0.0-ballot/25-feedback-overridden-without-reason.json",
    "spec-3.0.0-ballot/26-feedback-overridden-with-reason.json",
    "sandbox-captured/feedback-accepted.json",
    "sandbox-captured/feedback-overridden.json",
]


@pytest.mark.parametrize("name", REQUEST_EXAMPLES)
def test_published_request_is_accepted(name):
    body = example(name)
    assert body["hook"] in SUPPORTED_HOOKS
    validate_request(body, body["hook"])


@pytest.mark.parametrize("hook,name", CONTEXT_EXAMPLES)
def test_published_hook_context_is_accepted(hook, name):
    body = {"hook": hook, "hookInstance": HOOK_INSTANCE, **example(name)}
    validate_request(body, hook)


@pytest.mark.parametrize("name", ["spec-2.0.1/28-hook-request-patient-view-with-extension.json",
                                  "spec-3.0.0-ballot/31-hook-request-patient-view-with-extension.json"])
def test_published_extension_example_without_patient_id_is_rejected(name):
    """The §Extensions example is a patient-view call whose context has only userId: the
    patient-view hook definition makes context.patientId REQUIRED, so it is invalid."""
    body = example(name)
    error = rejected(body, "patient-view")
    assert [(i.code, i.expression) for i in error.issues] == [("required", ("context.patientId",))]
    body["context"]["patientId"] = "1288992"
    validate_request(body, "patient-view")


def test_sandbox_order_select_quirks_are_accepted():
    """The sandbox's draftOrders has no Bundle.type and MedicationRequest.category as an object."""
    body = example("sandbox-captured/order-select-request.json")
    assert isinstance(body["context"]["draftOrders"]["entry"][0]["resource"]["category"], dict)
    validate_request(body, "order-select")


def test_ballot_paginated_example_has_non_ascii_ids():
    """spec-3.0.0-ballot/04 writes ids with U+2011 (non-breaking hyphen): not FHIR ids.  The
    resources themselves are not validated, so the call is accepted."""
    body = example("spec-3.0.0-ballot/04-hook-request-order-sign-paginated-prefetch.json")
    validate_request(body, "order-sign")


@pytest.mark.parametrize("name", FEEDBACK_EXAMPLES)
def test_published_feedback_is_accepted(name):
    body = example(name)
    assert validate_feedback(body) == body["feedback"]


# ---- feedback ---------------------------------------------------------------------------------


def feedback_item(**extra) -> dict:
    return {"card": "c1", "outcome": "overridden", "outcomeTimestamp": "2026-03-01T12:00:00Z"} | extra


def feedback_rejected(body) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as info:
        validate_feedback(body)
    return info.value


def test_feedback_items_are_returned():
    items = [feedback_item(), feedback_item(card="c2", outcome="accepted", acceptedSuggestions=[{"id": "s1"}],
                                            outcomeTimestamp="2026-03-01T12:00:00.123+01:00")]
    assert validate_feedback({"feedback": items}) == items


@pytest.mark.parametrize(
    "body,path",
    [
        ({}, "feedback"),
        ({"feedback": []}, "feedback"),
        ({"feedback": {}}, "feedback"),
        ({"feedback": [feedback_item(card=None)]}, "feedback[0].card"),
        ({"feedback": [feedback_item(outcome="ignored")]}, "feedback[0].outcome"),
        ({"feedback": [feedback_item(outcome="accepted")]}, "feedback[0].acceptedSuggestions"),
        (
            {"feedback": [feedback_item(outcome="accepted", acceptedSuggestions=[{}])]},
            "feedback[0].acceptedSuggestions[0].id",
        ),
        ({"feedback": [feedback_item(outcomeTimestamp="2026-03-01")]}, "feedback[0].outcomeTimestamp"),
        ({"feedback": [feedback_item(outcomeTimestamp="2026-02-30T00:00:00Z")]}, "feedback[0].outcomeTimestamp"),
        (
            {"feedback": [feedback_item(overrideReason={"reason": {"code": "x"}})]},
            "feedback[0].overrideReason.reason.system",
        ),
        ({"feedback": [feedback_item(), {"card": "c2"}]}, "feedback[1].outcome"),
    ],
)
def test_invalid_feedback_is_rejected_at_its_path(body, path):
    assert path in expressions(feedback_rejected(body))


def test_feedback_missing_fields_are_all_reported():
    error = feedback_rejected({"feedback": [{}]})
    assert expressions(error) == ["feedback[0].card", "feedback[0].outcome", "feedback[0].outcomeTimestamp"]


@pytest.mark.parametrize("body", [None, [], "feedback"])
def test_non_object_feedback_is_rejected(body):
    assert feedback_rejected(body).issues[0].code == "structure"
