"""The request's data, indexed once per call so expressions only walk narrowed lists.

Index by Bundle -> resource type -> resources, and by resource -> its primary codes as
"system|code" tokens.  The primary code of each resource type is the element its FHIR R4
`code` search parameter covers (e.g. MedicationRequest.medication[x], with a
medicationReference resolved against the same Bundle or the resource's contained list).
Malformed parts of EHR data are skipped, never raised: a resource without codes simply
matches no code filter.
"""

from __future__ import annotations

from typing import Any

# FHIR R4 search parameter `code` (or its equivalent) per resource type.
PRIMARY_CODE = {
    "AllergyIntolerance": "code",
    "Condition": "code",
    "DiagnosticReport": "code",
    "Observation": "code",
    "Procedure": "code",
    "ServiceRequest": "code",
    "Medication": "code",
    "Task": "code",
    "Immunization": "vaccineCode",
    "Encounter": "type",
    "Location": "type",
    "CommunicationRequest": "category",
    "MedicationRequest": "medication",
    "MedicationAdministration": "medication",
    "MedicationStatement": "medication",
    "MedicationDispense": "medication",
}


def _codings(value: Any):
    """Codings of a CodeableConcept, a list of them, or a Coding (leniently)."""
    if isinstance(value, list):
        for v in value:
            yield from _codings(v)
    elif isinstance(value, dict):
        if "coding" in value:
            yield from _codings(value["coding"])
        elif "code" in value and isinstance(value.get("code"), str):
            yield value


def tokens_of(codings) -> frozenset[str]:
    return frozenset(
        f"{c.get('system', '')}|{c['code']}" for c in codings if isinstance(c.get("code"), str)
    )


def _tokens(value: Any) -> frozenset[str]:
    """"system|code" tokens of a CodeableConcept (or a list of them); plain loops, this is hot."""
    if type(value) is dict:  # the common case: one CodeableConcept with one coding
        codings = value.get("coding")
        if type(codings) is list and len(codings) == 1 and type(codings[0]) is dict:
            code = codings[0].get("code")
            if type(code) is str:
                return frozenset((f"{codings[0].get('system', '')}|{code}",))
    tokens = set()
    for concept in value if isinstance(value, list) else (value,):
        if not isinstance(concept, dict):
            continue
        codings = concept.get("coding")
        for coding in codings if isinstance(codings, list) else ():
            if isinstance(coding, dict):
                code = coding.get("code")
                if isinstance(code, str):
                    tokens.add(f"{coding.get('system', '')}|{code}")
    return frozenset(tokens)


class DataIndex:
    """Lazily built, per-call index over the Bundles and resources of one request."""

    def __init__(self):
        self._by_bundle: dict[int, dict[str, list[dict]]] = {}
        self._by_code: dict[tuple[int, str], dict[str, list[int]]] = {}  # (bundle, type) -> token -> positions
        self._codes: dict[int, frozenset[str]] = {}
        self._home: dict[int, dict] = {}  # resource -> the Bundle it came in
        self._by_reference: dict[str, dict] = {}  # "Type/id" -> resource, over every indexed Bundle
        self._pending: list[Any] = []  # values added for resolve(), indexed on first use
        self._keep: list[Any] = []  # keep indexed objects alive so id() stays unique

    def bundle_resources(self, bundle: dict) -> dict[str, list[dict]]:
        key = id(bundle)
        found = self._by_bundle.get(key)
        if found is None:
            found = {}
            entries = bundle.get("entry") if isinstance(bundle, dict) else None
            for entry in entries if isinstance(entries, list) else []:
                res = entry.get("resource") if isinstance(entry, dict) else None
                if isinstance(res, dict) and isinstance(res.get("resourceType"), str):
                    found.setdefault(res["resourceType"], []).append(res)
                    self._home[id(res)] = bundle
                    if isinstance(res.get("id"), str):
                        self._by_reference.setdefault(f"{res['resourceType']}/{res['id']}", res)
            self._by_bundle[key] = found
            self._keep.append(bundle)
        return found

    def add(self, value: Any) -> None:
        """Make a request value (a Bundle or a single resource) resolvable by reference (lazily)."""
        self._pending.append(value)

    def _index_pending(self) -> None:
        pending, self._pending = self._pending, []
        for value in pending:
            self._add_now(value)

    def _add_now(self, value: Any) -> None:
        if isinstance(value, dict) and value.get("resourceType") == "Bundle":
            self.bundle_resources(value)
        elif isinstance(value, dict) and isinstance(value.get("resourceType"), str) and isinstance(value.get("id"), str):
            self._by_reference.setdefault(f"{value['resourceType']}/{value['id']}", value)

    def resolve(self, reference: str) -> dict | None:
        """A resource by relative reference ("Type/id"; a trailing "/_history/n" or base URL is ignored)."""
        if self._pending:
            self._index_pending()
        parts = reference.split("/_history/")[0].rstrip("/").split("/")
        return self._by_reference.get("/".join(parts[-2:])) if len(parts) >= 2 else None

    def with_codes(self, bundle: dict, rtype: str, allowed: frozenset[str]) -> list[dict]:
        """Resources of `rtype` in `bundle` whose primary code is in `allowed`, in Bundle order."""
        resources = self.bundle_resources(bundle).get(rtype, [])
        key = (id(bundle), rtype)
        by_code = self._by_code.get(key)
        if by_code is None:
            by_code = {}
            for pos, res in enumerate(resources):
                for token in self.codes(res):
                    by_code.setdefault(token, []).append(pos)
            self._by_code[key] = by_code
        if len(allowed) < len(by_code):
            positions = {p for token in allowed for p in by_code.get(token, ())}
        else:
            positions = {p for token, ps in by_code.items() if token in allowed for p in ps}
        return [resources[p] for p in sorted(positions)]

    def codes(self, resource: dict) -> frozenset[str]:
        key = id(resource)
        found = self._codes.get(key)
        if found is None:
            found = _tokens(self._primary(resource, self._home.get(key)))
            self._codes[key] = found
            self._keep.append(resource)
        return found

    def _primary(self, resource: dict, bundle: dict | None):
        rtype = resource.get("resourceType")
        element = PRIMARY_CODE.get(rtype, "code")
        if element != "medication":
            return resource.get(element)
        if "medicationCodeableConcept" in resource:
            return resource["medicationCodeableConcept"]
        ref = (resource.get("medicationReference") or {}).get("reference")
        if not isinstance(ref, str):
            return None
        if ref.startswith("#"):
            for c in resource.get("contained") or []:
                if isinstance(c, dict) and c.get("id") == ref[1:]:
                    return c.get("code")
            return None
        med_id = ref.rsplit("/", 1)[-1]
        candidates = self.bundle_resources(bundle).get("Medication", []) if bundle else []
        for med in candidates:
            if med.get("id") == med_id:
                return med.get("code")
        return None
