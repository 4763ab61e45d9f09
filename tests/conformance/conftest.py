"""Fixtures of the conformance tests."""

from __future__ import annotations

import pytest

from tests.conformance.helpers import FhirStub


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
