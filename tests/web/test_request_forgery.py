"""Request forgery through what a caller controls: context values filled into prefetch queries
sent with the EHR's token, numeric host spellings, and credentials in URLs.  Real loopback
listeners record the exact request line they receive (nothing is mocked)."""

from __future__ import annotations

import logging
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.conformance.helpers import base_request
from tests.conftest import T0
from tests.protocol_content import PATIENT_VIEW
from tests.trust_helpers import Listener, bearer, es384_key, trusted_client_factory

SERVICE = PATIENT_VIEW
KEY = es384_key()
ISS = "https://ehr.example.org"
EMPTY = {"resourceType": "Bundle", "type": "searchset", "total": 0}
SECRET = "s3cret-pw"


@pytest.fixture
def listener():
    server = Listener(default=(200, EMPTY))
    yield server
    server.close()


@pytest.fixture
def make_client(tmp_path, synthetic_content):
    return trusted_client_factory(tmp_path, synthetic_content, ISS, KEY, T0)


def token_headers(path: str = SERVICE) -> dict:
    return bearer(KEY, ISS, path, T0)


def fetching(base: str, patient_id: str, drop=("observations",)) -> dict:
    body = base_request()
    body["fhirServer"] = base
    body["context"]["patientId"] = patient_id
    for key in drop:
        del body["prefetch"][key]
    return body


# ---- prefetch tokens are percent-encoded when filled -----------------------------------------------


@pytest.mark.parametrize("patient_id", ["x&_count=1000&_include=*", "x#", "x?_summary=count", "x%26y", "a,b"])
def test_a_context_value_is_one_query_value_never_more_parameters(make_client, listener, patient_id):
    """A patientId with `&`, `=`, `#`, `?`, `%` or `,` reaches the FHIR server as the literal value of
    `patient` (percent-encoded on the wire): it adds no parameter (`_count`, `_include`), cuts none
    (`#` would end the query and drop the code filter) and is not split into an OR list."""
    response = make_client().post(SERVICE, json=fetching(listener.origin + "/fhir", patient_id))
    assert response.status_code < 500, response.get_data(as_text=True)
    (path, _), = listener.requests
    query = parse_qs(urlsplit(path).query)
    assert urlsplit(path).path == "/fhir/Observation"
    assert query["patient"] == [patient_id]
    assert set(query) == {"patient", "code"}
    assert query["code"] == ["http://example.org/fhir/CodeSystem/proto-observation|level,"
                             "http://example.org/fhir/CodeSystem/proto-observation|other"]
    assert "_count" not in query and "_include" not in query and "_summary" not in query


def test_a_context_value_in_a_read_stays_one_path_segment(make_client, listener):
    response = make_client().post(SERVICE, json=fetching(listener.origin + "/fhir", "p1?_format=xml&x=.",
                                                         drop=("patient",)))
    assert response.status_code < 500
    (path, _), = listener.requests
    assert path == "/fhir/Patient/p1%3F_format%3Dxml%26x%3D."


# ---- hosts and credentials --------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["2130706433", "017700000001", "0177.0.0.1", "0x7f000001", "0x7f.1", "127.1",
                                  "127.0.0.01"])
@pytest.mark.parametrize("trusted", [True, False], ids=["trusted", "open mode"])
def test_decimal_octal_and_hex_hosts_are_refused_without_a_connection(make_client, listener, host, trusted):
    port = listener.origin.rsplit(":", 1)[1]
    client = make_client(["http://127.0.0.1:" + port + "/fhir"] if trusted else None)
    response = client.post(SERVICE, json=fetching(f"http://{host}:{port}/fhir", "p01"),
                           headers=token_headers() if trusted else {})
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()["issue"][0]["expression"] == ["fhirServer"]
    assert listener.connections == 0


@pytest.mark.parametrize("url", [
    "http://ehr-user:{secret}@127.0.0.1:{port}/fhir",  # well-formed
    "http://ehr-user:{secret}@127.0.0.1:{port}/fh ir",  # fails the request schema first
    "http://ehr-user:{secret}@127.0.0.1:{port}/fhir?x=1",
], ids=["well-formed", "schema-error", "with-query"])
def test_credentials_in_a_url_are_never_echoed_or_logged(make_client, listener, caplog, url):
    caplog.set_level(logging.DEBUG)
    base = url.format(secret=SECRET, port=listener.origin.rsplit(":", 1)[1])
    client = make_client()
    response = client.post(SERVICE, json=fetching(base, "p01"))
    body = {"resourceType": "Parameters", "parameter": [
        {"name": "subject", "valueString": "Patient/p1"}, {"name": "useServerData", "valueBoolean": True},
        {"name": "dataEndpoint", "resource": {"resourceType": "Endpoint", "address": base}}]}
    applied = client.post("/PlanDefinition/proto/$apply", json=body)
    for answer in (response, applied):
        assert answer.status_code == 400, answer.get_data(as_text=True)
        assert SECRET not in answer.get_data(as_text=True)
    assert SECRET not in caplog.text
    assert listener.connections == 0


def test_credentials_in_a_next_link_are_not_logged(make_client, listener, caplog):
    caplog.set_level(logging.DEBUG)
    with_credentials = listener.origin.replace("http://", f"http://evil:{SECRET}@")
    listener.default = (200, dict(EMPTY, link=[{"relation": "next", "url": with_credentials + "/fhir/x?page=2"}]))
    response = make_client().post(SERVICE, json=fetching(listener.origin + "/fhir", "p01"))
    assert response.status_code == 200
    assert "not on the origin" in caplog.text and SECRET not in caplog.text
    assert SECRET not in response.get_data(as_text=True)


def test_a_trusted_fhir_server_may_be_named_without_an_access_token(make_client, listener):
    """CDS Hooks 2.0 §Passing the Access Token: fhirAuthorization is OPTIONAL.  A client trusted with
    this server may name it without a token (an open test server, or one that trusts the network):
    the server is on the client's allowlist, and the request carries no Authorization header."""
    client = make_client([listener.origin + "/fhir"])
    response = client.post(SERVICE, json=fetching(listener.origin + "/fhir", "p01"), headers=token_headers())
    assert response.status_code == 200, response.get_json()
    (_, request_headers), = listener.requests
    assert "Authorization" not in request_headers
