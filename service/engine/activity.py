"""ActivityDefinition $apply: the resource an ActivityDefinition proposes, before its
dynamicValues (FHIR R4 §12.21.4.4 "Applying an ActivityDefinition").

Rules:
- The resource is of the definition's `kind`, status `draft`, with a generated id, for the
  subject (`subject`, or `for` on a Task), instantiating the definition's canonical (with its
  version when it has one).
- Which elements carry over, and where, is one row per resource kind (`RULES`), in the
  order R4 §12.21.4.4 lists them; a kind without a row gets status, subject and code.
- Values are shared with the definition except those the caller will change in place
  (dosage, timing, quantity), which are copied.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from service.engine.fhirjson import Resource, json_copy
from service.engine.model import ActivityDef


def _same(value: Any) -> Any:
    return value


def _listed(value: Any) -> Any:
    return [value]


@dataclass(frozen=True)
class KindRule:
    """How one resource kind takes an ActivityDefinition's elements."""

    intent: bool = False  # intent: the definition's, else `proposal`
    subject: str = "subject"  # the element naming the patient
    canonical: Callable[[str], Any] | None = None  # instantiatesCanonical: how the URL is held
    elements: tuple[tuple[str, str, Callable[[Any], Any]], ...] = (("code", "code", _same),)
    priority: bool = False
    do_not_perform: bool = False
    encounter: bool = False
    requester: bool = False
    description: Callable[[str], tuple[str, Any]] | None = None  # (element, value) for ActivityDefinition.description


RULES: dict[str, KindRule] = {
    "MedicationRequest": KindRule(
        intent=True, canonical=_listed,
        elements=(("productCodeableConcept", "medicationCodeableConcept", _same),
                  ("productReference", "medicationReference", _same),
                  ("dosage", "dosageInstruction", json_copy)),
        priority=True, do_not_perform=True, encounter=True, requester=True,
        description=lambda text: ("note", [{"text": text}]),
    ),
    "ServiceRequest": KindRule(
        intent=True, canonical=_listed,
        elements=(("code", "code", _same),
                  ("timingTiming", "occurrenceTiming", json_copy),
                  ("timingDateTime", "occurrenceDateTime", json_copy),
                  ("timingPeriod", "occurrencePeriod", json_copy),
                  ("quantityQuantity", "quantityQuantity", json_copy),
                  ("bodySite", "bodySite", _same)),
        priority=True, do_not_perform=True, encounter=True, requester=True,
        description=lambda text: ("note", [{"text": text}]),
    ),
    "CommunicationRequest": KindRule(
        elements=(("code", "category", _listed),),
        priority=True, do_not_perform=True, encounter=True, requester=True,
        description=lambda text: ("payload", [{"contentString": text}]),
    ),
    "Task": KindRule(
        intent=True, subject="for", canonical=_same,
        priority=True, encounter=True,
        description=lambda text: ("description", text),
    ),
}
OTHER = KindRule()


def activity_resource(activity: ActivityDef, resource_id: str, subject: str, encounter: str | None,
                      practitioner: str | None) -> Resource:
    """The resource `activity` proposes for `subject` (references "Type/id")."""
    ad = activity.raw
    kind = ad["kind"]
    rule = RULES.get(kind, OTHER)
    res: Resource = {"resourceType": kind, "id": resource_id, "status": "draft"}
    if rule.intent:
        res["intent"] = ad.get("intent", "proposal")
    res[rule.subject] = {"reference": subject}
    if rule.canonical is not None:
        res["instantiatesCanonical"] = rule.canonical(activity.url + (f"|{ad['version']}" if ad.get("version") else ""))
    for src, dst, carry in rule.elements:
        if src in ad:
            res[dst] = carry(ad[src])
    if rule.priority and ad.get("priority"):
        res["priority"] = ad["priority"]
    if rule.do_not_perform and ad.get("doNotPerform"):
        res["doNotPerform"] = True
    if rule.encounter and encounter:
        res["encounter"] = {"reference": encounter}
    if rule.requester and practitioner:
        res["requester"] = {"reference": practitioner}
    if rule.description is not None and ad.get("description"):
        element, value = rule.description(ad["description"])
        res[element] = value
    return res
