"""The data of one call by prefetch key, for hook calls and `$apply` alike (CDS Hooks 2.0
§Providing FHIR Resources to a CDS Service; CPG `$apply` `prefetchData`/`data`/`dataEndpoint`).

Rules: a key the caller sent is used as sent, `null` meaning "no data"; a key holding an
OperationOutcome counts as missing; a sent searchset with a `next` link is completed from the
FHIR server (the FHIR client merges the pages); missing keys are fetched from the FHIR server
(with the caller's bearer token), in an order where a template naming `%otherKey` comes after
that key; a template whose token has no value (no encounterId) resolves to no data; missing keys
with no server -> DataUnavailable naming the keys, and a failed fetch names its key.  A Bundle
tagged SUBSETTED (FHIR R4 §3.1.1.3.1.4: the FHIR client stopped paging, or the EHR sent it so)
is an incomplete key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from service.data.templates import templates
from service.data.tokens import KEY_REF, Tokens
from service.engine import PlanDef, Terminology
from service.errors import DataUnavailable, FhirAccessError, InvalidRequest
from service.fhir.reader import FhirReader


def resolve(plan: PlanDef, terminology: Terminology, tokens: Tokens, sent: Mapping[str, Any],
            fhir: FhirReader | None) -> dict[str, Any]:
    """The plan's data by prefetch key, from what the caller sent or read with `fhir`."""
    data: dict[str, Any] = {}
    all_templates = templates(plan, terminology)
    unfetched: list[str] = []
    for key in _order(all_templates):
        if key in sent and not _is_outcome(sent[key]):
            check_value(key, sent[key])
            data[key] = _rest_of_pages(key, sent[key], fhir)
            continue
        url = tokens.render(all_templates[key], data)
        if url is None:  # e.g. no encounterId: this key has no data to fetch
            data[key] = None
        elif fhir is None:
            unfetched.append(key)
        else:
            try:
                value = fhir.fetch(url)
            except FhirAccessError as exc:  # said of the key the caller could have sent
                raise exc.about(f"prefetch key {key!r}", f"prefetch.{key}") from None
            data[key] = None if _is_outcome(value) else value
    if unfetched:
        unfetched.sort()
        raise DataUnavailable(f"prefetch key(s) {', '.join(unfetched)} missing and no fhirServer to fetch them from",
                              expression="prefetch." + unfetched[0])
    return data


def check_value(key: str, value: Any) -> None:
    """A sent value is null, a FHIR resource, or a Bundle whose entries are objects."""
    where = f"prefetch.{key}"
    if value is None:
        return
    if not isinstance(value, dict) or not isinstance(value.get("resourceType"), str):
        raise InvalidRequest(f"{where} must be a FHIR resource (with resourceType) or null", expression=where)
    if value["resourceType"] == "Bundle":
        entries = value.get("entry", [])
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise InvalidRequest(f"{where}.entry must be an array of Bundle entries", expression=where + ".entry")


def incomplete_keys(data: Mapping[str, Any]) -> list[str]:
    """Keys whose Bundle is known to be cut short (tagged SUBSETTED)."""
    out = []
    for key, value in data.items():
        tags = ((value.get("meta") or {}).get("tag") if isinstance(value, dict) else None) or []
        if any(isinstance(t, dict) and t.get("code") == "SUBSETTED" for t in tags if isinstance(tags, list)):
            out.append(key)
    return out


def _order(templates_by_key: dict[str, str]) -> list[str]:
    """Keys in an order where a template that names `%otherKey` comes after that key."""
    ordered: list[str] = []

    def visit(key: str, stack: tuple[str, ...]) -> None:
        if key in ordered or key in stack:
            return
        for dep in KEY_REF.findall(templates_by_key[key]):
            if dep in templates_by_key:
                visit(dep, stack + (key,))
        ordered.append(key)

    for key in templates_by_key:
        visit(key, ())
    return ordered


def _is_outcome(value: Any) -> bool:
    return isinstance(value, dict) and value.get("resourceType") == "OperationOutcome"


def _has_next(value: Any) -> bool:
    links = value.get("link") if isinstance(value, dict) and value.get("resourceType") == "Bundle" else None
    return isinstance(links, list) and any(isinstance(link, dict) and link.get("relation") == "next"
                                           and isinstance(link.get("url"), str) for link in links)


def _rest_of_pages(key: str, value: Any, fhir: FhirReader | None) -> Any:
    """A sent searchset the caller paginated (2.0.1 §Prefetch Template: "It is the CDS Service's
    responsibility ... to programmatically retrieve any additional necessary data") is completed by
    the FHIR client.  Without a server the data is incomplete: DataUnavailable, never a guess."""
    if not _has_next(value):
        return value
    if fhir is None:
        raise DataUnavailable(f"prefetch key {key!r} is one page of several (it has a next link) and there is "
                              "no fhirServer to fetch the rest from", expression=f"prefetch.{key}")
    try:
        return fhir.rest_of(value)
    except FhirAccessError as exc:
        raise exc.about(f"prefetch key {key!r}, next page", f"prefetch.{key}") from None
