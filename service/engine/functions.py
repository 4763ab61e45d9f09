"""Generic FHIRPath functions the FHIRPath specification lacks.  No clinical knowledge here:
every code, unit and threshold comes from the content that calls them.

Each function's signature, input, result and failure behaviour are published, for content authors and
other engines, in `plandefinitions/FUNCTIONS.md`; `tests/content/test_function_library.py` checks that
page against the table registered here (`TABLE`).

A `code` argument is "system|code" or a ValueSet canonical URL from the content.
Every function is called `fn(evaluation, inputs, *args)`: the call's `fhirpath.Evaluation` (time,
data index, terminology) passed explicitly by the gateway, then the unwrapped inputs.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, TypeAlias

from service.engine import dosing, fhirpath, ucum, units
from service.engine.fhirjson import Element, Resource
from service.engine.fhirpath import Evaluation, FP_DateTime, FP_Quantity, Invocation
from service.engine.index import _codings, tokens_of
from service.engine.medication import Identity

# A parameter as fhirpathpy passes it (by its type in TABLE): a `String`, `Integer` or `Number`
# parameter is the argument's single value, or [] when the argument is empty; an `Any` parameter
# is the argument's whole collection.  The inputs are the focus collection, unwrapped.
StringArg: TypeAlias = str | list[Any]
NumberArg: TypeAlias = Decimal | int | float | list[Any]
Collection: TypeAlias = list[Any]

# ---- times ------------------------------------------------------------------------------

# Clinically relevant time of a resource, most specific first (FHIR R4 element names).
_TIME_PATHS = (
    ("effectiveDateTime",), ("effectiveInstant",), ("effectivePeriod", "end"), ("effectivePeriod", "start"),
    ("performedDateTime",), ("performedPeriod", "end"), ("performedPeriod", "start"),
    ("occurrenceDateTime",), ("occurrencePeriod", "start"),
    ("onsetDateTime",), ("onsetPeriod", "start"),
    ("authoredOn",), ("recordedDate",), ("issued",), ("date",), ("period", "start"),
)


def parse_datetime(value: Any) -> datetime | None:
    """FHIR date/dateTime/instant -> aware datetime (partial dates at their start, UTC if no zone)."""
    if isinstance(value, FP_DateTime):
        value = str(value)
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if not isinstance(value, str) or len(value) < 4:
        return None
    text = value.replace("Z", "+00:00")
    try:
        if len(text) == 4:
            return datetime(int(text), 1, 1, tzinfo=UTC)
        if len(text) == 7:
            return datetime(int(text[:4]), int(text[5:7]), 1, tzinfo=UTC)
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def clinical_time(resource: Any) -> datetime | None:
    if not isinstance(resource, dict):
        return None
    for path in _TIME_PATHS:
        value: Any = resource
        for step in path:
            value = value.get(step) if isinstance(value, dict) else None
        if value is not None:
            parsed = parse_datetime(value)
            if parsed is not None:
                return parsed
    return None


def _fp_datetime(moment: datetime) -> FP_DateTime:
    return FP_DateTime(moment.isoformat(timespec="milliseconds"))


# ---- codes ------------------------------------------------------------------------------


def _allowed(evaluation: Evaluation, codes: tuple[object, ...]) -> frozenset[str]:
    cached = evaluation.allowed_cache.get(codes)
    if cached is not None:
        return cached
    allowed: set[str] = set()
    for code in codes:
        if not isinstance(code, str):
            continue
        if "/ValueSet/" in code:
            if evaluation.terminology is None:
                raise ValueError(f"ValueSet {code}: no terminology in this evaluation")
            allowed |= evaluation.terminology.expand(code)
        else:
            allowed.add(code)
    evaluation.allowed_cache[codes] = result = frozenset(allowed)
    return result


def _resources(evaluation: Evaluation, inputs: Collection, rtype: StringArg, *codes: StringArg) -> list[Any]:
    if not isinstance(rtype, str):
        raise ValueError("resources() needs a resource type")
    index = evaluation.index
    allowed = _allowed(evaluation, codes) if codes else None
    out: list[Resource] = []
    for bundle in inputs:
        if not isinstance(bundle, dict):
            continue
        if allowed is None:
            out.extend(index.bundle_resources(bundle).get(rtype, ()))
        else:
            out.extend(index.with_codes(bundle, rtype, allowed))
    return fhirpath.typed(out)


def _coded(evaluation: Evaluation, inputs: Collection, *codes: StringArg) -> list[Any]:
    index = evaluation.index
    allowed = _allowed(evaluation, codes)
    return fhirpath.typed([r for r in inputs if isinstance(r, dict) and not allowed.isdisjoint(index.codes(r))])


def _member_of(evaluation: Evaluation, inputs: Collection, valueset: StringArg) -> bool | list[Any]:
    if not inputs:
        return []
    allowed = _allowed(evaluation, (valueset,))
    index = evaluation.index
    found: set[str] = set()
    for item in inputs:
        if isinstance(item, dict) and isinstance(item.get("resourceType"), str):
            found |= index.codes(item)
        else:
            found |= tokens_of(_codings(item))
    return not allowed.isdisjoint(found)


def _resolve(evaluation: Evaluation, inputs: Collection) -> list[Any]:
    out: list[Resource] = []
    for item in inputs:
        ref = item.get("reference") if isinstance(item, dict) else item if isinstance(item, str) else None
        if not isinstance(ref, str) or ref.startswith("#"):
            continue
        found = evaluation.index.resolve(ref)
        if found is None and evaluation.stub_references:
            parts = ref.split("/_history/")[0].rstrip("/").split("/")
            if len(parts) >= 2:
                found = {"resourceType": parts[-2], "id": parts[-1]}
        if found is not None:
            out.append(found)
    return fhirpath.typed(out)


def _has(item: Any, element: str) -> bool:
    """Whether `element` is present, a choice element (value[x]) under any of its type names."""
    if not isinstance(item, dict):
        return False
    if item.get(element) not in (None, [], {}):
        return True
    n = len(element)
    return any(k.startswith(element) and len(k) > n and k[n].isupper() and v not in (None, [], {})
               for k, v in item.items())


def _latest(evaluation: Evaluation, inputs: Collection, element: StringArg | None = None) -> list[Any]:
    best, best_time = None, None
    for item in inputs:
        if isinstance(element, str) and element and not _has(item, element):
            continue
        moment = clinical_time(item)
        if moment is not None and (best_time is None or moment >= best_time):
            best, best_time = item, moment
    return [] if best is None else fhirpath.typed([best])


def _status(resource: Resource) -> set[Any]:
    if "status" in resource:
        return {resource["status"]}
    return {c.get("code") for c in _codings(resource.get("clinicalStatus"))}


def _with_status(evaluation: Evaluation, inputs: Collection, *codes: StringArg) -> list[Any]:
    wanted = set(codes)
    return fhirpath.typed([r for r in inputs if isinstance(r, dict) and not wanted.isdisjoint(_status(r))])


def _by_time(inputs: Collection, moment: Collection, keep_after: bool) -> list[Any]:
    """Filter in Python: FHIRPath date comparison per item is the engine's slowest path."""
    bound = parse_datetime(moment[0] if isinstance(moment, list) and moment else moment)
    if bound is None:
        return []
    out = []
    for item in inputs:
        when = clinical_time(item)
        if when is not None and (when >= bound) == keep_after:
            out.append(item)
    return fhirpath.typed(out)


def _interpreted(evaluation: Evaluation, inputs: Collection, *codes: StringArg) -> list[Any]:
    wanted = set(codes)
    return fhirpath.typed([r for r in inputs if isinstance(r, dict)
                           and any(c.get("code") in wanted for c in _codings(r.get("interpretation")))])


def _above_reference_range(evaluation: Evaluation, inputs: Collection) -> list[Any]:
    out = []
    for r in inputs:
        if not isinstance(r, dict):
            continue
        value = _quantity(r.get("valueQuantity"))
        ranges = r.get("referenceRange") if isinstance(r.get("referenceRange"), list) else []
        high = _quantity((ranges[0] or {}).get("high")) if ranges and isinstance(ranges[0], dict) else None
        if value is None or high is None:
            continue
        try:
            if ucum.convert(value[0], value[1], high[1]) > high[0]:
                out.append(r)
        except ucum.UnitError:
            continue  # units that do not compare say nothing
    return fhirpath.typed(out)


def _since(evaluation: Evaluation, inputs: Collection, moment: Collection) -> list[Any]:
    return _by_time(inputs, moment, True)


def _before(evaluation: Evaluation, inputs: Collection, moment: Collection) -> list[Any]:
    return _by_time(inputs, moment, False)


def _clinical_time(evaluation: Evaluation, inputs: Collection) -> FP_DateTime | list[Any]:
    if len(inputs) != 1:
        return []
    moment = clinical_time(inputs[0])
    return [] if moment is None else _fp_datetime(moment)


def _hours_ago(evaluation: Evaluation, inputs: Collection) -> Decimal | list[Any]:
    if len(inputs) != 1:
        return []
    item = inputs[0]
    moment = clinical_time(item) if isinstance(item, dict) else parse_datetime(item)
    if moment is None:
        return []
    seconds = (evaluation.now - moment).total_seconds()
    return Decimal(repr(seconds / 3600)).quantize(Decimal("0.01"))


# ---- quantities -------------------------------------------------------------------------

MASS_UNIT = "mg"  # doseProblem(): the dose must be computable as a mass


def _quantity(item: Any) -> tuple[Decimal, str] | None:
    """(value, UCUM unit) of a Quantity; None when it has no value or its unit is not understood
    (no unit at all is unity)."""
    if isinstance(item, FP_Quantity):
        return Decimal(str(item.value)), str(item.unit).strip("'")
    if not isinstance(item, dict) or item.get("value") is None:
        return None
    unit = units.ucum_unit(item)
    if unit is None:
        if units.raw_unit(item) is not None:
            return None
        unit = "1"
    try:
        return Decimal(str(item["value"])), unit
    except InvalidOperation:
        return None


def _in_unit(evaluation: Evaluation, inputs: Collection, unit: StringArg,
             molar_mass: NumberArg | None = None) -> list[Decimal]:
    """Maps over the input (one value per Quantity that converts), so lists convert without a select()."""
    if not isinstance(unit, str):
        return []
    if isinstance(molar_mass, list):
        molar_mass = molar_mass[0] if molar_mass else None
    mass = None if molar_mass is None else Decimal(str(molar_mass))
    out = []
    for item in inputs:
        q = _quantity(item)
        if q is None:
            continue
        try:
            out.append(ucum.convert(q[0], q[1], unit, mass))
        except ucum.UnitError:
            continue  # present but unusable: the raw value is still there for the content to see
    return out


# ---- medication doses -------------------------------------------------------------------


def _wanted(evaluation: Evaluation, ingredient: StringArg | None) -> frozenset[str] | None:
    if isinstance(ingredient, list):
        ingredient = ingredient[0] if ingredient else None
    return _allowed(evaluation, (ingredient,)) if isinstance(ingredient, str) else None


def _orders(evaluation: Evaluation, inputs: Collection) -> Iterator[tuple[list[Element], Identity | None]]:
    """(dosage instructions, medication identity) of each input: a resource or a Dosage."""
    index = evaluation.index
    for item in inputs:
        if not isinstance(item, dict):
            continue
        identity = index.medication(item) if "resourceType" in item else None
        yield dosing.dosages(item), identity


def _unit(name: str, unit: StringArg) -> str:
    if not isinstance(unit, str):
        raise ValueError(f"{name}() needs a unit")
    return unit


def _dose(evaluation: Evaluation, inputs: Collection, unit: StringArg,
          ingredient: StringArg | None = None) -> list[Decimal]:
    unit = _unit("dose", unit)
    wanted = _wanted(evaluation, ingredient)
    out = []
    for items, identity in _orders(evaluation, inputs):
        value, _ = dosing.dose(items[0], unit, identity, wanted) if items else (None, None)
        if value is not None:
            out.append(dosing.plain(value))
    return out


def _daily_dose(evaluation: Evaluation, inputs: Collection, unit: StringArg,
                ingredient: StringArg | None = None) -> list[Decimal]:
    """One value per input: the sum of the daily amounts of its dosage instructions; an input
    any of whose instructions lacks a computable dose or timing gives nothing."""
    unit = _unit("dailyDose", unit)
    wanted = _wanted(evaluation, ingredient)
    out = []
    for items, identity in _orders(evaluation, inputs):
        value, _ = dosing.daily(items, unit, identity, wanted)
        if value is not None:
            out.append(dosing.plain(value))
    return out


def _dose_problem(evaluation: Evaluation, inputs: Collection, ingredient: StringArg | None = None) -> list[str]:
    """Why the daily dose in mass cannot be computed, per input that has a problem."""
    wanted = _wanted(evaluation, ingredient)
    out = []
    for items, identity in _orders(evaluation, inputs):
        _, problem = dosing.daily(items, MASS_UNIT, identity, wanted)
        if problem is not None:
            out.append(problem)
    return out


def _route(evaluation: Evaluation, inputs: Collection) -> list[Element]:
    out: list[Element] = []
    for items, identity in _orders(evaluation, inputs):
        route = items[0].get("route") if items else None
        codings = [c for c in _codings(route)] if isinstance(route, dict) else []
        if codings:
            out.extend(codings)
        elif identity is not None and identity.product is not None and evaluation.terminology is not None:
            out.extend(evaluation.terminology.medications.route(identity.product.form_token))
    return out


def _ingredient_name(evaluation: Evaluation, inputs: Collection) -> list[str]:
    """The drug of each medication-bearing input in words: its product's active ingredients (those
    with a strength, else all), joined with " / "; for an order coded by ingredient, its coding's
    display (else the text).  Nothing when the medication is unknown."""
    index = evaluation.index
    out = []
    for item in inputs:
        if not isinstance(item, dict) or "resourceType" not in item:
            continue
        identity = index.medication(item)
        product = identity.product
        if product is not None:
            named = [i.display for i in product.ingredients if i.display and i.strength] or \
                [i.display for i in product.ingredients if i.display]
            if named:
                out.append(" / ".join(dict.fromkeys(named)))
                continue
        concept = item.get("medicationCodeableConcept")
        if not isinstance(concept, dict):
            concept = {}
        display = next((c["display"] for c in _codings(concept) if isinstance(c.get("display"), str)), None)
        name = display or concept.get("text")
        if isinstance(name, str) and name.strip():
            out.append(name.strip())
    return out


def _identified_by_name(evaluation: Evaluation, inputs: Collection) -> list[bool]:
    index = evaluation.index
    return [index.medication(item).by_name for item in inputs if isinstance(item, dict) and "resourceType" in item]


def _age_in_years(evaluation: Evaluation, inputs: Collection) -> int | list[Any]:
    if len(inputs) != 1:
        return []
    item = inputs[0]
    born = parse_datetime(item.get("birthDate") if isinstance(item, dict) else item)
    if born is None:
        return []
    now = evaluation.now
    years = now.year - born.year - ((now.month, now.day) < (born.month, born.day))
    return years


def _round(evaluation: Evaluation, inputs: Collection, precision: NumberArg = 0) -> Decimal | list[Any]:
    if len(inputs) != 1:
        return []
    try:
        value = Decimal(str(inputs[0]))
    except InvalidOperation:
        raise ValueError("round() needs a number") from None
    places = int(precision) if isinstance(precision, (Decimal, int, float)) else 0  # [] when empty
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


TABLE: dict[str, Invocation] = {
    "resources": {"fn": _resources, "variadic": "String"},
    "coded": {"fn": _coded, "variadic": "String"},
    "memberOf": {"fn": _member_of, "arity": {1: ["String"]}},
    "withStatus": {"fn": _with_status, "variadic": "String"},
    "since": {"fn": _since, "arity": {1: ["Any"]}},
    "interpreted": {"fn": _interpreted, "variadic": "String"},
    "aboveReferenceRange": {"fn": _above_reference_range},
    "before": {"fn": _before, "arity": {1: ["Any"]}},
    "latest": {"fn": _latest, "arity": {0: [], 1: ["String"]}},
    "resolve": {"fn": _resolve},
    "clinicalTime": {"fn": _clinical_time},
    "hoursAgo": {"fn": _hours_ago},
    "inUnit": {"fn": _in_unit, "arity": {1: ["String"], 2: ["String", "Number"]}},
    "dose": {"fn": _dose, "arity": {1: ["String"], 2: ["String", "String"]}},
    "dailyDose": {"fn": _daily_dose, "arity": {1: ["String"], 2: ["String", "String"]}},
    "doseProblem": {"fn": _dose_problem, "arity": {0: [], 1: ["String"]}},
    "route": {"fn": _route},
    "identifiedByName": {"fn": _identified_by_name},
    "ingredientName": {"fn": _ingredient_name},
    "ageInYears": {"fn": _age_in_years},
    "round": {"fn": _round, "arity": {0: [], 1: ["Integer"]}},
}

fhirpath.register(TABLE)
