"""DateTime ± time-valued Quantity at Python speed, with fhirpathpy's exact answer (FHIRPath N1
§6.6.7 Date/Time Arithmetic; fhirpathpy `math.plus`/`math.minus` -> `FP_TimeBase.plus`).

Rules:
- Only the case the content meets on every call is taken here: one FP_DateTime of fhirpathpy's
  precision 7 (a date and time to the millisecond or second with its zone: `%now - 30 days`) plus
  or minus one FP_Quantity in days, weeks, hours, minutes, seconds or milliseconds.  fhirpathpy
  answers that by normalising the value to UTC, adding a timedelta of the quantity's value cut to
  an integer, and writing the result at millisecond precision with `+00:00`; this does the same
  with `datetime` arithmetic alone, without its string round trips.
- Anything else (years and months, which need calendar arithmetic; other precisions; a year
  outside 1000-9999, which `strftime` would not pad; a fraction of more than six digits, which
  fhirpathpy rejects) answers None, and the caller uses fhirpathpy's own operator.
The answer is proved equal to fhirpathpy's on generated values in tests/engine/test_fhirpath_fast_path.py.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fhirpathpy.engine.nodes import FP_DateTime, FP_Quantity

# fhirpathpy's FP_Quantity._arithmetic_duration_units for the units added as a timedelta at precision 7.
_STEP = {
    "week": timedelta(days=7), "weeks": timedelta(days=7),
    "day": timedelta(days=1), "days": timedelta(days=1),
    "hour": timedelta(hours=1), "hours": timedelta(hours=1),
    "minute": timedelta(minutes=1), "minutes": timedelta(minutes=1),
    "second": timedelta(seconds=1), "seconds": timedelta(seconds=1),
    "millisecond": timedelta(milliseconds=1), "milliseconds": timedelta(milliseconds=1),
}
_PRECISION = 7  # fhirpathpy's count of the parts present, a zone with a sign not counted


def shifted(moment: Any, quantity: Any, sign: int) -> str | None:
    """`moment + sign * quantity` as fhirpathpy writes it, or None when this case is not taken."""
    if type(moment) is not FP_DateTime or type(quantity) is not FP_Quantity:
        return None
    step = _STEP.get(quantity.unit)
    if step is None or moment._precision != _PRECISION:
        return None
    year, month, day, hour, minute, second, fraction, zone = moment._getMatchAsList()
    if None in (month, day, hour) or (fraction is not None and len(fraction) > 6):
        return None
    try:
        at = datetime(int(year), int(month), int(day), int(hour), int(minute or 0), int(second or 0),
                      int((fraction or "0").ljust(6, "0")))
    except ValueError:  # a year 0000, or a day the calendar has not: left to fhirpathpy
        return None
    try:
        if zone and zone != "Z":
            offset = timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
            at = at - offset if zone[0] == "+" else at + offset
        at += step * int(sign * quantity.value)  # fhirpathpy: int() of the (negated) value
    except OverflowError:  # beyond year 9999
        return None
    if not 1000 <= at.year <= 9999:
        return None
    return (f"{at.year:04d}-{at.month:02d}-{at.day:02d}T{at.hour:02d}:{at.minute:02d}:{at.second:02d}"
            f".{at.microsecond // 1000:03d}+00:00")
