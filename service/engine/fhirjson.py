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
