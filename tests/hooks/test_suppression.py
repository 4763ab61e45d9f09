"""Quiet cards decided at call time (service.hooks.suppression) on cards as the service renders them and
a history as the store returns it: windows, reasons, scopes, critical cards, repeats, the draft-orders
key, failing open."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from service.engine import QuietPolicy
from service.feedback.cardkey import card_key
from service.feedback.store import CallScope, PastCard, scope_key
from service.hooks.suppression import REPEAT_WINDOW, draft_key, leave_out_quiet, policies
from tests.protocol_content import load_content, order_request

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PATIENT = CallScope("patient-view", "p01", "e01")


def card(rule: str, indicator: str = "warning") -> dict:
    return {"uuid": f"uuid-{rule}", "summary": f"Card {rule}", "indicator": indicator,
            "source": {"label": "x", "topic": {"code": rule}}}


def overridden(rule: str, at: datetime, code: str | None = None, encounter: str | None = "e01",
               received: datetime | None = None) -> PastCard:
    reason = {"reason": {"code": code}} if code else None
    return PastCard(rule, "patient-view", scope_key(encounter), None, at - timedelta(minutes=1), "overridden", reason,
                    at.isoformat().replace("+00:00", "Z"), received or at)


def accepted(rule: str, at: datetime) -> PastCard:
    return PastCard(rule, "patient-view", scope_key("e01"), None, at - timedelta(minutes=1), "accepted", None,
                    at.isoformat(), at)


class History:
    def __init__(self, *rows: PastCard, error: Exception | None = None):
        self.rows, self.error, self.calls = list(rows), error, []

    def quiet_history(self, patient_id, rule_ids, since):
        self.calls.append((patient_id, list(rule_ids), since))
        if self.error:
            raise self.error
        return self.rows


def shown(cards, policy_by_rule, history, now, scope=PATIENT, orders=None):
    kept, quiet, issues = leave_out_quiet(cards, policy_by_rule, scope, history, now, orders)
    return [c["source"]["topic"]["code"] for c in kept], quiet, issues


DAY = QuietPolicy(after_override=timedelta(hours=24))


def test_an_overridden_card_is_quiet_for_its_window_then_shown_again():
    history = History(overridden("R", T0))
    rules, quiet, _ = shown([card("R"), card("S")], {"R": DAY}, history, T0 + timedelta(hours=23))
    assert rules == ["S"]
    assert quiet[0].reason == "overridden" and quiet[0].until == T0 + timedelta(hours=24)
    assert quiet[0].to_trace()["until"] == "2026-03-02T12:00:00+00:00"
    assert shown([card("R")], {"R": DAY}, history, T0 + timedelta(hours=24))[0] == ["R"]


def test_only_the_listed_override_reasons_start_the_window():
    policy = QuietPolicy(after_override=timedelta(hours=24), override_reasons=frozenset({"done"}))
    later = T0 + timedelta(hours=1)
    assert shown([card("R")], {"R": policy}, History(overridden("R", T0, "not-relevant")), later)[0] == ["R"]
    assert shown([card("R")], {"R": policy}, History(overridden("R", T0)), later)[0] == ["R"], "no reason given"
    rules, quiet, _ = shown([card("R")], {"R": policy}, History(overridden("R", T0, "done")), later)
    assert rules == [] and quiet[0].override_reason == "done"


def test_a_critical_card_is_shown_despite_an_override():
    rules, quiet, _ = shown([card("R", "critical")], {"R": DAY}, History(overridden("R", T0)), T0 + timedelta(hours=1))
    assert rules == ["R"] and quiet == []


def test_an_accepted_suggestion_quiets_the_card_for_its_own_window():
    policy = QuietPolicy(after_accept=timedelta(hours=12))
    history = History(accepted("R", T0))
    assert shown([card("R")], {"R": policy}, history, T0 + timedelta(hours=11))[0] == []
    assert shown([card("R")], {"R": policy}, history, T0 + timedelta(hours=12, seconds=1))[0] == ["R"]
    assert shown([card("R")], {"R": DAY}, history, T0 + timedelta(hours=1))[0] == ["R"], "no accept window"


def test_a_late_feedback_post_never_lengthens_a_window():
    """The window starts at the earlier of outcomeTimestamp and receipt: a clock running ahead on the
    EHR cannot keep a card quiet longer."""
    ahead = overridden("R", T0 + timedelta(days=5), received=T0)
    assert shown([card("R")], {"R": DAY}, History(ahead), T0 + timedelta(hours=25))[0] == ["R"]


def test_encounter_scope_needs_the_same_encounter():
    policy = QuietPolicy(after_override=timedelta(hours=24), scope="encounter")
    later = T0 + timedelta(hours=1)
    assert shown([card("R")], {"R": policy}, History(overridden("R", T0, encounter="e01")), later)[0] == []
    assert shown([card("R")], {"R": policy}, History(overridden("R", T0, encounter="e02")), later)[0] == ["R"]
    no_encounter = CallScope("patient-view", "p01", None)
    assert shown([card("R")], {"R": policy}, History(overridden("R", T0, encounter=None)), later,
                 no_encounter)[0] == ["R"]


def test_a_store_error_shows_every_card_and_says_so():
    history = History(overridden("R", T0), error=RuntimeError("database is locked"))
    rules, quiet, issues = shown([card("R")], {"R": DAY}, history, T0 + timedelta(hours=1))
    assert rules == ["R"] and quiet == [] and "every card is shown" in issues[0]["message"]


def test_no_policy_no_lookup():
    history = History(overridden("R", T0))
    assert shown([card("R"), card("S")], {}, history, T0)[0] == ["R", "S"] and history.calls == []
    assert shown([card("R")], {"S": DAY}, history, T0)[0] == ["R"] and history.calls == []


def test_the_lookup_reads_back_as_far_as_the_longest_window_of_the_rules_shown():
    history = History()
    week = QuietPolicy(after_accept=timedelta(weeks=1))
    shown([card("R"), card("S")], {"R": DAY, "S": week, "T": QuietPolicy(after_accept=timedelta(weeks=4))},
          history, T0)
    assert history.calls == [("p01", ["R", "S"], T0 - timedelta(weeks=1))]


def sign_scope(drafts: dict) -> CallScope:
    return CallScope("order-sign", "p01", "e01", draft_key(drafts))


def shown_at_select(shown_card: dict, drafts: dict, at: datetime = T0, keyed: bool = True) -> PastCard:
    """The row the store gives back for `shown_card` issued at order-select (`keyed` False: recorded before
    the store kept what a card said)."""
    return PastCard(shown_card["source"]["topic"]["code"], "order-select", scope_key("e01"), draft_key(drafts), at,
                    card_key=card_key(shown_card) if keyed else None)


def test_a_card_shown_at_order_select_is_not_repeated_at_order_sign_for_the_same_drafts():
    drafts = order_request("order-sign")["context"]["draftOrders"]
    once = QuietPolicy(once_per_draft=True)
    at_select = shown_at_select(card("R", "info"), drafts)
    rules, quiet, _ = shown([card("R", "info")], {"R": once}, History(at_select), T0 + timedelta(minutes=2),
                            sign_scope(drafts))
    assert rules == [] and quiet[0].reason == "repeat" and quiet[0].until == T0 + REPEAT_WINDOW
    critical_at_select = shown_at_select(card("R", "critical"), drafts)
    assert shown([card("R", "critical")], {"R": once}, History(critical_at_select), T0 + timedelta(minutes=2),
                 sign_scope(drafts))[0] == ["R"], "a critical card is shown again at order-sign"
    assert shown([card("R", "info")], {"R": once}, History(at_select), T0 + REPEAT_WINDOW,
                 sign_scope(drafts))[0] == ["R"]
    at_sign = PastCard("R", "order-sign", scope_key("e01"), draft_key(drafts), T0, card_key=card_key(card("R", "info")))
    assert shown([card("R", "info")], {"R": once}, History(at_sign), T0 + timedelta(minutes=2),
                 sign_scope(drafts))[0] == ["R"], "only order-select then order-sign is a repeat"


def dose_card(draft: str, dose: int, rule: str = "DOSE") -> dict:
    """A dose check's card about one drafted order, as rendered: one per draft, its suggestion updating it."""
    return {"uuid": f"uuid-{draft}", "summary": f"Dose above range: {dose} mg", "indicator": "warning",
            "source": {"label": "x", "topic": {"code": rule}},
            "suggestions": [{"uuid": f"s-{draft}", "label": "Change to 100 mg", "actions": [
                {"type": "update", "description": "Change to 100 mg",
                 "resource": {"resourceType": "MedicationRequest", "id": draft, "status": "draft",
                              "dosageInstruction": [{"doseAndRate": [{"doseQuantity": {"value": 100}}]}]}}]}]}


def test_a_repeat_is_the_same_card_not_another_card_of_the_rule():
    """One card per drafted order: the card about the draft selected at order-select is not repeated, the
    card of the same rule about another draft, never shown, is; a card that says something else is
    shown; a card recorded before its key was kept never makes a repeat."""
    drafts = order_request("order-sign")["context"]["draftOrders"]
    once = {"DOSE": QuietPolicy(once_per_draft=True)}
    history = History(shown_at_select(dose_card("m01", 200), drafts))
    later = T0 + timedelta(minutes=2)
    kept, quiet, _ = leave_out_quiet([dose_card("m01", 200), dose_card("m02", 200)], once, sign_scope(drafts),
                                     history, later)
    assert [c["uuid"] for c in kept] == ["uuid-m02"] and [q.card["uuid"] for q in quiet] == ["uuid-m01"]
    assert shown([dose_card("m01", 300)], once, history, later, sign_scope(drafts))[0] == ["DOSE"]
    unkeyed = History(shown_at_select(dose_card("m01", 200), drafts, keyed=False))
    assert shown([dose_card("m01", 200)], once, unkeyed, later, sign_scope(drafts))[0] == ["DOSE"]


def test_the_card_key_ignores_what_changes_between_calls_and_nothing_the_card_says():
    base = dose_card("m01", 200)
    key = card_key(base)
    recalled = dose_card("m01", 200)
    recalled["uuid"] = "another-call"
    recalled["suggestions"][0]["uuid"] = "another-suggestion"
    recalled["links"] = [{"label": "Why this recommendation", "url": "https://other-host/guidance/DOSE",
                          "type": "absolute"}]
    recalled["extension"] = {"http://example.org/fhir/cds-hooks/extension/trace": [{"path": "x"}]}
    recalled["suggestions"][0]["actions"][0]["resource"].update(
        meta={"versionId": "2"}, authoredOn="2026-03-01T12:02:00Z", status="active")
    assert card_key(recalled) == key
    for change in (lambda c: c.update(summary="Dose above range: 300 mg"),
                   lambda c: c.update(indicator="critical"),
                   lambda c: c.update(detail="More"),
                   lambda c: c["suggestions"][0].update(label="Change to 50 mg"),
                   lambda c: c["suggestions"][0]["actions"][0]["resource"].update(id="m02"),
                   lambda c: c["suggestions"][0]["actions"][0]["resource"]["dosageInstruction"][0]["doseAndRate"][0][
                       "doseQuantity"].update(value=50),
                   lambda c: c["suggestions"][0]["actions"].append({"type": "delete", "resourceId": "X/1"}),
                   lambda c: c.update(suggestions=[])):
        changed = dose_card("m01", 200)
        change(changed)
        assert card_key(changed) != key


def test_the_draft_key_ignores_what_changes_between_select_and_sign_and_nothing_else():
    drafts = order_request("order-sign")["context"]["draftOrders"]
    key = draft_key(drafts)
    relabelled = order_request("order-sign")["context"]["draftOrders"]
    first = relabelled["entry"][0]["resource"]
    first.update(id="server-assigned-1", status="active", meta={"versionId": "2"}, authoredOn="2026-03-02")
    relabelled["entry"].reverse()
    assert draft_key(relabelled) == key
    changed = order_request("order-sign")["context"]["draftOrders"]
    changed["entry"][0]["resource"]["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] = 25
    assert draft_key(changed) != key
    fewer = order_request("order-sign")["context"]["draftOrders"]
    del fewer["entry"][1]
    assert draft_key(fewer) != key
    assert draft_key(None) is None and draft_key({"resourceType": "Bundle", "entry": []}) is None


def test_the_policies_of_a_plan_come_from_its_content():
    found = policies(load_content().services["proto-patient-view"].plan)
    assert set(found) == {"PROTO-HIGH", "PROTO-ORDER"}, "the rules with cds-quiet-* extensions, and only they"
    high = found["PROTO-HIGH"]
    assert (high.after_override, high.override_reasons, high.after_accept, high.scope) == (
        timedelta(hours=24), frozenset({"done"}), timedelta(hours=12), "patient")
    assert found["PROTO-ORDER"].once_per_draft and found["PROTO-ORDER"].longest == timedelta(0)


class Orders:
    """The call's active orders, as service.hooks.orders.CallOrders answers."""

    def __init__(self, *active):
        self.active = active

    def holds(self, key):
        return key in self.active


def test_an_accepted_suggestion_that_proposed_an_order_is_quiet_only_while_the_call_holds_it():
    policy = QuietPolicy(after_accept=timedelta(days=7))
    order = ("MedicationRequest", (("rx|8640",),))
    row = PastCard("R", "patient-view", None, None, T0, "accepted", None, T0.isoformat(), T0, (order,))
    later = T0 + timedelta(hours=1)
    assert shown([card("R")], {"R": policy}, History(row), later, orders=Orders(order))[0] == []
    assert shown([card("R")], {"R": policy}, History(row), later, orders=Orders())[0] == ["R"]
    assert shown([card("R")], {"R": policy}, History(row), later)[0] == ["R"], "a call without data holds none"
    other_type = Orders(("ServiceRequest", (("rx|8640",),)))
    assert shown([card("R")], {"R": policy}, History(row), later, orders=other_type)[0] == ["R"]
    assert shown([card("R", "critical")], {"R": policy}, History(row), later, orders=Orders(order))[0] == []


def test_a_quiet_card_in_the_trace_carries_its_rule_page_link():
    page = {"label": "Why this recommendation", "url": "https://cds.example/guidance/R", "type": "absolute"}
    linked = dict(card("R"), links=[{"label": "Guideline", "url": "https://x.example", "type": "absolute"}, page])
    _, quiet, _ = shown([linked], {"R": DAY}, History(overridden("R", T0)), T0 + timedelta(hours=1))
    assert quiet[0].to_trace()["link"] == page


def test_the_same_order_is_every_ingredient_of_one_in_the_other_both_ways():
    from service.hooks.orders import same_order

    pred_product, pred = (("rx|312617", "rx|8640"),), (("rx|8640",),)
    smx_tmp, tmp = (("rx|10180",), ("rx|10829",)), (("rx|10829",),)
    assert same_order(pred_product, pred) and same_order(pred, pred_product)
    assert same_order(smx_tmp, (("rx|10829",), ("rx|10180", "rx|x"))), "in any order"
    assert not same_order(smx_tmp, tmp) and not same_order(tmp, smx_tmp), "one ingredient of two is another drug"
    assert not same_order(pred, ()) and not same_order((), ())
