"""The HTTP sessions the FHIR client uses: `requests` with connections whose sockets are
registered with the active call budget (service.fhir.budget), so the budget's deadline can end a
read that a slow or dripping server keeps waiting.  The raw socket is registered as soon as it
exists (connect and TLS handshake) and, for https, the TLS socket once connected.
"""

from __future__ import annotations

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from service.fhir.budget import watch_socket


class _HTTPConnection(HTTPConnection):
    def _new_conn(self):
        sock = super()._new_conn()
        watch_socket(sock)
        return sock


class _HTTPSConnection(HTTPSConnection):
    def _new_conn(self):
        sock = super()._new_conn()
        watch_socket(sock)
        return sock

    def connect(self) -> None:
        super().connect()
        if self.sock is not None:
            watch_socket(self.sock)


class _HTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class _WatchedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPConnectionPool, "https": _HTTPSConnectionPool}


def session() -> requests.Session:
    """A new session whose connections report their sockets to the active budget."""
    s = requests.Session()
    adapter = _WatchedAdapter()
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    return s
