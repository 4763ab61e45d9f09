"""Fetch a CDS client's JSON Web Key Set from its `jku` (RFC 7515 §4.1.2, RFC 7517 §5;
CDS Hooks 2.0 §Trusting CDS Clients).

Rules:
- only URLs from the trusted-clients file reach here (checked there with
  outbound.parse_trusted: https unless loopback, no credentials, canonical host); the URL in a
  token's header is compared with that list and never fetched itself;
- one GET, no credentials sent, no redirect followed (the allowlisted URL is exact);
- connect and read timeouts of `timeout` seconds, and the whole answer within twice that: a read
  still waiting then (a server dripping its answer) is cut (service.fhir.budget);
- at most MAX_BYTES read; the body must be a JSON object with a `keys` array;
- every failure raises JwksUnavailable, whose message names the URL and the failure, never the body.
"""

from __future__ import annotations

import json
import time

import requests

from service.fhir import transport
from service.fhir.budget import Budget

MAX_BYTES = 256 * 1024


class JwksUnavailable(Exception):
    """The JWK Set could not be fetched or is not a JWK Set."""


def fetch_jwks(url: str, timeout: float = 5.0) -> dict:
    deadline = time.monotonic() + 2 * timeout
    budget = Budget(2 * timeout)
    try:
        with budget.active(), transport.session() as session, session.get(
                url, headers={"Accept": "application/jwk-set+json, application/json"}, timeout=(timeout, timeout),
                allow_redirects=False, stream=True) as response:
            if response.status_code != 200:
                raise JwksUnavailable(f"GET {url} answered {response.status_code}")
            body = bytearray()
            for chunk in response.iter_content(16 * 1024):
                body += chunk
                if len(body) > MAX_BYTES:
                    raise JwksUnavailable(f"GET {url}: JWK Set larger than {MAX_BYTES} bytes")
                if time.monotonic() > deadline:
                    raise JwksUnavailable(f"GET {url}: answer not complete within {2 * timeout:g} s")
    except requests.Timeout:
        raise JwksUnavailable(f"GET {url} timed out after {timeout:g} s") from None
    except requests.RequestException as exc:
        if budget.expired():
            raise JwksUnavailable(f"GET {url}: answer not complete within {2 * timeout:g} s") from None
        raise JwksUnavailable(f"GET {url} failed ({type(exc).__name__})") from None
    try:
        data = json.loads(bytes(body))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise JwksUnavailable(f"GET {url}: answer is not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise JwksUnavailable(f"GET {url}: answer is not a JWK Set (an object with a 'keys' array)")
    return data
