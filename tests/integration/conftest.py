"""Fixtures for tests against a real FHIR server.

Set FHIR_BASE_URL to use an existing server (e.g. HAPI from docker-compose:
http://localhost:8081/fhir); otherwise a local in-memory test server
(tools/fhir-test-server) is started once per test run.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for `fhirserver` under any import mode
from fhirserver import FhirTestServer  # noqa: E402

_server_description = None


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "integration: needs a FHIR server (the local test server is started automatically)"
    )


def pytest_report_header(config):
    url = os.environ.get("FHIR_BASE_URL")
    if url:
        return f"FHIR server: FHIR_BASE_URL={url}"
    return "FHIR server: local Medplum fhir-router test server (started on first use)"


def pytest_terminal_summary(terminalreporter):
    if _server_description:
        terminalreporter.write_line(f"FHIR server: {_server_description}")


@pytest.fixture(scope="session")
def fhir_base_url():
    """Base URL of the FHIR server for this test run (no trailing slash)."""
    global _server_description
    url = os.environ.get("FHIR_BASE_URL")
    if url:
        _server_description = f"FHIR_BASE_URL={url}"
        yield url.rstrip("/")
        return
    with FhirTestServer() as server:
        _server_description = f"local Medplum fhir-router test server at {server.base_url}"
        yield server.base_url


@pytest.fixture(scope="session")
def fhir_server_with_token():
    """A second local server that requires a bearer token: yields (base_url, token)."""
    if os.environ.get("FHIR_BASE_URL"):
        pytest.skip("FHIR_BASE_URL is set: the local token-protected server is not started")
    token = secrets.token_urlsafe(16)
    with FhirTestServer(token=token) as server:
        yield server.base_url, token
