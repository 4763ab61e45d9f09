"""Medication identity from the content's ConceptMaps: which ingredients a product contains, each
one's strength, the product's dose form, and the route a dose form implies.

Rules (the content format: README.md, "Authoring content"):
- A product code maps to its ingredients through every ConceptMap that lists it (followed
  transitively, so a product -> salt -> base ingredient chain works); each mapped target is one
  active ingredient.
- A target's `product` properties give the ingredient's strength per unit of presentation,
  "<decimal> <UCUM unit>" ("50 mg" per tablet, "10 mg/mL" of a liquid), and the product's dose
  form name ("Oral Tablet").
- A dose form is a concept of the product's code system, named by its name; a ConceptMap that
  lists it gives its route (a form listed with no mapped target has no route: never guessed).
- By name, as a last resort: an RxNorm normalized name whose components name an ingredient that
  the ConceptMaps map to (targets in the same code system as their source), case-insensitively
  and as whole words ("methylprednisolone sodium succinate" names "methylprednisolone"), gives
  that ingredient, with the strength and dose form parsed from the name.
- `lint` reports strengths that are not "<decimal> <UCUM unit>" and dose forms that no
  ConceptMap lists, by file and element path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from service.engine import rxnorm_names, units
from service.engine.conceptmap import ConceptMaps
from service.engine.fhirjson import Element

PROPERTY_BASE = "http://example.org/fhir/concept-property/"
PROP_STRENGTH = PROPERTY_BASE + "strength"
PROP_DOSE_FORM = PROPERTY_BASE + "dose-form"
_STRENGTH = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s+(\S+)\s*$")


@dataclass(frozen=True)
class Ingredient:
    token: str  # "system|code"
    display: str | None
    strength: tuple[Decimal, str] | None  # amount per unit of presentation, UCUM unit ("mg", "mg/mL")
    covers: frozenset[str] = frozenset()  # the token and what the maps map it to (a salt's base ingredient)

    def named_by(self, wanted: frozenset[str]) -> bool:
        return self.token in wanted or not wanted.isdisjoint(self.covers)


@dataclass(frozen=True)
class Product:
    ingredients: tuple[Ingredient, ...]
    dose_form: str | None = None
    form_token: str | None = None  # "system|dose form name": looked up in the dose-form -> route maps


def parse_strength(text: str) -> tuple[Decimal, str] | None:
    """"50 mg" -> (50, "mg"); None unless "<decimal> <UCUM unit>"."""
    match = _STRENGTH.match(text) if isinstance(text, str) else None
    if match is None or units.usual_ucum(match.group(2)) is None:
        return None
    try:
        return Decimal(match.group(1)), match.group(2)
    except InvalidOperation:
        return None


class Catalog:
    """Products, ingredients and routes over a set of ConceptMaps (built once per content load)."""

    def __init__(self, maps: ConceptMaps) -> None:
        self.maps = maps
        self._ingredients: dict[str, frozenset[str]] = {}
        self._products: dict[str, Product | None] = {}
        self._names: list[tuple[re.Pattern[str], Ingredient]] | None = None
        self._forms: dict[str, str] | None = None

    # ---- by code ----------------------------------------------------------------------------

    def ingredients(self, token: str) -> frozenset[str]:
        """Every concept `token` maps to, transitively (empty when it maps to nothing)."""
        if not self.maps.listed(token):
            return frozenset()  # codes from patient data are not cached: only what the maps list is
        found = self._ingredients.get(token)
        if found is None:
            seen: set[str] = set()
            stack = [token]
            while stack:
                for target in self.maps.targets(stack.pop()):
                    if target.token not in seen and target.token != token:
                        seen.add(target.token)
                        stack.append(target.token)
            self._ingredients[token] = found = frozenset(seen)
        return found

    def _covers(self, token: str) -> frozenset[str]:
        return frozenset({token}) | self.ingredients(token)

    def product(self, token: str) -> Product | None:
        """The product a code names (its mapped ingredients, strengths and dose form), or None."""
        if not self.maps.listed(token):
            return None
        if token in self._products:
            return self._products[token]
        product = None
        targets = self.maps.targets(token)
        if targets:
            form = next((t.property(PROP_DOSE_FORM) for t in targets if t.property(PROP_DOSE_FORM)), None)
            ingredients = []
            for t in targets:
                strength = t.property(PROP_STRENGTH)
                ingredients.append(Ingredient(t.token, t.display, parse_strength(strength[0]) if strength else None,
                                              self._covers(t.token)))
            system = token.split("|", 1)[0]
            product = Product(tuple(ingredients), form[0] if form else None,
                              f"{system}|{form[0]}" if form else None)
        self._products[token] = product
        return product

    def route(self, form_token: str | None) -> list[Element]:
        """Route codings the maps give a dose form (empty when none, or when the form is not listed)."""
        if not form_token:
            return []
        return [{"system": t.system, "code": t.code, **({"display": t.display} if t.display else {})}
                for t in self.maps.targets(form_token)]

    # ---- by name ----------------------------------------------------------------------------

    def by_name(self, name: str) -> Product | None:
        """The product an RxNorm normalized name names, when its ingredients are known to the maps."""
        parsed = rxnorm_names.parse(name)
        if parsed is None:
            return None
        names = self._name_index()
        if not names:
            return None
        found: list[Ingredient] = []
        for component in parsed.components:
            matches = _named(component.text.lower(), names)
            if component.strength is None and len(parsed.components) == 1:
                found.extend(Ingredient(m.token, m.display, None, self._covers(m.token))
                             for m in matches if m.token not in {f.token for f in found})
                continue  # a pack or a name without strengths: identity of every ingredient named
            if matches:
                best = max(matches, key=lambda m: len(m.display or ""))
                found.append(Ingredient(best.token, best.display, component.strength, self._covers(best.token)))
        if not found:
            return None
        system = found[0].token.split("|", 1)[0]
        form = parsed.dose_form
        if form:  # as the maps spell it ("oral tablet" -> "Oral Tablet")
            form = self._form_spelling().get(f"{system}|{form.lower()}", form)
        return Product(tuple(found), form, f"{system}|{form}" if form else None)

    def _form_spelling(self) -> dict[str, str]:
        if self._forms is None:
            self._forms = {f"{e.source_system}|{e.code.lower()}": e.code for e in self.maps.elements}
        return self._forms

    def _name_index(self) -> list[tuple[re.Pattern[str], Ingredient]]:
        if self._names is None:
            by_name: dict[str, Ingredient] = {}
            for element in self.maps.elements:
                for t in element.targets:
                    if t.system == element.source_system and t.display and t.display.strip():
                        by_name.setdefault(t.display.strip().lower(), Ingredient(t.token, t.display, None))
            self._names = [(re.compile(r"(?<![\w-])" + re.escape(name) + r"(?![\w-])"), ing)
                           for name, ing in sorted(by_name.items(), key=lambda kv: -len(kv[0]))]
        return self._names

    # ---- lint -------------------------------------------------------------------------------

    def lint(self) -> list[tuple[str, str, str]]:
        """(file, path, message) for every strength or dose form the maps cannot be used with."""
        problems = []
        for element in self.maps.elements:
            for t in element.targets:
                strength = t.property(PROP_STRENGTH)
                if strength and parse_strength(strength[0]) is None:
                    problems.append((t.file, strength[1], f"strength {strength[0]!r} must be '<decimal> <UCUM unit>' "
                                                          "(e.g. '50 mg', '10 mg/mL'; UCUM is case-sensitive)"))
                form = t.property(PROP_DOSE_FORM)
                if form and not self.maps.listed(f"{element.source_system}|{form[0]}"):
                    problems.append((t.file, form[1], f"dose form {form[0]!r} is not listed in any dose-form -> route "
                                                      "ConceptMap (list it, with equivalence 'unmatched' if it has "
                                                      "no single route)"))
        return problems


def _named(text: str, names: list[tuple[re.Pattern[str], Ingredient]]) -> list[Ingredient]:
    """Ingredients named in `text` as whole words, longest names first, never two on the same words."""
    taken: list[tuple[int, int]] = []
    found: list[tuple[int, Ingredient]] = []
    for pattern, ingredient in names:
        for match in pattern.finditer(text):
            span = match.span()
            if all(span[1] <= a or span[0] >= b for a, b in taken):
                taken.append(span)
                if all(f.token != ingredient.token for _, f in found):
                    found.append((span[0], ingredient))
    return [ingredient for _, ingredient in sorted(found, key=lambda item: item[0])]
