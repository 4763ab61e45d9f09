"""One CDS service call (CDS Hooks 2.0 §Calling a CDS Service), without Flask.

HookRequest -> resolve prefetch (fetching what is missing, service.data) -> $apply the
service's PlanDefinition -> render cards -> withhold any card that breaks the spec's invariants
(checked directly, not with the JSON Schema; a notice card then names what was withheld) -> given
the feedback store, leave out the cards the clinician already decided on (service.hooks.suppression;
listed in the trace as `quiet`).
Returns a HookResponse (the response body, and the issues and trace for the log); the engine's
result is read, never edited.  Raises service.errors types only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from cards import notices
from cards.render import TRACE_EXTENSION, render_cards
from cards.schema import SEVERITY, card_errors
from service import data
from service.engine import ApplyContext, ContentSet, DataIndex, ServiceDef, apply_plan
from service.feedback.store import CallScope, OrderKey
from service.fhir.reader import ReaderFactory
from service.hooks.orders import CallOrders, suggestion_orders
from service.hooks.request import HookRequest
from service.hooks.suppression import QuietHistory, draft_key, leave_out_quiet, policies, rule_of

log = logging.getLogger("service.calls")


@dataclass(frozen=True)
class HookResponse:
    body: dict  # {"cards": [...]} (+ the trace extension when asked for)
    issues: list[dict]  # the engine's issues, then one per card withheld
    trace: list[dict]
    variables: dict[str, dict] = field(default_factory=dict)  # with a trace: every variable's value or error
    scope: CallScope | None = None  # what the cards are recorded with (quiet cards)
    quiet: list[dict] = field(default_factory=list)  # the cards left out as quiet (Quiet.to_trace)
    # the orders the suggestions of cards with an accept window propose (recorded with the cards)
    orders: dict[tuple[str, str], list[OrderKey]] = field(default_factory=dict)

    @property
    def cards(self) -> list[dict]:
        return self.body["cards"]


def call_service(
    content: ContentSet,
    service: ServiceDef,
    request: HookRequest,
    now: datetime,
    fetcher_factory: ReaderFactory | None = None,
    trace: bool = False,
    guidance_base: str | None = None,
    history: QuietHistory | None = None,
) -> HookResponse:
    """`guidance_base`: the service's public root URL; cards then link to their rule pages.  `history`:
    the feedback store, when cards the clinician already decided on are to be left out
    (service.hooks.suppression)."""
    context = request.context
    fhir = None
    if request.fhir_server and fetcher_factory is not None:
        fhir = fetcher_factory(request.fhir_server, request.access_token)
    index = DataIndex(content.terminology)  # the call's data, draft orders included, indexed once
    tokens = data.Tokens(context.sent, context.user_id, now, index)
    resolved = data.resolve(service.plan, content.terminology, tokens, request.prefetch, fhir)
    ctx = ApplyContext(
        now=now,
        subject=f"Patient/{context.patient_id}",
        data=resolved,
        hook=request.hook,
        hook_instance=request.hook_instance,
        encounter=f"Encounter/{context.encounter_id}" if context.encounter_id else None,
        practitioner=context.user_id,
        draft_orders=context.draft_orders,
        selections=list(context.selections),
        index=index,
        explain=trace,  # operands and variable values cost evaluations: only when a trace is asked for
    )
    result = apply_plan(content, service.plan, ctx)
    cards = render_cards([result], request.hook_instance, trace, incomplete=data.incomplete_keys(resolved),
                         guidance_base=guidance_base)
    kept, withheld, withheld_cards = _conformant(cards)
    if withheld_cards:  # fail visible: a card withheld is announced, never silently missing
        kept.append(notices.withheld(result, (request.hook_instance, ctx.subject), withheld_cards))
        kept.sort(key=lambda card: SEVERITY[card["indicator"]])
    scope = CallScope(request.hook, context.patient_id, context.encounter_id, draft_key(context.draft_orders),
                      rules=frozenset(policies(service.plan)))
    quiet: list[dict] = []
    quiet_issues: list[dict] = []
    orders: dict[tuple[str, str], list[OrderKey]] = {}
    if history is not None:
        plan_policies = policies(service.plan)
        kept, left_out, quiet_issues = leave_out_quiet(kept, plan_policies, scope, history, now,
                                                       CallOrders(resolved, context.draft_orders, index))
        quiet = [q.to_trace() for q in left_out]
        orders = suggestion_orders((c for c in kept if (p := plan_policies.get(rule_of(c) or "")) is not None
                                    and p.after_accept is not None), index)
    issues = [*result.issues, *withheld, *quiet_issues]
    body: dict = {"cards": kept}
    if trace:
        body["extension"] = {TRACE_EXTENSION: {"actions": result.trace, "issues": issues,
                                               "variables": result.variables}}
        if quiet:
            body["extension"][TRACE_EXTENSION]["quiet"] = quiet
    return HookResponse(body, issues, result.trace, result.variables, scope, quiet, orders)


def _conformant(cards: list[dict]) -> tuple[list[dict], list[dict], list[dict]]:
    """Strict on our own output: a card that breaks the spec's invariants (cards.schema.card_errors,
    the cheap check; the tests hold every response to the full JSON Schema), or that repeats the
    uuid of a card or suggestion already kept (§Feedback names them), is not sent.  The cards kept,
    an issue for each card withheld, and the cards withheld."""
    kept, withheld, withheld_cards = [], [], []
    seen: set[str] = set()
    for card in cards:
        errors = card_errors(card)
        uuids = [card.get("uuid"), *(s.get("uuid") for s in card.get("suggestions") or [] if isinstance(s, dict))]
        errors += [f"uuid {u!r} is already used in this response" for u in uuids if isinstance(u, str) and u in seen]
        if errors:
            log.error("card %s withheld: %s", card.get("uuid"), "; ".join(errors))
            withheld.append({"severity": "error", "location": card.get("source", {}).get("topic", {}).get("code"),
                             "message": "card withheld, not CDS Hooks conformant: " + "; ".join(errors)})
            withheld_cards.append(card)
        else:
            seen.update(u for u in uuids if isinstance(u, str))
            kept.append(card)
    return kept, withheld, withheld_cards
