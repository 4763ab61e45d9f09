"""Unit strings as EHRs send them, mapped to UCUM (http://unitsofmeasure.org) before conversion.

Rules:
- A Quantity whose `system` is UCUM and that has a `code` is taken as it is (FHIR R4 §2.24.0.9);
  so is a `code` without a system, unless the table below knows its spelling ("Kg").
- Otherwise its `unit` is looked up in a small table
  of unambiguous spellings ("lbs", "Kg", "inches", "mg/dl", "mcg", "gm", ...), case-insensitively;
  a compound "a/b" maps part by part.  A string the table does not know is used when it is a
  valid UCUM unit, so "mm[Hg]" and "10*3/uL" pass.  The table goes first because some spellings
  are valid UCUM with another meaning ("MG" would be megagauss).
- Counts of solid doses: the UCUM annotations {pill} {tablet} {tbl} {tab} {capsule} {cap} (and
  plurals), unity "1", and the strings "tablet(s)", "tab", "capsule", "pill", "each" are counts;
  the words map to an annotation ("tablet" -> "{tablet}") so every result is UCUM.
- Anything else is not understood: `ucum_unit` returns None, never a guess.  Ambiguous
  spellings ("m", "U", "gr") are deliberately absent.
"""

from __future__ import annotations

from service.engine import ucum
from service.engine.fhirjson import Element

UCUM_SYSTEM = "http://unitsofmeasure.org"

# Lower-cased spelling -> UCUM code (one simple unit; compounds are mapped part by part).
_SIMPLE = {
    # mass
    **dict.fromkeys(("kg", "kgs", "kilogram", "kilograms", "kilo", "kilos"), "kg"),
    **dict.fromkeys(("g", "gm", "gms", "gram", "grams", "gramme", "grammes"), "g"),
    **dict.fromkeys(("mg", "mgs", "milligram", "milligrams", "milligramme", "milligrammes"), "mg"),
    **dict.fromkeys(("mcg", "ug", "µg", "μg", "microgram", "micrograms"), "ug"),
    **dict.fromkeys(("ng", "nanogram", "nanograms"), "ng"),
    **dict.fromkeys(("lb", "lbs", "pound", "pounds", "[lb_av]"), "[lb_av]"),
    **dict.fromkeys(("oz", "ounce", "ounces", "[oz_av]"), "[oz_av]"),
    # length
    **dict.fromkeys(("cm", "cms", "centimeter", "centimeters", "centimetre", "centimetres"), "cm"),
    **dict.fromkeys(("mm", "millimeter", "millimeters", "millimetre", "millimetres"), "mm"),
    **dict.fromkeys(("meter", "meters", "metre", "metres"), "m"),
    **dict.fromkeys(("in", "inch", "inches", "[in_i]"), "[in_i]"),
    **dict.fromkeys(("ft", "foot", "feet", "[ft_i]"), "[ft_i]"),
    # volume
    **dict.fromkeys(("ml", "mls", "cc", "milliliter", "milliliters", "millilitre", "millilitres"), "mL"),
    **dict.fromkeys(("l", "liter", "liters", "litre", "litres"), "L"),
    **dict.fromkeys(("dl", "deciliter", "deciliters", "decilitre", "decilitres"), "dL"),
    **dict.fromkeys(("ul", "µl", "μl", "microliter", "microliters", "microlitre", "microlitres"), "uL"),
    # amount of substance
    "mol": "mol", "mmol": "mmol", "nmol": "nmol", "meq": "meq",
    **dict.fromkeys(("umol", "µmol", "μmol"), "umol"),
    # pressure, fraction, international units
    **dict.fromkeys(("mmhg", "mm hg", "mm[hg]"), "mm[Hg]"),
    "kpa": "kPa",
    **dict.fromkeys(("%", "percent"), "%"),
    **dict.fromkeys(("iu", "[iu]"), "[iU]"),
}

# Counts of a solid dose form: lower-cased spelling -> the UCUM annotation it stands for.
_COUNT_WORDS = {
    **dict.fromkeys(("tablet", "tablets", "tablet(s)", "tab", "tabs", "tab(s)", "tbl"), "{tablet}"),
    **dict.fromkeys(("capsule", "capsules", "capsule(s)", "cap", "caps", "cap(s)"), "{capsule}"),
    **dict.fromkeys(("pill", "pills", "pill(s)"), "{pill}"),
    **dict.fromkeys(("each", "ea"), "1"),
}
COUNT_UNITS = frozenset({
    "{pill}", "{pills}", "{tablet}", "{tablets}", "{tbl}", "{tab}", "{tabs}",
    "{capsule}", "{capsules}", "{cap}", "{caps}", "1",
})


def spelling(text: str) -> str | None:
    """The UCUM code of a unit string from the table (simple or "a/b"), or None."""
    key = " ".join(text.strip().lower().split())
    if key in _SIMPLE:
        return _SIMPLE[key]
    if key in _COUNT_WORDS:
        return _COUNT_WORDS[key]
    if "/" in key:
        parts = [p.strip() for p in key.split("/")]
        mapped = [_SIMPLE[p] for p in parts if p in _SIMPLE]
        if len(parts) == 2 and len(mapped) == 2:
            return "/".join(mapped)
    return None


def to_ucum(text: str) -> str | None:
    """A unit string (no system) as UCUM: the table first, then the string itself if it is UCUM."""
    if not isinstance(text, str) or not text.strip():
        return None
    return spelling(text) or (text.strip() if ucum.is_unit(text.strip()) else None)


def usual_ucum(unit: str) -> str | None:
    """For content: `unit` itself when it is UCUM in its usual spelling; else None."""
    if not isinstance(unit, str) or not ucum.is_unit(unit):
        return None
    usual = spelling(unit)
    return unit if usual in (None, unit) or is_count(usual) else None


def ucum_unit(quantity: Element) -> str | None:
    """The UCUM unit of a FHIR Quantity (see the module rules), or None when not understood."""
    system, code, unit = quantity.get("system"), quantity.get("code"), quantity.get("unit")
    if system == UCUM_SYSTEM and isinstance(code, str) and code:
        return code
    if system is None and isinstance(code, str) and code:
        return spelling(code) or code
    return to_ucum(unit) if isinstance(unit, str) else None


def raw_unit(quantity: Element) -> str | None:
    """The unit as sent (for messages): the code, else the unit string."""
    for key in ("code", "unit"):
        value = quantity.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def is_count(unit: str | None) -> bool:
    """Whether a UCUM unit (as `ucum_unit` returns) is a count of tablets, capsules or pills."""
    return isinstance(unit, str) and unit.lower() in COUNT_UNITS


def count_noun(unit: str) -> str:
    """"tablets", "capsules" or "units": what a count unit counts (for messages)."""
    lowered = unit.lower()
    if "cap" in lowered:
        return "capsules"
    if lowered == "1":
        return "units"
    return "tablets"
