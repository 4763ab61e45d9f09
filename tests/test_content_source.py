"""Content from a FHIR server (service.content.fhir_source), against an in-process stand-in for the
server's search API; the real server is exercised in tests/integration/test_fhir_content.py."""

from __future__ import annotations

import copy
import json
import socket
import threading
import time
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest

from service.content.fhir_source import FhirContentSource, references
from service.errors import FhirAuthError, FhirUnavailable
from service.runtime import Runtime
from tests.conftest import CONTENT
from tests.engine.helpers import BASE, cond, library, plan, var


class FakeServer:
    """search_all over a list of resources: status, url, _id (comma = OR, backslash escapes), _count."""

    base_url = "http://fhir.test/fhir/"

    def __init__(self, resources: list[dict]):
        self.resources = [copy.deepcopy(r) for r in resources]
        self.queries: list[str] = []
        self.error: Exception | None = None
        self.version = 0

    def put(self, resource: dict) -> None:
        self.version += 1
        resource = copy.deepcopy(resource) | {"meta": {"versionId": str(self.version)}}
        self.resources = [r for r in self.resources
                          if (r["resourceType"], r["id"]) != (resource["resourceType"], resource["id"])] + [resource]

    def search_all(self, url: str) -> dict:
        self.queries.append(url)
        if self.error is not None:
            raise self.error
        parts = urlsplit(url)
        params = {k: _split(v) for k, v in parse_qsl(parts.query) if k != "_count"}
        fields = {"status": "status", "url": "url", "_id": "id"}
        found = [r for r in self.resources if r["resourceType"] == parts.path
                 and all(r.get(fields[k]) in values for k, values in params.items())]
        return {"resourceType": "Bundle", "type": "searchset",
                "entry": [{"resource": copy.deepcopy(r), "search": {"mode": "match"}} for r in found]}


def _split(value: str) -> list[str]:
    out, current, escaped = [], "", False
    for ch in unquote(value):
        if escaped:
            current, escaped = current + ch, False
        elif ch == "\\":
            escaped = True
        elif ch == ",":
            out.append(current)
            current = ""
        else:
            current += ch
    return out + [current]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def folder_resources() -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(CONTENT.glob("*.json"))]


def hook_plan(pid: str, expression: str = "true", lib: str | None = None, valueset: str | None = None) -> dict:
    condition = expression if not valueset else f"%conds.where(code.memberOf('{valueset}')).exists()"
    pd = plan([{"title": f"card {pid}", "trigger": [{"type": "named-event", "name": "patient-view"}],
                "condition": [cond(condition)]}],
              library=[f"{BASE}/Library/{lib}"] if lib else None, pid=pid)
    return pd


def valueset(vid: str, code: str = "1") -> dict:
    return {"resourceType": "ValueSet", "id": vid, "url": f"{BASE}/ValueSet/{vid}", "status": "active",
            "compose": {"include": [{"system": "http://snomed.info/sct", "concept": [{"code": code}]}]}}


def source_for(server: FakeServer, statuses: str = "active,draft") -> FhirContentSource:
    return FhirContentSource(server, refresh_seconds=0, statuses=statuses)  # type: ignore[arg-type]


def runtime_with(content) -> Runtime:
    return Runtime(config=None, content=content, store=None, fetcher_factory=None)  # type: ignore[arg-type]


# ---- what is fetched ----------------------------------------------------------------------------


def test_references_by_field_url_and_expression():
    found = references({
        "resourceType": "PlanDefinition", "id": "p", "url": f"{BASE}/PlanDefinition/p",
        "library": [f"{BASE}/Library/l|1.0"],
        "relatedArtifact": [{"type": "depends-on", "resource": "http://other.org/canonical/x"}],
        "action": [{"definitionCanonical": "#contained"},
                   {"definitionCanonical": f"{BASE}/ActivityDefinition/a"},
                   {"definitionCanonical": "http://other.org/plain"},
                   {"condition": [cond(f"%x.memberOf('{BASE}/ValueSet/v') and %y = 'http://not-a-canonical.org'")]},
                   {"input": [{"type": "Condition", "codeFilter": [{"valueSet": "ValueSet/local"}]}]}]})
    assert found == {
        (f"{BASE}/Library/l|1.0", "Library"),
        ("http://other.org/canonical/x", "Library"), ("http://other.org/canonical/x", "ValueSet"),
        (f"{BASE}/ActivityDefinition/a", "ActivityDefinition"),
        ("http://other.org/plain", "ActivityDefinition"), ("http://other.org/plain", "PlanDefinition"),
        (f"{BASE}/ValueSet/v", "ValueSet"),
        ("ValueSet/local", "ValueSet"),
    }


def test_bundled_content_from_the_server_serves_the_same_services():
    from service.content import load_folder

    folder = load_folder(CONTENT)
    server = FakeServer(folder_resources())
    content = source_for(server).load()
    assert sorted(content.services) == sorted(folder.services)
    assert {s: v.hooks for s, v in content.services.items()} == {s: v.hooks for s, v in folder.services.items()}
    assert server.queries[0] == "PlanDefinition?status=active,draft&_count=100"
    assert server.queries[1] == "ConceptMap?status=active,draft&_count=100"
    assert all("url=" in q for q in server.queries[2:])
    assert [i for i in content.issues if i.severity == "error"] == []


def test_concept_maps_are_fetched_and_a_broken_one_only_takes_itself_down():
    from tests.engine.helpers import ingredient, product_map

    good = product_map({"197550": ("cyclophosphamide 50 MG Oral Tablet", [ingredient("3002", "cyclophosphamide")])})
    bad = product_map({"1": ("x", [ingredient("2", "y", "fifty mg")])}, mid="bad")
    server = FakeServer([hook_plan("a"), good | {"status": "active"}, bad | {"status": "active"},
                         product_map({}, mid="retired") | {"status": "retired"}])
    content = source_for(server, statuses="active").load()
    assert sorted(content.services) == ["a-patient-view"]
    assert sorted(content.resources) == [f"{BASE}/ConceptMap/products", f"{BASE}/PlanDefinition/a"]
    assert content.terminology.medications.ingredients("http://www.nlm.nih.gov/research/umls/rxnorm|197550") == {
        "http://www.nlm.nih.gov/research/umls/rxnorm|3002"}
    assert [i.source.file for i in content.issues if i.severity == "error"] == ["ConceptMap/bad"]


def test_only_active_plans_by_default_and_unreferenced_resources_are_not_fetched():
    server = FakeServer([hook_plan("a"), hook_plan("b") | {"status": "draft"}, valueset("unused")])
    content = source_for(server, statuses="active").load()
    assert sorted(content.services) == ["a-patient-view"]
    assert not list(content.terminology.urls())


def test_a_versioned_library_reference_picks_that_version():
    lib1 = library("l", [var("flag", "true")]) | {"version": "1"}
    lib2 = library("l", [var("flag", "false")]) | {"version": "2", "id": "l2"}
    pd = plan([{"title": "t", "trigger": [{"type": "named-event", "name": "patient-view"}],
                "condition": [cond("%flag")]}], library=[f"{BASE}/Library/l|2"], pid="v")
    server = FakeServer([pd, lib1, lib2])
    content = source_for(server).load()
    assert [lib.raw["id"] for lib in content.libraries.values()] == ["l2"]


# ---- bad resources are skipped, the rest serves -----------------------------------------------------


def test_a_broken_plan_is_reported_and_skipped():
    server = FakeServer([hook_plan("good"), hook_plan("bad", expression="1 +")])
    content = source_for(server).load()
    assert sorted(content.services) == ["good-patient-view"]
    errors = [str(i) for i in content.issues if i.severity == "error"]
    assert len(errors) == 1 and errors[0].startswith("PlanDefinition/bad: PlanDefinition.action[0].condition[0]")
    assert "(skipped)" in errors[0]


def test_a_broken_dependency_takes_down_only_the_plans_that_use_it():
    broken_lib = library("broken", [var("x", "1 +")])
    good_lib = library("fine", [var("flag", "true")])
    bad_vs = valueset("vs-bad") | {"compose": {"include": [{"valueSet": [f"{BASE}/ValueSet/missing"]}]}}
    server = FakeServer([
        hook_plan("uses-broken", lib="broken"), hook_plan("uses-fine", lib="fine"), broken_lib, good_lib,
        hook_plan("uses-bad-vs", valueset=f"{BASE}/ValueSet/vs-bad"),
        hook_plan("uses-good-vs", valueset=f"{BASE}/ValueSet/vs-good"), valueset("vs-good"), bad_vs,
    ])
    for pd in server.resources:
        if pd["id"] in ("uses-bad-vs", "uses-good-vs"):
            pd["library"] = [f"{BASE}/Library/conds"]
    server.resources.append(library("conds", [], data_requirements=[{"id": "conds", "type": "Condition"}]))
    content = source_for(server).load()
    assert sorted(content.services) == ["uses-fine-patient-view", "uses-good-vs-patient-view"]
    text = "\n".join(str(i) for i in content.issues)
    assert "Library/broken: Library.extension[0].valueExpression" in text
    assert "PlanDefinition/uses-broken: PlanDefinition: not served: it uses Library/broken" in text
    assert "ValueSet/vs-bad: ValueSet.compose" in text
    assert "PlanDefinition/uses-bad-vs: PlanDefinition: not served: it uses ValueSet/vs-bad" in text


def test_a_plan_whose_library_is_missing_on_the_server_is_skipped():
    server = FakeServer([hook_plan("orphan", lib="nowhere"), hook_plan("fine")])
    content = source_for(server).load()
    assert sorted(content.services) == ["fine-patient-view"]
    assert any("PlanDefinition/orphan" in str(i) and "does not resolve" in str(i) for i in content.issues)


# ---- refresh ------------------------------------------------------------------------------------------


def test_refresh_swaps_new_content_and_keeps_it_when_the_server_fails():
    server = FakeServer([hook_plan("a")])
    source = source_for(server)
    runtime = runtime_with(source.initial())
    first = runtime.content
    assert source.refresh(runtime) is True and runtime.content is first, "nothing changed: nothing rebuilt"

    server.put(hook_plan("b"))
    assert source.refresh(runtime) is True
    assert sorted(runtime.content.services) == ["a-patient-view", "b-patient-view"]
    second = runtime.content

    for error in (FhirUnavailable("down"), FhirAuthError("refused")):
        server.error = error
        assert source.refresh(runtime) is False
        assert runtime.content is second
        assert source.last_error == error.message
    assert source.status.to_json()["lastError"]["errors"][0]["message"] == "refused"
    server.error = None
    assert source.refresh(runtime) is True and runtime.content is second
    assert source.status.to_json()["lastError"] is None, "a refresh that works clears the failure"


def test_a_broken_edit_of_a_plan_keeps_its_last_good_version_serving_and_is_reported():
    """One broken PlanDefinition must not take its services out of discovery (EHRs would get 404
    and a safety rule would stop unseen): its last good version serves, the error is reported."""
    server = FakeServer([hook_plan("a")])
    server.put(hook_plan("b"))  # versionId 1
    source = source_for(server)
    runtime = runtime_with(source.initial())
    good_b = runtime.content.plan("b")

    server.put(hook_plan("b", expression="1 +"))  # versionId 2, broken
    assert source.refresh(runtime) is True
    assert sorted(runtime.content.services) == ["a-patient-view", "b-patient-view"]
    served_b = runtime.content.plan("b")
    assert served_b is not good_b and served_b.url == good_b.url
    assert served_b.raw["action"] == good_b.raw["action"], "the version before the edit"
    errors = source.status.to_json()["resourceErrors"]
    assert [e["resource"] for e in errors] == ["PlanDefinition/b"]
    assert "syntax error" in errors[0]["message"] and "serving its last good version 1" in errors[0]["message"]

    server.put(hook_plan("b", expression="false"))  # fixed: the new version serves, the error is gone
    assert source.refresh(runtime) is True
    assert source.status.to_json()["resourceErrors"] == []
    assert runtime.content.plan("b") is not served_b


def test_a_server_that_is_down_at_start_gives_empty_content_with_the_reason():
    server = FakeServer([hook_plan("a")])
    server.error = FhirUnavailable("FHIR server unreachable")
    source = source_for(server)
    content = source.initial()
    assert content.services == {}
    assert any("content not loaded: FHIR server unreachable" in str(i) for i in content.issues)
    runtime = runtime_with(content)
    server.error = None
    assert source.refresh(runtime) and sorted(runtime.content.services) == ["a-patient-view"]


def test_background_refresh_thread_swaps_and_stops():
    server = FakeServer([hook_plan("a")])
    source = FhirContentSource(server, refresh_seconds=0.05, statuses="active")  # type: ignore[arg-type]
    runtime = runtime_with(source.initial())
    source.start(runtime)
    try:
        server.put(hook_plan("b"))
        deadline = time.monotonic() + 5
        while "b-patient-view" not in runtime.content.services and time.monotonic() < deadline:
            time.sleep(0.02)
        assert "b-patient-view" in runtime.content.services
    finally:
        source.stop()
    assert not any(t.name == "content-refresh" and t.is_alive() for t in threading.enumerate())


def test_create_app_with_an_unreachable_content_server_starts_with_no_services(tmp_path):
    from service.app import create_app
    app = create_app({"content_fhir_base_url": f"http://127.0.0.1:{free_port()}/fhir", "content_refresh_seconds": 0,
                      "fhir_retries": 0, "database_url": f"sqlite:///{tmp_path / 'f.sqlite3'}"})
    assert app.test_client().get("/cds-services").get_json() == {"services": []}
    assert "cds_content_source" in app.extensions


@pytest.mark.parametrize("value,expected", [("a,b", ["a", "b"]), ("a\\,b", ["a,b"])])
def test_fake_server_splits_like_fhir(value, expected):
    assert _split(value) == expected
