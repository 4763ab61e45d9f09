"""What one CDS call may spend on FHIR requests: one deadline and a number of bytes.

Rules:
- the deadline is one point in time for all the FHIR work of a call (every read, page, retry and
  backoff); the FHIR client bounds each read's timeout by the time left, and when none is left the
  call ends with FhirTimeout (412) instead of waiting on;
- a per-read timeout bounds each socket operation only, so a server that sends one byte every few
  seconds would never trip it: while a request runs inside `Budget.active()`, every socket the
  FHIR transport opens (service.fhir.transport) is registered here, and a timer shuts those sockets
  down when the deadline passes, which ends whatever read or connect is waiting on them;
- `spend(n)` counts the bytes of the answers read; more than `max_bytes` in one call is refused
  (FhirTooLarge), so many pages of large Bundles cannot exhaust memory either.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

_local = threading.local()


class Budget:
    def __init__(self, seconds: float, max_bytes: int | None = None, clock: Callable[[], float] = time.monotonic):
        self.seconds = seconds
        self.max_bytes = max_bytes
        self.spent_bytes = 0
        self._clock = clock
        self._at = clock() + seconds
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._cut = False

    def remaining(self) -> float:
        return self._at - self._clock()

    def expired(self) -> bool:
        """The deadline has passed (or its timer has already shut the sockets down)."""
        return self._cut or self.remaining() <= 0

    def bytes_left(self) -> int | None:
        return None if self.max_bytes is None else self.max_bytes - self.spent_bytes

    def spend(self, n: int) -> None:
        self.spent_bytes += n

    @contextmanager
    def active(self) -> Iterator[Budget]:
        """Sockets opened by the FHIR transport on this thread inside the block are shut down when
        the deadline passes."""
        previous = getattr(_local, "budget", None)
        _local.budget = self
        timer = threading.Timer(max(0.0, self.remaining()), self._shut_down)
        timer.daemon = True
        timer.start()
        try:
            yield self
        finally:
            timer.cancel()
            _local.budget = previous
            with self._lock:
                self._sockets.clear()

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            cut = self._cut
            if not cut:
                self._sockets.append(sock)
        if cut:
            _shut(sock)

    def _shut_down(self) -> None:
        with self._lock:
            self._cut = True
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            _shut(sock)


def _shut(sock: socket.socket) -> None:
    # socket.socket.shutdown, also for a TLS socket: ends a blocked read on the descriptor without
    # touching the TLS object another thread is using.  A socket already closed has no descriptor.
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass


def watch_socket(sock: socket.socket) -> None:
    """Called by the transport for every socket it opens: registered with the active budget, if any."""
    budget = getattr(_local, "budget", None)
    if budget is not None:
        budget.watch(sock)
