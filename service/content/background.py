"""One background loop for the content sources: a daemon thread that runs a task every few seconds
and at once when woken, and that survives whatever the task raises.

Rule: the task runs in this one thread only, never two at once; `interval()` is asked before each
wait (None: wait until woken); a task that raises is logged with `what` and the loop goes on (the
content served stays as it was: the task swaps content only when a load succeeds); `stop()` ends the
loop and waits for it.  Used by the folder watch (service.content.watch) and the FHIR-server source
(service.content.fhir_source)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("service.content")


class Background:
    def __init__(self, name: str, what: str):
        self.name, self.what = name, what  # the thread's name; what a crash log line says failed
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def wake(self) -> None:
        """Run the task at once (from a signal handler too: it only sets an event)."""
        self._wake.set()

    def start(self, task: Callable[[], object], interval: Callable[[], float | None]) -> None:
        if self._thread is not None:
            return

        def run() -> None:
            while not self._stop.is_set():
                self._wake.wait(interval())
                self._wake.clear()
                if self._stop.is_set():
                    return
                try:
                    task()
                except Exception:  # the thread must survive anything a reload raises
                    log.exception("%s crashed; previous content kept", self.what)

        self._thread = threading.Thread(target=run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
