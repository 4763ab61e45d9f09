"""Fixtures of the FHIR client tests."""

from __future__ import annotations

import pytest

from tests.trust_helpers import Listener


@pytest.fixture
def servers():
    """Two local HTTP listeners: the EHR's server and another origin."""
    ehr, other = Listener(), Listener()
    yield ehr, other
    ehr.close()
    other.close()
