"""service.auth.tokens without HTTP: the spec's own example token, and where each check sits."""

from __future__ import annotations

import json
from datetime import UTC, datetime

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
    during = TokenVerifier(path_clients, lambda *a: True, lambda: datetime(2015, 1, 1, tzinfo=UTC))
    assert during.verify(f"Bearer {token}", SPEC_AUD).iss == "https://fhir-ehr.example.com/"
    assert fetched == ["https://fhir-ehr.example.com/jwk_uri"]
    today = TokenVerifier(path_clients, lambda *a: True, lambda: datetime.now(UTC))
    with pytest.raises(InvalidToken, match="expired"):
        today.verify(f"Bearer {token}", SPEC_AUD)


def test_skew_is_the_configured_tolerance(tmp_path):
    key = es384_key()
    path = write_clients(tmp_path / "c.json", {"iss": "https://ehr.example.org", "jwks": jwks(key), "fhirServers": []})
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)
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
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)
    token = sign(key, claims("https://ehr.example.org", "https://cds/x", now.timestamp()) | {claim: value})
    with pytest.raises(InvalidToken):
        verifier(path, now).verify(f"Bearer {token}", "https://cds/x")


def test_a_token_typed_as_something_else_is_refused(tmp_path):
    key = es384_key()
    path = write_clients(tmp_path / "c.json", {"iss": "https://ehr.example.org", "jwks": jwks(key), "fhirServers": []})
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)
    token = sign(key, claims("https://ehr.example.org", "https://cds/x", now.timestamp()), typ="at+jwt")
    with pytest.raises(InvalidToken, match="typ"):
        verifier(path, now).verify(f"Bearer {token}", "https://cds/x")


def test_a_token_living_longer_than_the_configured_maximum_is_refused(tmp_path):
    key = es384_key()
    path = write_clients(tmp_path / "c.json", {"iss": "https://ehr.example.org", "jwks": jwks(key), "fhirServers": []})
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)
    capped = TokenVerifier(load_trusted_clients(path), lambda *a: True, lambda: now, 5.0, max_lifetime_seconds=3600)
    hour = sign(key, claims("https://ehr.example.org", "https://cds/x", now.timestamp(), lifetime=3600))
    assert capped.verify(f"Bearer {hour}", "https://cds/x").iss == "https://ehr.example.org"
    day = sign(key, claims("https://ehr.example.org", "https://cds/x", now.timestamp(), lifetime=86400))
    with pytest.raises(InvalidToken, match="lifetime exp - iat of 86400 s is longer than the 3600 s accepted"):
        capped.verify(f"Bearer {day}", "https://cds/x")


def test_the_spec_example_token_lives_years_and_is_refused_under_the_default_cap(spec_client):
    """The 2.0.1 example token has exp - iat of about 3.5 years; with the service's default cap
    (CDS_JWT_MAX_LIFETIME_SECONDS, 1 h) it is refused even at a time inside that lifetime."""
    from service.config import Config

    path, public = spec_client
    token = shared_path(*SPEC, "jwt-example-bearer-token.txt").read_text().strip()
    capped = TokenVerifier(load_trusted_clients(path, fetch=lambda url: public), lambda *a: True,
                           lambda: datetime(2015, 1, 1, tzinfo=UTC), 5.0, Config().jwt_max_lifetime_seconds)
    with pytest.raises(InvalidToken, match="lifetime"):
        capped.verify(f"Bearer {token}", SPEC_AUD)
