"""The trusted-clients file (service.auth.clients): what loads, and every problem reported at
once with the file and the JSON path."""

from __future__ import annotations

import json

import pytest

from service.auth import TrustedClientsError, load_trusted_clients
from service.auth.keys import RemoteKeys, StaticKeys
from tests.conftest import ROOT, shared_path
from tests.trust_helpers import es384_key, jwks, write_clients

KEY = es384_key()


def test_the_sandbox_example_file_loads():
    clients = load_trusted_clients(ROOT / "config" / "trusted-clients.sandbox.json")
    sandbox = clients.get("https://sandbox.cds-hooks.org")
    assert isinstance(sandbox.keys, RemoteKeys) and sandbox.jku == "https://sandbox.cds-hooks.org/.well-known/jwks.json"
    assert [(s.scheme, s.host, s.path) for s in sandbox.fhir_servers] == [
        ("https", "launch.smarthealthit.org", "/v/r4/fhir")]


def test_the_sandbox_jwks_can_be_given_inline(tmp_path):
    sandbox_jwks = json.loads(shared_path("external", "cds-hooks-examples", "sandbox-jwks", "jwks.json").read_text())
    path = write_clients(tmp_path / "c.json", {"iss": "https://sandbox.cds-hooks.org", "jwks": sandbox_jwks,
                                               "fhirServers": ["https://launch.smarthealthit.org/v/r4/fhir"]})
    keys = load_trusted_clients(path).get("https://sandbox.cds-hooks.org").keys
    assert isinstance(keys, StaticKeys) and keys.get("44823f3d-0b01-4a6c-a80e-b9d3e8a7226f")["crv"] == "P-384"


def test_every_problem_is_reported_with_its_path(tmp_path):
    from cryptography.hazmat.primitives.asymmetric import rsa
    from jwt.algorithms import RSAAlgorithm

    small_rsa = json.loads(RSAAlgorithm.to_jwk(rsa.generate_private_key(65537, 1024).public_key())) | {"kid": "small"}
    private = json.loads(RSAAlgorithm.to_jwk(rsa.generate_private_key(65537, 2048))) | {"kid": "private"}
    good = KEY.public_jwk
    path = write_clients(
        tmp_path / "clients.json",
        {"iss": "https://a.example.org", "jwks": jwks(KEY), "jku": "https://a.example.org/jwks", "fhirServers": []},
        {"iss": "https://b.example.org", "jwks": jwks(KEY), "fhirServer": ["https://b.example.org/fhir"]},
        {"jwks": jwks(KEY), "fhirServers": ["http://c.example.org/fhir", "https://u:p@c.example.org/fhir"]},
        {"iss": "https://d.example.org", "fhirServers": [], "jwks": {"keys": [
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}, small_rsa, private, good, good,
            good | {"kid": "enc", "use": "enc"}, good | {"kid": "wrong-alg", "alg": "ES256"}]}},
        {"iss": "https://e.example.org", "jku": "https://e.example.org:99999/jwks", "fhirServers": []},
        {"iss": "https://e.example.org", "jwks": jwks(KEY), "fhirServers": []},
        {"iss": "https://e.example.org", "jwks": jwks(KEY), "fhirServers": []},
    )
    with pytest.raises(TrustedClientsError) as info:
        load_trusted_clients(path)
    found = [line.removeprefix(f"{path}: ") for line in str(info.value).splitlines()]
    assert all(line != str(info.value) for line in found)  # every line starts with the file
    expected = [
        ("$.clients[0]", "exactly one of 'jwks'"),
        ("$.clients[1].fhirServer", "unknown member"),
        ("$.clients[1].fhirServers", "is required"),
        ("$.clients[2].iss", "is required"),
        ("$.clients[2].fhirServers[0]", "https"),
        ("$.clients[2].fhirServers[1]", "credentials"),
        ("$.clients[3].jwks.keys[0]", "asymmetric keys only"),
        ("$.clients[3].jwks.keys[1]", "at least 2048"),
        ("$.clients[3].jwks.keys[2]", "private key material"),
        ("$.clients[3].jwks.keys[4]", "appears twice"),
        ("$.clients[3].jwks.keys[5]", "use must be 'sig'"),
        ("$.clients[3].jwks.keys[6]", "not an accepted algorithm"),
        ("$.clients[4].jku", "port"),
        ("$.clients[6].iss", "already listed"),
    ]
    assert len(found) == len(expected), found
    for line, (where, what) in zip(found, expected, strict=True):
        assert line.startswith(where + ": ") and what in line, (line, where, what)


@pytest.mark.parametrize("text, problem", [
    ("{", "is not valid JSON"),
    ("[]", "$.clients: is required"),
    ('{"clients": []}', "$.clients: is required"),
])
def test_an_unusable_file_is_named(tmp_path, text, problem):
    path = tmp_path / "clients.json"
    path.write_text(text)
    with pytest.raises(TrustedClientsError, match=str(path)) as info:
        load_trusted_clients(path)
    assert problem in str(info.value)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(TrustedClientsError, match="nope.json: \\$: cannot be read"):
        load_trusted_clients(tmp_path / "nope.json")
