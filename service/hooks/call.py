"""One CDS service call (CDS Hooks 2.0 §Calling a CDS Service), without Flask.

HookRequest -> resolve prefetch (fetching what is missing, service.data) -> $apply the
service's PlanDefinition -> render cards -> withhold any card that breaks the spec's invariants.
Returns a HookResponse (the response body, and the issues and trace for the log); the engine's
result is read, never edited.  Raises service.errors types only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from cards.render import TRACE_EXTENSION, render_cards
from cards.schema import response_errors
from service import data
from service.engine import ApplyContext, ContentSet, ServiceDef, apply_plan
from service.fhir.reader import ReaderFactory
from service.hooks.request import HookRequest

log = logging.getLogger("service.calls")


@dataclass(frozen=True)
class HookResponse:
    body: dict  # {"cards": [...]} (+ the trace extension when asked for)
    issues: list[dict]  # the engine's issues, then one per card withheld
    trace: list[dict]
    variables: dict[str, dict] = field(default_factory=dict)  # with a trace: every variable's value or error

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
) -> HookResponse:
    """`guidance_base`: the service's public root URL; cards then link to their rule pages."""
    context = request.context
    fhir = None
    if request.fhir_server and fetcher_factory is not None:
        fhir = fetcher_factory(request.fhir_server, request.access_token)
    tokens = data.Tokens(context.sent, context.user_id, now)
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
        explain=trace,  # operands and variable values cost evaluations: only when a trace is asked for
    )
    result = apply_plan(content, service.plan, ctx)
    cards = render_cards([result], request.hook_instance, trace, incomplete=data.incomplete_keys(resolved),
                         guidance_base=guidance_base)
    kept, withheld = _conformant(cards)
    issues = [*result.issues, *withheld]
    body: dict = {"cards": kept}
    if trace:
        body["extension"] = {TRACE_EXTENSION: {"actions": result.trace, "issues": issues,
                                               "variables": result.variables}}
    return HookResponse(body, issues, result.trace, result.variables)


def _conformant(cards: list[dict]) -> tuple[list[dict], list[dict]]:
    """Strict on our own output: a card that breaks the spec's invariants is not sent (the cards
    kept, and an issue for each card withheld).  The whole response is checked once; only when it
    fails is each card checked to find the ones to withhold.  Note: the full JSON Schema pass costs
    about 2 ms for five cards; direct checks of the spec's invariants, public in cards.schema, would
    make it cheap."""
    if not response_errors({"cards": cards}):
        return cards, []
    kept, withheld = [], []
    for card in cards:
        errors = response_errors({"cards": [card]})
        if errors:
            log.error("card %s withheld: %s", card.get("uuid"), "; ".join(errors))
            withheld.append({"severity": "error", "location": card.get("source", {}).get("topic", {}).get("code"),
                             "message": "card withheld, not CDS Hooks conformant: " + "; ".join(errors)})
        else:
            kept.append(card)
    return kept, withheld
