"""RxNorm normalized drug names, parsed (RxNorm Technical Documentation §"Normalized names").

A clinical or branded drug is named "<ingredient> <strength> <unit> [/ <ingredient> <strength>
<unit> ...] <dose form> [<brand>]", optionally preceded by a quantity factor ("1 ML ...",
"24 HR ..."):

    "Cyclophosphamide 50 MG Oral Tablet"
    "predniSONE 20 MG Oral Tablet [Deltasone]"
    "sulfamethoxazole 800 MG / trimethoprim 160 MG Oral Tablet"
    "1 ML rituximab 10 MG/ML Injection"

`parse` splits such a name into components (ingredient text, strength) and the dose form.
Packs ("{21 (...) / 7 (...) } Pack") and names that do not follow the pattern give one
component with no strength, so only identity can be taken from them.  Nothing here knows a
drug: which ingredient a component names is decided by the content's ConceptMaps.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from service.engine import units

_BRAND = re.compile(r"\s*\[[^\]]*\]\s*$")
_QUANTITY = re.compile(r"^\d+(?:\.\d+)?\s+[A-Za-z]+\s+(?=[^\d\s])")
_COMPONENT = re.compile(
    r"^(?P<name>.*?\S)\s+(?P<value>\d+(?:\.\d+)?|\.\d+)\s+(?P<unit>[A-Za-z%]+(?:/[A-Za-z]+)?)(?:\s+(?P<rest>\S.*))?$")


@dataclass(frozen=True)
class Component:
    text: str  # the ingredient as named ("predniSONE", "methylprednisolone sodium succinate")
    strength: tuple[Decimal, str] | None  # (value, UCUM unit), None when absent or not UCUM


@dataclass(frozen=True)
class ParsedName:
    components: tuple[Component, ...]
    dose_form: str | None


def parse(name: str) -> ParsedName | None:
    if not isinstance(name, str) or not name.strip():
        return None
    text = _BRAND.sub("", " ".join(name.split()))
    if text.startswith("{"):  # a pack: identity only
        return ParsedName((Component(text, None),), None)
    text = _QUANTITY.sub("", text, count=1)
    parts = [p.strip() for p in text.split(" / ")]
    components: list[Component] = []
    dose_form = None
    for i, part in enumerate(parts):
        match = _COMPONENT.match(part)
        if match is None:
            return ParsedName((Component(text, None),), None)
        if match.group("rest"):
            if i != len(parts) - 1:  # a dose form only ends the name
                return ParsedName((Component(text, None),), None)
            dose_form = match.group("rest")
        components.append(Component(match.group("name"), _strength(match.group("value"), match.group("unit"))))
    return ParsedName(tuple(components), dose_form)


def _strength(value: str, unit: str) -> tuple[Decimal, str] | None:
    code = units.spelling(unit)
    if code is None or units.is_count(code):
        return None
    try:
        return Decimal(value), code
    except InvalidOperation:
        return None
