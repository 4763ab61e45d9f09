"""Smoke tests for the FHIR server used by the integration tests (local or FHIR_BASE_URL)."""

from __future__ import annotations

import uuid

import pytest
import requests

pytestmark = pytest.mark.integration

FHIR_JSON = {"Accept": "application/fhir+json", "Content-Type": "application/fhir+json"}
BODY_WEIGHT = {"system": "http://loinc.org", "code": "29463-7"}


def test_metadata_is_a_capability_statement(fhir_base_url):
    resp = requests.get(f"{fhir_base_url}/metadata", headers=FHIR_JSON, timeout=30)
    assert resp.status_code == 200
    body = resp.json()
    assert body["resourceType"] == "CapabilityStatement"
    assert body["fhirVersion"].startswith("4.0")


def test_create_and_read_patient(fhir_base_url):
    family = f"Test-{uuid.uuid4().hex[:8]}"
    patient = {"resourceType": "Patient", "name": [{"family": family}], "birthDate": "1980-02-03"}
    created = requests.post(f"{fhir_base_url}/Patient", json=patient, headers=FHIR_JSON, timeout=30)
    assert created.status_code == 201, created.text
    pid = created.json()["id"]

    read = requests.get(f"{fhir_base_url}/Patient/{pid}", headers=FHIR_JSON, timeout=30)
    assert read.status_code == 200
    assert read.json()["name"][0]["family"] == family
    assert read.json()["birthDate"] == "1980-02-03"

    assert requests.get(f"{fhir_base_url}/Patient/{uuid.uuid4()}", timeout=30).status_code == 404


def _transaction(patient_fullurl: str, n_obs: int) -> dict:
    entries = [{
        "fullUrl": patient_fullurl,
        "resource": {"resourceType": "Patient", "name": [{"family": "Paging"}]},
        "request": {"method": "POST", "url": "Patient"},
    }]
    for i in range(n_obs):
        entries.append({
            "fullUrl": f"urn:uuid:{uuid.uuid4()}",
            "resource": {
                "resourceType": "Observation",
                "status": "final",
                "code": {"coding": [BODY_WEIGHT]},
                "subject": {"reference": patient_fullurl},
                "effectiveDateTime": f"2024-01-0{i + 1}T08:00:00Z",
                "valueQuantity": {"value": 60 + i, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"},
            },
            "request": {"method": "POST", "url": "Observation"},
        })
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def test_transaction_then_paged_search(fhir_base_url):
    resp = requests.post(fhir_base_url, json=_transaction(f"urn:uuid:{uuid.uuid4()}", 5),
                         headers=FHIR_JSON, timeout=60)
    assert resp.status_code == 200, resp.text
    result = resp.json()
    assert result["type"] == "transaction-response"
    statuses = [e["response"]["status"] for e in result["entry"]]
    assert all(s.startswith("201") for s in statuses), statuses
    pid = result["entry"][0]["response"]["location"].split("/")[1]

    url = f"{fhir_base_url}/Observation"
    params = {"patient": pid, "code": f"{BODY_WEIGHT['system']}|{BODY_WEIGHT['code']}", "_count": 2}
    seen, pages = [], 0
    while url:
        page = requests.get(url, params=params, headers=FHIR_JSON, timeout=30)
        assert page.status_code == 200, page.text
        bundle = page.json()
        assert bundle["type"] == "searchset"
        entries = bundle.get("entry", [])
        assert len(entries) <= 2
        for entry in entries:
            obs = entry["resource"]
            assert obs["subject"]["reference"] == f"Patient/{pid}"  # urn:uuid was resolved
            seen.append(obs["id"])
        pages += 1
        assert pages <= 5, "paging did not terminate"
        url = next((link["url"] for link in bundle.get("link", []) if link["relation"] == "next"), None)
        params = None  # next links carry the whole query
        if url:
            assert url.startswith(fhir_base_url.split("/fhir")[0]), url  # points back to this server
    assert len(seen) == 5 and len(set(seen)) == 5
    assert pages == 3


def test_bearer_token_required(fhir_server_with_token):
    base_url, token = fhir_server_with_token
    assert requests.get(f"{base_url}/Patient", timeout=30).status_code == 401
    wrong = requests.get(f"{base_url}/Patient", headers={"Authorization": "Bearer nope"}, timeout=30)
    assert wrong.status_code == 401
    assert wrong.json()["resourceType"] == "OperationOutcome"
    ok = requests.get(f"{base_url}/Patient", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert ok.status_code == 200
    assert ok.json()["resourceType"] == "Bundle"
