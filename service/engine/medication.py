"""What a medication-bearing resource is about: its medication's codes, the ingredients the
content's ConceptMaps map them to, and the product (ingredient strengths, dose form) when known.

Rules (FHIR R4 MedicationRequest/-Administration/-Statement/-Dispense.medication[x]):
- The medication is `medicationCodeableConcept`, or the Medication `medicationReference` names:
  "#id" is a contained Medication, anything else is looked up in the request's data (the
  caller's `resolve`: same Bundle first, then any prefetch key or draftOrders).  A Medication
  counts its `code` and its `ingredient[].itemCodeableConcept` codes.
- Every code adds the concepts the ConceptMaps map it to (product -> ingredients).
- The product is the first coding of the medication's code the maps give a product for; else
  the Medication's own ingredient strengths (Ratio per one tablet/capsule, or per volume); else,
  only when none of the medication's codes is known to any ValueSet or ConceptMap, the product
  its name names (each coding's display first, then the text), and the identity is then "by name".
- Malformed data gives an empty identity, never an error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, TypeAlias

from service.engine import ucum, units
from service.engine.fhirjson import Element, Resource
from service.engine.products import Catalog, Ingredient, Product
from service.engine.terminology import Terminology

MEDICATION_BEARING = frozenset({"MedicationRequest", "MedicationAdministration", "MedicationStatement",
                                "MedicationDispense"})

# A reference as the request's data answers it: (reference, the resource it is written in) -> the resource.
Resolver: TypeAlias = Callable[[str, Resource], Resource | None]
# "system|code" tokens of a CodeableConcept (or of anything else: none).
TokensOf: TypeAlias = Callable[[Any], frozenset[str]]


@dataclass(frozen=True)
class Identity:
    tokens: frozenset[str]  # the medication's own codes and the ingredients they map to
    product: Product | None = None
    by_name: bool = False


EMPTY = Identity(frozenset())


def medication_of(resource: Resource, resolve: Resolver) -> tuple[Any, Resource | None]:
    """(the medication's CodeableConcept, the Medication resource when referenced) of a resource."""
    if resource.get("resourceType") == "Medication":
        return resource.get("code"), resource
    if "medicationCodeableConcept" in resource:
        return resource["medicationCodeableConcept"], None
    ref = resource.get("medicationReference")
    ref = ref.get("reference") if isinstance(ref, dict) else None
    if not isinstance(ref, str) or not ref:
        return None, None
    if ref.startswith("#"):
        for c in resource.get("contained") or []:
            if isinstance(c, dict) and c.get("id") == ref[1:] and c.get("resourceType") == "Medication":
                return c.get("code"), c
        return None, None
    med = resolve(ref, resource)
    if isinstance(med, dict) and med.get("resourceType") == "Medication":
        return med.get("code"), med
    return None, None


def identify(resource: Resource, resolve: Resolver, tokens_of: TokensOf,
             terminology: Terminology | None = None) -> Identity:
    concept, med = medication_of(resource, resolve)
    own = tokens_of(concept) if concept is not None else frozenset()
    for ing in _ingredients(med):
        own = own | tokens_of(ing.get("itemCodeableConcept"))
    catalog = terminology.medications if terminology is not None and terminology.maps else None
    tokens = own
    product = None
    if catalog is not None:
        listed = [t for t in own if catalog.maps.listed(t)]  # usually none or one: the hot path is short
        if listed:
            tokens = own.union(*(catalog.ingredients(t) for t in listed))
            for token in _concept_tokens(concept):
                product = catalog.product(token)
                if product is not None:
                    break
    if product is None and med is not None:
        product = _from_medication(med, tokens_of, catalog)
    by_name = False
    if product is None and catalog is not None and terminology is not None \
            and not any(terminology.known(t) for t in own):
        for name in _names(concept):
            product = catalog.by_name(name)
            if product is not None:
                by_name = True
                tokens = tokens | {t for i in product.ingredients for t in i.covers or (i.token,)}
                break
    if not tokens and product is None:
        return EMPTY
    return Identity(frozenset(tokens), product, by_name)


def _concept_tokens(concept: Any) -> list[str]:
    """The medication's own codes, in the order its codings are sent."""
    out = []
    codings = concept.get("coding") if isinstance(concept, dict) else None
    for c in codings if isinstance(codings, list) else ():
        if isinstance(c, dict) and isinstance(c.get("code"), str):
            token = f"{c.get('system', '')}|{c['code']}"
            if token not in out:
                out.append(token)
    return out


def _names(concept: Any) -> list[str]:
    """Names to read: each coding's display (RxNorm normalized names), then the text."""
    if not isinstance(concept, dict):
        return []
    names = []
    codings = concept.get("coding")
    for c in codings if isinstance(codings, list) else ():
        if isinstance(c, dict) and isinstance(c.get("display"), str) and c["display"] not in names:
            names.append(c["display"])
    if isinstance(concept.get("text"), str) and concept["text"] not in names:
        names.append(concept["text"])
    return names


def _ingredients(med: Resource | None) -> list[Element]:
    items = med.get("ingredient") if isinstance(med, dict) else None
    if not isinstance(items, list):
        return []
    return [i for i in items if isinstance(i, dict) and i.get("isActive") is not False]


def _from_medication(med: Resource | None, tokens_of: TokensOf, catalog: Catalog | None) -> Product | None:
    """A product from Medication.ingredient[].strength (FHIR R4 Ratio), for the ingredients whose
    strength is usable."""
    found = []
    for ing in _ingredients(med):
        tokens = sorted(tokens_of(ing.get("itemCodeableConcept")))
        strength = _ratio_strength(ing.get("strength"))
        if not tokens or strength is None:
            continue
        covers = frozenset(tokens).union(*(catalog.ingredients(t) for t in tokens)) if catalog else frozenset(tokens)
        found.append(Ingredient(tokens[0], (ing.get("itemCodeableConcept") or {}).get("text"), strength, covers))
    return Product(tuple(found)) if found else None


def _ratio_strength(ratio: Any) -> tuple[Decimal, str] | None:
    """Amount per tablet/capsule ("50 mg") or per mL ("10 mg/mL") from a Ratio."""
    if not isinstance(ratio, dict):
        return None
    num, den = ratio.get("numerator"), ratio.get("denominator")
    if not isinstance(num, dict) or not isinstance(den, dict):
        return None
    try:
        nv, dv = Decimal(str(num["value"])), Decimal(str(den.get("value", 1)))
    except (KeyError, InvalidOperation):
        return None
    nu, du = units.ucum_unit(num), units.ucum_unit(den)
    if not nu or not du or dv <= 0 or units.is_count(nu):
        return None
    if units.is_count(du):
        return nv / dv, nu
    if ucum.convertible(du, "mL"):
        return nv / (dv * ucum.factor(du, "mL")), f"{nu}/mL"
    return None
