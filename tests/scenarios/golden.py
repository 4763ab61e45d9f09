"""Golden responses: comparing a scenario's answer with its reviewed golden file, and updating it.

`UPDATE_GOLDEN=1` rewrites the golden files from the service's answers after a reviewed content
change. Before a file is written its change is described card by card and field by field
(case, card rule and summary, field path, old -> new) and the descriptions are printed at the end
of the run, so the change can be read before it is committed. Updating refuses to run when `CI` is
set (tests/conftest.py): on CI a golden is only ever compared, never written.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Change descriptions of this run, printed by tests/conftest.py's terminal summary.
UPDATES: list[str] = []
_SHOWN = 160
ABSENT = object()  # a field on one side only


def updating() -> bool:
    return os.environ.get("UPDATE_GOLDEN") == "1"


def refusal() -> str | None:
    """Why updating may not run here, or None."""
    if updating() and os.environ.get("CI"):
        return "UPDATE_GOLDEN=1 refuses to run when CI is set: goldens are written locally, reviewed and committed"
    return None


def _shown(value: Any) -> str:
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


def _card_key(card: dict) -> str:
    return (card.get("source") or {}).get("topic", {}).get("code") or card.get("uuid") or "?"


def _keyed(cards: list[dict]) -> dict[str, dict]:
    """Cards by rule; a rule with several cards gets #2, #3 ... in response order."""
    out: dict[str, dict] = {}
    for card in cards:
        key, n = _card_key(card), 1
        while (f"{key}#{n}" if n > 1 else key) in out:
            n += 1
        out[f"{key}#{n}" if n > 1 else key] = card
    return out


def describe(case: str, old: dict | None, new: dict) -> list[str]:
    """A readable description of the change from `old` golden to `new` answer (empty: no change)."""
    if old is None:
        return [f"{case}: new golden, {len(new.get('cards', []))} card(s): "
                + ", ".join(f"{k} {c.get('summary', '')!r}" for k, c in _keyed(new.get("cards", [])).items())]
    lines = []
    before, after = _keyed(old.get("cards", [])), _keyed(new.get("cards", []))
    for key in [*before, *(k for k in after if k not in before)]:
        if key not in after:
            lines.append(f"  - card {key} {before[key].get('summary', '')!r} no longer shown")
        elif key not in before:
            lines.append(f"  + card {key} {after[key].get('summary', '')!r} now shown")
        else:
            changes = list(field_changes(before[key], after[key]))
            if changes:
                lines.append(f"  ~ card {key} {after[key].get('summary', '')!r}")
                lines += [f"      {where}: {_shown(a)} -> {_shown(b)}" for where, a, b in changes]
    if [_card_key(c) for c in old.get("cards", [])] != [_card_key(c) for c in new.get("cards", [])] and not any(
            line.startswith(("  -", "  +")) for line in lines):
        lines.append(f"  order of cards: {[_card_key(c) for c in old.get('cards', [])]} -> "
                     f"{[_card_key(c) for c in new.get('cards', [])]}")
    rest_old = {k: v for k, v in old.items() if k != "cards"}
    rest_new = {k: v for k, v in new.items() if k != "cards"}
    lines += [f"  response {where}: {_shown(a)} -> {_shown(b)}" for where, a, b in field_changes(rest_old, rest_new)]
    return [f"{case}:", *lines] if lines else []


def update(case: str, golden: Path, response: dict) -> None:
    """Describe the change to `golden`, then write `response` there (only when it differs)."""
    old = json.loads(golden.read_text(encoding="utf-8")) if golden.exists() else None
    description = describe(case, old, response)
    if description:
        UPDATES.extend(description)
        golden.write_text(json.dumps(response, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
