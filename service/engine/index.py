"""The request's data, indexed once per call so expressions only walk narrowed lists.

Index by Bundle -> resource type -> resources, and by resource -> its primary codes as
"system|code" tokens.  The primary code of each resource type is the element its FHIR R4
`code` search parameter covers.  A medication-bearing resource (MedicationRequest, ...,
Medication) is identified once per call by `service.engine.medication`: its medication's
codes (a medicationReference resolved to a contained Medication, or a Medication anywhere in
the request's data, same Bundle first) plus the ingredients the content's ConceptMaps map
them to.  Malformed parts of EHR data are skipped, never raised: a resource without codes
simply matches no code filter.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from service.engine.fhirjson import Element, Resource
from service.engine.medication import EMPTY, MEDICATION_BEARING, Identity, identify
from service.engine.terminology import Terminology

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
}
_MEDICATION = MEDICATION_BEARING | {"Medication"}


def _codings(value: Any) -> Iterator[Element]:
    """Codings of a CodeableConcept, a list of them, or a Coding (leniently)."""
    if isinstance(value, list):
        for v in value:
            yield from _codings(v)
    elif isinstance(value, dict):
        if "coding" in value:
            yield from _codings(value["coding"])
        elif "code" in value and isinstance(value.get("code"), str):
            yield value


def tokens_of(codings: Iterable[Element]) -> frozenset[str]:
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

    def __init__(self, terminology: Terminology | None = None) -> None:
        self.terminology = terminology  # ValueSets and ConceptMaps of the content (None: codes as sent)
        self._added: set[int] = set()  # values given to add(), by id: each is indexed once
        self._identity: dict[int, Identity] = {}
        self._by_bundle: dict[int, dict[str, list[Resource]]] = {}
        self._by_code: dict[tuple[int, str], dict[str, list[int]]] = {}  # (bundle, type) -> token -> positions
        self._codes: dict[int, frozenset[str]] = {}
        self._home: dict[int, Resource] = {}  # resource -> the Bundle it came in
        self._by_reference: dict[str, Resource] = {}  # "Type/id" -> resource, over every indexed Bundle
        self._pending: list[Any] = []  # values added for resolve(), indexed on first use
        self._keep: list[Any] = []  # keep indexed objects alive so id() stays unique

    def bundle_resources(self, bundle: Resource) -> dict[str, list[Resource]]:
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
                    if isinstance(entry.get("fullUrl"), str):
                        self._by_reference.setdefault(entry["fullUrl"], res)
            self._by_bundle[key] = found
            self._keep.append(bundle)
        return found

    def add(self, value: Any) -> None:
        """Make a request value (a Bundle or a single resource) resolvable by reference (lazily).
        A value added before (the same object) is not added again."""
        if value is None or id(value) in self._added:
            return
        self._added.add(id(value))
        self._keep.append(value)
        self._pending.append(value)

    def _index_pending(self) -> None:
        pending, self._pending = self._pending, []
        for value in pending:
            self._add_now(value)

    def _add_now(self, value: Any) -> None:
        if isinstance(value, dict) and value.get("resourceType") == "Bundle":
            self.bundle_resources(value)
        elif (isinstance(value, dict) and isinstance(value.get("resourceType"), str)
              and isinstance(value.get("id"), str)):
            self._by_reference.setdefault(f"{value['resourceType']}/{value['id']}", value)

    def resolve(self, reference: str) -> Resource | None:
        """A resource by reference: a Bundle entry's fullUrl, or "Type/id" (a trailing "/_history/n" or
        base URL is ignored)."""
        if self._pending:
            self._index_pending()
        found = self._by_reference.get(reference)
        if found is not None:
            return found
        parts = reference.split("/_history/")[0].rstrip("/").split("/")
        return self._by_reference.get("/".join(parts[-2:])) if len(parts) >= 2 else None

    def with_codes(self, bundle: Resource, rtype: str, allowed: frozenset[str]) -> list[Resource]:
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

    def codes(self, resource: Resource) -> frozenset[str]:
        key = id(resource)
        found = self._codes.get(key)
        if found is None:
            rtype = resource.get("resourceType")
            if rtype in _MEDICATION:
                found = self.medication(resource).tokens
            else:
                found = _tokens(resource.get(PRIMARY_CODE.get(rtype, "code") if isinstance(rtype, str) else "code"))
            self._codes[key] = found
            self._keep.append(resource)
        return found

    def medication(self, resource: Resource) -> Identity:
        """The medication identity of a medication-bearing resource (computed once per call)."""
        key = id(resource)
        found = self._identity.get(key)
        if found is None:
            if resource.get("resourceType") in _MEDICATION:
                found = identify(resource, self._resolve_medication, _tokens, self.terminology)
            else:
                found = EMPTY
            self._identity[key] = found
            self._keep.append(resource)
        return found

    def _resolve_medication(self, reference: str, resource: Resource) -> Resource | None:
        """A referenced resource: in the Bundle `resource` came in first, then anywhere in the data."""
        home = self._home.get(id(resource))
        if home is not None:
            target_id = reference.split("/_history/")[0].rstrip("/").rsplit("/", 1)[-1]
            for med in self.bundle_resources(home).get("Medication", ()):
                if med.get("id") == target_id:
                    return med
        return self.resolve(reference)
