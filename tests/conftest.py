"""Shared fixtures and paths: the Flask app on the clinical content of plandefinitions/ (`app`, `client`:
for the scenario and content tests) and on the synthetic content of tests/fixtures/content/
(`make_protocol_app`: for the protocol, conformance and web tests), each with a fixed clock; the feedback
database on SQLite and on a local PostgreSQL (`database_url`, tests/pgserver.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
CONTENT = ROOT / "plandefinitions"
SYNTHETIC = ROOT / "tests" / "fixtures" / "content"  # the protocol tests' content (tests/protocol_content.py)
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def pytest_configure(config):
    from tests.scenarios.golden import refusal

    if refusal():
        raise pytest.UsageError(refusal())


def pytest_terminal_summary(terminalreporter):
    from tests.scenarios.golden import UPDATES

    if UPDATES:
        terminalreporter.section("golden files updated (UPDATE_GOLDEN=1): review before committing")
        for line in UPDATES:
            terminalreporter.write_line(line)


def shared_path(*parts: str) -> Path:
    """A file under ../shared; the test is skipped when that folder is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not available")
    return path


@pytest.fixture(scope="session")
def content():
    from service.content import load_folder

    return load_folder(CONTENT)


@pytest.fixture(scope="session")
def synthetic_content():
    """The small synthetic content of tests/fixtures/content/ (no clinical meaning), for protocol tests."""
    from tests.protocol_content import load_content

    return load_content()


@pytest.fixture
def make_protocol_app(tmp_path, synthetic_content):
    """`make_protocol_app(**config)`: the app on the synthetic content (tests/protocol_content.py), with a
    fresh feedback database of this test and the clock at T0."""
    from tests.protocol_content import create_protocol_app

    def make(**config):
        return create_protocol_app(tmp_path / "feedback.sqlite3", T0, synthetic_content, **config)

    return make

@pytest.fixture
def dah_cds(content, monkeypatch, capsys):
    """`dah-cds ARGS...` -> (exit code, stdout, stderr), on the session's content."""
    import service.content
    from service import cli

    monkeypatch.setattr(service.content, "load_folder", lambda folder: content)

    def invoke(*args: str) -> tuple[int, str, str]:
        code = cli.main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    return invoke


@pytest.fixture(scope="session")
def scenario_runs(content, tmp_path_factory):
    """Case id -> Run (tests/scenarios/cases.py): every scenario case called once per test session."""
    from tests.scenarios.cases import Runs

    return Runs(content, tmp_path_factory.mktemp("scenarios") / "feedback.sqlite3")


@pytest.fixture
def app(tmp_path, content):
    from service.app import create_app

    app = create_app({"database_url": f"sqlite:///{tmp_path / 'feedback.sqlite3'}"}, clock=lambda: T0, content=content)
    app.config.update(TESTING=True)
    return app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server for this test run (tests/pgserver.py); the tests that need it are skipped,
    saying why, only where PostgreSQL cannot be installed."""
    from tests.pgserver import PostgresServer, PostgresUnavailable, ensure_installed

    try:
        ensure_installed()
    except PostgresUnavailable as exc:
        pytest.skip(f"PostgreSQL cannot be installed here: {exc}")
    with PostgresServer() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """A new empty feedback database: a SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'feedback.sqlite3'}"
    return request.getfixturevalue("postgres").create_database()
