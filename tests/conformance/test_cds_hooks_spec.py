"""CDS Hooks 2.0 conformance of this CDS *Service*, rule by rule.

One test per MUST/SHALL/SHOULD of https://cds-hooks.hl7.org/2.0/ that binds a service, named
`test_<spec section>__<rule>`, its docstring quoting the requirement and the Inferno requirement
id (`<Req Set>#<ID>` of ../shared/external/cds-hooks-requirements/davinci_crd_test_kit_requirements.csv).
Everything goes through the Flask test client, on the synthetic content of tests/fixtures/content/
(tests/protocol_content.py; never the clinical guidance).  Card-level rules are checked on the
responses to the synthetic requests on every service of their hook: between them they hold
critical, warning and info cards, create, update and delete actions, override reasons,
recommended suggestions, documentation links, and one service id for two hooks.
REQUIREMENTS.md beside this file maps every requirement row to its test or says why none.
"""

from __future__ import annotations

import csv
import json
import re
import statistics
import time
from pathlib import Path

import pytest

from cards.schema import response_errors
from tests.conformance.helpers import (
    HOOK_INSTANCE,
    SUPPORTED_HOOKS,
    TOKEN,
    TOKEN_FIELDS,
    USER_TOKENS,
    base_request,
    cards_of,
    empties,
    issue_text,
    minimal_request,
    outcome,
    query_restriction_findings,
    tokens,
)
from tests.conftest import T0, shared_path
from tests.protocol_content import BOTH, ORDER_SELECT, ORDER_SIGN, PATIENT_VIEW, order_request, topics

HERE = Path(__file__).resolve().parent
SERVICE = PATIENT_VIEW
EHR_ORIGIN = "https://ehr.example.org"


# ---- fixtures ------------------------------------------------------------------------------------


@pytest.fixture
def services(client) -> list[dict]:
    response = client.get("/cds-services")
    assert response.status_code == 200
    return response.get_json()["services"]


def _no_data() -> dict:
    body = base_request()
    body["prefetch"] = {key: None for key in body["prefetch"]}
    return body


# Every synthetic request on every service of its hook: (name, service path, request).
CALLS = [
    ("patient-view-high", SERVICE, base_request),
    ("patient-view-no-data", SERVICE, _no_data),
    ("patient-view-high", BOTH, base_request),
    ("order-select-dose", ORDER_SELECT, lambda: order_request("order-select")),
    ("order-sign-dose", ORDER_SIGN, lambda: order_request("order-sign")),
    ("order-sign-dose", BOTH, lambda: order_request("order-sign")),
]


@pytest.fixture
def calls(client):
    """(call name, request, status, body) for every entry of CALLS."""
    out = []
    for name, service, make in CALLS:
        request = make()
        response = _post(client, request, service)
        out.append((f"{name} on {service}", request, response.status_code, response.get_json()))
    return out


@pytest.fixture
def responses(calls):
    return [(cid, request, body) for cid, request, status, body in calls if status == 200]


def _post(client, body, service=SERVICE, **kwargs):
    return client.post(service, json=body, **kwargs)


# ---- §Use of JSON ---------------------------------------------------------------------------------


def test_use_of_json__requests_and_responses_are_json(client):
    """cds-hooks_2.0#1 (SHALL): "All data exchanged through production RESTful APIs MUST be sent
    and received as JSON (JavaScript Object Notation) structures."  Every answer, success or
    error, is application/json; a body not declared as JSON is refused (415), one that does not
    parse is refused (400)."""
    answers = [
        client.get("/cds-services"),
        _post(client, base_request()),
        client.post("/cds-services/nope", json=base_request()),
        client.get(SERVICE),
        _post(client, {**base_request(), "prefetch": {}}),
    ]
    assert [a.status_code for a in answers] == [200, 200, 404, 405, 412]
    for answer in answers:
        assert answer.mimetype == "application/json"
        assert isinstance(json.loads(answer.get_data(as_text=True)), dict)
    outcome(client.post(SERVICE, data=json.dumps(base_request()), content_type="text/plain"), 415)
    outcome(client.post(SERVICE, data="{\"hook\": ", content_type="application/json"), 400)


def test_use_of_json__no_null_or_empty_elements(client, responses):
    """cds-hooks_2.0#3 (SHALL NOT): "JSON elements SHALL NOT be null … [or] empty, unless otherwise
    specified (e.g. to indicate no guidance with an empty array of cards in the CDS Hooks
    response)."  Checked on discovery, every response to CALLS (suggested FHIR resources
    included, and a call with no guidance) and the error OperationOutcomes."""
    assert len(responses) == len(CALLS)
    assert empties(client.get("/cds-services").get_json()) == []
    for case_id, _, body in responses:
        found = empties(body["cards"]) if body["cards"] else []
        assert found == [], (case_id, found)
        assert set(body) == {"cards"}, case_id
    for bad in (client.post("/cds-services/nope", json={}), _post(client, {**base_request(), "prefetch": {}}),
                _post(client, {"hook": "patient-view"})):
        assert empties(bad.get_json()) == [], bad.get_json()


# ---- §Discovery -----------------------------------------------------------------------------------


def test_discovery__endpoint_is_get_base_url_cds_services(client):
    """cds-hooks_2.0#4 (SHALL): "A CDS Service provider exposes its discovery endpoint at:
    {baseURL}/cds-services"; cds-hooks_2.0#5 (SHALL): "The Discovery endpoint SHALL always be
    available at {baseUrl}/cds-services [using HTTP GET]"; cds-hooks_2.0#13 (SHALL): "200 OK: A
    successful response"."""
    response = client.get("/cds-services")
    assert response.status_code == 200
    assert response.get_json()["services"]
    outcome(client.post("/cds-services", json={}), 405)


def test_discovery__response_is_an_object_with_a_services_array(client):
    """cds-hooks_2.0#6 (SHALL): "The response to the discovery endpoint SHALL be an object
    containing a list [json array] of CDS Services." """
    body = client.get("/cds-services").get_json()
    assert isinstance(body, dict) and isinstance(body["services"], list)
    assert all(isinstance(s, dict) for s in body["services"])


def test_discovery__no_services_is_200_with_an_empty_array(tmp_path):
    """§Discovery > Response (SHOULD, not an Inferno row): "If your CDS server hosts no CDS
    Services, the discovery endpoint should return a 200 HTTP response with an empty array of
    services." """
    from service.app import create_app
    from service.engine import build_content

    app = create_app({"database_url": f"sqlite:///{tmp_path / 'f.sqlite3'}"}, clock=lambda: T0,
                     content=build_content([]))
    response = app.test_client().get("/cds-services")
    assert response.status_code == 200 and response.get_json() == {"services": []}


def test_discovery__services_have_hook_description_and_id(services):
    """cds-hooks_2.0#7 (SHALL): `hook` REQUIRED *string* "The hook this service should be invoked
    on"; cds-hooks_2.0#9 (SHALL): `description` REQUIRED *string*; cds-hooks_2.0#10 (SHALL): `id`
    REQUIRED *string* "The {id} portion of the URL to this service which is available at
    {baseUrl}/cds-services/{id}"."""
    assert services
    pairs = set()
    for service in services:
        assert isinstance(service["hook"], str) and service["hook"] in SUPPORTED_HOOKS, service["hook"]
        assert isinstance(service["description"], str) and service["description"].strip()
        assert isinstance(service["id"], str) and re.fullmatch(r"[A-Za-z0-9._~-]+", service["id"]), service["id"]
        pairs.add((service["id"], service["hook"]))
    assert len(pairs) == len(services), "one entry per (id, hook)"


def test_discovery__services_have_a_title(services):
    """cds-hooks_2.0#8 (SHOULD): `title` RECOMMENDED *string* "The human-friendly name of this
    service"."""
    for service in services:
        assert isinstance(service.get("title"), str) and service["title"].strip(), service["id"]


def test_discovery__prefetch_is_an_object_of_key_to_template_strings(services):
    """cds-hooks_2.0#11 (MAY): `prefetch` OPTIONAL *object* "key/value pairs of FHIR queries … The
    key is a string … and the value is a string representing the FHIR query";
    cds-hooks_2.0#36 (SHALL): "The prefetch field of a CDS Service discovery response … [SHALL
    provide a] prefetch key for each … [prefetch template]"."""
    with_prefetch = [s for s in services if "prefetch" in s]
    assert with_prefetch
    for service in with_prefetch:
        assert isinstance(service["prefetch"], dict) and service["prefetch"]
        for key, template in service["prefetch"].items():
            assert re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", key), key
            assert isinstance(template, str) and template.strip(), (service["id"], key)


def test_discovery__usage_requirements_is_a_string(services):
    """cds-hooks_2.0#12 (MAY): `usageRequirements` OPTIONAL *string* "Human-friendly description
    of any preconditions for the use of this CDS Service" (from PlanDefinition.usage; only
    proto-both sets one, and a plan without `usage` announces none)."""
    usage = {(s["id"], s["hook"]): s.get("usageRequirements") for s in services}
    assert usage == {
        ("proto-both", "patient-view"): "Needs nothing; for protocol tests only.",
        ("proto-both", "order-sign"): "Needs nothing; for protocol tests only.",
        ("proto-patient-view", "patient-view"): None,
        ("proto-order-select", "order-select"): None,
        ("proto-order-sign", "order-sign"): None,
    }


# ---- §Calling a CDS Service -----------------------------------------------------------------------


def test_calling_a_cds_service__endpoint_is_base_url_cds_services_id(client, services):
    """cds-hooks_2.0#16 (SHALL): "The CDS Service endpoint can be constructed from the CDS Service
    base URL and an individual service id as {baseUrl}/cds-services/{service.id}."  Every
    discovered service answers a valid call of its hook there with a conformant response."""
    for service in services:
        body = minimal_request(service["hook"], service.get("prefetch", {}))
        response = client.post(f"/cds-services/{service['id']}", json=body)
        assert response.status_code == 200, (service["id"], response.get_json())
        assert response_errors(response.get_json()) == [], service["id"]


# ---- §Providing FHIR Resources to a CDS Service ---------------------------------------------------


def test_providing_fhir_resources__responds_quickly(client):
    """cds-hooks_2.0#27 (SHOULD): "CDS Services SHOULD respond quickly (on the order of 500 ms.)"
    Median of seven full proto-patient-view calls with prefetch, in process (the service's own
    time; the guidance's evaluation time is the scenarios')."""
    body = base_request()
    assert _post(client, body).status_code == 200  # warm-up
    times = []
    for _ in range(7):
        started = time.perf_counter()
        assert _post(client, body).status_code == 200
        times.append(time.perf_counter() - started)
    assert statistics.median(times) < 0.5, times


def test_providing_fhir_resources__every_key_used_is_registered_in_discovery(client, services):
    """cds-hooks_2.0#29 (SHALL): "If data is to be prefetched, the CDS Service registers a set of
    'prefetch templates' with the CDS Client… [communicated] in the CDS Service discovery
    response."  Sending exactly the discovered keys (as null = no data) is enough for every
    service; leaving any one of them out, with no fhirServer, is a 412 that names that key - so
    the service uses no key discovery does not announce, and needs every key it announces."""
    for service in services:
        keys = sorted(service["prefetch"])
        assert (
            client.post(f"/cds-services/{service['id']}", json=minimal_request(service["hook"], keys)).status_code
            == 200
        )
        for key in keys:
            body = minimal_request(service["hook"], [k for k in keys if k != key])
            issues = outcome(client.post(f"/cds-services/{service['id']}", json=body), 412)
            assert issues[0]["expression"] == [f"prefetch.{key}"], (service["id"], key, issues)


def test_prefetch_template__operation_outcome_in_prefetch_counts_as_missing(client):
    """cds-hooks_2.0#52 (SHOULD): "CDS Services SHOULD check any prefetched data for the existence
    of OperationOutcomes."  An OperationOutcome under a key is not used as data: with no
    fhirServer to fetch it from, the call is a 412 naming the key (with one, see
    test_prefetch.py::test_prefetch_template__operation_outcome_is_missing_and_fetched)."""
    body = base_request()
    body["prefetch"]["observations"] = {"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "too-costly", "diagnostics": "too many observations"}]}
    issues = outcome(_post(client, body), 412)
    assert issues[0]["expression"] == ["prefetch.observations"]


def test_prefetch_template__412_when_data_cannot_be_obtained(client):
    """cds-hooks_2.0#54 (SHALL): "If the CDS Service is unable to obtain required data because it
    cannot access the FHIR server and the request did not contain the necessary prefetch keys,
    the service SHALL respond with an HTTP 412 Precondition Failed status code."  (No
    fhirServer here; unreachable, refusing and slow servers are in test_prefetch.py.)"""
    body = base_request()
    del body["prefetch"]["observations"], body["prefetch"]["conditions"]
    issues = outcome(_post(client, body), 412)
    assert issues[0]["code"] == "incomplete"
    assert "conditions" in issues[0]["diagnostics"] and "observations" in issues[0]["diagnostics"]
    assert issues[0]["expression"] == ["prefetch.conditions"]


def test_prefetch_tokens__delimited_by_double_braces(services):
    """cds-hooks_2.0#55 (SHALL): "Prefetch tokens MUST be delimited by {{ and }}".  No brace is
    left in any template once its {{…}} tokens are taken out."""
    for service in services:
        for key, template in service["prefetch"].items():
            assert tokens(template), (service["id"], key)
            assert not re.search(r"[{}]", TOKEN.sub("", template)), (service["id"], key, template)


def test_prefetch_tokens__only_context_fields_or_user_identifiers(services):
    """cds-hooks_2.0#56 (SHALL): "Prefetch tokens ... MUST contain only the qualified path to a
    hook context field or one of the following user identifiers: userPractitionerId,
    userPractitionerRoleId, userPatientId, or userRelatedPersonId"; cds-hooks_2.0#59 (SHALL):
    "When context fields are used as tokens, their token name MUST be
    `context.name-of-the-field`"."""
    for service in services:
        for template in service["prefetch"].values():
            for token in tokens(template):
                assert re.fullmatch(r"context\.[A-Za-z][A-Za-z0-9]*", token) or token in USER_TOKENS, token


def test_prefetch_tokens__only_root_level_primitive_context_fields(services):
    """cds-hooks_2.0#57 (SHALL): "Only root-level fields with a primitive value within the context
    object are eligible to be used as prefetch tokens."  Every context token names a root field
    that the hook definition types as a string (userId, patientId, encounterId); the spec's own
    examples of eligible and ineligible fields are rendered in
    test_published_examples.py::test_example_context_fragments_give_root_primitive_tokens_only."""
    for service in services:
        for template in service["prefetch"].values():
            for token in tokens(template):
                if token.startswith("context."):
                    assert token.count(".") == 1 and token[len("context."):] in TOKEN_FIELDS[service["hook"]], token


def test_prefetch_query_restrictions__templates_use_the_recommended_subset(services):
    """cds-hooks_2.0#58 (SHOULD): "this specification RECOMMENDS that prefetch queries only use a
    subset of the full functionality available in the FHIR specification": instance reads,
    type-level searches, references such as patient={{context.patientId}}, token equality (and
    `:in`), date prefixes eq/lt/gt/ge/le, `_count`, `_sort`.  Every template discovery
    announces is checked (a read, and searches by patient with a list of tokens); the checker
    itself names what is outside the subset.  The clinical content's own templates, with their
    known `_include` deviation, are checked in tests/content/test_prefetch_queries.py."""
    announced = [(s["id"], key, t) for s in services for key, t in s["prefetch"].items()]
    assert {t.split("?")[0] for _, _, t in announced} == {
        "Patient/{{context.patientId}}", "Encounter/{{context.encounterId}}", "Condition", "Observation"}
    for service_id, key, template in announced:
        assert query_restriction_findings(template) == [], (service_id, key)
    assert query_restriction_findings("Encounter?_id={{context.encounterId}}&_include=Encounter:location") == [
        "_include=Encounter:location"]
    assert query_restriction_findings("Observation?patient={{context.patientId}}&code:text=level&_summary=count") == [
        "code:text=level", "_summary=count"]


# ---- §CDS Service Response ------------------------------------------------------------------------


def test_cds_service_response__200_with_a_cards_array(calls):
    """cds-hooks_2.0#74 (SHALL): "For successful responses, CDS Services SHALL respond with a 200
    HTTP response with an object containing a cards array"; cds-hooks_2.0#75: "[MAY] optionally
    [respond with] a systemActions array" - this service sends none."""
    for case_id, _, status, body in calls:
        assert status == 200, (case_id, body)
        assert isinstance(body["cards"], list), case_id
        assert "systemActions" not in body, case_id
        assert response_errors(body) == [], case_id


def test_cds_service_response__no_guidance_is_200_with_empty_cards(client):
    """cds-hooks_2.0#77 (SHOULD): "If … [the] CDS Service has no decision support for the user, …
    [the] service should return a 200 HTTP response with an empty array of cards"."""
    body = base_request()
    body["prefetch"] = {key: None for key in body["prefetch"]}
    response = _post(client, body)
    assert response.status_code == 200
    assert response.get_json() == {"cards": []}
    assert topics(_post(client, base_request()).get_json()) != []  # with its data, the same call has cards


def test_card_attributes__uuid_is_a_unique_string(responses):
    """cds-hooks_2.0#80 (SHALL): "[When sending a card object] the uuid field SHALL [be a] unique
    identifier of the card [and be sent as] a string data type" (unique within the response;
    across calls see tests/web/test_http.py::test_card_uuids_are_stable_for_the_same_hook_instance)."""
    for case_id, _, body in responses:
        uuids = [card["uuid"] for card in body["cards"]]
        assert all(isinstance(u, str) and u for u in uuids), case_id
        assert len(set(uuids)) == len(uuids), case_id


def test_card_attributes__summary_is_under_140_characters(responses):
    """cds-hooks_2.0#83 (SHALL): "the summary field Shall be a < 140 summary message for display to
    the user as a string data type" (long titles are cut by the renderer:
    tests/cards/test_render.py::test_cards_sort_critical_warning_info_and_truncate_long_summaries)."""
    for case_id, _, card in cards_of(responses):
        assert isinstance(card["summary"], str) and 0 < len(card["summary"]) < 140, (case_id, card["summary"])


def test_card_attributes__detail_is_markdown_without_raw_html(responses):
    """cds-hooks_2.0#85 (SHALL): "the detail field, if provided, MUST be represented in (GitHub
    Flavored) Markdown".  Any text is GFM; what would not survive is text that GFM reads as raw
    HTML (a `<` followed by a tag name, `!`, `?` or `/`), which clients filter or render
    unpredictably - so detail carries none."""
    details = [(case_id, card["detail"]) for case_id, _, card in cards_of(responses) if "detail" in card]
    assert details
    for case_id, detail in details:
        assert isinstance(detail, str)
        assert not re.search(r"<[A-Za-z!?/]", detail), (case_id, detail)


def test_card_attributes__indicator_is_required_and_one_of_the_allowed_values(responses):
    """cds-hooks_2.0#87 (SHALL): "the indicator field is a required field [conveying] the urgency /
    importance of the card [information sent as a] string data type"; cds-hooks_2.0#88 (SHALL):
    "the indicator field's allowed values, in order of increasing urgency, are: info, warning,
    critical"."""
    seen = set()
    for case_id, _, card in cards_of(responses):
        assert card["indicator"] in ("info", "warning", "critical"), case_id
        seen.add(card["indicator"])
    assert seen == {"info", "warning", "critical"}


def test_card_attributes__cards_sorted_by_indicator_urgency(responses):
    """cds-hooks_2.0#89: "the CDS Client MAY use [the indicator] field to help make UI display
    decisions such as sort order".  The service sends cards already sorted critical -> warning ->
    info (J-29), so a client that keeps the order shows the most urgent first."""
    rank = {"critical": 0, "warning": 1, "info": 2}
    mixed = 0
    for case_id, _, body in responses:
        ranks = [rank[card["indicator"]] for card in body["cards"]]
        assert ranks == sorted(ranks), case_id
        mixed += len(set(ranks)) > 1
    assert mixed, "some response mixes indicators"


def test_card_attributes__source_is_required(responses):
    """cds-hooks_2.0#90 (SHALL): "the source is a required field [and SHALL be populated with a]
    source object"."""
    for case_id, _, card in cards_of(responses):
        assert isinstance(card["source"], dict) and card["source"], case_id


def test_card_attributes__suggestions_come_with_a_selection_behavior(responses):
    """cds-hooks_2.0#92 (SHALL): "the suggestion field … [is sent as a] array of suggestion
    [objects]"; cds-hooks_2.0#93 (SHALL): "If suggestions are present, selectionBehavior MUST
    also be provided."; cds-hooks_2.0#95 (SHALL): allowed values `at-most-one`, `any`;
    cds-hooks_2.0#96 (SHALL): "[SHALL be sent as a] string data type [and SHALL be present if the
    suggestions field in the card is populated]"."""
    with_suggestions = 0
    for case_id, _, card in cards_of(responses):
        if "suggestions" in card:
            with_suggestions += 1
            assert isinstance(card["suggestions"], list) and card["suggestions"], case_id
            assert card["selectionBehavior"] in ("at-most-one", "any"), case_id
        else:
            assert "selectionBehavior" not in card, case_id
    assert with_suggestions


def test_card_attributes__override_reasons_are_codings_with_display(responses):
    """cds-hooks_2.0#98 (SHALL): "the overrideReason field [SHALL be sent as a] array of coding
    [objects]"; cds-hooks_2.0#100 (SHALL) and #136 (SHALL): "if override reasons are present, the
    CDS Service MUST populate a display value for each reason's Coding"; cds-hooks_2.0#216/#218
    (SHALL) `code` and #217 (SHALL) `system` required strings; #219 (SHALL) `display` required
    for override reasons."""
    reasons = [(case_id, r) for case_id, _, card in cards_of(responses) for r in card.get("overrideReasons", [])]
    assert reasons
    for case_id, reason in reasons:
        for field in ("system", "code", "display"):
            assert isinstance(reason[field], str) and reason[field].strip(), (case_id, reason)


def test_card_attributes__links_are_an_array_of_links(client):
    """cds-hooks_2.0#103 (SHALL): "the link field [SHALL be sent as a] array of link [objects]"
    (a documentation RelatedArtifact with a url becomes one; then every card that names its rule
    links to the rule's page, the same page for every patient: not a context-specific drill-down)."""
    (card,) = _post(client, base_request(), BOTH).get_json()["cards"]
    assert card["links"] == [
        {"label": "More about greetings", "url": "https://example.org/more", "type": "absolute"},
        {"label": "Why this recommendation", "url": "http://localhost/guidance/PROTO-HELLO", "type": "absolute"},
    ]
    # the citation is the source, not a link
    assert card["source"]["url"] == "https://example.org/guideline"


def test_source__label_url_and_topic(responses):
    """cds-hooks_2.0#105 (SHALL): "the label field is required and [SHALL be a] string";
    cds-hooks_2.0#107 (SHALL): "the url field [SHALL be a] URL data type [and use a] absolute
    URL"; cds-hooks_2.0#115 (SHALL): "the topic field [SHALL be a] Coding type object" (with
    #216/#217 code and system; #220 display optional); cds-hooks_2.0#111/#112 (icon: absolute
    URL, SHOULD be a 100x100 PNG): no icon is sent."""
    urls = 0
    for case_id, _, card in cards_of(responses):
        source = card["source"]
        assert set(source) <= {"label", "url", "topic"}, (case_id, source)
        assert isinstance(source["label"], str) and source["label"].strip(), case_id
        if "url" in source:
            urls += 1
            assert re.fullmatch(r"https?://[^\s/?#]+[^\s]*", source["url"]), (case_id, source["url"])
        topic = source["topic"]
        assert isinstance(topic["system"], str) and isinstance(topic["code"], str), (case_id, topic)
        assert isinstance(topic.get("display", ""), str)
    assert urls


def test_source__url_is_not_a_context_specific_drill_down(responses):
    """cds-hooks_2.0#109 (SHOULD NOT): "the URL [field] should not be used to supply a
    context-specific 'drill-down' view of the information on this card"; cds-hooks_2.0#110
    (SHOULD): use card.link.url for that.  No source.url carries a value of the call's context
    (patient, encounter, user, hookInstance)."""
    for case_id, request, card in cards_of(responses):
        url = card["source"].get("url", "")
        values = [request["hookInstance"]] + [
            v.split("/")[-1] for v in request["context"].values() if isinstance(v, str)
        ]
        assert not any(len(v) > 2 and v in url for v in values), (case_id, url)


def test_suggestion__label_uuid_is_recommended_and_actions(responses):
    """cds-hooks_2.0#117 (SHALL): "the label field is required and [SHALL be a] string";
    cds-hooks_2.0#119 (SHALL): "the uuid field [SHALL be a] string"; cds-hooks_2.0#121 (SHALL):
    "the isRecommended field [SHALL be a] boolean"; cds-hooks_2.0#122 (MAY): several recommended
    only with selectionBehavior `any`; cds-hooks_2.0#124 (SHALL): "the action field [SHALL be a]
    array of actions"."""
    recommended = 0
    for case_id, _, card in cards_of(responses):
        suggestions = card.get("suggestions", [])
        for s in suggestions:
            assert isinstance(s["label"], str) and s["label"].strip(), case_id
            assert isinstance(s["uuid"], str) and s["uuid"], case_id
            assert s.get("isRecommended", True) is True, case_id  # sent only as true
            assert isinstance(s["actions"], list) and s["actions"], case_id
        flagged = sum(1 for s in suggestions if s.get("isRecommended"))
        recommended += flagged
        assert flagged <= 1 or card["selectionBehavior"] == "any", case_id
    assert recommended


def _actions(responses):
    for case_id, request, card in cards_of(responses):
        for suggestion in card.get("suggestions", []):
            for action in suggestion["actions"]:
                yield case_id, request, action


def test_action__type_description_and_resource(responses):
    """cds-hooks_2.0#127 (SHALL): "the type field is required and [SHALL be a] string data type
    [with] values of create, update, delete"; cds-hooks_2.0#128 (SHALL): "the description field
    is required and [SHALL be a] string"; cds-hooks_2.0#130 (SHALL): "the resource field [SHALL
    be a] FHIR resource"."""
    kinds = set()
    for case_id, _, action in _actions(responses):
        kinds.add(action["type"])
        assert action["type"] in ("create", "update", "delete"), case_id
        assert isinstance(action["description"], str) and action["description"].strip(), case_id
        if "resource" in action:
            assert isinstance(action["resource"], dict) and re.fullmatch(
                r"[A-Z][A-Za-z]+", action["resource"]["resourceType"]
            )
    assert kinds == {"create", "update", "delete"}


def test_action__create_holds_a_new_resource(responses):
    """cds-hooks_2.0#131 (SHALL): "when the type attribute … is create, the resource attribute
    SHALL contain a new FHIR resource to be created."  A create carries a resource and no id of
    its own (the client assigns it), so it cannot be mistaken for an existing one."""
    creates = [(case_id, a) for case_id, _, a in _actions(responses) if a["type"] == "create"]
    assert creates
    for case_id, action in creates:
        assert "resource" in action and "resourceId" not in action, case_id
        assert "id" not in action["resource"], (case_id, action["resource"].get("id"))


def test_action__update_holds_the_entire_resource(responses):
    """cds-hooks_2.0#132 (SHALL): "when the type attribute … is update, this holds the updated
    resource in its entirety and not just the changed fields."  Every update targets a draft of
    the call's draftOrders by id and keeps every element of that draft."""
    updates = [(case_id, request, a) for case_id, request, a in _actions(responses) if a["type"] == "update"]
    assert updates
    for case_id, request, action in updates:
        resource = action["resource"]
        drafts = {(e["resource"]["resourceType"], e["resource"]["id"]): e["resource"]
                  for e in request["context"]["draftOrders"]["entry"]}
        original = drafts[(resource["resourceType"], resource["id"])]
        assert set(original) <= set(resource), (case_id, set(original) - set(resource))


def test_action__delete_uses_resource_id(responses):
    """cds-hooks_2.0#133 (SHALL): "[the resource field SHALL NOT be used] to communicate a string
    of a FHIR id for delete suggestions"; cds-hooks_2.0#134: "the resourceID field SHOULD be
    provided"; cds-hooks_2.0#135 (SHALL): "the resourceID field [SHALL be a] string".  Each delete
    names, as a relative reference, a draft of the call."""
    deletes = [(case_id, request, a) for case_id, request, a in _actions(responses) if a["type"] == "delete"]
    assert deletes
    for case_id, request, action in deletes:
        assert "resource" not in action, case_id
        drafts = {
            f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in request["context"]["draftOrders"]["entry"]
        }
        assert isinstance(action["resourceId"], str) and action["resourceId"] in drafts, (case_id, action)


def test_link__label_url_type_and_no_app_context_on_absolute_links(responses):
    """cds-hooks_2.0#138 (SHALL): label required string; cds-hooks_2.0#139 (SHALL): url required
    URL; cds-hooks_2.0#141/#142 (SHALL): type required, `absolute` or `smart`; cds-hooks_2.0#144
    (SHALL) appContext a string, #146 (SHOULD) "only … if the link type is smart", #147 (SHALL
    NOT) "not valid for absolute links"."""
    links = [link for _, _, card in cards_of(responses) for link in card.get("links", [])]
    assert {link["url"] for link in links} >= {"https://example.org/more", "https://example.org/protocol-test-levels",
                                               "http://localhost/guidance/PROTO-HIGH"}
    for link in links:
        assert isinstance(link["label"], str) and link["label"]
        assert re.fullmatch(r"https?://[^\s/?#]+[^\s]*", link["url"])
        assert link["type"] in ("absolute", "smart")
        assert "appContext" not in link or (link["type"] == "smart" and isinstance(link["appContext"], str))


# ---- §Security and Safety: Cross-Origin Resource Sharing ------------------------------------------

PREFLIGHT = {"Origin": EHR_ORIGIN, "Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "authorization, content-type"}


@pytest.mark.parametrize("path", ["/cds-services", SERVICE, SERVICE + "/feedback"])
def test_cross_origin_resource_sharing__preflight_allows_the_cds_hooks_headers(client, path):
    """cds-hooks_2.0#208 (SHALL): "CDS Services and browser-based CDS Clients will require CORS
    support."  A browser EHR's preflight (POST/GET with the JWT `Authorization` header and a JSON
    `Content-Type`) is answered with the matching Access-Control-Allow-* headers."""
    method = "GET" if path == "/cds-services" else "POST"
    response = client.open(path, method="OPTIONS", headers={**PREFLIGHT, "Access-Control-Request-Method": method})
    assert response.status_code in (200, 204)
    headers = response.headers
    assert headers["Access-Control-Allow-Origin"] in (EHR_ORIGIN, "*")
    assert method in [m.strip() for m in headers["Access-Control-Allow-Methods"].split(",")]
    allowed = {h.strip().lower() for h in headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type"} <= allowed
    assert int(headers["Access-Control-Max-Age"]) > 0


def test_cross_origin_resource_sharing__responses_carry_allow_origin(client):
    """cds-hooks_2.0#208: actual responses (discovery, a call, a 412 OperationOutcome a browser
    client must be able to read) carry Access-Control-Allow-Origin for the caller's origin."""
    headers = {"Origin": EHR_ORIGIN}
    body = base_request()
    answers = [client.get("/cds-services", headers=headers), _post(client, body, headers=headers),
               _post(client, {**body, "prefetch": {}}, headers=headers)]
    assert [a.status_code for a in answers] == [200, 200, 412]
    for answer in answers:
        assert answer.headers["Access-Control-Allow-Origin"] in (EHR_ORIGIN, "*")


def test_cross_origin_resource_sharing__preflight_refuses_other_headers(client):
    """cds-hooks_2.0#208 with the OWASP advice the spec points to: only the headers the protocol
    needs are allowed; a preflight asking for another header gets no Allow-Headers for it."""
    response = client.open(SERVICE, method="OPTIONS", headers={**PREFLIGHT, "Access-Control-Request-Headers": "x-evil"})
    assert "x-evil" not in response.headers.get("Access-Control-Allow-Headers", "").lower()


def test_cross_origin_resource_sharing__configured_origins_only(make_protocol_app):
    """cds-hooks_2.0#208: with `cors_origins` (CDS_CORS_ORIGINS) set to a comma-separated list of
    EHR origins, each listed origin is allowed and any other gets no Access-Control-Allow-Origin."""
    client = make_protocol_app(cors_origins=f"{EHR_ORIGIN}, https://other-ehr.example.org").test_client()
    for origin, allowed in (
        (EHR_ORIGIN, True),
        ("https://other-ehr.example.org", True),
        ("https://evil.example.org", False),
    ):
        preflight = client.open(SERVICE, method="OPTIONS", headers={**PREFLIGHT, "Origin": origin})
        call = client.get("/cds-services", headers={"Origin": origin})
        for response in (preflight, call):
            assert (response.headers.get("Access-Control-Allow-Origin") == origin) is allowed, (
                origin,
                response.headers,
            )


# ---- §Update stale guidance, §Extensions ----------------------------------------------------------


def test_update_stale_guidance__one_service_id_for_several_hooks(client, services):
    """cds-hooks_2.0#211 (SHALL): "CDS Services indicate [intent to update an existing card] by
    providing multiple CDS Services with the same id in discovery."  A plan that names its
    service id (cqf-cdsHooksEndpoint) is discovered once per hook under that id and answers each hook
    there, with the same card uuid for the same hookInstance."""
    assert sorted(s["hook"] for s in services if s["id"] == "proto-both") == ["order-sign", "patient-view"]
    keys = [s["prefetch"] for s in services if s["id"] == "proto-both"][0]
    cards = {}
    for hook in ("patient-view", "order-sign"):
        body = minimal_request(hook, keys)
        for _ in range(2):
            response = _post(client, body, BOTH)
            assert response.status_code == 200, response.get_json()
            cards.setdefault(hook, []).append(response.get_json()["cards"])
    summaries = {hook: [c["summary"] for c in answers[0]] for hook, answers in cards.items()}
    assert summaries == {"patient-view": ["Hello"], "order-sign": ["Hello"]}
    for hook in cards:
        assert [c["uuid"] for c in cards[hook][0]] == [c["uuid"] for c in cards[hook][1]]
    issues = outcome(_post(client, minimal_request("order-select", keys), BOTH), 400)
    assert "order-select" in issue_text(issues)


def _cds_extensions(value, where=""):
    """`extension` members of CDS Hooks objects (not inside FHIR resources, whose `extension` is an array)."""
    if isinstance(value, dict):
        if "resourceType" in value:
            return
        if "extension" in value:
            yield where, value["extension"]
        for key, item in value.items():
            if key != "extension":
                yield from _cds_extensions(item, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _cds_extensions(item, f"{where}[{i}]")


def test_extensions__values_are_objects_with_globally_unique_names(client):
    """cds-hooks_2.0#214 (SHALL): "The value of an extension element MUST be a pre-coordinated
    JSON object"; cds-hooks_2.0#215 (SHOULD): "Extension structures SHOULD use a strategy for
    naming that ensures global uniqueness, such as reverse-domain-name notation".  Checked on
    discovery and on a traced call (the trace is the service's own extension)."""
    documents = [
        client.get("/cds-services").get_json(),
        _post(client, base_request(), query_string={"_trace": "true"}).get_json(),
    ]
    found = [e for doc in documents for e in _cds_extensions(doc)]
    assert len(found) > 3
    for where, extension in found:
        assert isinstance(extension, dict) and extension, where
        for name in extension:
            assert re.fullmatch(r"https?://[^\s/]+\.[^\s]+|[a-z0-9-]+(\.[a-z0-9-]+)+(\.[A-Za-z0-9-]+)*", name), (
                where,
                name,
            )


# ---- hook library 1.0.1 (Server rows) -------------------------------------------------------------


def test_hook_library__prefetch_tokens_use_only_the_context_fields_allowed(services):
    """cds-hooks-library_1.0.1#4/#8/#12, #77/#81/#85 (MAY): "Servers MAY use the userId,
    patientId, encounterId context field in prefetch tokens" for order-sign / order-select (and
    patient-view likewise); #16, #89, #93 (SHALL NOT): "Servers SHALL NOT use the draftOrders /
    selections context field in prefetch tokens"."""
    used = set()
    for service in services:
        for template in service["prefetch"].values():
            for token in tokens(template):
                field = token.split(".", 1)[1] if token.startswith("context.") else None
                if field:
                    used.add((service["hook"], field))
                    assert field not in ("draftOrders", "selections"), (service["id"], token)
                    assert field in TOKEN_FIELDS[service["hook"]], (service["id"], token)
    assert {hook for hook, _ in used} == set(SUPPORTED_HOOKS)


def test_hook_library__only_the_implemented_hooks_are_served(services, client):
    """cds-hooks-library_1.0.1 rows for appointment-book, encounter-start, encounter-discharge and
    order-dispatch (#20-#73) bind services of those hooks; this service offers none, and a call
    of another hook is refused (400), so none of its context fields is ever used."""
    assert {s["hook"] for s in services} == set(SUPPORTED_HOOKS)
    body = {"hook": "appointment-book", "hookInstance": HOOK_INSTANCE,
            "context": {"userId": "Practitioner/u1", "patientId": "p1", "appointments": {"resourceType": "Bundle"}}}
    issues = outcome(_post(client, body), 400)
    assert "appointment-book" in issue_text(issues)


# ---- traceability --------------------------------------------------------------------------------


def _requirement_rows() -> list[dict]:
    path = shared_path("external", "cds-hooks-requirements", "davinci_crd_test_kit_requirements.csv")
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [r for r in rows if (r["Req Set"] == "cds-hooks_2.0" and "Service" in r["Actors"])
            or (r["Req Set"] == "cds-hooks-library_1.0.1" and "Server" in r["Actors"])]


def test_traceability__every_service_requirement_row_is_in_requirements_md():
    """REQUIREMENTS.md lists every `cds-hooks_2.0` row with a Service actor and every
    `cds-hooks-library_1.0.1` Server row, with its conformance verb, and every test it names
    exists in tests/conformance/ or the test file it points at."""
    text = (HERE / "REQUIREMENTS.md").read_text(encoding="utf-8")
    listed = dict(re.findall(r"^\| `([a-z0-9._-]+#\d+)` \| (\S+(?: \S+)?) \|", text, flags=re.M))
    rows = _requirement_rows()
    assert len(rows) == 143
    for row in rows:
        key = f"{row['Req Set']}#{row['ID']}"
        assert key in listed, key
        assert listed[key] == row["Conformance"], (key, listed[key], row["Conformance"])
    assert len(listed) == len(rows), set(listed) - {f"{r['Req Set']}#{r['ID']}" for r in rows}
    root = HERE.parent.parent
    for file, name in re.findall(r"`((?:tests/)[\w/]+\.py)::(test_\w+)`", text):
        source = (root / file).read_text(encoding="utf-8")
        assert re.search(rf"^def {name}\(", source, flags=re.M), f"{file}::{name}"
    for name in re.findall(r"(?<![:/\w])`(test_\w+)`", text):
        assert any(re.search(rf"^def {name}\(", p.read_text(encoding="utf-8"), flags=re.M)
                   for p in HERE.glob("test_*.py")), name
