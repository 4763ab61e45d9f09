"""UPDATE_GOLDEN=1: a golden's change is described card by card and field by field before it is
written, and updating refuses to run under CI (tests/scenarios/golden.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import ROOT
from tests.scenarios import golden


def card(rule: str, summary: str, **more) -> dict:
    return {"summary": summary, "indicator": "warning", "source": {"label": "KDIGO", "topic": {"code": rule}}, **more}


OLD = {"cards": [
    card("DAH-01", "Start pulse", suggestions=[{"label": "Order methylprednisolone 1000 mg",
                                                "actions": [{"type": "create", "description": "Add order"}]}]),
    card("DAH-16", "Measure oxygenation"),
]}


def test_a_changed_field_is_named_by_case_card_and_path_with_old_and_new():
    new = json.loads(json.dumps(OLD))
    new["cards"][0]["suggestions"][0]["label"] = "Order methylprednisolone 500 mg"
    assert golden.describe("DAH-01/p1", OLD, new) == [
        "DAH-01/p1:",
        "  ~ card DAH-01 'Start pulse'",
        "      suggestions[0].label: 'Order methylprednisolone 1000 mg' -> 'Order methylprednisolone 500 mg'",
    ]


def test_cards_shown_and_no_longer_shown_and_fields_added_are_listed():
    new = {"cards": [card("DAH-01", "Start pulse", detail="Now.", suggestions=OLD["cards"][0]["suggestions"]),
                     card("SAFE-PCP", "Start prophylaxis")]}
    assert golden.describe("c", OLD, new) == [
        "c:",
        "  ~ card DAH-01 'Start pulse'",
        "      detail: <absent> -> 'Now.'",
        "  - card DAH-16 'Measure oxygenation' no longer shown",
        "  + card SAFE-PCP 'Start prophylaxis' now shown",
    ]


def test_two_cards_of_one_rule_are_told_apart_and_a_new_order_is_reported():
    a, b = card("DC-AZA", "first"), card("DC-AZA", "second")
    assert golden.describe("c", {"cards": [a, b]}, {"cards": [a, b]}) == []
    assert golden.describe("c", {"cards": [a, OLD["cards"][1]]}, {"cards": [OLD["cards"][1], a]}) == [
        "c:", "  order of cards: ['DC-AZA', 'DAH-16'] -> ['DAH-16', 'DC-AZA']"]
    changed = golden.describe("c", {"cards": [a, b]}, {"cards": [a, card("DC-AZA", "other")]})
    assert changed[1:] == ["  ~ card DC-AZA#2 'other'", "      summary: 'second' -> 'other'"]


def test_update_writes_only_a_changed_golden_and_records_its_description(tmp_path):
    path = tmp_path / "x.response.json"
    path.write_text(json.dumps(OLD, indent=2) + "\n")
    before = len(golden.UPDATES)
    golden.update("c", path, OLD)
    assert len(golden.UPDATES) == before and json.loads(path.read_text()) == OLD
    new = {"cards": OLD["cards"][:1]}
    golden.update("c", path, new)
    assert golden.UPDATES[before:] == ["c:", "  - card DAH-16 'Measure oxygenation' no longer shown"]
    assert json.loads(path.read_text()) == new and path.read_text().endswith("}\n")
    del golden.UPDATES[before:]


def test_updating_refuses_to_run_under_ci():
    env = {**os.environ, "UPDATE_GOLDEN": "1", "CI": "true"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "tests/scenarios/test_golden_updates.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 4  # pytest's usage error: nothing collected, nothing written
    assert "UPDATE_GOLDEN=1 refuses to run when CI is set" in done.stderr + done.stdout
