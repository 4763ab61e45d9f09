"""service.auth.tokens without HTTP: the spec's own example token, and where each check sits."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from service.auth import InvalidToken, TokenVerifier, load_trusted_clients
from tests.conftest import shared_path
from tests.trust_helpers import claims, es384_key, jwks, sign, write_clients

SPEC = ("external", "cds-hooks-examples", "spec-2.0.1")
SPEC_AUD = "https://cds.example.org/cds-services/some-service"


def verifier(path, when: datetime, used: set | None = None, skew: float = 5.0) -> TokenVerifier:
    used = set() if used is None else used

    def first_use(iss, jti, exp, now):
        if (iss, jti) in used:
            return False
        used.add((iss, jti))
        return True

    return TokenVerifier(load_trusted_clients(path), first_use, lambda: when, skew)


@pytest.fixture
def spec_client(tmp_path):
    public = json.loads(shared_path(*SPEC, "26-jwks-public.json").read_text())
    header = json.loads(shared_path(*SPEC, "24-jwt-header.json").read_text())
    return write_clients(tmp_path / "c.json", {"iss": "https://fhir-ehr.example.com/", "jku": header["jku"],
                                               "fhirServers": []}), public


def test_the_spec_example_token_verifies_inside_its_lifetime(spec_client):
    path, public = spec_client
    token = shared_path(*SPEC, "jwt-example-bearer-token.txt").read_text().strip()
    fetched = []

    def fetch(url):
        fetched.append(url)
        return public

    path_clients = load_trusted_clients(path, fetch=fetch)
    during = TokenVerifier(path_clients, lambda *a: True, lambda: datetime(2015, 1, 1, tzinfo=timezone.utc))
    assert during.verify(f"Bearer {token}", SPEC_AUD).iss == "https://fhir-ehr.example.com/"
    assert fetched == ["https://fhir-ehr.example.com/jwk_uri"]
    today = TokenVerifier(path_clients, lambda *a: True, lambda: datetime.now(timezone.utc))
    with pytest.raises(InvalidToken, match="expired"):
        today.verify(f"Bearer {token}", SPEC_AUD)


def test_skew_is_the_configured_tolerance(tmp_path):
    key = es384_key()
    path = write_clients(tmp_path / "c.json", {"iss": "https://ehr.example.org", "jwks": jwks(key), "fhirServers": []})
    now = datetime(2026, 3, 1, 12, tzinfo=timezone.utc)
    ahead = sign(key, claims("https://ehr.example.org", "https://cds/x", now.timestamp())
                 | {"iat": now.timestamp() + 3})
    assert verifier(path, now, skew=5).verify(f"Bearer {ahead}", "https://cds/x")
    with pytest.raises(InvalidToken, match="future"):
        verifier(path, now, skew=1).verify(f"Bearer {ahead}", "https://cds/x")
    late = sign(key, claims("https://ehr.example.org", "https://cds/x", now.timestamp() - 302))  # exp 2 s ago
    assert verifier(path, now, skew=5).verify(f"Bearer {late}", "https://cds/x")
    with pytest.raises(InvalidToken, match="expired"):
        verifier(path, now, skew=0).verify(f"Bearer {late}", "https://cds/x")


@pytest.mark.parametrize("claim, value", [("exp", "soon"), ("iat", True), ("nbf", "later"), ("jti", 7),
                                          ("jti", "x" * 300)])
def test_malformed_claims_are_refused(tmp_path, claim, value):
    key = es384_key()
    path = write_clients(tmp_path / "c.json", {"iss": "https://ehr.example.org", "jwks": jwks(key), "fhirServers": []})
    now = datetime(2026, 3, 1, 12, tzinfo=timezone.utc)
    token = sign(key, claims("https://ehr.example.org", "https://cds/x", now.timestamp()) | {claim: value})
    with pytest.raises(InvalidToken):
        verifier(path, now).verify(f"Bearer {token}", "https://cds/x")


def test_a_token_typed_as_something_else_is_refused(tmp_path):
    key = es384_key()
    path = write_clients(tmp_path / "c.json", {"iss": "https://ehr.example.org", "jwks": jwks(key), "fhirServers": []})
    now = datetime(2026, 3, 1, 12, tzinfo=timezone.utc)
    token = sign(key, claims("https://ehr.example.org", "https://cds/x", now.timestamp()), typ="at+jwt")
    with pytest.raises(InvalidToken, match="typ"):
        verifier(path, now).verify(f"Bearer {token}", "https://cds/x")
