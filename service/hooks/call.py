"""One CDS service call (CDS Hooks 2.0 §Calling a CDS Service), without Flask.

validate the request -> resolve prefetch (fetching what is missing) -> $apply the
service's PlanDefinition -> render cards.  Raises service.errors types only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cards.render import TRACE_EXTENSION, render_cards
from cards.schema import response_errors
from service.engine import ApplyContext, ApplyResult, ContentSet, ServiceDef, apply_plan
from service import data
from service.fhir.reader import ReaderFactory
from service.hooks.validation import validate_request

log = logging.getLogger("service.calls")

@dataclass
class CallOutcome:
    response: dict
    result: ApplyResult


def call_service(
    content: ContentSet,
    service: ServiceDef,
    body: Any,
    now: datetime,
    fetcher_factory: ReaderFactory | None = None,
    trace: bool = False,
    guidance_base: str | None = None,
) -> CallOutcome:
    """`guidance_base`: the service's public root URL; cards then link to their rule pages."""
    hook = body.get("hook") if isinstance(body, dict) and body.get("hook") in service.hooks else service.hook
    validate_request(body, hook)
    context = body["context"]
    fetcher = None
    if body.get("fhirServer") and fetcher_factory is not None:
        token = (body.get("fhirAuthorization") or {}).get("access_token")
        fetcher = fetcher_factory(body["fhirServer"], token)
    tokens = data.Tokens(context, context.get("userId"), now)
    resolved = data.resolve(service.plan, content.terminology, tokens, body.get("prefetch") or {}, fetcher)
    encounter = context.get("encounterId")
    ctx = ApplyContext(
        now=now,
        subject=f"Patient/{context['patientId']}",
        data=resolved,
        hook=hook,
        hook_instance=body["hookInstance"],
        encounter=f"Encounter/{encounter}" if encounter else None,
        practitioner=context.get("userId"),
        # Hook-specific fields are validated for the hooks that define them; another hook's context may
        # carry anything under these names, and only the shapes the engine reads are passed on.
        draft_orders=context.get("draftOrders") if isinstance(context.get("draftOrders"), dict) else None,
        selections=[s for s in context.get("selections") or [] if isinstance(s, str)]
        if isinstance(context.get("selections"), list) else [],
    )
    result = apply_plan(content, service.plan, ctx)
    cards = render_cards([result], body["hookInstance"], trace, incomplete=data.incomplete_keys(resolved),
                         guidance_base=guidance_base)
    response: dict = {"cards": _conformant(cards, result)}
    if trace:
        response["extension"] = {TRACE_EXTENSION: {"actions": result.trace, "issues": result.issues}}
    return CallOutcome(response, result)


def _conformant(cards: list[dict], result: ApplyResult) -> list[dict]:
    """Strict on our own output: a card that breaks the spec's invariants is not sent."""
    kept = []
    for card in cards:
        errors = response_errors({"cards": [card]})
        if errors:
            log.error("card %s withheld: %s", card.get("uuid"), "; ".join(errors))
            result.issues.append({"severity": "error", "location": card.get("source", {}).get("topic", {}).get("code"),
                                  "message": "card withheld, not CDS Hooks conformant: " + "; ".join(errors)})
        else:
            kept.append(card)
    return kept
