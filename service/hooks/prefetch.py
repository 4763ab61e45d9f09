"""Prefetch (CDS Hooks 2.0 §Providing FHIR Resources to a CDS Service).

Templates are derived from the plan's data requirements: `cqf-fhirQueryPattern` verbatim
when given; else `Patient/{{context.patientId}}` for the subject, `Encounter/{{context.encounterId}}`
for the encounter, and `<type>?patient={{context.patientId}}` plus a `code=` token list from
the codeFilter (codes listed, or a content ValueSet expanded) - only the query subset the
spec allows (§Prefetch Template: read, or search with patient and token parameters).

Tokens: `{{context.<field>}}` (primitives only), `{{userPractitionerId}}`,
`{{userPractitionerRoleId}}`, `{{userPatientId}}`, `{{userRelatedPersonId}}` (from userId), and
the 3.0-ballot FHIRPath tokens (`{{today() - 90 days}}`,
`{{context.draftOrders.entry.resource.ofType(MedicationRequest).medication.resolve().id}}`,
`%otherKey` for an already resolved key); several values are joined with commas (search OR).
Every value is percent-encoded when it is filled in (RFC 3986 §2.1, every character but the
unreserved ones), so a value such as `x&_count=1000&_include=*`, `x#` or `../Patient` is one
value of one parameter (or one path segment), never more parameters, a cut query or another path.

Resolution: a key the EHR sent is used as sent, `null` meaning "no data"; a key holding an
OperationOutcome counts as missing; missing keys are fetched from `fhirServer` with the
EHR's bearer token; a template whose token has no value (no encounterId) resolves to no
data; missing keys with no server -> 412 naming the keys.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from typing import Any
from urllib.parse import quote

from service.engine.fhirpath import Evaluation, Expression, to_python
from service.engine.index import DataIndex
from service.engine.model import DataRequirementDef, PlanDef
from service.engine.terminology import Terminology
from service.errors import BadRequest, ExpressionError, FhirAccessError, PreconditionFailed

log = logging.getLogger("service.prefetch")

_TOKEN = re.compile(r"\{\{(.+?)\}\}")
_SIMPLE = re.compile(r"^(context\.[A-Za-z0-9_]+|user(Practitioner|PractitionerRole|Patient|RelatedPerson)Id)$")
_KEY_REF = re.compile(r"%([A-Za-z_][A-Za-z0-9_]*)")
_READ = re.compile(r"^[A-Za-z]+/[^/?]+$")


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
    return {key: template(dr, terminology) for key, dr in sorted(plan.data_requirements.items())}


def render(tmpl: str, context: dict, user: str | None = None, now: datetime | None = None,
           resolved: dict[str, Any] | None = None) -> str | None:
    """Fill the template's tokens; None when a token has no value (the key then means no data)."""
    missing = False

    def fill(m: re.Match) -> str:
        nonlocal missing
        token = m.group(1).strip()
        if _SIMPLE.match(token):
            values = [_simple(token, context, user)]
        else:
            values = _fhirpath_token(token, context, now, resolved or {})
        values = [str(v) for v in values if isinstance(v, (str, int)) and not isinstance(v, bool) and v != ""]
        if not values:
            missing = True
            return ""
        return ",".join(quote(v, safe="") for v in dict.fromkeys(values))

    out = _TOKEN.sub(fill, tmpl)
    return None if missing else out


def _simple(token: str, context: dict, user: str | None) -> Any:
    if token.startswith("context."):
        return context.get(token[len("context."):])
    kind = token[len("user"):-len("Id")]  # userPractitionerId -> Practitioner
    return user.split("/", 1)[1] if isinstance(user, str) and user.startswith(kind + "/") else None


@lru_cache(maxsize=512)
def _compiled(token: str) -> Expression | None:
    try:
        return Expression(token)
    except ExpressionError:
        return None


def _fhirpath_token(token: str, context: dict, now: datetime | None, resolved: dict[str, Any]) -> list:
    expr = _compiled(token)
    if expr is None or now is None:
        log.warning("prefetch token {{%s}} is not a usable FHIRPath expression", token)
        return []
    index = DataIndex()
    index.add(context.get("draftOrders"))
    evaluation = Evaluation(now, index, None, stub_references=True)
    try:
        values = expr.evaluate(evaluation, {"context": context}, {k: ([] if v is None else v) for k, v in resolved.items()})
    except ExpressionError as exc:
        log.warning("prefetch token {{%s}}: %s", token, exc.message)
        return []
    return to_python(values)


def _order(templates_by_key: dict[str, str]) -> list[str]:
    """Keys in an order where a template that names `%otherKey` comes after that key."""
    ordered: list[str] = []

    def visit(key: str, stack: tuple[str, ...]) -> None:
        if key in ordered or key in stack:
            return
        for dep in _KEY_REF.findall(templates_by_key[key]):
            if dep in templates_by_key:
                visit(dep, stack + (key,))
        ordered.append(key)

    for key in templates_by_key:
        visit(key, ())
    return ordered


def _is_outcome(value: Any) -> bool:
    return isinstance(value, dict) and value.get("resourceType") == "OperationOutcome"


def check_value(key: str, value: Any) -> None:
    """A prefetch value is null, a FHIR resource, or a Bundle whose entries are objects."""
    where = f"prefetch.{key}"
    if value is None:
        return
    if not isinstance(value, dict) or not isinstance(value.get("resourceType"), str):
        raise BadRequest(f"{where} must be a FHIR resource (with resourceType) or null", expression=where)
    if value["resourceType"] == "Bundle":
        entries = value.get("entry", [])
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise BadRequest(f"{where}.entry must be an array of Bundle entries", expression=where + ".entry")


def resolve(
    plan: PlanDef,
    terminology: Terminology,
    body: dict,
    fetcher: Callable[[str], Any] | None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The plan's data by prefetch key, from the request's prefetch or fetched with `fetcher`."""
    sent = body.get("prefetch") or {}
    context = body.get("context") or {}
    data: dict[str, Any] = {}
    all_templates = templates(plan, terminology)
    urls: dict[str, str] = {}
    for key in _order(all_templates):
        if key in sent and not _is_outcome(sent[key]):
            check_value(key, sent[key])
            data[key] = _rest_of_pages(key, sent[key], fetcher)
            continue
        url = render(all_templates[key], context, context.get("userId"), now, data)
        if url is None:  # e.g. no encounterId: this key has no data to fetch
            data[key] = None
        elif fetcher is None:
            urls[key] = url
        else:
            try:
                value = fetcher(url)
            except FhirAccessError as exc:  # still a 412, now naming the key the EHR could prefetch
                raise exc.about(f"prefetch key {key!r}", f"prefetch.{key}") from None
            data[key] = None if _is_outcome(value) else value
    if urls:
        raise PreconditionFailed(
            f"prefetch key(s) {', '.join(sorted(urls))} missing and no fhirServer to fetch them from",
            expression="prefetch." + sorted(urls)[0],
        )
    return data


def _next_link(bundle: Any) -> str | None:
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        return None
    links = bundle.get("link") if isinstance(bundle.get("link"), list) else []
    return next((link.get("url") for link in links if isinstance(link, dict) and link.get("relation") == "next"
                 and isinstance(link.get("url"), str)), None)


def _rest_of_pages(key: str, bundle: Any, fetcher: Callable[[str], Any] | None) -> Any:
    """A prefetched searchset the EHR paginated (2.0.1 §Prefetch Template: "It is the CDS Service's
    responsibility ... to programmatically retrieve any additional necessary data"): fetch the
    remaining pages and merge them.  Without a server the data is incomplete: 412, never a guess."""
    next_url = _next_link(bundle)
    if next_url is None:
        return bundle
    if fetcher is None:
        raise PreconditionFailed(f"prefetch key {key!r} is one page of several (it has a next link) and there is "
                                 "no fhirServer to fetch the rest from", expression=f"prefetch.{key}")
    try:
        rest = fetcher(next_url)
    except FhirAccessError as exc:
        raise exc.about(f"prefetch key {key!r}, next page", f"prefetch.{key}") from None
    merged = dict(bundle)
    merged["entry"] = list(bundle.get("entry") or []) + list((rest or {}).get("entry") or [])
    merged["link"] = [link for link in bundle.get("link", []) if link.get("relation") != "next"]
    return merged


def incomplete_keys(data: dict[str, Any]) -> list[str]:
    """Keys whose Bundle is known to be cut short: tagged SUBSETTED (FHIR R4 §3.1.1.3.1.4; the FHIR
    client tags a search it stopped paging, and an EHR may send one so tagged)."""
    out = []
    for key, value in data.items():
        tags = ((value.get("meta") or {}).get("tag") if isinstance(value, dict) else None) or []
        if any(isinstance(t, dict) and t.get("code") == "SUBSETTED" for t in tags if isinstance(tags, list)):
            out.append(key)
    return out


def is_read(url: str) -> bool:
    return bool(_READ.match(url))
