"""The published CDS Hooks examples under ../shared/external/cds-hooks-examples that
tests/hooks/test_request_validation.py and tests/cards/test_response_schema.py do not already
cover: each is accepted, or rejected with the reason the spec gives.

- discovery documents (spec 2.0.1 and 3.0.0-ballot, Inferno CRD): conform to §Discovery;
- prefetch templates + context fragments: served by a one-plan content set whose Library
  declares the spec's templates (cqf-fhirQueryPattern), called with the spec's context against a
  real FHIR stub: the stub receives exactly the queries the spec describes;
- prefetch data, fhirAuthorization fragments: accepted as a call's prefetch / token (or refused
  with the spec's reason);
- requests (spec, CRD, sandbox-captured, hook-library contexts) sent through the real
  endpoints `/cds-services/<id>`: 412 when the data cannot be had, 200 with a conformant
  response when it is given, 400 for the sandbox's unfilled `{FHIR_BASE}` placeholder; never 500;
- 3.0.0-ballot card fragments: valid in a response.
JWT examples (spec 24-27, ballot 27-30, sandbox-jwks) are not used: client authentication is
not implemented yet (see REQUIREMENTS.md).  Everything is skipped when ../shared is absent.
"""

from __future__ import annotations

import json
import re
import socket

import pytest

from cards.schema import response_errors
from service.engine.extensions import EXT_CDS_HOOKS_ENDPOINT
from tests.conformance.helpers import (
    HOOK_INSTANCE,
    SUPPORTED_HOOKS,
    TOKEN,
    USER_TOKENS,
    outcome,
    searchset,
)
from tests.conftest import T0, shared_path
from tests.engine.helpers import BASE, write

LIQUID = re.compile(r"\{%\s*raw\s*%\}\{\{\{%\s*endraw\s*%\}")
QUERY_PATTERN = "http://hl7.org/fhir/StructureDefinition/cqf-fhirQueryPattern"


def example(name: str, placeholders: dict | None = None):
    text = shared_path("external", "cds-hooks-examples", *name.split("/")).read_text(encoding="utf-8")
    for placeholder, value in (placeholders or {}).items():
        text = text.replace(placeholder, value)
    return json.loads(text)


def unliquid(value):
    """The spec's markdown writes `{{` as Liquid `{% raw %}{{{% endraw %}` (Jekyll); the published
    page shows `{{`.  Applied to every string of an example."""
    return json.loads(LIQUID.sub("{{", json.dumps(value)))


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---- §Discovery documents --------------------------------------------------------------------------


def discovery_errors(document) -> list[str]:
    """§Discovery > Response, with §Prefetch tokens (#55-#57, #59) and §Extensions (#214)."""
    if not isinstance(document, dict) or not isinstance(document.get("services"), list):
        return ["the response must be an object with a services array"]
    errors = []
    for i, service in enumerate(document["services"]):
        where = f"services[{i}]"
        for field in ("hook", "id", "description"):
            if not isinstance(service.get(field), str) or not service[field]:
                errors.append(f"{where}.{field} is required (a non-empty string)")
        for field in ("title", "usageRequirements"):
            if field in service and not isinstance(service[field], str):
                errors.append(f"{where}.{field} must be a string")
        if "extension" in service and not isinstance(service["extension"], dict):
            errors.append(f"{where}.extension must be a JSON object")
        prefetch = service.get("prefetch", {})
        if not isinstance(prefetch, dict):
            errors.append(f"{where}.prefetch must be an object")
            continue
        for key, template in prefetch.items():
            if not isinstance(template, str):
                errors.append(f"{where}.prefetch.{key} must be a string")
                continue
            if re.search(r"[{}]", TOKEN.sub("", template)):
                errors.append(f"{where}.prefetch.{key}: a token is not delimited by {{{{ and }}}}: {template!r}")
            for token in TOKEN.findall(template):
                if not (re.fullmatch(r"context\.[A-Za-z][A-Za-z0-9]*", token.strip()) or token.strip() in USER_TOKENS):
                    errors.append(f"{where}.prefetch.{key}: {{{{{token}}}}} is not a root context field or user id")
    return errors


@pytest.mark.parametrize(
    "name",
    [
        "spec-2.0.1/01-discovery-response.json",
        "spec-2.0.1/29-discovery-response-with-extension.json",
        "spec-3.0.0-ballot/01-discovery-response.json",
        "spec-3.0.0-ballot/32-discovery-response-with-extension.json",
        "crd-test-kit/cds-services.json",
    ],
)
def test_published_discovery_response_conforms(name):
    assert discovery_errors(unliquid(example(name))) == []


def test_discovery_checker_accepts_ours_and_names_what_is_wrong(client):
    """The checker used above is not blind: it passes this service's discovery and names the
    faults of broken documents - including the spec's raw markdown, whose Liquid markup is not a
    {{…}} token (the published page renders it as {{context.patientId}})."""
    assert discovery_errors(client.get("/cds-services").get_json()) == []
    errors = discovery_errors(example("spec-2.0.1/01-discovery-response.json"))
    assert {e.split(":")[0] for e in errors} == {"services[0].prefetch.patientToGreet", "services[1].prefetch.patient",
                                                 "services[1].prefetch.medications"}
    assert sum("not delimited by {{ and }}" in e for e in errors) == 3
    broken = {
        "services": [
            {"hook": "patient-view", "id": "x", "prefetch": {"m": "Observation?code={{context.draftOrders.entry.id}}"}}
        ]
    }
    assert discovery_errors(broken) == [
        "services[0].description is required (a non-empty string)",
        "services[0].prefetch.m: {{context.draftOrders.entry.id}} is not a root context field or user id",
    ]


# ---- prefetch templates and tokens, through a service that declares them ----------------------------


def _type_of(template: str) -> str:
    match = re.match(r"([A-Z][A-Za-z]+)[/?]", template)
    return match.group(1) if match else "Resource"


def template_client(tmp_path, hook: str, prefetch: dict[str, str]):
    """A service `ex` for `hook` whose prefetch templates are exactly `prefetch`."""
    from service.app import create_app
    from service.content import load_folder

    library = {
        "resourceType": "Library",
        "id": "ex",
        "url": f"{BASE}/Library/ex",
        "status": "active",
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/library-type", "code": "logic-library"}]},
        "dataRequirement": [
            {"id": key, "type": _type_of(t), "extension": [{"url": QUERY_PATTERN, "valueString": t}]}
            for key, t in prefetch.items()
        ],
    }
    plan = {"resourceType": "PlanDefinition", "id": "ex", "url": f"{BASE}/PlanDefinition/ex", "status": "active",
            "title": "Example", "description": "Serves the spec's prefetch templates", "library": [library["url"]],
            "extension": [{"url": EXT_CDS_HOOKS_ENDPOINT, "valueUri": "ex"}],
            "action": [{"id": "hello", "title": "Hello", "trigger": [{"type": "named-event", "name": hook}]}]}
    content = load_folder(write(tmp_path / "content", library, plan))
    app = create_app({"database_url": f"sqlite:///{tmp_path / 'f.sqlite3'}", "fhir_retries": 0}, clock=lambda: T0,
                     content=content)
    return app.test_client()


def resource_stub(overrides: dict | None = None):
    """Answers a read with a bare resource of that id, a search with an empty searchset (or `overrides[url]`)."""
    def answer(seen):
        if overrides and seen.url in overrides:
            return 200, overrides[seen.url], 0
        if "/" in seen.path:
            kind, rid = seen.path.split("/", 1)
            return 200, {"resourceType": kind, "id": rid}, 0
        return 200, searchset([]), 0

    return answer


def context_of(name: str, **required) -> dict:
    """A context fragment, with the hook's REQUIRED ids added where the fragment leaves them out."""
    context = unliquid(example(name))["context"]
    for field, value in required.items():
        context.setdefault(field, value)
    return context


def fetch_all(client, stub, hook: str, context: dict) -> list[str]:
    """Call `ex` with no prefetch and the spec's fhirAuthorization: what the FHIR server is asked."""
    body = {"hook": hook, "hookInstance": HOOK_INSTANCE, "context": context, "fhirServer": stub.base,
            **unliquid(example("spec-2.0.1/11-fhirAuthorization-fragment.json"))}
    response = client.post("/cds-services/ex", json=body)
    assert response.status_code == 200, response.get_json()
    assert response_errors(response.get_json()) == []
    assert all(s.headers["Authorization"] == "Bearer some-opaque-fhir-access-token" for s in stub.seen)
    return sorted(stub.urls())


CONTEXT_30 = "spec-2.0.1/30-context-fragment.json"  # userId PractitionerRole/123, patientId 1288992
TEMPLATE_CASES = [
    # (templates, context fragment, hook, queries the FHIR server receives)
    (
        "spec-2.0.1/03-prefetch-templates.json",
        "spec-2.0.1/06-context-fragment.json",
        "patient-view",
        ["Observation?patient=123&code=4548-4&_count=1&sort:desc=date"],
    ),
    ("spec-2.0.1/04-prefetch-templates.json", CONTEXT_30, "patient-view", ["PractitionerRole/123"]),
    (
        "spec-2.0.1/05-prefetch-templates.json",
        CONTEXT_30,
        "patient-view",
        ["PractitionerRole?_id=123&_include=PractitionerRole:practitioner"],
    ),
    (
        "spec-2.0.1/09-prefetch-templates.json",
        CONTEXT_30,
        "patient-view",
        [
            "Condition?patient=1288992&code=44054006&category=problem-list-item&status=active",
            "Observation?patient=1288992&code=4548-4&_count=1&sort:desc=date",
            "Patient/1288992",
            "PractitionerRole?_id=123",
        ],
    ),
    ("spec-2.0.1/31-prefetch-templates.json", CONTEXT_30, "patient-view", ["Patient/1288992"]),
    (
        "spec-3.0.0-ballot/03-prefetch-templates.json",
        "spec-3.0.0-ballot/11-context-fragment.json",
        "patient-view",
        ["Observation?patient=123&code=4548-4&_count=1&sort:desc=date"],
    ),
    (
        "spec-3.0.0-ballot/05-prefetch-templates.json",
        "spec-3.0.0-ballot/33-context-fragment.json",
        "patient-view",
        ["PractitionerRole/123"],
    ),
    (
        "spec-3.0.0-ballot/06-prefetch-templates.json",
        "spec-3.0.0-ballot/33-context-fragment.json",
        "patient-view",
        ["PractitionerRole?_id=123&_include=PractitionerRole:practitioner"],
    ),
    (
        "spec-3.0.0-ballot/07-prefetch-templates.json",
        "spec-3.0.0-ballot/11-context-fragment.json",
        "patient-view",
        ["Observation?patient=123&category=laboratory&date=gt2025-12-01"],
    ),  # today() - 90 days, today = 2026-03-01
    (
        "spec-3.0.0-ballot/09-prefetch-templates.json",
        "spec-3.0.0-ballot/10-context-fragment.json",
        "order-sign",
        [
            "Appointment?patient=eXoGxqgBaJuNkuahMYmiDhg3&date=gt2026-03-01&date=lt2027-03-01",
            "Medication?_id=eVBXvKwrWZIkPmaGwY.s1hQ3,emvpHliA4OaUxXJ4wp6N.Ig3",
        ],
    ),  # no requester: no prescriber query
    (
        "spec-3.0.0-ballot/12-prefetch-templates.json",
        "spec-3.0.0-ballot/33-context-fragment.json",
        "patient-view",
        [
            "Condition?patient=1288992&code=44054006&category=problem-list-item&status=active",
            "Observation?patient=1288992&code=4548-4&_count=1&sort:desc=date",
            "Patient/1288992",
            "PractitionerRole?_id=123",
        ],
    ),
    (
        "spec-3.0.0-ballot/34-prefetch-templates.json",
        "spec-3.0.0-ballot/33-context-fragment.json",
        "patient-view",
        ["Patient/1288992"],
    ),
]


@pytest.mark.parametrize("templates,context,hook,expected", TEMPLATE_CASES, ids=[c[0] for c in TEMPLATE_CASES])
def test_example_prefetch_templates_are_served_and_rendered(tmp_path, stubs, templates, context, hook, expected):
    """§Prefetch Template / §Prefetch tokens (and 3.0-ballot FHIRPath tokens): the templates are
    announced verbatim in discovery and, with the spec's context, become exactly these queries.
    A token without a value (no userPractitionerRoleId when the user is a Practitioner, no
    requester on the drafts) means no query for that key, not a malformed one."""
    prefetch = unliquid(example(templates))["prefetch"]
    client = template_client(tmp_path, hook, prefetch)
    assert client.get("/cds-services").get_json()["services"][0]["prefetch"] == prefetch
    ctx = context_of(context, userId="Practitioner/example", patientId="p-unused")
    if hook == "order-sign":
        ctx.setdefault("draftOrders", {"resourceType": "Bundle", "type": "collection", "entry": []})
    stub = stubs(resource_stub())
    assert fetch_all(client, stub, hook, ctx) == sorted(expected)


def test_example_user_tokens_need_a_matching_user_type(tmp_path, stubs):
    """§Prefetch tokens identifying the user: {{userPractitionerRoleId}} is the id of the user
    only when the user is a PractitionerRole; for `Practitioner/example` it has no value and
    the key is not fetched, while {{context.userId}} still reads the user."""
    prefetch = unliquid(example("spec-2.0.1/05-prefetch-templates.json"))["prefetch"]
    prefetch["self"] = unliquid(example("spec-2.0.1/04-prefetch-templates.json"))["prefetch"]["user"]
    client = template_client(tmp_path, "patient-view", prefetch)
    stub = stubs(resource_stub())
    context = {"userId": "Practitioner/example", "patientId": "1288992"}
    assert fetch_all(client, stub, "patient-view", context) == ["Practitioner/example"]


def test_example_context_fragments_give_root_primitive_tokens_only(tmp_path, stubs):
    """cds-hooks_2.0#57: "Only root-level fields with a primitive value within the context object
    are eligible to be used as prefetch tokens" - the spec's §Example prefetch token fragments:
    in 07 only `encounterId` is eligible (not `draftOrders`); 08 adds the root
    `medicationRequestId`; in 32 `someField` and `anotherField` are, `someObject` and
    `moreObjects` are not.  An ineligible token gives no query rather than a stringified object."""
    templates = {
        "encounter": "Encounter/{{context.encounterId}}",
        "drafts": "MedicationRequest?_id={{context.draftOrders}}",
        "medication": "MedicationRequest/{{context.medicationRequestId}}",
        "some": "Observation?code={{context.someField}}",
        "another": "Observation?value-quantity={{context.anotherField}}",
        "object": "Observation?code={{context.someObject}}",
        "objects": "Observation?code={{context.moreObjects}}",
    }
    client = template_client(tmp_path, "order-sign", templates)
    ids = {"userId": "Practitioner/example", "patientId": "1288992"}
    expectations = [
        ("spec-2.0.1/07-context-fragment.json", ["Encounter/456"]),
        ("spec-2.0.1/08-context-fragment.json", ["Encounter/456", "MedicationRequest/123"]),
        ("spec-2.0.1/32-context-fragment.json", ["Observation?code=foo", "Observation?value-quantity=123"]),
        ("spec-3.0.0-ballot/35-context-fragment.json", ["Observation?code=foo", "Observation?value-quantity=123"]),
    ]
    for fragment, expected in expectations:
        context = context_of(fragment, **ids)
        context.setdefault("draftOrders", {"resourceType": "Bundle", "type": "collection", "entry": []})
        stub = stubs(resource_stub())
        assert fetch_all(client, stub, "order-sign", context) == expected, fragment


def test_example_fhirpath_prefetch_chain_without_a_start_fetches_nothing(tmp_path, stubs):
    """3.0.0-ballot §Simpler FHIRPath support, example 08 with context 10: the chain starts from
    the drafted ServiceRequests' reasons; context 10 drafts only MedicationRequests, so no key
    has a value and nothing is fetched (no `Condition?_id=` with an empty id)."""
    prefetch = unliquid(example("spec-3.0.0-ballot/08-prefetch-templates.json"))["prefetch"]
    client = template_client(tmp_path, "order-sign", prefetch)
    context = context_of("spec-3.0.0-ballot/10-context-fragment.json")
    assert fetch_all(client, stubs(resource_stub()), "order-sign", context) == []


def test_example_fhirpath_prefetch_chain_follows_earlier_keys(tmp_path, stubs):
    """3.0.0-ballot §Simpler FHIRPath support (example 08): `%serviceConditions` names the result
    of an earlier key.  With a drafted ServiceRequest whose reasonReference is a Condition, each
    key is fetched from the previous key's data: Condition, then its asserter PractitionerRole,
    then that role's Practitioner."""
    prefetch = unliquid(example("spec-3.0.0-ballot/08-prefetch-templates.json"))["prefetch"]
    client = template_client(tmp_path, "order-sign", prefetch)
    context = context_of("spec-3.0.0-ballot/10-context-fragment.json")
    context["draftOrders"]["entry"].append({"resource": {
        "resourceType": "ServiceRequest", "id": "sr1", "status": "draft", "intent": "order",
        "code": {"text": "MRI"}, "subject": {"reference": "Patient/eXoGxqgBaJuNkuahMYmiDhg3"},
        "reasonReference": [{"reference": "Condition/c1"}]}})
    answers = {
        "Condition?_id=c1": searchset([{"resource": {"resourceType": "Condition", "id": "c1",
                                                     "asserter": {"reference": "PractitionerRole/pr1"}}}]),
        "PractitionerRole?_id=pr1": searchset([{"resource": {"resourceType": "PractitionerRole", "id": "pr1",
                                                             "practitioner": {"reference": "Practitioner/dr1"}}}]),
    }
    stub = stubs(resource_stub(answers))
    assert fetch_all(client, stub, "order-sign", context) == ["Condition?_id=c1", "Practitioner?_id=dr1",
                                                              "PractitionerRole?_id=pr1"]
    assert stub.urls() == ["Condition?_id=c1", "PractitionerRole?_id=pr1", "Practitioner?_id=dr1"]


# ---- prefetch data and fhirAuthorization ------------------------------------------------------------


@pytest.mark.parametrize(
    "data,auth",
    [
        ("spec-2.0.1/10-prefetch-data.json", "spec-2.0.1/11-fhirAuthorization-fragment.json"),
        ("spec-3.0.0-ballot/13-prefetch-data.json", "spec-3.0.0-ballot/14-fhirAuthorization-fragment.json"),
    ],
)
def test_example_prefetch_data_with_the_example_templates(tmp_path, stubs, data, auth):
    """§Example prefetch data with the §Example prefetch templates: the keys sent are used as
    sent; "the missing diabetes-type2 key indicates that … the CDS Client has decided not to
    satisfy this particular prefetch template", so the service fetches it itself with the token
    of the fhirAuthorization example.  The 2.0.1 example sends `"user": "123"`, a string: a
    prefetch value is a FHIR resource ("each value being a FHIR resource"), so that call is
    refused (400, naming prefetch.user) - the 3.0.0-ballot example sends a Bundle instead."""
    client = template_client(
        tmp_path, "patient-view", unliquid(example("spec-2.0.1/09-prefetch-templates.json"))["prefetch"]
    )
    stub = stubs(resource_stub())
    body = {"hook": "patient-view", "hookInstance": HOOK_INSTANCE, "fhirServer": stub.base,
            "context": context_of(CONTEXT_30), **unliquid(example(data)), **unliquid(example(auth))}
    response = client.post("/cds-services/ex", json=body)
    if isinstance(body["prefetch"]["user"], str):
        issues = outcome(response, 400)
        assert [i["expression"] for i in issues] == [["prefetch.user"]]
        body["prefetch"]["user"] = None
        response = client.post("/cds-services/ex", json=body)
    assert response.status_code == 200, response.get_json()
    assert stub.urls() == ["Condition?patient=1288992&code=44054006&category=problem-list-item&status=active"]
    assert stub.seen[0].headers["Authorization"] == "Bearer some-opaque-fhir-access-token"


def test_example_paginated_prefetch_next_page_is_fetched(tmp_path, stubs):
    """§Prefetch Template (2.0.1): "a CDS Client MAY paginate prefetch results" and "It is the CDS
    Service's responsibility to check prefetched data against its template … and to
    programmatically retrieve any additional necessary data"; 3.0.0-ballot example 04 shows such
    a page ("the CDS Service will typically need to authenticate to retrieve the next page").
    """
    client = template_client(tmp_path, "order-sign", {"orders": "MedicationRequest?patient={{context.patientId}}"})
    stub = stubs(resource_stub())
    body = example("spec-3.0.0-ballot/04-hook-request-order-sign-paginated-prefetch.json",
                   {"https://ehr.example.org/fhir": "{BASE}"})
    body = json.loads(json.dumps(body).replace("{BASE}", stub.base))
    body["fhirAuthorization"] = unliquid(example("spec-3.0.0-ballot/14-fhirAuthorization-fragment.json"))[
        "fhirAuthorization"
    ]
    assert client.post("/cds-services/ex", json=body).status_code == 200
    assert stub.urls() == ["MedicationRequest?patient=1288992&_count=1&_page=2"]


# ---- requests through the real endpoints ------------------------------------------------------------

SANDBOX = ["sandbox-captured/patient-view-request.json", "sandbox-captured/order-select-request.json",
           "sandbox-captured/order-sign-request.json"]
REQUESTS = ["spec-2.0.1/02-hook-request-patient-view.json", "spec-3.0.0-ballot/02-hook-request-patient-view.json",
            "spec-3.0.0-ballot/04-hook-request-order-sign-paginated-prefetch.json",
            "crd-test-kit/order_select_hook_request.json", "crd-test-kit/order_sign_hook_request.json", *SANDBOX]
CONTEXTS = [("patient-view", "hook-library/patient-view-context-example1.json"),
            ("patient-view", "hook-library/patient-view-context-example2.json"),
            *[(hook, f"hook-library/{hook}-context-{v}.json") for hook in ("order-select", "order-sign")
              for v in ("r4", "stu3", "dstu2")]]


def request_body(name: str) -> dict:
    data = example(name)
    return data["body"] if "jwt_header" in data else data


@pytest.fixture
def services_by_hook(client) -> dict[str, list[dict]]:
    by_hook: dict[str, list[dict]] = {}
    for service in client.get("/cds-services").get_json()["services"]:
        by_hook.setdefault(service["hook"], []).append(service)
    assert set(by_hook) == set(SUPPORTED_HOOKS)
    return by_hook


@pytest.fixture
def no_retry_client(make_protocol_app):
    return make_protocol_app(fhir_retries=0).test_client()


@pytest.mark.parametrize("name", REQUESTS)
def test_published_request_with_an_unreachable_fhir_server_is_412(no_retry_client, services_by_hook, name):
    """cds-hooks_2.0#54: the published calls lack this service's prefetch keys; with their
    fhirServer replaced by a closed loopback port (no call leaves the machine) every service of
    the hook answers 412 with an OperationOutcome naming the key it could not fetch - never 500."""
    body = request_body(name)
    body["fhirServer"] = f"http://127.0.0.1:{closed_port()}/fhir"
    for service in services_by_hook[body["hook"]]:
        issues = outcome(no_retry_client.post(f"/cds-services/{service['id']}", json=body), 412)
        assert issues[0]["code"] == "transient", issues
        assert issues[0]["expression"][0].removeprefix("prefetch.") in service["prefetch"], issues


@pytest.mark.parametrize("name", REQUESTS)
def test_published_request_with_our_prefetch_keys_is_answered(client, services_by_hook, name):
    """The same calls with this service's keys sent as null (no data) are answered 200 with a
    conformant response by every service of their hook, whatever FHIR version or resource types
    their drafts use (CRD NutritionOrder, the sandbox's R4 quirks, U+2011 ids).  Their
    fhirServer is removed: nothing is fetched."""
    body = request_body(name)
    body.pop("fhirServer")
    body.pop("fhirAuthorization", None)
    for service in services_by_hook[body["hook"]]:
        body["prefetch"] = {**body.get("prefetch", {}), **{key: None for key in service["prefetch"]}}
        response = client.post(f"/cds-services/{service['id']}", json=body)
        assert response.status_code == 200, (service["id"], response.get_json())
        assert response_errors(response.get_json()) == [], service["id"]


@pytest.mark.parametrize("name", SANDBOX)
def test_sandbox_request_with_its_placeholder_is_400_and_without_server_412(client, services_by_hook, name):
    """The captured sandbox traffic keeps `{FHIR_BASE}` where the loopback URL was: not an absolute
    URL, so fhirServer is refused (400 naming it).  Without a fhirServer, the keys the sandbox
    did not prefetch for us are a 412 naming the first of them."""
    body = request_body(name)
    assert body["fhirServer"] == "{FHIR_BASE}"
    for service in services_by_hook[body["hook"]]:
        issues = outcome(client.post(f"/cds-services/{service['id']}", json=body), 400)
        assert [i["expression"] for i in issues] == [["fhirServer"]]
        issues = outcome(
            client.post(f"/cds-services/{service['id']}", json={k: v for k, v in body.items() if k != "fhirServer"}),
            412,
        )
        missing = sorted(set(service["prefetch"]) - set(body.get("prefetch", {})) - {"encounter"})
        assert issues[0]["expression"] == [f"prefetch.{missing[0]}"], issues


@pytest.mark.parametrize("hook,name", CONTEXTS)
def test_hook_library_context_is_answered_by_every_service_of_its_hook(client, services_by_hook, hook, name):
    """The hook library's example contexts (R4, STU3 and DSTU2 drafts), as calls with our keys
    sent as null, get 200 and a conformant response from every service of the hook."""
    for service in services_by_hook[hook]:
        body = {"hook": hook, "hookInstance": HOOK_INSTANCE, **example(name),
                "prefetch": {key: None for key in service["prefetch"]}}
        response = client.post(f"/cds-services/{service['id']}", json=body)
        assert response.status_code == 200, (service["id"], response.get_json())
        assert response_errors(response.get_json()) == [], service["id"]


# ---- 3.0.0-ballot card fragments ---------------------------------------------------------------------


def test_ballot_card_fragments_are_valid():
    """spec-3.0.0-ballot/16-20 (source, create/update/delete actions, override reasons) in one
    card: valid (the 2.0.1 ones are in tests/cards/test_response_schema.py)."""
    actions = [example(f"spec-3.0.0-ballot/{n}") for n in ("17-action-create.json", "18-action-update.json",
                                                          "19-action-delete-resourceId.json")]
    card = {"uuid": "c1", "summary": "Example", "indicator": "info",
            "source": example("spec-3.0.0-ballot/16-card-source-fragment.json")["source"],
            "overrideReasons": example("spec-3.0.0-ballot/20-overrideReasons-fragment.json")["overrideReasons"],
            "suggestions": [{"label": "Do it", "uuid": "s1", "actions": actions}], "selectionBehavior": "any"}
    assert response_errors({"cards": [card]}) == []
    del card["overrideReasons"][0]["display"]
    assert response_errors({"cards": [card]}) == ["cards[0].overrideReasons[0].display is required"]
