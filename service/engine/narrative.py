"""Human-readable narrative for the resources `$apply` proposes (FHIR R4 §2.4 Narrative).

Rule: every proposed resource carries a generated `text` that says what it orders, built from
its own structured content after every dynamicValue has been applied, so it can never
disagree with the order (a draft's narrative is always replaced).  The words come from the
resource's own text elements, in the order a reader needs them; nothing is invented here.
"""

from __future__ import annotations

from html import escape
from typing import Any

from service.engine.fhirjson import Resource

XHTML = "http://www.w3.org/1999/xhtml"


def _concept_text(concept: Any) -> str | None:
    if not isinstance(concept, dict):
        return None
    text = concept.get("text")
    if isinstance(text, str) and text.strip():
        return text
    for coding in concept.get("coding") or []:
        display = coding.get("display") if isinstance(coding, dict) else None
        if isinstance(display, str):
            return display
    return None


def _texts(items: Any, element: str) -> list[str]:
    return [i[element] for i in items or [] if isinstance(i, dict) and isinstance(i.get(element), str)
            and i[element].strip()]


def describe(resource: Resource) -> str | None:
    """One plain sentence (or several joined) saying what the resource asks for."""
    kind = resource.get("resourceType")
    if kind == "MedicationRequest":
        parts = _texts(resource.get("dosageInstruction"), "text")
        name = _concept_text(resource.get("medicationCodeableConcept"))
        if name and not (parts and name.split()[0].lower() in parts[0].lower()):
            parts = [f"{name}: {parts[0]}", *parts[1:]] if parts else [name]
    elif kind == "Task":
        parts = [resource["description"]] if isinstance(resource.get("description"), str) else []
        code_text = _concept_text(resource.get("code"))
        if not parts and code_text:
            parts = [code_text]
    elif kind == "CommunicationRequest":
        parts = _texts(resource.get("payload"), "contentString")
        if not parts:
            parts = [t for t in (_concept_text(c) for c in resource.get("category") or []) if t]
    else:
        name = _concept_text(resource.get("code"))
        parts = [name] if name else []
        parts += _texts(resource.get("note"), "text")
    parts = [p.strip() for p in parts if p and p.strip()]
    return " ".join(p if p.endswith(".") else p + "." for p in parts) or None


def with_narrative(resource: Resource) -> Resource:
    """The resource with `text` (status generated) set from `describe`; unchanged when there is nothing to say."""
    sentence = describe(resource)
    if sentence is None:
        resource.pop("text", None)
        return resource
    resource["text"] = {"status": "generated", "div": f'<div xmlns="{XHTML}"><p>{escape(sentence)}</p></div>'}
    return resource
