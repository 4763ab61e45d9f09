"""UCUM unit conversion (http://unitsofmeasure.org) for `inUnit()`, `dose()` and `dailyDose()`.

Conversion factors come from ucumvert (the full UCUM grammar on pint) and are cached per
unit pair, so the hot path does no parsing.  Only multiplicative conversions are allowed:
incompatible dimensions (mg -> mL) and offset units (Cel, [degF]) raise UnitError.
Spellings that are not UCUM ("lbs", "mg/dl") are mapped to UCUM first by `units`.
"""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ucumvert import PintUcumRegistry  # ships no types: Any to the checker


class UnitError(ValueError):
    pass


@lru_cache(maxsize=1)
def _registry() -> PintUcumRegistry:
    from ucumvert import PintUcumRegistry

    return PintUcumRegistry()


@lru_cache(maxsize=4096)
def is_unit(unit: str) -> bool:
    """Whether `unit` is a valid UCUM unit expression (case-sensitive, as UCUM is)."""
    if not isinstance(unit, str) or not unit:
        return False
    try:
        _registry().from_ucum(unit)
    except Exception:
        return False
    return True


def convertible(from_unit: str, to_unit: str) -> bool:
    """Whether `factor(from_unit, to_unit)` exists (same dimension, no offset)."""
    try:
        factor(from_unit, to_unit)
    except UnitError:
        return False
    return True


def factor(from_unit: str, to_unit: str) -> Decimal:
    """Multiplier that turns a value in `from_unit` into `to_unit` (UnitError when there is none)."""
    result = _factor(from_unit, to_unit)
    if isinstance(result, str):
        raise UnitError(result)
    return result


@lru_cache(maxsize=4096)
def _factor(from_unit: str, to_unit: str) -> Decimal | str:
    """The factor, or why there is none: failures are cached too (parsing is the slow part)."""
    if from_unit == to_unit:
        return Decimal(1)
    reg = _registry()
    try:
        src = reg.from_ucum(from_unit)
        dst = reg.from_ucum(to_unit)
    except Exception as exc:
        return f"not a UCUM unit: {exc}"
    if not (getattr(src, "_ok_for_muldiv", True) and getattr(dst, "_ok_for_muldiv", True)):
        return f"cannot convert offset unit {from_unit!r} to {to_unit!r}"
    try:
        value = (1 * src).to(dst).magnitude
    except Exception:
        return f"cannot convert {from_unit!r} to {to_unit!r}: incompatible units"
    return Decimal(f"{float(value):.15g}")


@lru_cache(maxsize=4096)
def molar_factor(from_unit: str, to_unit: str, molar_mass: Decimal) -> Decimal:
    """Multiplier between a substance-amount unit and a mass unit (either way) for a molar mass
    in g/mol, e.g. creatinine umol/L -> mg/dL with 113.12 g/mol."""
    try:
        return factor(from_unit, to_unit)
    except UnitError:
        pass
    reg = _registry()
    try:
        src, dst = 1 * reg.from_ucum(from_unit), reg.from_ucum(to_unit)
        mass = float(molar_mass) * reg.from_ucum("g") / reg.from_ucum("mol")
    except Exception as exc:
        raise UnitError(f"not a UCUM unit: {exc}") from None
    for candidate in (src * mass, src / mass):
        try:
            return Decimal(f"{float(candidate.to(dst).magnitude):.15g}")
        except Exception:
            continue
    raise UnitError(f"cannot convert {from_unit!r} to {to_unit!r}, even with molar mass {molar_mass} g/mol")


def convert(value: Decimal, from_unit: str, to_unit: str, molar_mass: Decimal | None = None) -> Decimal:
    if molar_mass is None:
        return Decimal(value) * factor(from_unit, to_unit)
    return Decimal(value) * molar_factor(from_unit, to_unit, Decimal(molar_mass))
