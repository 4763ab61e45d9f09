"""Verify the JWT a CDS client sends with each call (CDS Hooks 2.0 §Trusting CDS Clients;
RFC 7519, RFC 7515, RFC 6750).  No Flask here.

A call is accepted only when all of these hold, checked in this order:
1. `Authorization: Bearer <JWT>` (scheme case-insensitive); anything else is "authentication
   required";
2. the header names an accepted asymmetric `alg` (service.auth.keys.ALGORITHMS: never `none`,
   never HS*), a `kid`, and `typ` JWT when `typ` is given;
3. the `iss` claim is a trusted client's; a `jku` in the header is that client's listed `jku`
   exactly (a client with inline keys uses those and ignores `jku`): no other URL is ever fetched;
4. the client's key with that `kid` exists (a `jku` set is fetched again for an unknown `kid`)
   and may verify `alg` (key type and curve match the algorithm);
5. the signature verifies (PyJWT), `aud` is, or contains, the exact URL of the endpoint called;
6. `exp`, `iat` and `jti` are present; with `skew` seconds of tolerance (clocks differ; the CDS
   Hooks sandbox rounds `iat` to the nearest second): `exp` not passed, `iat` not in the future,
   `nbf` (when given) reached; the lifetime `exp - iat` at most `max_lifetime` seconds (a token
   signed per call needs minutes, the CDS Hooks sandbox gives its tokens 5; one that stays valid for
   days is what a stolen token would look like, and its `jti` would be kept that long);
7. `jti` was not used before by this `iss` during the token's lifetime: `first_use(iss, jti,
   exp, now)` records it in the shared store and says whether it is new (the store decides
   atomically, so two workers or instances racing on one token: exactly one wins).

Failures raise InvalidToken with the reason for the service log; the reason never contains the
token, and the caller is told only that it is not authenticated.  Time comes from `clock`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from typing import Any

import jwt

from service.auth.clients import TrustedClient, TrustedClients
from service.auth.keys import ALGORITHMS, verification_key

MAX_TOKEN_CHARS = 8192
MAX_JTI_CHARS = 255

# (iss, jti, expires at (epoch s), now (epoch s)) -> True if this jti was not in use
FirstUse = Callable[[str, str, int, int], bool]


class InvalidToken(Exception):
    """The call is not authenticated.  `missing`: no Bearer token at all (RFC 6750 §3.1: no error code)."""

    def __init__(self, reason: str, missing: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.missing = missing


def _shown(value: Any) -> str:
    """A caller-supplied value as it may appear in a log line: quoted, bounded."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _number(claims: dict[str, Any], name: str) -> float | None:
    """The NumericDate claim `name` (RFC 7519 §2), None when absent."""
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidToken(f"claim {name} is not a NumericDate")
    return float(value)


def _required_number(claims: dict[str, Any], name: str) -> float:
    value = _number(claims, name)
    if value is None:
        raise InvalidToken(f"claim {name} missing")
    return value


class TokenVerifier:
    def __init__(self, clients: TrustedClients, first_use: FirstUse, clock: Callable[[], datetime],
                 skew_seconds: float = 5.0, max_lifetime_seconds: float | None = None):
        self.clients = clients
        self.first_use = first_use
        self.clock = clock
        self.skew = max(0.0, skew_seconds)
        self.max_lifetime = max_lifetime_seconds

    def verify(self, authorization: str | None, audience: str) -> TrustedClient:
        """The trusted client that signed this call's token, or InvalidToken."""
        token = self._bearer(authorization)
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"not a JWT ({type(exc).__name__})") from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in ALGORITHMS:
            raise InvalidToken(f"alg {_shown(alg)} not accepted")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("kid missing from the JWT header")
        if "typ" in header and str(header["typ"]).upper() != "JWT":
            raise InvalidToken(f"typ {_shown(header['typ'])} is not JWT")
        client = self.clients.get(unverified.get("iss"))
        if client is None:
            raise InvalidToken(f"iss {_shown(unverified.get('iss'))} is not a trusted client")
        if "jku" in header and client.jku is not None and header["jku"] != client.jku:
            raise InvalidToken(f"jku {_shown(header['jku'])} is not the jku listed for {_shown(client.iss)}")
        jwk = client.keys.get(kid)
        if jwk is None:
            raise InvalidToken(f"kid {_shown(kid)} unknown for {_shown(client.iss)}")
        key = verification_key(jwk, alg)
        if key is None:
            raise InvalidToken(f"key {_shown(kid)} of {_shown(client.iss)} may not verify {alg}")
        try:
            claims = jwt.decode(token, key=key, algorithms=[alg], audience=audience, issuer=client.iss, options={
                "require": ["iss", "aud", "exp", "iat", "jti"], "verify_exp": False, "verify_iat": False,
                "verify_nbf": False, "enforce_minimum_key_length": True})
        except jwt.InvalidAudienceError:
            raise InvalidToken(f"aud is not {audience}") from None
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"{type(exc).__name__}: {_shown(str(exc))}") from None
        return self._timely_and_fresh(client, claims)

    def _timely_and_fresh(self, client: TrustedClient, claims: dict[str, Any]) -> TrustedClient:
        now = self.clock().timestamp()
        exp = _required_number(claims, "exp")
        iat = _required_number(claims, "iat")
        nbf = _number(claims, "nbf")
        if now > exp + self.skew:
            raise InvalidToken(f"expired {now - exp:.0f} s ago")
        if iat > now + self.skew:
            raise InvalidToken(f"iat {iat - now:.1f} s in the future")
        if nbf is not None and nbf > now + self.skew:
            raise InvalidToken(f"not valid before {nbf - now:.1f} s from now (nbf)")
        if self.max_lifetime is not None and exp - iat > self.max_lifetime:
            raise InvalidToken(f"lifetime exp - iat of {exp - iat:.0f} s is longer than the {self.max_lifetime:g} s "
                               "accepted")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI_CHARS:
            raise InvalidToken(f"jti must be a string of 1-{MAX_JTI_CHARS} characters")
        if not self.first_use(client.iss, jti, math.ceil(exp + self.skew), math.floor(now)):
            raise InvalidToken(f"jti {_shown(jti)} of {_shown(client.iss)} already used")
        return client

    @staticmethod
    def _bearer(authorization: str | None) -> str:
        if not authorization:
            raise InvalidToken("no Authorization header", missing=True)
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer":
            raise InvalidToken(f"Authorization scheme {_shown(scheme[:20])} is not Bearer", missing=True)
        token = token.strip()
        if not token or len(token) > MAX_TOKEN_CHARS or " " in token:
            raise InvalidToken("Bearer credentials are not a single token of acceptable size")
        return token
