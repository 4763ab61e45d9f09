"""How the service is served (`dah-cds serve`, `make serve`, the container image): gunicorn with
threaded workers that a slow client cannot hold.

gunicorn's own guidance (docs: Design, "Choosing a Worker Type"): sync workers must sit behind a
buffering proxy, because a client that sends its request slowly holds a whole worker.  This
service is often run without one (loopback, a container behind a TCP load balancer), so it
serves with the `gthread` worker and bounds the time a client may make a thread wait:

- `workers` processes (CDS_WORKERS, 2) of `threads` threads each (CDS_THREADS, 8): a connection
  takes a thread only once it has sent its first bytes; idle keep-alive connections wait in
  the worker's event loop, not in a thread;
- a request has `request_read_timeout_seconds` (CDS_REQUEST_READ_TIMEOUT_SECONDS, 10) of waiting
  for its bytes, headers and body together: the time the thread spends blocked on the client's
  socket is added up, whatever the client sends meanwhile (one byte every few seconds does not
  reset it).  Past it, a request whose headers are not complete gets a 408 from here; a body
  that stops arriving gets a 408 OperationOutcome from the app; either way the connection is
  closed and the thread is free;
- so each slow client costs at most one thread for that long, and an honest call finds a free
  thread as long as fewer than workers x threads slow clients arrive at once; past that, put a
  buffering proxy (nginx with `proxy_request_buffering on`, the default) in front;
- the worker timeout is max(30 s, the call deadline + 10 s), so every call answers (412 at the
  latest, service.fhir.budget) before gunicorn would ever stop a worker.

Content reload never takes the service down.  gunicorn's own SIGHUP starts new workers and
stops the old ones; a new worker that cannot build broken content fails to boot, and the master
then exits.  Here SIGHUP to the master is passed on to the running workers instead, and each
reloads its content in place (service.content.watch for a folder, which also watches the folder
by itself; service.content.fhir_source for a FHIR server): content that builds is swapped in,
content that does not is refused while the last good content keeps serving, and the refusal is
logged and shown at GET /status/content.  A worker that gunicorn starts later (after a crash)
while the folder is broken serves the last good content, kept in a snapshot file the workers
write in a private directory of this master.  Python code and gunicorn settings are not
reloaded by SIGHUP: restart the service (or use gunicorn's USR2 upgrade) for a new release.

Operations: each master gives its workers a fresh, empty metrics directory (PROMETHEUS_MULTIPROC_DIR,
set before anything imports prometheus_client; removed when the master stops) and marks a worker's
metrics dead when it exits (service.metrics), so `GET /metrics` on any worker shows the sum of all.
gunicorn's own lines (worker boots and exits) use the service's log format (CDS_LOG_FORMAT); the
access line of each request is the app's (`service.access`, with its request id), so gunicorn's
access log is off.

Kept at the top of service/: the process server `dah-cds serve` starts around the app; it
imports no Flask and is no part of the web layer (the only gunicorn code).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter
from gunicorn.http.errors import NoMoreData
from gunicorn.workers.gthread import ThreadWorker

from service.config import Config, process_environment, set_process_environment

_OUTCOME_408 = json.dumps({"resourceType": "OperationOutcome", "issue": [
    {"severity": "error", "code": "timeout", "diagnostics": "the request did not arrive in time"}]}).encode()
TIMEOUT_408 = (b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Type: application/json\r\n"
               b"X-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\n"
               + f"Content-Length: {len(_OUTCOME_408)}\r\n\r\n".encode() + _OUTCOME_408)


class RequestReadTimeout(NoMoreData, TimeoutError):
    """The client kept the thread waiting for its request longer than allowed.  A NoMoreData for
    gunicorn's parser (the connection is given up quietly), a TimeoutError for the app (a body
    that stops arriving is a 408, service.web.security)."""

    def __str__(self) -> str:
        return "request not received in time"


class _PatientSocket:
    """The socket as gunicorn's request parser reads it, counting the time each read waits."""

    def __init__(self, sock: socket.socket, limit: float):
        self._sock = sock
        self.limit = limit
        self.waited = 0.0
        self.timed_out = False
        self.dispatched = False

    def next_request(self) -> None:
        self.waited = 0.0
        self.timed_out = False
        self.dispatched = False

    def recv(self, size: int) -> bytes:
        left = self.limit - self.waited
        if left <= 0:
            self.timed_out = True
            raise RequestReadTimeout()
        started = time.monotonic()
        self._sock.settimeout(left)
        try:
            return self._sock.recv(size)
        except TimeoutError:
            self.timed_out = True
            raise RequestReadTimeout() from None
        finally:
            self.waited += time.monotonic() - started
            self._sock.settimeout(None)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class ReadTimeoutThreadWorker(ThreadWorker):
    """gunicorn's gthread worker whose requests must arrive within `request_read_timeout_seconds`."""

    read_timeout = 10.0  # set by `serve` from the configuration
    wsgi: WSGIApplication  # set by gunicorn's Worker.load_wsgi

    def _patient(self, conn) -> _PatientSocket:
        unreader = conn.parser.unreader
        if not isinstance(unreader.sock, _PatientSocket):
            unreader.sock = _PatientSocket(unreader.sock, self.read_timeout)
        return unreader.sock

    def load_wsgi(self) -> None:
        super().load_wsgi()
        self.wsgi = _closing_after_408(self.wsgi)

    def init_signals(self) -> None:
        super().init_signals()
        signal.signal(signal.SIGHUP, self._reload_content)
        signal.siginterrupt(signal.SIGHUP, False)  # requests in progress are not disturbed

    def _reload_content(self, sig, frame) -> None:
        from service.content.watch import reload_all

        reload_all()  # sets an event: the content thread does the work

    def handle(self, conn):
        patient = self._patient(conn)
        patient.next_request()
        keepalive, conn = super().handle(conn)
        if patient.timed_out and not patient.dispatched:
            self.log.info("408: request from %s not received within %g s", conn.client, self.read_timeout)
            try:
                conn.sock.sendall(TIMEOUT_408)
            except OSError:
                pass
            return False, conn
        return keepalive, conn

    def handle_request(self, req, conn):
        patient = self._patient(conn)
        patient.dispatched = True
        keepalive = super().handle_request(req, conn)
        return keepalive and not patient.timed_out  # a body cut short leaves the connection unusable


_ExcInfo = tuple[type[BaseException], BaseException, TracebackType] | tuple[None, None, None]


def _closing_after_408(app: WSGIApplication) -> WSGIApplication:
    """The app's 408 (a body that stopped arriving) closes the connection: what is left of the body
    cannot be told from a next request."""

    def wsgi(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        def start(status: str, headers: list[tuple[str, str]],
                  exc_info: _ExcInfo | None = None) -> Callable[[bytes], object]:
            if status.startswith("408"):
                response = getattr(start_response, "__self__", None)
                if response is not None and hasattr(response, "force_close"):
                    response.force_close()
            return start_response(status, headers, exc_info)

        return app(environ, start)

    return wsgi


def gunicorn_settings(cfg: Config, worker_exited: Callable[[int], None] = lambda pid: None) -> dict[str, Any]:
    def child_exit(server: Any, worker: Any) -> None:
        worker_exited(worker.pid)

    return {
        "bind": [f"[{cfg.host}]:{cfg.port}" if ":" in cfg.host else f"{cfg.host}:{cfg.port}"],
        "worker_class": ReadTimeoutThreadWorker,
        "workers": max(1, cfg.workers),
        "threads": max(1, cfg.threads),
        "timeout": max(30, int(cfg.call_deadline_seconds) + 10),
        "graceful_timeout": 30,
        "keepalive": 5,
        "accesslog": None,  # the app logs each request (service.web.ops), with its request id
        "logconfig_dict": _log_config(cfg),
        "child_exit": child_exit,
    }


def _log_config(cfg: Config) -> dict[str, Any]:
    """gunicorn's own loggers, in the service's format (logging.config.dictConfig schema)."""
    formatter = "service.logcontext.JsonFormatter" if cfg.log_format == "json" else "service.logcontext.TextFormatter"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"service": {"()": formatter}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "service",
                                "stream": "ext://sys.stderr"}},
        "loggers": {"gunicorn.error": {"level": cfg.log_level, "handlers": ["stderr"], "propagate": False}},
        "root": {"level": cfg.log_level, "handlers": []},
    }


class ContentReloadArbiter(Arbiter):
    """gunicorn's master, whose SIGHUP reloads the workers' content in place instead of replacing
    the workers (see the module docstring)."""

    def handle_hup(self) -> None:
        self.log.info("Hang up: content reload passed on to %d worker(s)", len(self.WORKERS))
        for pid in list(self.WORKERS):
            self.kill_worker(pid, signal.SIGHUP)


class _Application(BaseApplication):
    snapshot_dir: Path | None = None  # set by `serve`; inherited by the workers

    def __init__(self, cfg: Config, worker_exited: Callable[[int], None]):
        self.cds_config = cfg
        self.worker_exited = worker_exited
        super().__init__()

    def run(self) -> None:
        try:
            ContentReloadArbiter(self).run()
        except RuntimeError as exc:
            print(f"\nError: {exc}\n", file=sys.stderr)
            sys.exit(1)

    def load_config(self) -> None:
        for name, value in gunicorn_settings(self.cds_config, self.worker_exited).items():
            self.cfg.set(name, value)

    def load(self):
        from service.app import create_app

        snapshot = str(self.snapshot_dir / "last-good-content.json") if self.snapshot_dir else None
        return create_app({"host": self.cds_config.host, "port": self.cds_config.port}, reload_content=True,
                          content_snapshot=snapshot)


def check(cfg: Config) -> None:
    """The start-up rules the app applies, checked once before any worker starts (ConfigurationError):
    trusted clients, or a loopback host; a safe CORS setting."""
    from service.auth import authentication
    from service.runtime import utc_now
    from service.web.policy import cors_origins

    open_mode = authentication(cfg, lambda *args: True, utc_now) is None
    cors_origins(cfg.cors_origins, open_mode)


def serve(cfg: Config) -> None:
    """Run the service under gunicorn until it is stopped.  The feedback database is migrated first
    (a database error stops the start here, not in every worker); the app is built in each worker,
    and is told its bind host (without trusted clients only a loopback host may serve)."""
    from service import logcontext
    from service.feedback.migrate import upgrade

    logcontext.configure(cfg.log_level, cfg.log_format)  # the master's own lines (start-up checks)
    check(cfg)  # a refused start changes nothing in this process
    upgrade(cfg.database_url)  # once here, before the workers start (each checks again: service.feedback.migrate)
    folder = tempfile.mkdtemp(prefix="dah-cds-metrics-")
    previous = process_environment("PROMETHEUS_MULTIPROC_DIR")
    set_process_environment("PROMETHEUS_MULTIPROC_DIR", folder)  # before prometheus_client is imported
    _Application.snapshot_dir = Path(tempfile.mkdtemp(prefix="dah-cds-content-"))
    master = os.getpid()
    try:
        from service import metrics  # imported here, in the master, never in a signal handler

        if metrics.multiprocess_dir() != folder:
            raise RuntimeError("service.metrics was imported before `dah-cds serve` chose its metrics directory")
        ReadTimeoutThreadWorker.read_timeout = cfg.request_read_timeout_seconds
        _Application(cfg, metrics.worker_exited).run()
    finally:
        if os.getpid() == master:  # a worker leaving (SystemExit through this frame) keeps both
            shutil.rmtree(_Application.snapshot_dir, ignore_errors=True)
            shutil.rmtree(folder, ignore_errors=True)
            set_process_environment("PROMETHEUS_MULTIPROC_DIR", previous)
