"""What changed between two CDS Hooks responses, said card by card and field by field.

A card is named by its rule (`source.topic.code`; a rule with several cards gets #2, #3 ...) and its
summary; a field by its path inside the card (`suggestions[0].actions[1].resource.dosageInstruction[0].text`);
`<absent>` is a field on one side only; long values are cut.  Used for a failing scenario case and
before a golden file is written (plandefinitions/tests/README.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

_SHOWN = 160
ABSENT = object()  # a field on one side only


def shown(value: Any) -> str:
    if value is ABSENT:
        return "<absent>"
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def field_changes(old: Any, new: Any, path: str = "") -> Iterator[tuple[str, Any, Any]]:
    """(field path, old, new) for every leaf that differs; a missing side is `ABSENT`."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in [*old, *(k for k in new if k not in old)]:
            where = f"{path}.{key}" if path else key
            if key not in new:
                yield where, old[key], ABSENT
            elif key not in old:
                yield where, ABSENT, new[key]
            else:
                yield from field_changes(old[key], new[key], where)
    elif isinstance(old, list) and isinstance(new, list):
        for i in range(max(len(old), len(new))):
            where = f"{path}[{i}]"
            if i >= len(new):
                yield where, old[i], ABSENT
            elif i >= len(old):
                yield where, ABSENT, new[i]
            else:
                yield from field_changes(old[i], new[i], where)
    elif old != new:
        yield path, old, new


def card_key(card: dict) -> str:
    return str((card.get("source") or {}).get("topic", {}).get("code") or card.get("uuid") or "?")


def keyed(cards: list[dict]) -> dict[str, dict]:
    """Cards by rule; a rule with several cards gets #2, #3 ... in response order."""
    out: dict[str, dict] = {}
    for card in cards:
        key, n = card_key(card), 1
        while (f"{key}#{n}" if n > 1 else key) in out:
            n += 1
        out[f"{key}#{n}" if n > 1 else key] = card
    return out


def describe(case: str, old: dict | None, new: dict) -> list[str]:
    """A readable description of the change from `old` (the golden) to `new` (the answer); empty: none."""
    if old is None:
        return [f"{case}: new golden, {len(new.get('cards', []))} card(s): "
                + ", ".join(f"{k} {c.get('summary', '')!r}" for k, c in keyed(new.get("cards", [])).items())]
    lines = []
    before, after = keyed(old.get("cards", [])), keyed(new.get("cards", []))
    for key in [*before, *(k for k in after if k not in before)]:
        if key not in after:
            lines.append(f"  - card {key} {before[key].get('summary', '')!r} no longer shown")
        elif key not in before:
            lines.append(f"  + card {key} {after[key].get('summary', '')!r} now shown")
        else:
            changes = list(field_changes(before[key], after[key]))
            if changes:
                lines.append(f"  ~ card {key} {after[key].get('summary', '')!r}")
                lines += [f"      {where}: {shown(a)} -> {shown(b)}" for where, a, b in changes]
    order_old = [card_key(c) for c in old.get("cards", [])]
    order_new = [card_key(c) for c in new.get("cards", [])]
    if order_old != order_new and not any(line.startswith(("  -", "  +")) for line in lines):
        lines.append(f"  order of cards: {order_old} -> {order_new}")
    rest_old = {k: v for k, v in old.items() if k != "cards"}
    rest_new = {k: v for k, v in new.items() if k != "cards"}
    lines += [f"  response {where}: {shown(a)} -> {shown(b)}" for where, a, b in field_changes(rest_old, rest_new)]
    return [f"{case}:", *lines] if lines else []
