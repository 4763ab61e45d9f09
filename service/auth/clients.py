"""The trusted-clients file: which CDS clients (EHRs) may call, with which keys, naming which
FHIR servers (CDS Hooks 2.0 §Trusting CDS Clients: "CDS Services SHOULD limit the CDS Clients
they trust by maintaining an allowlist of `iss` and `jku` urls").

Format (JSON):

    {"clients": [
      {"iss": "https://sandbox.cds-hooks.org",
       "jku": "https://sandbox.cds-hooks.org/.well-known/jwks.json",
       "fhirServers": ["https://launch.smarthealthit.org/v/r4/fhir"]},
      {"iss": "https://ehr.example.org", "name": "Example EHR",
       "jwks": {"keys": [{"kty": "EC", "crv": "P-384", "kid": "...", "x": "...", "y": "..."}]},
       "fhirServers": ["https://ehr.example.org/fhir"]}]}

Rules: `clients` is a non-empty array; each client has a unique non-empty `iss` (compared
exactly with the token's `iss`), exactly one of `jwks` (an inline public JWK Set, checked by
service.auth.keys) or `jku` (the one URL its keys are fetched from: https unless loopback), and
`fhirServers`, the base URLs it may name as `fhirServer`/`dataEndpoint` (https unless loopback;
may be empty for a client that always prefetches); `name` is an optional label for logs; no
other member.  Every problem is reported at once, as `<file>: <JSON path>: <problem>`, and the
service does not start.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.auth.keys import RemoteKeys, StaticKeys, key_set
from service.errors import ConfigurationError
from service.fhir import outbound
from service.fhir.jwks import fetch_jwks

_MEMBERS = {"iss", "name", "jwks", "jku", "fhirServers"}


class TrustedClientsError(ConfigurationError):
    def __init__(self, file: str, problems: list[tuple[str, str]]):
        super().__init__("\n".join(f"{file}: {path}: {problem}" for path, problem in problems))
        self.file = file
        self.problems = problems


@dataclass(frozen=True)
class TrustedClient:
    iss: str
    name: str
    keys: StaticKeys | RemoteKeys
    jku: str | None
    fhir_servers: tuple[outbound.BaseUrl, ...]


@dataclass(frozen=True)
class TrustedClients:
    file: str
    by_iss: dict[str, TrustedClient]

    def get(self, iss: Any) -> TrustedClient | None:
        return self.by_iss.get(iss) if isinstance(iss, str) else None


def load_trusted_clients(path: str | Path, fetch: Callable[[str], dict] = fetch_jwks) -> TrustedClients:
    """Read and check the file; `fetch` is how `jku` key sets are fetched later (never here)."""
    file = str(path)
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise TrustedClientsError(file, [("$", f"cannot be read ({exc.strerror or exc})")]) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TrustedClientsError(file, [("$", f"is not valid JSON ({exc})")]) from None
    problems: list[tuple[str, str]] = []
    clients: dict[str, TrustedClient] = {}
    entries = data.get("clients") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise TrustedClientsError(file, [("$.clients", "is required: a non-empty array of trusted clients")])
    for i, entry in enumerate(entries):
        client = _client(entry, f"$.clients[{i}]", problems, fetch)
        if client is None:
            continue
        if client.iss in clients:
            problems.append((f"$.clients[{i}].iss", f"{client.iss!r} is already listed; each iss once"))
        clients[client.iss] = client
    if problems:
        raise TrustedClientsError(file, problems)
    return TrustedClients(file, clients)


def _client(entry: Any, where: str, problems: list[tuple[str, str]],
            fetch: Callable[[str], dict[str, Any]]) -> TrustedClient | None:
    if not isinstance(entry, dict):
        problems.append((where, "must be an object"))
        return None
    before = len(problems)
    for extra in sorted(set(entry) - _MEMBERS):
        problems.append((f"{where}.{extra}", f"unknown member; allowed: {', '.join(sorted(_MEMBERS))}"))
    iss = entry.get("iss")
    if not isinstance(iss, str) or not iss.strip():
        problems.append((f"{where}.iss", "is required: the issuer URI the client puts in its tokens"))
    name = entry.get("name", iss)
    if "name" in entry and not isinstance(name, str):
        problems.append((f"{where}.name", "must be a string"))
    keys: StaticKeys | RemoteKeys | None = None
    jku = entry.get("jku")
    if ("jwks" in entry) == ("jku" in entry):
        problems.append((where, "needs exactly one of 'jwks' (inline public keys) or 'jku' (the URL of its JWK Set)"))
    elif "jwks" in entry:
        found, key_problems = key_set(entry["jwks"])
        problems.extend((f"{where}.jwks{path}", problem) for path, problem in key_problems)
        keys = StaticKeys(found)
    else:
        try:
            outbound.parse_trusted(jku, "jku")
        except outbound.UnsafeUrl as exc:
            problems.append((f"{where}.jku", exc.message))
        else:
            keys = RemoteKeys(str(jku), fetch)  # a URL string: parse_trusted refuses anything else
    servers: list[outbound.BaseUrl] = []
    raw_servers = entry.get("fhirServers")
    if not isinstance(raw_servers, list):
        problems.append((f"{where}.fhirServers", "is required: an array of the FHIR base URLs this client may name"))
    else:
        for j, url in enumerate(raw_servers):
            try:
                servers.append(outbound.parse_trusted(url, "fhirServers entry"))
            except outbound.UnsafeUrl as exc:
                problems.append((f"{where}.fhirServers[{j}]", exc.message))
    if len(problems) > before or not isinstance(iss, str) or not isinstance(name, str) or keys is None:
        return None  # each of these is a problem recorded above
    return TrustedClient(iss, name, keys, jku, tuple(servers))
