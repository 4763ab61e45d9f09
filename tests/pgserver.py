"""A throwaway PostgreSQL for the tests: Debian's server binaries, a data folder in a fresh temporary
folder, TCP on 127.0.0.1 only (no Unix socket), trust authentication, durability off (fsync, full
page writes), stopped and deleted at the end.

    with PostgresServer() as pg:
        url = pg.create_database()   # postgresql+psycopg://postgres@127.0.0.1:<port>/<fresh name>

The binaries are looked up under /usr/lib/postgresql/*/bin (the newest version); when there are none,
`apt-get install postgresql` is run once (as root, serialised with a lock file).  PostgreSQL refuses
to run as root: then the folder belongs to the `postgres` user the package creates, and the server
and initdb run as that user.  PostgresUnavailable says why a server could not be had.
"""

from __future__ import annotations

import fcntl
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

from tests.processes import stop_process, wait_ready

DEBIAN_ROOT = Path("/usr/lib/postgresql")
INSTALL_LOCK = Path(tempfile.gettempdir()) / "dah-cds-tests-postgresql-install.lock"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server could be found, installed or started here."""


def _binaries() -> Path | None:
    found = sorted((p for p in DEBIAN_ROOT.glob("*/bin") if (p / "postgres").is_file()),
                   key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    return found[-1] if found else None


def _run(cmd: list[str], timeout: float) -> subprocess.CompletedProcess:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL)


def ensure_installed(timeout: float = 900) -> Path:
    """The folder of the server binaries, installing Debian's `postgresql` package if it is missing."""
    if (found := _binaries()) is not None:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise PostgresUnavailable("no PostgreSQL server under /usr/lib/postgresql/*/bin, and this is not a "
                                  "root shell with apt-get to install Debian's postgresql package")
    with open(INSTALL_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (found := _binaries()) is not None:
            return found
        install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "postgresql"]
        result = _run(install, timeout)
        if result.returncode != 0:  # package lists missing or stale: update them once and try again
            _run(["apt-get", "update", "-q"], timeout)
            result = _run(install, timeout)
        if result.returncode != 0 or (found := _binaries()) is None:
            tail = "\n".join((result.stdout + result.stderr).splitlines()[-15:])
            raise PostgresUnavailable(f"`apt-get install postgresql` failed:\n{tail}")
        return found


class PostgresServer:
    """One PostgreSQL server process on a free loopback port (a context manager)."""

    def __init__(self, startup_timeout: float = 120):
        self.startup_timeout = startup_timeout
        self.port = 0
        self.process: subprocess.Popen | None = None
        self.folder: Path | None = None

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> PostgresServer:
        bin_dir = ensure_installed()
        user = None
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam("postgres")
            except KeyError as exc:
                raise PostgresUnavailable("running as root and there is no `postgres` user to run the server as") \
                    from exc
        self.folder = Path(tempfile.mkdtemp(prefix="dah-cds-pg-"))
        data = self.folder / "data"
        if user is not None:
            os.chown(self.folder, user.pw_uid, user.pw_gid)
        as_user = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []} if user else {}
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8", "HOME": str(self.folder)}
        result = subprocess.run([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
                                 "-E", "UTF8", "--no-sync"], capture_output=True, text=True, env=env,
                                cwd=self.folder, timeout=self.startup_timeout, **as_user)
        if result.returncode != 0:
            raise PostgresUnavailable(f"initdb failed:\n{result.stdout}{result.stderr}")
        self.port = free_port()
        self._log = open(self.folder / "server.log", "wb")
        if user is not None:
            os.chown(self.folder / "server.log", user.pw_uid, user.pw_gid)
        self.process = subprocess.Popen(
            [str(bin_dir / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(self.port),
             "-c", "unix_socket_directories=", "-c", "fsync=off", "-c", "synchronous_commit=off",
             "-c", "full_page_writes=off", "-c", "max_connections=300", "-c", "shared_buffers=64MB"],
            env=env, cwd=self.folder, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True, **as_user)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        import psycopg

        def answers() -> bool:
            try:
                with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres",
                                     connect_timeout=2):
                    return True
            except psycopg.OperationalError:
                return False

        wait_ready(self.process, answers, self.startup_timeout, 0.2,
                   lambda: PostgresUnavailable(f"postgres exited at start:\n{self.log_tail()}"),
                   lambda: PostgresUnavailable(f"postgres did not accept connections within "
                                               f"{self.startup_timeout:.0f} s:\n{self.log_tail()}"))

    def create_database(self) -> str:
        """A new empty database; its SQLAlchemy URL."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:16]
        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def log_tail(self, lines: int = 30) -> str:
        log = self.folder / "server.log" if self.folder else None
        if log is None or not log.exists():
            return ""
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """Fast shutdown (SIGINT to the server's own pid), SIGKILL if it lingers; the folder is deleted."""
        proc, self.process = self.process, None
        stop_process(proc, signal.SIGINT, 30, 10)
        if getattr(self, "_log", None) is not None:
            self._log.close()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
