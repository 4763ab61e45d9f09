"""Key sets fetched from a `jku` (service.auth.keys.RemoteKeys): cached, refreshed with age,
fetched again for an unknown kid at most once per interval, old keys kept when a fetch fails."""

from __future__ import annotations

from service.auth.keys import RemoteKeys, verification_key
from service.fhir.jwks import JwksUnavailable
from tests.trust_helpers import es384_key, jwks, rs384_key

A, B = es384_key("a"), es384_key("b")


class Remote:
    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls = 0

    def __call__(self, url):
        self.calls += 1
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def keys(remote, clock):
    return RemoteKeys("https://ehr.example.org/jwks", remote, max_age=3600, min_refetch=30,
                      retry_after_failure=5, monotonic=clock)


def test_cached_then_refreshed_when_old():
    remote, clock = Remote(jwks(A), jwks(B)), Clock()
    source = keys(remote, clock)
    assert source.get("a") and source.get("a") and remote.calls == 1
    clock.t += 3600
    assert source.get("a") is None and source.get("b") and remote.calls == 2


def test_an_unknown_kid_refetches_at_most_once_per_interval():
    remote, clock = Remote(jwks(A), jwks(A), jwks(A, B)), Clock()
    source = keys(remote, clock)
    assert source.get("a") and remote.calls == 1
    assert source.get("b") is None and remote.calls == 2
    assert source.get("zz") is None and source.get("b") is None and remote.calls == 2
    clock.t += 30
    assert source.get("b") and remote.calls == 3


def test_a_failed_fetch_keeps_the_keys_held_and_waits_before_trying_again():
    remote, clock = Remote(jwks(A), JwksUnavailable("down"), jwks(A, B)), Clock()
    source = keys(remote, clock)
    assert source.get("a")
    clock.t += 3600
    assert source.get("a") and remote.calls == 2  # refresh failed: still served
    clock.t += 1
    assert source.get("b") is None and remote.calls == 2  # within retry_after_failure
    clock.t += 5
    assert source.get("b") and remote.calls == 3


def test_unusable_keys_in_a_fetched_set_are_skipped():
    remote, clock = Remote({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "h"}, A.public_jwk]}), Clock()
    source = keys(remote, clock)
    assert source.get("h") is None and source.get("a")


def test_an_algorithm_is_verified_only_with_a_key_of_its_kind():
    ec, rs = A.public_jwk, rs384_key().public_jwk
    assert verification_key(ec, "ES384") and verification_key(rs, "RS384")
    no_alg = {k: v for k, v in rs.items() if k != "alg"}
    assert verification_key(no_alg, "RS512") and verification_key(no_alg, "PS384")
    for jwk, alg in [(ec, "ES256"), (ec, "RS384"), (rs, "ES384"), (rs, "RS256"), (ec, "HS256"), (ec, "none"),
                     (no_alg, "HS384")]:
        assert verification_key(jwk, alg) is None, (jwk["kty"], alg)
