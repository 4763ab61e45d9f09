"""`dah-cds publish` and content served from a FHIR server (CDS_CONTENT_FHIR_BASE_URL), against
the local test server or FHIR_BASE_URL.

The bundled PlanDefinitions are status `draft` (not clinically signed off), so the service is
configured with content_fhir_status="active,draft"."""

from __future__ import annotations

import json

import pytest
from samples import RUN, cards_digest, case, case_now

from service.cli import main
from service.fhir.client import FhirClient
from tests.conftest import CONTENT, T0

pytestmark = pytest.mark.integration

P01 = "DAH-05/p01-gpa-hypoxemic.json"


@pytest.fixture(scope="module")
def published(fhir_base_url):
    """The bundled content PUT to the server with the command line."""
    assert main(["publish", "--fhir-base-url", fhir_base_url, "--content", str(CONTENT)]) == 0
    return fhir_base_url


def server_app(tmp_path, base_url, **config):
    from service.app import create_app

    app = create_app({"content_fhir_base_url": base_url, "content_fhir_status": "active,draft",
                      "content_refresh_seconds": 0, "database_url": f"sqlite:///{tmp_path / 's.sqlite3'}",
                      **config}, clock=lambda: T0)
    app.config.update(TESTING=True)
    return app


@pytest.fixture(scope="module")
def served(published, tmp_path_factory):
    """One service on the published content (building content costs about a second)."""
    return server_app(tmp_path_factory.mktemp("served"), published)


def discovery_by_id(app) -> dict:
    return {s["id"]: s for s in app.test_client().get("/cds-services").get_json()["services"]}


def test_publish_reports_counts(published, capsys, fhir_base_url):
    assert main(["publish", "--fhir-base-url", fhir_base_url, "--content", str(CONTENT)]) == 0
    out = capsys.readouterr().out
    types = {"ConceptMap": 0, "PlanDefinition": 0, "ActivityDefinition": 0, "Library": 0, "ValueSet": 0}
    for path in CONTENT.glob("*.json"):
        rtype = json.loads(path.read_text())["resourceType"]
        if rtype != "StructureDefinition":  # extension definitions ship with the folder, are not served content
            types[rtype] += 1
    assert types["ConceptMap"] >= 2  # the medication maps travel with the content
    for kind, count in types.items():
        assert f"{count} {kind}" in out
    stored = FhirClient(fhir_base_url).get("PlanDefinition/dah")
    assert stored["url"] == json.loads((CONTENT / "PlanDefinition-dah.json").read_text())["url"]


def test_discovery_from_the_server_equals_the_folder(served, app):
    folder = discovery_by_id(app)
    served = discovery_by_id(served)
    # The same services, hooks, prefetch templates (with the ValueSets expanded) and descriptions.
    # (A server shared with other content may serve more services besides.)
    assert {sid: served.get(sid) for sid in folder} == folder


def test_hook_call_on_content_from_the_server_matches_the_folder(served, app):
    data = case(P01)
    served.extensions["cds"].clock = lambda: case_now(data)
    app.extensions["cds"].clock = lambda: case_now(data)
    url = f"/cds-services/{data['service']}"
    from_server = served.test_client().post(url, json=data["request"])
    from_folder = app.test_client().post(url, json=data["request"])
    assert from_server.status_code == 200
    assert cards_digest(from_server.get_json()) == cards_digest(from_folder.get_json())


def broken_plan(pid: str, expression: str) -> dict:
    return {"resourceType": "PlanDefinition", "id": pid, "url": f"http://example.org/fhir/PlanDefinition/{pid}",
            "status": "active", "library": ["http://example.org/fhir/Library/dah-case-features"],
            "action": [{"title": "integration test plan", "description": "d",
                        "trigger": [{"type": "named-event", "name": "patient-view"}],
                        "condition": [{"kind": "applicability",
                                       "expression": {"language": "text/fhirpath", "expression": expression}}]}]}


def test_a_broken_plan_on_the_server_is_reported_and_skipped(published, tmp_path, app, caplog):
    fhir = FhirClient(published)
    pid = f"broken-{RUN}"
    fhir.put(broken_plan(pid, "1 +"))
    try:
        served_app = server_app(tmp_path, published)
        served = discovery_by_id(served_app)
        assert f"{pid}-patient-view" not in served
        assert set(discovery_by_id(app)) <= set(served), "the other plans still serve"
        issues = [str(i) for i in served_app.extensions["cds"].content.issues]
        assert any(i.startswith(f"PlanDefinition/{pid}: PlanDefinition.action[0].condition[0]") for i in issues)
        assert f"PlanDefinition/{pid}" in caplog.text

        data = case(P01)
        served_app.extensions["cds"].clock = lambda: case_now(data)
        assert (
            served_app.test_client().post(f"/cds-services/{data['service']}", json=data["request"]).status_code == 200
        )

        # Fixed on the server: the next refresh serves it.
        fhir.put(broken_plan(pid, "false"))
        source = served_app.extensions["cds_content_source"]
        assert source.refresh(served_app.extensions["cds"]) is True
        assert f"{pid}-patient-view" in discovery_by_id(served_app)
        assert served_app.test_client().get("/status/content").get_json()["resourceErrors"] == []

        # Broken again: this time its last good version keeps serving, and the status says so.
        fhir.put(broken_plan(pid, "%nothing and"))
        assert source.refresh(served_app.extensions["cds"]) is True
        assert f"{pid}-patient-view" in discovery_by_id(served_app), "a broken edit never leaves discovery"
        status = served_app.test_client().get("/status/content").get_json()
        assert status["mode"] == "fhir-server" and status["lastError"] is None
        [error] = [e for e in status["resourceErrors"] if e["resource"] == f"PlanDefinition/{pid}"]
        assert "serving its last good version" in error["message"]
        assert served_app.extensions["cds"].content.plan(pid).raw["action"][0]["condition"][0]["expression"][
            "expression"] == "false"
    finally:
        fhir.transaction({"resourceType": "Bundle", "type": "batch", "entry": [
            {"request": {"method": "DELETE", "url": f"PlanDefinition/{pid}"}}]})


def test_refresh_failure_keeps_the_content(served):
    runtime = served.extensions["cds"]
    before = runtime.content
    source = served.extensions["cds_content_source"]
    client, source.client = source.client, FhirClient("http://127.0.0.1:9/fhir", retries=0)  # discard port
    try:
        assert source.refresh(runtime) is False
        assert runtime.content is before and "unreachable" in source.last_error
    finally:
        source.client = client


def test_bad_content_is_not_published(tmp_path, fhir_base_url, capsys):
    folder = tmp_path / "content"
    folder.mkdir()
    pid = f"never-{RUN}"
    (folder / f"PlanDefinition-{pid}.json").write_text(json.dumps(broken_plan(pid, "1 +") | {"library": []}))
    assert main(["publish", "--fhir-base-url", fhir_base_url, "--content", str(folder)]) == 1
    assert f"PlanDefinition-{pid}.json" in capsys.readouterr().err
    found = FhirClient(fhir_base_url).search_all(f"PlanDefinition?_id={pid}")
    assert not found.get("entry")


def test_publish_loads_scenario_cases_and_reports_ids(fhir_base_url, capsys):
    path = CONTENT / "tests" / P01
    assert main(["publish", "--fhir-base-url", fhir_base_url, "--no-content", "--id-prefix", f"{RUN}-cli-",
                 "--patients", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"LOADED {path.name}: 4 Condition, 10 Observation, 1 Patient (ids kept); Patient/{RUN}-cli-p01" in out
    conditions = FhirClient(fhir_base_url).search_all(f"Condition?patient={RUN}-cli-p01")
    assert len(conditions["entry"]) == 4


def test_publish_with_server_assigned_ids(fhir_base_url, capsys):
    path = CONTENT / "tests" / P01
    assert main(["publish", "--fhir-base-url", fhir_base_url, "--no-content", "--id-mode", "server",
                 "--patients", str(path)]) == 0
    out = capsys.readouterr().out
    assert "ids assigned by the server" in out
    pid = out.strip().rsplit("Patient/", 1)[1]
    conditions = FhirClient(fhir_base_url).search_all(f"Condition?patient={pid}")
    assert len(conditions["entry"]) == 4
    subjects = {e["resource"]["subject"]["reference"] for e in conditions["entry"]}
    assert subjects == {f"Patient/{pid}"}


def test_content_from_a_token_protected_server(fhir_server_with_token, tmp_path, app):
    base_url, token = fhir_server_with_token
    assert main(["publish", "--fhir-base-url", base_url, "--token", token, "--content", str(CONTENT)]) == 0
    served = discovery_by_id(server_app(tmp_path, base_url, content_fhir_token=token))
    assert served == discovery_by_id(app)
    refused = server_app(tmp_path, base_url, content_fhir_token="wrong")
    assert discovery_by_id(refused) == {}
    assert any("refused the access token" in str(i) for i in refused.extensions["cds"].content.issues)
