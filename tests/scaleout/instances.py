"""Service instances as a deployment runs them: `dah-cds serve` processes (gunicorn, the project's
settings), each on its own loopback port, all on one database.

    with Instances(tmp_path, database_url, count=2, workers=2) as (a, b):
        a.post("/cds-services/...", body)

Start-up waits are generous (STARTUP_SECONDS): a loaded machine boots slowly, which is not what these
tests are about.  An instance counts as up when it answers discovery and every one of its workers
has opened the database (each worker's store keeps a connection in its pool); it counts as clean when
its log has no traceback and no worker failed to boot.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, make_url, text

from tests.pgserver import free_port
from tests.protocol_content import CONTENT as SYNTHETIC

STARTUP_SECONDS = 120.0
DAH_CDS = str(Path(sys.executable).parent / "dah-cds")


@dataclass
class Instance:
    name: str
    port: int
    process: subprocess.Popen
    log: Path

    def request(self, method: str, path: str, body: dict | None = None,
                headers: dict | None = None) -> tuple[int, dict]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            data = json.dumps(body).encode() if body is not None else None
            conn.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
            response = conn.getresponse()
            return response.status, json.loads(response.read() or b"null")
        finally:
            conn.close()

    def post(self, path: str, body: dict, headers: dict | None = None) -> tuple[int, dict]:
        return self.request("POST", path, body, headers)

    def answers(self) -> bool:
        try:
            return self.request("GET", "/cds-services")[0] == 200
        except OSError:
            return False

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def problems(self) -> list[str]:
        """Lines of the log that show a failed start."""
        return [line for line in self.log_text().splitlines()
                if "Traceback" in line or "Worker failed to boot" in line or "Exception in worker" in line
                or "Shutting down: Master" in line or " ERROR " in line or "[ERROR]" in line]


class Instances:
    """`count` instances of `workers` workers each, started at the same moment on `database_url`."""

    def __init__(self, folder: Path, database_url: str, count: int = 2, workers: int = 2, threads: int = 8,
                 **env: str):
        self.folder, self.database_url = folder, database_url
        self.count, self.workers, self.threads, self.env = count, workers, threads, env
        self.instances: list[Instance] = []

    def start(self) -> list[Instance]:
        environ = {k: v for k, v in os.environ.items() if not k.startswith("CDS_")}
        environ.update({"CDS_HOST": "127.0.0.1", "CDS_DATABASE_URL": self.database_url,
                        "CDS_CONTENT_DIR": str(SYNTHETIC), "CDS_WORKERS": str(self.workers),
                        "CDS_THREADS": str(self.threads), "CDS_LOG_LEVEL": "WARNING", **self.env})
        for i in range(self.count):
            port = free_port()
            log = self.folder / f"instance-{chr(ord('a') + i)}-{port}.log"
            process = subprocess.Popen([DAH_CDS, "serve"], env=environ | {"CDS_PORT": str(port)},
                                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                       stderr=open(log, "wb"), start_new_session=True)
            self.instances.append(Instance(chr(ord("A") + i), port, process, log))
        self._wait_up()
        return self.instances

    def _wait_up(self) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        pending = list(self.instances)
        while time.monotonic() < deadline:
            for instance in self.instances:
                assert instance.process.poll() is None, \
                    f"instance {instance.name} exited ({instance.process.returncode}):\n{instance.log_text()[-4000:]}"
            pending = [i for i in pending if not i.answers()]
            if not pending and self.worker_connections() >= self.count * self.workers:
                return
            time.sleep(0.5)
        raise AssertionError(f"not up within {STARTUP_SECONDS:.0f} s: "
                             f"{[i.name for i in pending]} not answering, {self.worker_connections()} connections;\n"
                             + "\n".join(i.log_text()[-2000:] for i in self.instances))

    def worker_connections(self) -> int:
        """Connections to the database other than this one (PostgreSQL), i.e. the workers' pools."""
        if make_url(self.database_url).get_backend_name() != "postgresql":
            return self.count * self.workers
        engine = create_engine(self.database_url)
        try:
            with engine.connect() as conn:
                return conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                         "AND pid <> pg_backend_pid()")).scalar_one()
        finally:
            engine.dispose()

    def stop(self) -> None:
        for instance in self.instances:
            if instance.process.poll() is None:
                instance.process.send_signal(signal.SIGINT)  # gunicorn: quick shutdown
        for instance in self.instances:
            try:
                instance.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                instance.process.kill()
                instance.process.wait(timeout=10)

    def __enter__(self) -> list[Instance]:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()
