"""Fixtures of the web tests: in this folder `app` (and so `client`) is the app on the synthetic
content (tests/protocol_content.py), never on the clinical guidance."""

from __future__ import annotations

import pytest


@pytest.fixture
def app(make_protocol_app):
    return make_protocol_app()
