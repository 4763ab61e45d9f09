"""The synthetic content of tests/fixtures/content/ and the CDS Hooks requests written for it.

The protocol, conformance and web tests run on this set, never on the clinical guidance in
plandefinitions/: a change of clinical content cannot break them, and what they assert (rule codes
`PROTO-…`, card texts) is written next to them in tests/fixtures/ (its README says what each
resource is for).  `create_protocol_app` is the one way to build the app on it; the
`make_protocol_app` fixture (tests/conftest.py) wraps it with a fresh database per test.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CONTENT = FIXTURES / "content"
REQUESTS = FIXTURES / "requests"

# Services (`<PlanDefinition.id>-<hook>`, and `proto-both`, named by cqf-cdsHooksEndpoint for two hooks).
PATIENT_VIEW = "/cds-services/proto-patient-view"
ORDER_SELECT = "/cds-services/proto-order-select"
ORDER_SIGN = "/cds-services/proto-order-sign"
BOTH = "/cds-services/proto-both"
RULES = "http://example.org/fhir/CodeSystem/proto-rules"

# The cards of the requests below, by rule code (source.topic.code).
PATIENT_VIEW_RULES = ["PROTO-VERY-HIGH", "PROTO-HIGH", "PROTO-PROBLEMS"]  # critical, warning, info
ORDER_RULES = ["PROTO-DOSE", "PROTO-ORDER"]  # warning (draft m01 doses 20), info


@cache
def _request_text(name: str) -> str:
    return (REQUESTS / f"{name}.json").read_text(encoding="utf-8")


def request(name: str) -> dict[str, Any]:
    """A fresh copy of tests/fixtures/requests/<name>.json."""
    return copy.deepcopy(json.loads(_request_text(name)))


def patient_view_request() -> dict[str, Any]:
    """proto-patient-view with every key prefetched; its levels 11-13 fire PROTO-VERY-HIGH and PROTO-HIGH,
    its problem PROTO-PROBLEMS."""
    return request("patient-view-high")


def order_request(hook: str) -> dict[str, Any]:
    """order-select or order-sign with two drafted MedicationRequests: m01 (20 units: PROTO-DOSE fires with
    an update and a delete + create suggestion) and, on order-sign, m02 (5 units: no card); on order-select
    m01 is selected and m03 (30 units) is not (no card)."""
    return request(f"{hook}-dose")


def topics(body: dict[str, Any]) -> list[str]:
    """The rule codes of a response's cards, in order."""
    return [card["source"]["topic"]["code"] for card in body["cards"]]


def load_content():
    """The synthetic content, loaded from its folder."""
    from service.content import load_folder

    return load_folder(CONTENT)


def create_protocol_app(database: Path, clock: datetime, content=None, **config: Any):
    """The app on the synthetic content (`content` given: already loaded), feedback in `database`, the
    clock fixed at `clock`, and any further configuration."""
    from service.app import create_app

    app = create_app({"database_url": f"sqlite:///{database}", **config}, clock=lambda: clock,
                     content=content if content is not None else load_content())
    app.config.update(TESTING=True)
    return app
