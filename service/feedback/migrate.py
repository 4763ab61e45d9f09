"""Schema migrations of the feedback store: `upgrade()` brings a database to the newest revision of
service/feedback/migrations (Alembic), once, however many processes start at the same moment.

Rules:
- every process that opens the store calls it (each gunicorn worker of each instance, the gunicorn
  master before it starts them, `dah-cds migrate`): the first takes the migration lock and migrates,
  the others wait for the lock and then find nothing to do;
- the lock: on PostgreSQL a session-level advisory lock (`pg_advisory_lock`, one fixed key, held on the
  connection the migration runs on, so every instance sharing the database waits for it); on SQLite an
  exclusive `flock` on `<database file>.migrate.lock` beside the database (processes of one machine are
  the only ones that can share the file); an in-memory SQLite database belongs to one process: no lock;
- a database already at the newest revision is recognised with one read of `alembic_version`, before
  any lock: a running deployment's new workers do not queue behind each other;
- within a process one migration runs at a time (Alembic keeps a command's state in its module);
- the migrations run in one transaction (PostgreSQL's DDL is transactional; on SQLite the migration
  holds `BEGIN IMMEDIATE`): all or nothing;
- a database at a revision this code does not know (made by a newer release) is refused (SchemaError),
  never written to.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import threading
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, text

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# pg_advisory_lock key: any fixed bigint that no other user of the database chooses; "dahcdsmg" in ASCII.
ADVISORY_LOCK_KEY = 0x6461_6863_6473_6D67


# Alembic runs a command through module-level state (alembic.context): one command at a time per process.
_PROCESS_LOCK = threading.RLock()


class SchemaError(RuntimeError):
    """The database's schema cannot be brought to this code's revision."""


def alembic_config(connection: Connection | None = None) -> AlembicConfig:
    """Alembic's configuration, built here (no alembic.ini): the migrations folder, and the connection
    the environment (migrations/env.py) runs on."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


@functools.cache
def head() -> str:
    """The newest revision of the migrations."""
    revision = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if revision is None:
        raise SchemaError(f"no migrations in {MIGRATIONS}")
    return revision


def current(engine: Engine) -> str | None:
    """The database's revision; None for a database never migrated (empty, or made before migrations)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(database: str | Engine) -> str:
    """Bring the database (a URL or an engine) to the newest revision, under the migration lock; the
    revision it is at afterwards."""
    engine = create_engine(database) if isinstance(database, str) else database
    path = engine.url.database if engine.dialect.name == "sqlite" else None
    if path and path != ":memory:" and not path.startswith("file:"):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    try:
        at = current(engine)
        if at == head():
            return at
        with _PROCESS_LOCK, _migration_lock(engine) as conn:
            at = MigrationContext.configure(conn).get_current_revision()
            if at == head():  # migrated by whoever held the lock before
                return at
            if at is not None:
                _known(at)
            command.upgrade(alembic_config(conn), "head")
            conn.commit()
        return head()
    finally:
        if isinstance(database, str):
            engine.dispose()


def _known(revision: str) -> None:
    try:
        ScriptDirectory.from_config(alembic_config()).get_revision(revision)
    except Exception as exc:  # alembic.util.CommandError, ResolutionError
        raise SchemaError(f"the database is at schema revision {revision!r}, which this release does not "
                          f"know (newest known: {head()!r}); it was migrated by a newer release") from exc


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[Connection]:
    """A connection on which this process alone migrates (see the module's rules)."""
    dialect = engine.dialect.name
    if dialect == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
            conn.commit()  # the lock belongs to the session, not to this transaction
            try:
                yield conn
            finally:
                conn.rollback()
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_LOCK_KEY})
                conn.commit()
        return
    database = engine.url.database if dialect == "sqlite" else None  # other databases: no lock
    if not database or database == ":memory:" or database.startswith("file:"):
        with engine.connect() as conn:
            yield conn
        return
    with open(f"{database}.migrate.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            with engine.connect() as conn:
                # One transaction for all the DDL (the driver would commit each statement on its own).
                conn.exec_driver_sql("BEGIN IMMEDIATE")
                yield conn
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
