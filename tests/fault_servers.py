"""FHIR servers that misbehave, for real, on 127.0.0.1:<free port> (stdlib sockets; nothing mocked).

`FaultServer(behaviour)` accepts connections and hands each request to `behaviour(request, send)`:
`request` is the parsed request line and headers, `send(bytes)` writes to the socket (and
returns False once the client has gone).  Ready-made behaviours: `slow` (every answer after a
delay), `drip` (status line and headers, then the body one byte at a time), `drip_headers` (the
status line itself one byte at a time), `huge` (a body of many megabytes), `self_linking` (a
searchset whose `next` link is itself), `failing` (500 with an OperationOutcome that carries
text meant to leak), and `honest(bundle)`.  Each records the paths it was asked for.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit


@dataclass
class Request:
    method: str
    path: str  # below /fhir/, query included, percent-decoded
    raw_path: str  # as sent
    headers: dict[str, str] = field(default_factory=dict)


def response_head(status: int, length: int | None, reason: str = "OK") -> bytes:
    head = f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/fhir+json\r\nConnection: close\r\n"
    if length is not None:
        head += f"Content-Length: {length}\r\n"
    return (head + "\r\n").encode()


def answer(status: int, body: dict, delay: float = 0.0):
    data = json.dumps(body).encode()

    def behaviour(request: Request, send) -> None:
        time.sleep(delay)
        send(response_head(status, len(data)) + data)

    return behaviour


EMPTY_BUNDLE = {"resourceType": "Bundle", "type": "searchset", "total": 0}


def slow(seconds: float, body: dict = EMPTY_BUNDLE):
    """Every answer complete and correct, `seconds` after the request."""
    return answer(200, body, seconds)


def drip(every: float, body: dict = EMPTY_BUNDLE):
    """Headers at once, then the body one byte every `every` seconds (each read gets a byte well within
    any per-read timeout, so only a deadline for the whole call stops it)."""
    data = json.dumps(body).encode() + b" " * 10_000

    def behaviour(request: Request, send) -> None:
        if not send(response_head(200, len(data))):
            return
        for i in range(len(data)):
            if not send(data[i:i + 1]):
                return
            time.sleep(every)

    return behaviour


def drip_headers(every: float):
    """The status line and headers one byte every `every` seconds: nothing of the body ever comes."""
    head = response_head(200, 2)

    def behaviour(request: Request, send) -> None:
        for i in range(len(head)):
            if not send(head[i:i + 1]):
                return
            time.sleep(every)

    return behaviour


def huge(megabytes: int, declare_length: bool = True):
    """A searchset Bundle of `megabytes` MB, sent as fast as the client reads it (with or without
    Content-Length)."""
    entry = json.dumps({"resource": {"resourceType": "Observation", "id": "x" * 60, "status": "final"}}).encode()
    count = megabytes * 1_000_000 // (len(entry) + 1)
    prefix = b'{"resourceType": "Bundle", "type": "searchset", "entry": ['
    suffix = b"]}"
    length = len(prefix) + count * (len(entry) + 1) - 1 + len(suffix)

    def behaviour(request: Request, send) -> None:
        if not send(response_head(200, length if declare_length else None) + prefix):
            return
        block = b",".join([entry] * 1000)
        sent = 0
        while sent < count:
            n = min(1000, count - sent)
            chunk = block if n == 1000 else b",".join([entry] * n)
            if not send((b"," if sent else b"") + chunk):
                return
            sent += n
        send(suffix)

    return behaviour


def self_linking():
    """A searchset whose `next` link is the very URL asked for."""

    def behaviour(request: Request, send) -> None:
        here = f"http://{request.headers['Host']}/fhir/{request.raw_path}"
        body = {"resourceType": "Bundle", "type": "searchset", "entry": [],
                "link": [{"relation": "next", "url": here}]}
        data = json.dumps(body).encode()
        send(response_head(200, len(data)) + data)

    return behaviour


LEAK = "upstream-secret-text\nInjected: log line"


def failing(status: int = 500):
    """An error with an OperationOutcome whose diagnostics must not reach a CDS client."""
    return answer(status, {"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "exception", "diagnostics": LEAK}]})


class FaultServer:
    def __init__(self, behaviour):
        self.behaviour = behaviour
        self.requests: list[Request] = []
        self.connections = 0
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._closed = False
        self.origin = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self.base = self.origin + "/fhir"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(30)
            data = b""
            try:
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
            except OSError:
                return
            lines = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
            raw_path = urlsplit(target).path.removeprefix("/fhir/")
            query = urlsplit(target).query
            raw = raw_path + ("?" + query if query else "")
            self.requests.append(Request(method, unquote(raw), raw, headers))

            def send(payload: bytes) -> bool:
                try:
                    conn.sendall(payload)
                    return True
                except OSError:
                    return False

            self.behaviour(self.requests[-1], send)

    def close(self) -> None:
        self._closed = True
        self._sock.close()
