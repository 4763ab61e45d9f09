"""service.fhir.jwks: one GET of an allowlisted URL, no redirect, bounded size."""

from __future__ import annotations

import pytest

from service.fhir.jwks import MAX_BYTES, JwksUnavailable, fetch_jwks
from tests.trust_helpers import es384_key, jwks


def test_a_key_set_is_fetched(servers):
    ehr, _ = servers
    ehr.routes["/jwks.json"] = (200, jwks(es384_key()))
    assert fetch_jwks(ehr.origin + "/jwks.json", timeout=2)["keys"][0]["crv"] == "P-384"


@pytest.mark.parametrize("answer, problem", [
    ((404, {}), "answered 404"),
    ((200, ["not", "a", "set"]), "not a JWK Set"),
    ((200, {"keys": {}}), "not a JWK Set"),
    ((200, {"keys": ["x" * MAX_BYTES]}), "larger than"),
])
def test_what_is_not_a_key_set_is_refused(servers, answer, problem):
    ehr, _ = servers
    ehr.routes["/jwks.json"] = answer
    with pytest.raises(JwksUnavailable, match=problem):
        fetch_jwks(ehr.origin + "/jwks.json", timeout=2)


def test_a_redirect_is_not_followed(servers):
    ehr, other = servers
    other.routes["/jwks.json"] = (200, jwks(es384_key()))
    ehr.routes["/jwks.json"] = (302, {}, {"Location": other.origin + "/jwks.json"})
    with pytest.raises(JwksUnavailable, match="answered 302"):
        fetch_jwks(ehr.origin + "/jwks.json", timeout=2)
    assert other.connections == 0


def test_a_key_set_dripped_one_byte_at_a_time_is_cut_at_twice_the_timeout():
    import time

    from tests import fault_servers as faults

    server = faults.FaultServer(faults.drip(0.2, jwks(es384_key())))
    try:
        started = time.monotonic()
        with pytest.raises(JwksUnavailable, match="not complete within 1 s"):
            fetch_jwks(server.origin + "/jwks.json", timeout=0.5)
        assert time.monotonic() - started < 1.8
    finally:
        server.close()
