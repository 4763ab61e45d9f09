"""Native DateTime ± Quantity (service/engine/fhirpath_datetime.py) against fhirpathpy's own `+`/`-`.

The native path must give fhirpathpy's string to the character wherever it takes a case, and must
decline (None) every case it does not take, so that fhirpathpy answers those.  Proved on generated
values: zones Z, +hh:mm and -hh:mm and none, with and without seconds and fractions of 1-6 digits,
every time unit in both spellings, negative and fractional values, across month, year and leap-day
boundaries; and on the forms fhirpathpy computes otherwise (dates, months, years).
"""

from __future__ import annotations

import random
from decimal import Decimal

import pytest
from fhirpathpy.engine.invocations.math import minus, plus
from fhirpathpy.engine.nodes import FP_DateTime, FP_Quantity

from service.engine.fhirpath_datetime import shifted

UNITS = ["day", "days", "week", "weeks", "hour", "hours", "minute", "minutes", "second", "seconds",
         "millisecond", "milliseconds"]
ZONES = ["Z", "+00:00", "+05:30", "-08:00", "+14:00", "-12:00", ""]


def _moment(rnd: random.Random) -> str:
    year = rnd.choice([1999, 2000, 2024, 2026, 2027, 9999, 1000])
    month, day = rnd.randint(1, 12), rnd.randint(1, 28)
    if rnd.random() < 0.2:
        month, day = rnd.choice([(2, 29), (12, 31), (1, 1), (3, 1), (2, 28)])
        year = 2024 if (month, day) == (2, 29) else year
    text = f"{year:04d}-{month:02d}-{day:02d}T{rnd.randint(0, 23):02d}:{rnd.randint(0, 59):02d}"
    if rnd.random() < 0.9:
        text += f":{rnd.randint(0, 59):02d}"
        if rnd.random() < 0.7:
            text += "." + "".join(rnd.choice("0123456789") for _ in range(rnd.randint(1, 6)))
    return text + rnd.choice(ZONES)


def _fhirpathpy(op, moment: str, quantity: FP_Quantity) -> str | None:
    try:
        return op({}, [FP_DateTime(moment)], [quantity])
    except Exception:  # noqa: BLE001  (fhirpathpy raises for forms it cannot compute)
        return None


def test_native_answer_is_fhirpathpy_answer_on_generated_values():
    rnd = random.Random(20261128)
    taken = 0
    for _ in range(6000):
        moment = _moment(rnd)
        value = rnd.choice([rnd.randint(-400, 400), round(rnd.uniform(-50, 50), 2), Decimal("1.5"), 0, 90, 365])
        quantity = FP_Quantity(value, rnd.choice(UNITS))
        for op, sign in ((plus, 1), (minus, -1)):
            native = shifted(FP_DateTime(moment), quantity, sign)
            if native is None:
                continue
            taken += 1
            assert native == _fhirpathpy(op, moment, quantity), (moment, op.__name__, value, quantity.unit)
    assert taken > 5000  # most generated values reach the native path (precision 7)


@pytest.mark.parametrize("moment, unit", [
    ("2026-03-01", "days"),  # a date: calendar arithmetic at day precision
    ("2026-03", "days"), ("2026", "days"),
    ("2026-03-01T10:00:00.000+00:00", "months"), ("2026-03-01T10:00:00.000+00:00", "years"),
    ("2026-03-01T10:00:00.1234567Z", "days"),  # a fraction fhirpathpy's strptime cannot read
    ("2026-03-01T10Z", "hours"),
])
def test_other_forms_are_left_to_fhirpathpy(moment, unit):
    assert shifted(FP_DateTime(moment), FP_Quantity(30, unit), -1) is None


def test_only_datetime_and_quantity_are_taken():
    assert shifted("2026-03-01T10:00:00Z", FP_Quantity(1, "day"), 1) is None
    assert shifted(FP_DateTime("2026-03-01T10:00:00Z"), 5, 1) is None
    assert shifted(FP_DateTime("2026-03-01T10:00:00Z"), FP_Quantity(1, "mg"), 1) is None


def test_the_fast_path_uses_it_and_answers_as_fhirpathpy(monkeypatch):
    """Through the gateway: `%now - 30 days` on the compiled path is the native answer, and equals
    fhirpathpy's tree walker's."""
    from datetime import UTC, datetime

    from service.engine import fhirpath_compiled
    from service.engine.fhirpath import Evaluation, Expression
    from service.engine.index import DataIndex

    calls = []
    real = fhirpath_compiled.shifted
    monkeypatch.setattr(fhirpath_compiled, "shifted", lambda *a: calls.append(a) or real(*a))
    expression = Expression("%now - 30 days")  # compiled after the patch: the wrapper binds the module name
    evaluation = Evaluation(datetime(2026, 3, 1, 10, 0, 0, 123000, tzinfo=UTC), DataIndex())
    node, _ = expression._root
    walked = expression._run(evaluation, (node, None), {}, {}, None)
    assert expression.evaluate(evaluation, {}, {}) == walked == ["2026-01-30T10:00:00.123+00:00"]
    assert calls
