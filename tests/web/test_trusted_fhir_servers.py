"""Outbound requests only where trusted: the `fhirServer` of a hook call and the `dataEndpoint`
of `$apply` must lie under the calling client's `fhirServers`; any outbound URL with
credentials in it is refused, open mode included.  A refused URL gets an OperationOutcome and
no connection at all (the listeners count accepted connections)."""

from __future__ import annotations

import pytest

from tests.conformance.helpers import base_request
from tests.conftest import T0
from tests.protocol_content import PATIENT_VIEW
from tests.trust_helpers import Listener, bearer, es384_key, trusted_client_factory

ISS = "https://ehr.example.org"
SERVICE = PATIENT_VIEW
KEY = es384_key()
EMPTY = {"resourceType": "Bundle", "type": "searchset", "total": 0}


@pytest.fixture
def allowed():
    listener = Listener(routes={"/fhir/Observation": (200, EMPTY)})
    yield listener
    listener.close()


@pytest.fixture
def unlisted():
    listener = Listener(routes={"/fhir/Observation": (200, EMPTY)})
    yield listener
    listener.close()


@pytest.fixture
def make_client(tmp_path, synthetic_content):
    return trusted_client_factory(tmp_path, synthetic_content, ISS, KEY, T0)


def headers(path: str = SERVICE) -> dict:
    return bearer(KEY, ISS, path, T0)


def fetching_from(base: str) -> dict:
    """The base request with one prefetch key left for the service to fetch from `base`."""
    body = base_request()
    body["fhirServer"] = base
    body["fhirAuthorization"] = {"access_token": "ehr-access-token", "token_type": "Bearer", "expires_in": 300,
                                 "scope": "patient/*.read", "subject": "dah-cds"}
    del body["prefetch"]["observations"]
    return body


def issue(response, status: int) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome"
    return body["issue"][0]


def test_a_listed_fhir_server_is_used(make_client, allowed):
    client = make_client([allowed.origin + "/fhir"])
    response = client.post(SERVICE, json=fetching_from(allowed.origin + "/fhir"), headers=headers())
    assert response.status_code == 200, response.get_json()
    assert [path.split("?")[0] for path, _ in allowed.requests] == ["/fhir/Observation"]


def test_a_server_below_a_listed_base_is_used(make_client, allowed):
    client = make_client([allowed.origin + "/"])
    assert client.post(SERVICE, json=fetching_from(allowed.origin + "/fhir"), headers=headers()).status_code == 200


@pytest.mark.parametrize("variant", ["another port", "a sibling path", "a parent path"])
def test_an_unlisted_fhir_server_is_refused_without_a_connection(make_client, allowed, unlisted, variant):
    base = {"another port": unlisted.origin + "/fhir",
            "a sibling path": allowed.origin + "/fhir-other",
            "a parent path": allowed.origin}[variant]
    client = make_client([allowed.origin + "/fhir"])
    found = issue(client.post(SERVICE, json=fetching_from(base), headers=headers()), 403)
    assert found["code"] == "forbidden" and found["expression"] == ["fhirServer"]
    assert unlisted.connections == 0 and allowed.connections == 0


def test_a_client_with_no_fhir_servers_may_only_prefetch(make_client, allowed):
    client = make_client([])
    assert client.post(SERVICE, json=base_request(), headers=headers()).status_code == 200
    named = dict(base_request(), fhirServer=allowed.origin + "/fhir")  # named, everything prefetched: never used
    assert client.post(SERVICE, json=named, headers=headers()).status_code == 200
    issue(client.post(SERVICE, json=fetching_from(allowed.origin + "/fhir"), headers=headers()), 403)
    assert allowed.connections == 0


@pytest.mark.parametrize("trusted", [True, False], ids=["trusted", "open mode"])
def test_credentials_in_the_fhir_server_url_are_refused(make_client, allowed, trusted):
    client = make_client([allowed.origin + "/fhir"] if trusted else None)
    base = allowed.origin.replace("http://", "http://ehr-user:s3cret-pw@") + "/fhir"
    everything_prefetched = dict(base_request(), fhirServer=base)  # refused even when it would not be used
    issue(client.post(SERVICE, json=everything_prefetched, headers=headers() if trusted else {}), 400)
    response = client.post(SERVICE, json=fetching_from(base), headers=headers() if trusted else {})
    found = issue(response, 400)
    assert found["expression"] == ["fhirServer"] and "s3cret-pw" not in response.get_data(as_text=True)
    assert allowed.connections == 0


@pytest.mark.parametrize("host", ["2130706433", "0x7f.0.0.1", "127.1"])
def test_numeric_host_spellings_are_refused_in_open_mode_too(make_client, allowed, host):
    port = allowed.origin.rsplit(":", 1)[1]
    issue(make_client().post(SERVICE, json=fetching_from(f"http://{host}:{port}/fhir")), 400)
    assert allowed.connections == 0


def test_apply_data_endpoint_must_be_listed(make_client, allowed, unlisted):
    client = make_client([allowed.origin + "/fhir"])

    def apply(address):
        body = {"resourceType": "Parameters", "parameter": [
            {"name": "subject", "valueString": "Patient/p1"}, {"name": "useServerData", "valueBoolean": True},
            {"name": "dataEndpoint", "resource": {"resourceType": "Endpoint", "status": "active", "address": address,
                                                  "connectionType": {"code": "hl7-fhir-rest"}, "payloadType": [{}]}}]}
        return client.post("/PlanDefinition/proto/$apply", json=body, headers=headers("/PlanDefinition/proto/$apply"))

    found = issue(apply(unlisted.origin + "/fhir"), 403)
    assert found["expression"] == ["dataEndpoint"] and unlisted.connections == 0
    assert apply(allowed.origin + "/fhir").status_code != 403
    assert allowed.connections > 0
