"""FhirClient and redirects: followed on the base URL's origin only; another origin is never
contacted (the listeners count accepted connections), and the token never travels there."""

from __future__ import annotations

import pytest

from service.errors import FhirServerError
from service.fhir.client import MAX_REDIRECTS, FhirClient
from service.web.errors import answer

PATIENT = {"resourceType": "Patient", "id": "p1"}



def test_a_redirect_on_the_same_origin_is_followed(servers):
    ehr, _ = servers
    ehr.routes["/fhir/Patient/old"] = (301, {}, {"Location": "/fhir/Patient/p1"})
    ehr.routes["/fhir/Patient/p1"] = (200, PATIENT)
    assert FhirClient(ehr.origin + "/fhir", access_token="tok", retries=0).get("Patient/old") == PATIENT
    assert [h.get("Authorization") for _, h in ehr.requests] == ["Bearer tok", "Bearer tok"]


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_to_another_origin_is_not_followed(servers, status):
    ehr, other = servers
    other.routes["/fhir/Patient/p1"] = (200, PATIENT)
    ehr.routes["/fhir/Patient/p1"] = (status, {}, {"Location": other.origin + "/fhir/Patient/p1"})
    with pytest.raises(FhirServerError, match="another origin") as info:
        FhirClient(ehr.origin + "/fhir", access_token="tok", retries=0).get("Patient/p1")
    assert answer(info.value)[0] == 412 and other.origin not in info.value.message
    assert other.connections == 0


def test_redirect_loops_stop(servers):
    ehr, _ = servers
    ehr.routes["/fhir/Patient/p1"] = (302, {}, {"Location": "/fhir/Patient/p1"})
    with pytest.raises(FhirServerError, match="more than"):
        FhirClient(ehr.origin + "/fhir", retries=0).get("Patient/p1")
    assert len(ehr.requests) == MAX_REDIRECTS + 1


def test_credentials_in_a_redirect_or_next_link_are_not_used(servers):
    ehr, _ = servers
    with_credentials = ehr.origin.replace("http://", "http://evil:pw@")
    ehr.routes["/fhir/Patient/p1"] = (302, {}, {"Location": with_credentials + "/fhir/Patient/p2"})
    ehr.routes["/fhir/Observation"] = (200, {"resourceType": "Bundle", "type": "searchset", "entry": [], "link": [
        {"relation": "next", "url": with_credentials + "/fhir/Observation?page=2"}]})
    client = FhirClient(ehr.origin + "/fhir", access_token="tok", retries=0)
    with pytest.raises(FhirServerError, match="another origin"):
        client.get("Patient/p1")
    merged = client.search_all("Observation")
    assert merged["meta"]["tag"][0]["code"] == "SUBSETTED"
    assert [path for path, _ in ehr.requests] == ["/fhir/Patient/p1", "/fhir/Observation"]
