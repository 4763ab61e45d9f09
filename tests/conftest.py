"""Shared fixtures: the Flask app on the bundled content with a fixed clock, and paths."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
CONTENT = ROOT / "plandefinitions"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


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


@pytest.fixture
def app(tmp_path, content):
    from service.app import create_app

    app = create_app({"database_url": f"sqlite:///{tmp_path / 'feedback.sqlite3'}"}, clock=lambda: T0, content=content)
    app.config.update(TESTING=True)
    return app


@pytest.fixture
def client(app):
    return app.test_client()
