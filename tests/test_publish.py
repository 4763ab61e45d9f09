"""service.content.publish without a server: what a sample file becomes, ids, the fallback to
server-assigned ids.  Against a real server: tests/integration/test_fhir_content.py."""

from __future__ import annotations

import json
import re

import pytest

from service.content.publish import (
    CONTENT_ORDER,
    LoadReport,
    Skipped,
    content_resources,
    load_document,
    patient_files,
    resources_of,
    stored_ids,
    to_transaction,
)
from service.errors import ContentErrors, FhirRequestRefused, FhirServerError
from tests.conftest import CONTENT

CASE = CONTENT / "tests" / "DAH-05" / "p01-gpa-hypoxemic.json"


def patient_and_condition():
    return [("urn:uuid:aaa", {"resourceType": "Patient", "id": "p1"}),
            ("urn:uuid:bbb", {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p1"},
                              "evidence": [{"detail": [{"reference": "urn:uuid:aaa"}]}],
                              "asserter": {"reference": "Practitioner/elsewhere"}})]


class FakeClient:
    base_url = "http://fhir.test/fhir/"

    def __init__(self, refuse_put: bool = False):
        self.refuse_put = refuse_put
        self.sent: list[dict] = []

    def transaction(self, bundle, timeout=None):
        self.sent.append(bundle)
        if self.refuse_put and any(e["request"]["method"] == "PUT" for e in bundle["entry"]):
            raise FhirRequestRefused("FHIR server answered 400 to POST: client ids are not allowed", server_status=400)
        return {"resourceType": "Bundle", "type": "transaction-response", "entry": [
            {"response": {"status": "201 Created", "location":
                          f"{self.base_url}{e['request']['url'].split('/')[0]}/{i + 100}/_history/1"}}
            for i, e in enumerate(bundle["entry"])]}


def test_content_is_validated_and_ordered_dependencies_first():
    resources = content_resources(CONTENT)
    types = [r["resourceType"] for _, r in resources]
    assert types == sorted(types, key=CONTENT_ORDER.index)
    definitions = list(CONTENT.glob("StructureDefinition-*.json"))  # for other tools; not published
    assert definitions
    assert len(resources) == len(list(CONTENT.glob("*-*.json"))) - len(definitions)


def test_bad_content_is_not_published(tmp_path):
    (tmp_path / "PlanDefinition-x.json").write_text(json.dumps({
        "resourceType": "PlanDefinition", "id": "x", "url": "http://example.org/fhir/PlanDefinition/x",
        "status": "active", "action": [{"title": "t", "condition": [
            {"kind": "applicability", "expression": {"language": "text/fhirpath", "expression": "1 +"}}]}]}))
    with pytest.raises(ContentErrors, match="PlanDefinition-x.json"):
        content_resources(tmp_path)


def test_what_a_sample_file_holds():
    case = json.loads(CASE.read_text())
    kind, items = resources_of(case)
    assert kind == "case"
    types = sorted({r["resourceType"] for _, r in items})
    assert types == ["Condition", "Observation", "Patient"]
    assert resources_of({"resourceType": "Bundle", "type": "transaction", "entry": []}) == ("transaction", [])
    assert resources_of({"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Patient"}}, {"fullUrl": "junk"}]}) \
        == ("bundle", [("urn:uuid:1", {"resourceType": "Patient"})])
    assert resources_of({"resourceType": "Patient", "id": "x"}) == (
        "resource",
        [(None, {"resourceType": "Patient", "id": "x"})],
    )
    golden = json.loads(CASE.with_name("p01-gpa-hypoxemic.response.json").read_text())
    assert resources_of(golden) is None
    assert resources_of([1, 2]) is None


def test_keep_ids_with_a_prefix_rewrites_the_references():
    bundle = to_transaction(patient_and_condition(), "keep", id_prefix="t1-")
    patient, condition = (e["resource"] for e in bundle["entry"])
    assert [e["request"] for e in bundle["entry"]] == [{"method": "PUT", "url": "Patient/t1-p1"},
                                                       {"method": "PUT", "url": "Condition/t1-c1"}]
    assert patient["id"] == "t1-p1" and condition["id"] == "t1-c1"
    assert condition["subject"]["reference"] == "Patient/t1-p1"
    assert condition["evidence"][0]["detail"][0]["reference"] == "Patient/t1-p1", "fullUrl references too"
    assert condition["asserter"]["reference"] == "Practitioner/elsewhere", "references outside the file stay"


def test_server_ids_post_with_urn_uuids():
    bundle = to_transaction(patient_and_condition(), "server")
    patient, condition = bundle["entry"]
    assert patient["request"] == {"method": "POST", "url": "Patient"} and "id" not in patient["resource"]
    assert patient["fullUrl"] == "urn:uuid:aaa"
    assert condition["resource"]["subject"]["reference"] == "urn:uuid:aaa"


def test_the_same_resource_in_two_prefetch_keys_is_sent_once():
    items = patient_and_condition() + [(None, {"resourceType": "Patient", "id": "p1"})]
    assert len(to_transaction(items, "keep")["entry"]) == 2


def test_an_invalid_prefixed_id_is_refused():
    from service.content.publish import PublishError

    with pytest.raises(PublishError, match="not a valid FHIR id"):
        to_transaction([(None, {"resourceType": "Patient", "id": "x" * 64})], "keep", id_prefix="p-")


def test_stored_ids_from_locations():
    response = {"entry": [{"response": {"location": "http://s/fhir/Patient/9/_history/2"}},
                          {"response": {"location": "Condition/c1"}}, {"response": {}}]}
    assert stored_ids(["Patient/p1", "Condition/c1", "Observation/o"], response, "http://s/fhir/") == {
        "Patient/p1": "Patient/9", "Condition/c1": "Condition/c1"}


@pytest.mark.parametrize("entries", [[{"response": {"location": "Patient/9"}}], None])
def test_stored_ids_refuse_a_response_that_does_not_answer_each_entry(entries):
    response = {"resourceType": "Bundle", "type": "transaction-response"} | ({"entry": entries} if entries else {})
    with pytest.raises(FhirServerError, match="for the 2 sent"):
        stored_ids(["Patient/p1", "Condition/c1"], response, "http://s/fhir/")


def test_auto_falls_back_to_server_ids_when_put_is_refused():
    client = FakeClient(refuse_put=True)
    report = load_document(client, json.loads(CASE.read_text()), CASE.name)
    assert isinstance(report, LoadReport)
    assert report.mode == "server" and "refused client-assigned ids" in report.note
    assert [e["request"]["method"] for e in client.sent[0]["entry"]][0] == "PUT"
    assert {e["request"]["method"] for e in client.sent[1]["entry"]} == {"POST"}
    assert report.id_of("Patient/p01") == "100"
    assert report.patients == ["Patient/100"]


def test_keep_mode_does_not_fall_back():
    with pytest.raises(FhirServerError):
        load_document(FakeClient(refuse_put=True), json.loads(CASE.read_text()), CASE.name, id_mode="keep")


def test_transaction_file_is_sent_as_is():
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Patient", "id": "1"},
         "request": {"method": "POST", "url": "Patient"}}]}
    client = FakeClient()
    report = load_document(client, bundle, "synthea.json")
    assert client.sent == [bundle]
    assert report.mode == "as-is" and report.ids == {"Patient/1": "Patient/100"}


def test_folders_leave_out_golden_responses_and_odd_files_are_skipped(tmp_path):
    files = patient_files([CASE.parent])
    assert files and not any(f.name.endswith(".response.json") for f in files)
    assert isinstance(load_document(FakeClient(), {"cards": []}, "x.json"), Skipped)


def test_publish_needs_a_server(monkeypatch, capsys):
    from service.cli import main

    monkeypatch.delenv("CDS_CONTENT_FHIR_BASE_URL", raising=False)
    assert main(["publish"]) == 2
    assert "--fhir-base-url" in capsys.readouterr().err


def test_publish_to_a_closed_port_fails_cleanly(capsys):
    import socket

    from service.cli import main

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["publish", "--fhir-base-url", f"http://127.0.0.1:{port}/fhir", "--token", "secret-token-1"]) == 2
    err = capsys.readouterr().err
    # the error names the content file it could not publish (the first in dependency order), never the token
    assert re.search(r"ERROR (ConceptMap|ValueSet)-\S+\.json: FHIR server unreachable", err), err
    assert "secret-token-1" not in err


def test_content_server_settings_come_from_the_environment():
    from service.config import load_config

    cfg = load_config(environ={"CDS_CONTENT_FHIR_BASE_URL": "http://h/fhir", "CDS_CONTENT_REFRESH_SECONDS": "30",
                               "CDS_CONTENT_FHIR_STATUS": "active,draft", "CDS_CONTENT_FHIR_TOKEN": "t"})
    assert (cfg.content_fhir_base_url, cfg.content_refresh_seconds, cfg.content_fhir_status, cfg.content_fhir_token) \
        == ("http://h/fhir", 30.0, "active,draft", "t")
    assert load_config(environ={}).content_fhir_base_url == ""
