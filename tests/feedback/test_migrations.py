"""The feedback store's migrations (service.feedback.migrate), on SQLite and on PostgreSQL: they make
exactly the tables the code uses, adopt a database made before migrations existed, run once when
many processes start together, and refuse a database from a newer release."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, insert, inspect, select, text

from service.cli import main
from service.feedback import FeedbackStore
from service.feedback.migrate import ADVISORY_LOCK_KEY, SchemaError, alembic_config, current, head, upgrade
from service.feedback.schema import issued_cards, metadata
from tests.conftest import T0


def schema_diff(url: str) -> list:
    """What Alembic's autogenerate would change to make the database match the code's tables."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    finally:
        engine.dispose()


def test_the_migrations_make_exactly_the_tables_the_code_uses(database_url):
    assert upgrade(database_url) == head()
    assert schema_diff(database_url) == []


def test_a_database_made_before_migrations_is_adopted_with_its_rows(database_url):
    """Made by the service's former start-up (create_all), before the suggestions table existed."""
    engine = create_engine(database_url)
    former = {"issued_card", "feedback", "token_id"}  # the tables the service itself created then
    metadata.create_all(engine, tables=[t for t in metadata.sorted_tables if t.name in former])
    with engine.begin() as conn:
        conn.execute(insert(issued_cards), [{"uuid": "c1", "service_id": "s", "hook_instance": "h",
                                             "issued_at": T0}])
    assert current(engine) is None
    store = FeedbackStore(database_url)
    assert current(store.engine) == head()
    assert set(inspect(store.engine).get_table_names()) >= {t.name for t in metadata.sorted_tables}
    with store.engine.connect() as conn:
        assert conn.execute(select(issued_cards.c.uuid)).scalars().all() == ["c1"]
    assert schema_diff(database_url) == []
    engine.dispose()
    store.engine.dispose()


def test_processes_started_together_migrate_once(tmp_path):
    """Four `dah-cds migrate` processes (as workers starting at once) on a new SQLite database: all
    succeed, and the database ends at the newest revision, with one row saying so.  (On PostgreSQL:
    tests/scaleout, two instances of two workers each.)"""
    database_url = f"sqlite:///{tmp_path / 'feedback.sqlite3'}"
    command_line = [str(Path(sys.executable).parent / "dah-cds"), "migrate", "--database-url", database_url]
    processes = [subprocess.Popen(command_line, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                 for _ in range(4)]
    outputs = [p.communicate(timeout=120)[0].decode() for p in processes]
    assert [p.returncode for p in processes] == [0] * 4, outputs
    engine = create_engine(database_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [head()]
    engine.dispose()
    assert schema_diff(database_url) == []


def test_on_postgresql_starting_processes_wait_for_the_migration_lock(postgres):
    """While the migration lock is held (as by an instance migrating on another machine), three
    `dah-cds migrate` processes on a new database wait for it, on PostgreSQL's advisory lock; once it is
    released all three finish, and the schema was made once."""
    url = postgres.create_database()
    engine = create_engine(url)
    command_line = [str(Path(sys.executable).parent / "dah-cds"), "migrate", "--database-url", url]
    waiting = text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                   "AND wait_event_type = 'Lock' AND wait_event = 'advisory'")
    with engine.connect() as holder:
        holder.execute(text("SELECT pg_advisory_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
        holder.commit()
        processes = [subprocess.Popen(command_line, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                     for _ in range(3)]
        deadline = time.monotonic() + 120
        with engine.connect() as probe:
            while probe.execute(waiting).scalar_one() < 3:
                assert time.monotonic() < deadline, "the processes never waited for the lock"
                assert all(p.poll() is None for p in processes), [p.communicate()[0] for p in processes]
                time.sleep(0.2)
                probe.rollback()
        assert current(engine) is None  # nothing migrated while the lock was held
        holder.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_LOCK_KEY})
        holder.commit()
    outputs = [p.communicate(timeout=120)[0].decode() for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0], outputs
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [head()]
    engine.dispose()


def test_stores_opened_by_threads_at_once_migrate_once(database_url):
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def open_store() -> None:
        barrier.wait()
        try:
            FeedbackStore(database_url).engine.dispose()
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == [] and current(create_engine(database_url)) == head()


def test_down_to_nothing_and_up_again(database_url):
    upgrade(database_url)
    engine = create_engine(database_url)
    with engine.connect() as conn:
        command.downgrade(alembic_config(conn), "base")
        conn.commit()
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()
    assert upgrade(database_url) == head()
    assert schema_diff(database_url) == []


def test_cards_scoped_before_the_card_key_keep_their_rows_and_never_make_a_repeat(database_url):
    """A database at 0003 with a card shown at order-select: brought to the newest revision, the row is
    read back without a key (NULL), and the same card at order-sign is shown (fail open)."""
    from datetime import timedelta

    from service.engine import QuietPolicy
    from service.feedback.schema import issued_scope
    from service.feedback.store import CallScope, scope_key
    from service.hooks.suppression import leave_out_quiet

    engine = create_engine(database_url)
    with engine.connect() as conn:
        command.upgrade(alembic_config(conn), "0003")
        conn.commit()
    with engine.begin() as conn:
        conn.execute(insert(issued_scope).values(  # the columns of 0003 only
            card_uuid="c1", rule_id="R", hook="order-select", patient_key=scope_key("p1"), draft_key="drafts-1",
            issued_at=T0))
    engine.dispose()
    store = FeedbackStore(database_url)
    assert current(store.engine) == head() and schema_diff(database_url) == []
    [past] = store.quiet_history("p1", ["R"], T0)
    assert (past.hook, past.draft_key, past.card_key) == ("order-select", "drafts-1", None)
    card = {"uuid": "c2", "summary": "Same card", "indicator": "warning", "source": {"topic": {"code": "R"}}}
    kept, quiet, _ = leave_out_quiet([card], {"R": QuietPolicy(once_per_draft=True)},
                                     CallScope("order-sign", "p1", None, "drafts-1"), store, T0 + timedelta(minutes=2))
    assert kept == [card] and quiet == []
    store.engine.dispose()


def test_a_database_from_a_newer_release_is_refused_untouched(database_url):
    upgrade(database_url)
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'from-the-future'"))
    with pytest.raises(SchemaError, match="'from-the-future'.*newer release"):
        upgrade(database_url)
    assert current(engine) == "from-the-future"
    engine.dispose()


def test_migrate_command_reports_the_revision(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'new' / 'feedback.sqlite3'}"
    assert main(["migrate", "--database-url", url]) == 0
    assert f"schema revision {head()}" in capsys.readouterr().out
    assert schema_diff(url) == []


def test_serve_refuses_a_database_from_a_newer_release_before_any_worker_starts(tmp_path, capsys, monkeypatch):
    url = f"sqlite:///{tmp_path / 'feedback.sqlite3'}"
    upgrade(url)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'from-the-future'"))
    engine.dispose()
    monkeypatch.setenv("CDS_DATABASE_URL", url)
    assert main(["serve", "--port", "1"]) == 2
    assert "'from-the-future'" in capsys.readouterr().err
