"""What the quiet-card lookup costs when the history holds accepted suggestions (the second, indexed read of
their orders in FeedbackStore.quiet_history, and the check of the call's active orders,
service.hooks.orders.CallOrders), and inside a call on the clinical content (order-sign after order-select,
the once-per-draft policies of plandefinitions/).  Medians are printed and reported in BENCHMARKS.md
("Quiet cards"); the bounds are generous, for a loaded machine."""

from __future__ import annotations

import copy
import json
import time
import uuid
from datetime import timedelta
from typing import Any

import pytest

import service.hooks.call as hook_call
from service.app import create_app
from service.engine import DataIndex
from service.feedback.store import CallScope, FeedbackStore
from service.hooks.orders import CallOrders, order_key
from service.hooks.suppression import draft_key, leave_out_quiet, policies
from tests.conftest import CONTENT, T0

PATIENTS = 300
RULES = ["PROTO-HIGH", "PROTO-ORDER", "PROTO-VERY-HIGH"]
LEVEL = "http://example.org/fhir/CodeSystem/proto-observation"
CASE = CONTENT / "tests" / "SAFE-LTBI" / "order-select-prednisone-20-acute-dah.json"


def median(timings: list[float]) -> float:
    return sorted(timings)[len(timings) // 2]


def recheck(status: str) -> dict[str, Any]:
    """The order PROTO-HIGH's suggestion proposes (ActivityDefinition proto-recheck), as the call's data
    holds it."""
    return {"resourceType": "ServiceRequest", "id": f"sr-{status}", "status": status, "intent": "order",
            "code": {"coding": [{"system": LEVEL, "code": "level"}]}, "subject": {"reference": "Patient/p150"}}


def test_the_lookup_with_accepted_suggestions_costs_under_a_millisecond(tmp_path, synthetic_content):
    """300 patients, 15 issued cards each whose suggestions' orders are recorded, an accepted suggestion
    and an override (another reason: no window) per patient; one patient's lookup, the call's orders
    gathered from its data, timed as the service makes it (median of 200)."""
    store = FeedbackStore(f"sqlite:///{tmp_path / 'accepted.sqlite3'}")
    index = DataIndex(synthetic_content.terminology)
    key = order_key(recheck("draft"), index)
    assert key is not None
    for p in range(PATIENTS):
        scope = CallScope("patient-view", f"p{p}", "e01")
        cards = [{"uuid": f"{p}-{d}-{r}", "indicator": "warning", "source": {"topic": {"code": r}},
                  "suggestions": [{"uuid": f"{p}-{d}-{r}-s", "label": "Recheck the level"}]}
                 for d in range(5) for r in RULES]
        orders = {(c["uuid"], c["suggestions"][0]["uuid"]): [key] for c in cards}
        store.record_cards("proto-patient-view", f"h{p}", cards, issued_at=T0, scope=scope, orders=orders)
        store.add_feedback("proto-patient-view", [
            {"card": f"{p}-0-PROTO-HIGH", "outcome": "overridden", "outcomeTimestamp": T0.isoformat(),
             "overrideReason": {"reason": {"code": "not-relevant"}}},
            {"card": f"{p}-1-PROTO-HIGH", "outcome": "accepted", "outcomeTimestamp": T0.isoformat(),
             "acceptedSuggestions": [{"id": f"{p}-1-PROTO-HIGH-s"}]}],
            {f"{p}-{d}-PROTO-HIGH": {"rule_id": "PROTO-HIGH"} for d in (0, 1)}, received_at=T0)
    plan_policies = policies(synthetic_content.services["proto-patient-view"].plan)
    shown = [{"uuid": "x", "indicator": "warning", "summary": "s", "source": {"topic": {"code": "PROTO-HIGH"}}}]
    scope = CallScope("patient-view", "p150", "e01")
    active = {"services": {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": recheck("active")}]}}
    now = T0 + timedelta(hours=1)
    timings = []
    for _ in range(200):
        started = time.perf_counter()
        kept, quiet, issues = leave_out_quiet(shown, plan_policies, scope, store, now, CallOrders(active, None, index))
        timings.append(time.perf_counter() - started)
        assert (kept, [q.reason for q in quiet], issues) == ([], ["accepted"], [])
    stopped = {"services": {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": recheck("revoked")}]}}
    kept, quiet, _ = leave_out_quiet(shown, plan_policies, scope, store, now, CallOrders(stopped, None, index))
    assert (kept, quiet) == (shown, []), "the order no longer active: the card is shown"
    print(f"quiet-card lookup with accepted orders: median {median(timings) * 1000:.3f} ms")
    assert median(timings) < 0.005, f"median {median(timings) * 1000:.2f} ms"


@pytest.fixture
def clinical_ehr(tmp_path, content):
    """The service on the clinical content, its store holding 300 other patients' order-step cards."""
    url = f"sqlite:///{tmp_path / 'clinical.sqlite3'}"
    store = FeedbackStore(url)
    for p in range(PATIENTS):
        for hook in ("order-select", "order-sign"):
            scope = CallScope(hook, f"other{p}", None, f"drafts-{p}")
            cards = [{"uuid": f"{p}-{hook}-{r}", "indicator": "warning", "source": {"topic": {"code": r}}}
                     for r in ("SAFE-LTBI", "SAFE-PCP", "SAFE-HBV-RTX", "DC-MP-PULSE-LOW", "DC-AZA")]
            store.record_cards(f"safety-{hook}", f"h{p}-{hook}", cards, issued_at=T0, scope=scope)
    app = create_app({"database_url": url}, clock=lambda: T0 + timedelta(minutes=2), content=content)
    app.config.update(TESTING=True)
    return app.test_client()


def test_an_order_sign_after_order_select_on_the_clinical_content(clinical_ehr, monkeypatch):
    """The TB-screening card shown at order-select is quiet at order-sign of the same draft: the lookup
    inside the order-sign call (leave_out_quiet as service.hooks.call makes it) and the whole call, each the
    median of 100 calls."""
    select = json.loads(CASE.read_text(encoding="utf-8"))["request"]
    sign = copy.deepcopy(select)
    sign["hook"] = "order-sign"
    del sign["context"]["selections"]
    assert draft_key(sign["context"]["draftOrders"]) == draft_key(select["context"]["draftOrders"])
    selected = clinical_ehr.post("/cds-services/safety-order-select", json=dict(select, hookInstance="s-1"))
    assert [c["source"]["topic"]["code"] for c in selected.get_json()["cards"]] == ["SAFE-LTBI"]

    lookups: list[float] = []

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return leave_out_quiet(*args, **kwargs)
        finally:
            lookups.append(time.perf_counter() - started)

    monkeypatch.setattr(hook_call, "leave_out_quiet", timed)
    calls = []
    for _ in range(100):
        started = time.perf_counter()
        response = clinical_ehr.post("/cds-services/safety-order-sign", json=dict(sign, hookInstance=str(uuid.uuid4())))
        calls.append(time.perf_counter() - started)
        assert response.status_code == 200 and response.get_json() == {"cards": []}
    assert len(lookups) == 100
    print(f"order-sign after order-select, clinical content: lookup median {median(lookups) * 1000:.3f} ms, "
          f"whole call median {median(calls) * 1000:.2f} ms")
    assert median(lookups) < 0.005, f"lookup median {median(lookups) * 1000:.2f} ms"
