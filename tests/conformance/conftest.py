"""Fixtures of the conformance tests: in this folder `app` (and so `client`) is the app on the
synthetic content (tests/protocol_content.py), never on the clinical guidance."""

from __future__ import annotations

import pytest

from tests.conformance.helpers import FhirStub


@pytest.fixture
def app(make_protocol_app):
    return make_protocol_app()


@pytest.fixture
def stubs():
    """`stubs(answer)` starts a FhirStub; every stub started is stopped after the test."""
    started = []

    def start(answer):
        stub = FhirStub(answer)
        started.append(stub)
        return stub

    yield start
    for stub in started:
        stub.close()
