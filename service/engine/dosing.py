"""Doses of FHIR R4 Dosage instructions in a unit, through the ordered product's strength.

Rules:
- The dose of a Dosage is its first `doseAndRate.doseQuantity` (R4 Dosage.doseAndRate.dose[x]);
  its unit is read as EHRs send it (`units.ucum_unit`).
- A dose whose unit converts to the asked unit converts directly (mg -> g).
- A count of tablets, capsules or pills ({pill}, {tablet}, "tablet", unity, ...) is multiplied
  by the strength per unit of the ingredient (the one asked for, or the product's only one);
  a volume (any UCUM volume, "ml", "cc") by a strength per volume ("10 mg/mL").
- The daily amount of a Dosage is dose x frequency / period (`timing.repeat`; a period without a
  frequency means once per period), per day; of an order, the sum over its Dosages.
- Nothing is guessed: when a step is missing the result is None with a short plain-English
  reason (what `doseProblem()` shows).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from service.engine import ucum, units
from service.engine.fhirjson import Element, Resource
from service.engine.medication import Identity
from service.engine.products import Ingredient

NO_DOSE = "no dose given"
NO_FREQUENCY = "no frequency given"
_STRENGTH_OF = {"tablets": "tablet strength", "capsules": "capsule strength", "units": "strength per unit"}

Result = tuple[Decimal | None, str | None]  # (value, reason when there is none)


def dosages(resource: Resource | Element) -> list[Element]:
    """The Dosage instructions of a medication-bearing resource (or [a Dosage] itself)."""
    if "resourceType" not in resource:
        return [resource]
    for key in ("dosageInstruction", "dosage"):
        value = resource.get(key)
        if isinstance(value, list):
            return [d for d in value if isinstance(d, dict)]
        if isinstance(value, dict):  # MedicationAdministration.dosage: dose, route
            return [{"doseAndRate": [{"doseQuantity": value.get("dose")}], "route": value.get("route")}]
    return []


def dose_quantity(dosage: Element) -> Element | None:
    for dr in dosage.get("doseAndRate") or ():
        quantity = dr.get("doseQuantity") if isinstance(dr, dict) else None
        if isinstance(quantity, dict):
            return quantity
    return None


def dose(dosage: Element, unit: str, identity: Identity | None, wanted: frozenset[str] | None = None) -> Result:
    """One administration's amount in `unit` (of the ingredient `wanted` names, if given)."""
    quantity = dose_quantity(dosage)
    if quantity is None or quantity.get("value") is None:
        return None, NO_DOSE
    try:
        value = Decimal(str(quantity["value"]))
    except InvalidOperation:
        return None, NO_DOSE
    raw = units.raw_unit(quantity)
    if raw is None:
        return None, "dose has no unit"
    code = units.ucum_unit(quantity)
    if code is None:
        return None, f"dose unit {raw!r} is not understood"
    if wanted is not None and identity is not None and identity.tokens and wanted.isdisjoint(identity.tokens):
        return None, "the ordered medication does not contain the ingredient asked for"
    if ucum.convertible(code, unit):
        return value * ucum.factor(code, unit), None
    if units.is_count(code):
        noun = units.count_noun(code)
        ingredient, problem = _ingredient(identity, wanted, f"dose given in {noun}")
        if ingredient is None:
            return None, problem or f"dose given in {noun}, and the {_STRENGTH_OF[noun]} of this product is not known"
        strength = ingredient.strength
        if strength is None or not ucum.convertible(strength[1], unit):
            return None, f"dose given in {noun}, and the {_STRENGTH_OF[noun]} of this product is not known"
        return value * strength[0] * ucum.factor(strength[1], unit), None
    if ucum.convertible(code, "mL"):
        unknown = f"dose given as a volume ({raw}), and the concentration of this product is not known"
        ingredient, problem = _ingredient(identity, wanted, f"dose given as a volume ({raw})")
        if ingredient is None:
            return None, problem or unknown
        strength = ingredient.strength
        per_ml = f"({unit})/mL"
        if strength is None or not ucum.convertible(strength[1], per_ml):
            return None, unknown
        return value * ucum.factor(code, "mL") * strength[0] * ucum.factor(strength[1], per_ml), None
    return None, f"dose unit {raw!r} does not convert to {unit}"


def _ingredient(identity: Identity | None, wanted: frozenset[str] | None,
                given: str) -> tuple[Ingredient | None, str | None]:
    """The one ingredient whose strength applies, or the reason there is none (None: not known)."""
    product = identity.product if identity is not None else None
    if product is None or not product.ingredients:
        return None, None
    chosen: dict[str, Ingredient] = {}
    for ing in product.ingredients:
        if wanted is None or ing.named_by(wanted):
            chosen.setdefault(ing.token, ing)
    if not chosen:
        return None, "the ordered product does not contain the ingredient asked for"
    if len(chosen) > 1:
        names = " / ".join(i.display or i.token for i in chosen.values())
        return None, f"{given} of a product with several ingredients ({names})"
    return next(iter(chosen.values())), None


def per_day(dosage: Element) -> Result:
    """Administrations per day from `timing.repeat` (frequency per period)."""
    repeat = (dosage.get("timing") or {}).get("repeat") if isinstance(dosage.get("timing"), dict) else None
    repeat = repeat if isinstance(repeat, dict) else {}
    frequency = repeat.get("frequency", 1 if repeat.get("period") else None)
    period, period_unit = repeat.get("period"), repeat.get("periodUnit")
    if frequency is None or period is None or not isinstance(period_unit, str) or not period_unit:
        return None, NO_FREQUENCY
    try:
        return Decimal(str(frequency)) / (Decimal(str(period)) * ucum.factor(period_unit, "d")), None
    except (InvalidOperation, ZeroDivisionError, ucum.UnitError):
        return None, NO_FREQUENCY


def daily(items: list[Element], unit: str, identity: Identity | None, wanted: frozenset[str] | None = None) -> Result:
    """The daily amount over Dosage instructions, in `unit` per day."""
    if not items:
        return None, NO_DOSE
    total = Decimal(0)
    for dosage in items:
        amount, problem = dose(dosage, unit, identity, wanted)
        if amount is None:
            return None, problem
        times, problem = per_day(dosage)
        if times is None:
            return None, problem
        total += amount * times
    return total, None


def plain(value: Decimal) -> Decimal:
    """To 4 decimals, trailing zeros dropped without exponent notation (200.0000 -> 200, never 2E+2)."""
    value = value.quantize(Decimal("0.0001"))
    if value == value.to_integral_value():
        return value.quantize(Decimal(1))
    return value.normalize()
