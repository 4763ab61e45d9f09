"""Prefetch templates (CDS Hooks 2.0 §Prefetch Template) derived from a plan's data requirements.

`cqf-fhirQueryPattern` verbatim when given; else `Patient/{{context.patientId}}` for the subject,
`Encounter/{{context.encounterId}}` for the encounter, and `<type>?patient={{context.patientId}}`
plus a `code=` token list from the codeFilter (codes listed, or a content ValueSet expanded) -
only the query subset the spec allows (§Prefetch Template: read, or search with patient and token
parameters).  Discovery advertises these; hook calls and `$apply` resolve their keys with them.
"""

from __future__ import annotations

from service.engine import DataRequirementDef, PlanDef, Terminology


def template(dr: DataRequirementDef, terminology: Terminology) -> str:
    if dr.query:
        return dr.query
    if dr.type == "Patient":
        return "Patient/{{context.patientId}}"
    if dr.type == "Encounter":
        return "Encounter/{{context.encounterId}}"
    query = f"{dr.type}?patient={{{{context.patientId}}}}"
    for cf in dr.raw.get("codeFilter", []):
        tokens = [f"{c['system']}|{c['code']}" for c in cf.get("code", []) if c.get("system") and c.get("code")]
        if cf.get("valueSet"):
            tokens.extend(sorted(terminology.expand(cf["valueSet"])))
        if tokens:
            query += "&code=" + ",".join(tokens)
    return query


def templates(plan: PlanDef, terminology: Terminology) -> dict[str, str]:
    """The plan's prefetch templates by key, keys sorted."""
    return {key: template(dr, terminology) for key, dr in sorted(plan.data_requirements.items())}
