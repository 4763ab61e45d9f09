"""Test pieces for CDS client trust: keys generated in the test, tokens signed as an EHR signs
them (PyJWT), forged tokens (alg none, HS256 keyed with the public key), a trusted-clients file,
and a loopback HTTP listener that counts every connection it accepts (so a test can say "no
connection was made", not just "no request was answered")."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm


@dataclass
class SigningKey:
    kid: str
    alg: str
    private: object

    @property
    def public_jwk(self) -> dict:
        public = self.private.public_key()
        jwk = json.loads((ECAlgorithm if self.alg.startswith("ES") else RSAAlgorithm).to_jwk(public))
        return jwk | {"kid": self.kid, "use": "sig", "alg": self.alg}

    @property
    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(serialization.Encoding.PEM,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo)


def es384_key(kid: str = "ehr-es384") -> SigningKey:
    return SigningKey(kid, "ES384", ec.generate_private_key(ec.SECP384R1()))


def rs384_key(kid: str = "ehr-rs384") -> SigningKey:
    return SigningKey(kid, "RS384", rsa.generate_private_key(public_exponent=65537, key_size=2048))


def jwks(*keys: SigningKey) -> dict:
    return {"keys": [k.public_jwk for k in keys]}


def claims(iss: str, aud, now: float, lifetime: int = 300, **extra) -> dict:
    """Claims as the CDS Hooks sandbox sends them (iat, exp = iat + 300, a fresh jti)."""
    return {"iss": iss, "aud": aud, "iat": round(now), "exp": round(now) + lifetime, "jti": str(uuid.uuid4())} | extra


def sign(key: SigningKey, payload: dict, **header) -> str:
    headers = {"typ": "JWT", "kid": key.kid} | header
    headers = {k: v for k, v in headers.items() if v is not None}
    return jwt.encode(payload, key.private, algorithm=key.alg, headers=headers)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(payload: dict, kid: str) -> str:
    """alg "none" (RFC 7519 §6): no signature at all."""
    header = json.dumps({"alg": "none", "typ": "JWT", "kid": kid}).encode()
    return f"{_b64(header)}.{_b64(json.dumps(payload).encode())}."


def hs256_with_public_key(key: SigningKey, payload: dict) -> str:
    """The classic key-confusion forgery: HMAC-SHA256 keyed with the client's public key (PEM)."""
    signing_input = (f"{_b64(json.dumps({'alg': 'HS256', 'typ': 'JWT', 'kid': key.kid}).encode())}."
                     f"{_b64(json.dumps(payload).encode())}")
    mac = hmac.new(key.public_pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


def write_clients(path: Path, *clients: dict) -> str:
    path.write_text(json.dumps({"clients": list(clients)}, indent=2))
    return str(path)


@dataclass
class Listener:
    """An HTTP server on 127.0.0.1:<free port>.  `routes[path] = (status, json body[, headers])`; every
    accepted connection is counted in `connections`, every request (path, headers) in `requests`;
    other paths get `default`."""

    routes: dict = field(default_factory=dict)
    default: tuple = (404, {"resourceType": "OperationOutcome"})
    connections: int = 0
    requests: list = field(default_factory=list)

    def __post_init__(self):
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server API)
                listener.requests.append((self.path, dict(self.headers.items())))
                status, body, *extra = listener.routes.get(self.path.split("?")[0], listener.default)
                data = json.dumps(body).encode()
                self.send_response(status)
                for name, value in (extra[0] if extra else {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        class CountingServer(ThreadingHTTPServer):
            daemon_threads = True

            def process_request(self, request, client_address):
                listener.connections += 1
                super().process_request(request, client_address)

        self.server = CountingServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def trusted_client_factory(tmp_path, content, iss: str, key, now):
    """make(fhir_servers=None): a test client of the app, open (None) or trusting one client `iss`
    (signing with `key`) to name `fhir_servers`."""
    from service.app import create_app

    def make(fhir_servers=None):
        config = {"database_url": f"sqlite:///{tmp_path / 'f.sqlite3'}", "fhir_retries": 0}
        if fhir_servers is not None:
            config["trusted_clients"] = write_clients(
                tmp_path / "clients.json", {"iss": iss, "jwks": jwks(key), "fhirServers": fhir_servers}
            )
        return create_app(config, clock=lambda: now, content=content).test_client()

    return make


def bearer(key, iss: str, path: str, now) -> dict:
    """The Authorization header of a valid token for `path` on the test client's host."""
    return {"Authorization": "Bearer " + sign(key, claims(iss, "http://localhost" + path, now.timestamp()))}
