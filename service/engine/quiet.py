"""A card action's quiet policy: when its card is not shown again (the project's cds-quiet-* extensions).

Rules (the content README, "Quiet cards", says the same for authors):
- `cds-quiet-after-override` (Duration): after a clinician overrode the rule's card, it stays quiet
  this long; with `cds-quiet-override-reason` (code, repeated) only an override giving one of those
  reason codes starts the window, and each code must be one of the action's own cds-override-reason
  codes.
- `cds-quiet-after-accept` (Duration): after a suggestion of the rule's card was accepted, while the
  order it proposed is active in the call's data, at most this long (the order check is the hooks
  layer's: service.hooks.orders and service.hooks.suppression; the engine only reads the policy).
- `cds-quiet-scope` (code): what the feedback must share with the call: `patient` (the default),
  `encounter` (patient and encounter) or `draft` (patient and the same unchanged draft orders).
- `cds-quiet-once-per-draft` (boolean): a card already shown at order-select is not shown again at
  order-sign for the same unchanged draft orders: the same card, of the rule and saying the same
  (matched by the hooks layer on what each card said: service.hooks.suppression), so a rule's card
  about another draft order is shown.
- A Duration is a positive number of UCUM seconds, minutes, hours, days or weeks (`s`, `min`, `h`,
  `d`, `wk`, system http://unitsofmeasure.org), at most MAX_QUIET; anything else fails at load,
  named by file and path.
- A critical card (priority `stat`) is never quiet because of an override: such a policy fails at
  load, and the call-time decision (service.hooks.suppression) checks the card's indicator again,
  since a dynamicValue may raise the priority.
- No extension: no policy (`None`), today's behaviour.
Pure: the policy is data, read by the hooks layer at call time.
"""

from __future__ import annotations

from datetime import timedelta

from service.engine.extensions import (
    EXT_OVERRIDE_REASON,
    EXT_QUIET_AFTER_ACCEPT,
    EXT_QUIET_AFTER_OVERRIDE,
    EXT_QUIET_ONCE_PER_DRAFT,
    EXT_QUIET_OVERRIDE_REASON,
    EXT_QUIET_SCOPE,
)
from service.engine.fhirjson import Element
from service.engine.model import ActionDef, QuietPolicy, Source
from service.engine.problems import Problems

UCUM = "http://unitsofmeasure.org"
UNITS = {"s": timedelta(seconds=1), "min": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1),
         "wk": timedelta(weeks=1)}
MAX_QUIET = timedelta(days=90)
SCOPES = ("patient", "encounter", "draft")
QUIET_EXTENSIONS = (EXT_QUIET_AFTER_OVERRIDE, EXT_QUIET_OVERRIDE_REASON, EXT_QUIET_AFTER_ACCEPT, EXT_QUIET_SCOPE,
                    EXT_QUIET_ONCE_PER_DRAFT)


def quiet_policy(raw: Element, path: str, file: str, problems: Problems) -> QuietPolicy | None:
    """The action's policy, None without any cds-quiet-* extension; errors reported to `problems`."""
    after_override = after_accept = None
    reasons: list[str] = []
    scope, once, found = "patient", False, False
    for i, ext in enumerate(raw.get("extension", [])):
        url = ext.get("url") if isinstance(ext, dict) else None
        if url not in QUIET_EXTENSIONS:
            continue
        found = True
        where = Source(file, f"{path}.extension[{i}]")
        if url == EXT_QUIET_AFTER_OVERRIDE:
            after_override = _duration(ext.get("valueDuration"), where, problems)
        elif url == EXT_QUIET_AFTER_ACCEPT:
            after_accept = _duration(ext.get("valueDuration"), where, problems)
        elif url == EXT_QUIET_OVERRIDE_REASON:
            code = ext.get("valueCode")
            if isinstance(code, str) and code:
                reasons.append(code)
            else:
                problems.error(Source(file, f"{where.path}.valueCode"), "cds-quiet-override-reason needs a valueCode")
        elif url == EXT_QUIET_SCOPE:
            scope = ext.get("valueCode")
            if scope not in SCOPES:
                problems.error(Source(file, f"{where.path}.valueCode"), f"cds-quiet-scope must be one of {SCOPES}")
        elif url == EXT_QUIET_ONCE_PER_DRAFT:
            once = ext.get("valueBoolean")
            if not isinstance(once, bool):
                problems.error(Source(file, f"{where.path}.valueBoolean"),
                               "cds-quiet-once-per-draft needs a valueBoolean")
                once = False
    if not found:
        return None
    _check(raw, path, file, problems, after_override, reasons)
    return QuietPolicy(after_override, frozenset(reasons), after_accept, scope if scope in SCOPES else "patient",
                       once)


def _check(raw: Element, path: str, file: str, problems: Problems, after_override: timedelta | None,
           reasons: list[str]) -> None:
    """The limits that hold across the extensions of one action."""
    src = Source(file, f"{path}.extension")
    if after_override is not None and raw.get("priority") == "stat":
        problems.error(src, "a critical card (priority stat) cannot be made quiet by an override "
                            "(cds-quiet-after-override)")
    if reasons and after_override is None:
        problems.error(src, "cds-quiet-override-reason needs cds-quiet-after-override on the same action")
    offered = {e["valueCoding"].get("code") for e in raw.get("extension", [])
               if isinstance(e, dict) and e.get("url") == EXT_OVERRIDE_REASON
               and isinstance(e.get("valueCoding"), dict)}
    for code in reasons:
        if code not in offered:
            problems.error(src, f"cds-quiet-override-reason {code!r} is not one of the action's override reasons "
                                f"(cds-override-reason codes: {sorted(c for c in offered if c)})")


def _duration(value: object, where: Source, problems: Problems) -> timedelta | None:
    src = Source(where.file, f"{where.path}.valueDuration")
    if not isinstance(value, dict):
        problems.error(src, "a valueDuration is required")
        return None
    number, code, system = value.get("value"), value.get("code"), value.get("system")
    if system != UCUM or code not in UNITS:
        problems.error(src, f"the duration must be in UCUM ({UCUM}) with code one of {sorted(UNITS)}")
        return None
    if isinstance(number, bool) or not isinstance(number, int | float) or number <= 0:
        problems.error(src, "the duration's value must be a positive number")
        return None
    duration = UNITS[code] * number
    if duration > MAX_QUIET:
        problems.error(src, f"the duration is longer than the longest quiet window allowed ({MAX_QUIET.days} d)")
        return None
    return duration


def rule_policies(actions: list[ActionDef]) -> dict[str, QuietPolicy]:
    """The quiet policy of each rule code of a plan's card actions (the first action of a code wins);
    made once, when the plan is compiled."""
    out: dict[str, QuietPolicy] = {}
    stack = list(reversed(actions))
    while stack:
        action = stack.pop()
        if action.quiet is not None:
            for cc in action.raw.get("code", []):
                for coding in cc.get("coding", []) if isinstance(cc, dict) else []:
                    if isinstance(coding, dict) and isinstance(coding.get("code"), str):
                        out.setdefault(coding["code"], action.quiet)
        stack.extend(reversed(action.children))
    return out
