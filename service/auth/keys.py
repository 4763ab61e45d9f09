"""The public keys of trusted CDS clients (RFC 7517 JWK Sets) and which algorithm each may verify.

Rules:
- asymmetric signatures only (CDS Hooks 2.0 §JWT Signing Algorithm: never `none`, never a
  symmetric algorithm): ES256/ES384/ES512 with an EC key on P-256/P-384/P-521, RS256/RS384/RS512
  and PS256/PS384/PS512 with an RSA key of at least 2048 bits; a key's own `alg`, when given, is the
  only algorithm it verifies;
- a key is public (no private members), has a `kid` unique in its set, and `use`, when given, is `sig`;
- inline keys (`StaticKeys`) come from the trusted-clients file, where a bad key stops the start;
- a `jku` JWK Set (`RemoteKeys`) is fetched on first use and kept for `max_age` seconds; a `kid`
  it lacks makes it fetch again (key rotation), at most once per `min_refetch` seconds, so random
  `kid`s cannot make the service hammer the client's server; after a failed fetch the keys
  already held stay in use and the next try waits `retry_after_failure` seconds; keys of a
  fetched set that break the rules are skipped with a warning.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from jwt import PyJWK
from jwt.exceptions import PyJWKError

from service.fhir.jwks import JwksUnavailable

log = logging.getLogger("service.auth")

# alg -> (kty, crv or None)
ALGORITHMS: dict[str, tuple[str, str | None]] = {
    "ES256": ("EC", "P-256"), "ES384": ("EC", "P-384"), "ES512": ("EC", "P-521"),
    "RS256": ("RSA", None), "RS384": ("RSA", None), "RS512": ("RSA", None),
    "PS256": ("RSA", None), "PS384": ("RSA", None), "PS512": ("RSA", None),
}
_DEFAULT_ALG = {("EC", "P-256"): "ES256", ("EC", "P-384"): "ES384", ("EC", "P-521"): "ES512", ("RSA", None): "RS384"}
_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")
MIN_RSA_BITS = 2048


def jwk_problem(jwk: Any) -> str | None:
    """Why `jwk` cannot be a trusted client's verification key, or None."""
    if not isinstance(jwk, dict):
        return "must be a JSON object (a JWK)"
    kty = jwk.get("kty")
    if kty not in ("EC", "RSA"):
        return f"kty must be 'EC' or 'RSA' (asymmetric keys only), got {kty!r}"
    kid = jwk.get("kid")
    if not isinstance(kid, str) or not kid:
        return "kid is required (a non-empty string)"
    if any(m in jwk for m in _PRIVATE_MEMBERS):
        return "holds private key material; give the public key only"
    if jwk.get("use", "sig") != "sig":
        return f"use must be 'sig', got {jwk.get('use')!r}"
    crv = jwk.get("crv") if kty == "EC" else None
    if kty == "EC" and crv not in ("P-256", "P-384", "P-521"):
        return f"crv must be P-256, P-384 or P-521, got {crv!r}"
    alg = jwk.get("alg")
    if alg is not None and (alg not in ALGORITHMS or ALGORITHMS[alg][0] != kty
                            or ALGORITHMS[alg][1] not in (None, crv)):
        return f"alg {alg!r} is not an accepted algorithm for a {kty} key{' on ' + crv if crv else ''}"
    try:
        key = PyJWK(jwk, algorithm=alg or _DEFAULT_ALG[(kty, crv)])
    except (PyJWKError, ValueError, TypeError) as exc:
        return f"is not a usable {kty} public key ({type(exc).__name__})"
    if kty == "RSA" and key.key.key_size < MIN_RSA_BITS:
        return f"RSA key of {key.key.key_size} bits; at least {MIN_RSA_BITS} required"
    return None


def key_set(jwks: Any) -> tuple[dict[str, dict], list[tuple[str, str]]]:
    """(keys by kid, [(JSON path below the set, problem)]) of a JWK Set."""
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        return {}, [("", "must be a JWK Set: an object with a 'keys' array")]
    keys: dict[str, dict] = {}
    problems = []
    for i, jwk in enumerate(jwks["keys"]):
        problem = jwk_problem(jwk)
        if problem is None and jwk["kid"] in keys:
            problem = f"kid {jwk['kid']!r} appears twice"
        if problem:
            problems.append((f".keys[{i}]", problem))
        else:
            keys[jwk["kid"]] = jwk
    if not keys and not problems:
        problems.append((".keys", "holds no key"))
    return keys, problems


def verification_key(jwk: dict, alg: str) -> PyJWK | None:
    """The key to verify an `alg` signature with, or None when `jwk` may not verify `alg`."""
    spec = ALGORITHMS.get(alg)
    if spec is None or jwk.get("kty") != spec[0] or spec[1] not in (None, jwk.get("crv")):
        return None
    if jwk.get("alg", alg) != alg:
        return None
    return PyJWK(jwk, algorithm=alg)


class StaticKeys:
    """Keys given inline in the trusted-clients file."""

    def __init__(self, keys: dict[str, dict]):
        self._keys = dict(keys)

    def get(self, kid: str) -> dict | None:
        return self._keys.get(kid)


class RemoteKeys:
    """The JWK Set at an allowlisted `jku`, cached and refreshed as the module docstring says."""

    def __init__(self, url: str, fetch: Callable[[str], dict], *, max_age: float = 3600.0,
                 min_refetch: float = 30.0, retry_after_failure: float = 5.0,
                 monotonic: Callable[[], float] = time.monotonic):
        self.url = url
        self._fetch = fetch
        self.max_age = max_age
        self.min_refetch = min_refetch
        self.retry_after_failure = retry_after_failure
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._keys: dict[str, dict] | None = None
        self._fetched_at = 0.0
        self._last_forced: float | None = None
        self._failed_at: float | None = None

    def get(self, kid: str) -> dict | None:
        with self._lock:
            now = self._monotonic()
            if self._failed_at is not None and now - self._failed_at < self.retry_after_failure:
                pass  # a fetch just failed: use what is held
            elif self._keys is None or now - self._fetched_at >= self.max_age:
                self._refresh(now)
            elif kid not in self._keys and (self._last_forced is None or now - self._last_forced >= self.min_refetch):
                self._last_forced = now
                self._refresh(now)
            return (self._keys or {}).get(kid)

    def _refresh(self, now: float) -> None:
        try:
            keys, problems = key_set(self._fetch(self.url))
        except JwksUnavailable as exc:
            keys, problems = {}, [("", str(exc))]
        for path, problem in problems:
            log.warning("JWK Set %s%s: %s", self.url, path, problem)
        if not keys:
            self._failed_at = now
            log.warning("JWK Set %s: no usable key fetched; %s", self.url,
                        "keeping the keys already held" if self._keys else "no keys held")
            return
        self._keys, self._fetched_at, self._failed_at = keys, now, None
        log.info("JWK Set %s: %d key(s) fetched", self.url, len(keys))
