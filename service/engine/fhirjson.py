"""Names for FHIR JSON as the engine holds it (FHIR R4 §2.6.2 JSON representation).

Content and request data arrive parsed from JSON and are read leniently: EHR data is often
malformed, and its malformed parts are skipped, never raised.  So they stay plain dicts, and
these aliases say which kind of object a value is, not a schema: every field read from one is
checked where it is read.
"""

from __future__ import annotations

from typing import Any, TypeAlias

# A resource: a JSON object with a `resourceType` (a PlanDefinition, a Bundle, a MedicationRequest).
Resource: TypeAlias = dict[str, Any]
# An element inside a resource: a datatype (Coding, Quantity, Dosage, Expression) or a backbone
# element (PlanDefinition.action, ConceptMap.group).
Element: TypeAlias = dict[str, Any]


def json_copy(value: Any) -> Any:
    """A copy of parsed JSON whose objects and arrays are new and whose scalars (immutable) are
    shared: what copy.deepcopy gives for such a value, without its memo of every object visited."""
    if type(value) is dict:
        return {key: json_copy(item) for key, item in value.items()}
    if type(value) is list:
        return [json_copy(item) for item in value]
    return value
