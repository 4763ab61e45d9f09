"""Fail visible, for every critical rule: when a critical rule cannot be evaluated, the clinician sees
a critical card saying it could not be checked; the rule never just disappears.

For each critical (stat) card action of the content, a copy of the content is made in which that
action's applicability cannot be decided (its condition starts with an operand that is a FHIRPath
type error), and a scenario case in which the rule fires is run against it.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime

import pytest

from tests.conftest import CONTENT
from tests.scenarios.cases import CASES, golden_path

BROKEN = "(('unreadable' + 1) > 0)"


def critical_actions() -> list[tuple[str, str, str]]:
    """(plan file, action id, rule code) of every critical card action."""
    out = []
    for plan_file in sorted(CONTENT.glob("PlanDefinition-*.json")):
        stack = list(json.loads(plan_file.read_text()).get("action", []))
        while stack:
            action = stack.pop(0)
            if action.get("priority") == "stat" and action.get("title") and action.get("condition"):
                code = action["code"][0]["coding"][0]["code"]
                out.append((plan_file.name, action["id"], code))
            stack += action.get("action", [])
    return out


def a_case_where(action_id: str, rule: str):
    for path in CASES:
        golden = json.loads(golden_path(path).read_text())
        case = json.loads(path.read_text())
        if any(c["source"]["topic"]["code"] == rule and c["indicator"] == "critical" for c in golden["cards"]):
            return case, golden
    return None, None


def _break(plan: dict, action_id: str) -> None:
    stack = list(plan["action"])
    while stack:
        action = stack.pop(0)
        if action["id"] == action_id:
            cond = action["condition"][0]["expression"]
            cond["expression"] = f"{BROKEN} and ({cond['expression']})"
            return
        stack += action.get("action", [])
    raise AssertionError(f"no action {action_id}")


@pytest.mark.parametrize("plan_file,action_id,rule", critical_actions(), ids=lambda v: str(v))
def test_a_critical_rule_that_cannot_be_evaluated_is_announced_as_critical(plan_file, action_id, rule, tmp_path):
    from service.app import create_app
    from service.content import load_folder

    case, golden = a_case_where(action_id, rule)
    if case is None:
        pytest.fail(f"no scenario case shows {rule} ({action_id}) firing: add one")
    folder = tmp_path / "content"
    shutil.copytree(CONTENT, folder, ignore=shutil.ignore_patterns("tests"))
    plan = json.loads((folder / plan_file).read_text())
    _break(plan, action_id)
    (folder / plan_file).write_text(json.dumps(plan))
    content = load_folder(folder)
    now = datetime.fromisoformat(case["now"].replace("Z", "+00:00"))
    app = create_app({"database_url": f"sqlite:///{tmp_path / 'f.sqlite3'}"}, clock=lambda: now, content=content)
    cards = app.test_client().post(f"/cds-services/{case['service']}", json=case["request"]).get_json()["cards"]

    topics = [c["source"]["topic"]["code"] for c in cards]
    notices = [c for c in cards if c["source"]["topic"]["code"] == "not-evaluated"]
    assert len(notices) == 1, topics
    assert notices[0]["indicator"] == "critical"
    original = next(c for c in golden["cards"] if c["source"]["topic"]["code"] == rule)
    name = original["source"]["topic"].get("display")
    if name:
        assert f"- {name}" in notices[0]["detail"]
    # the broken rule's own card is gone (fail closed); every other card of the case is unchanged
    assert [c for c in cards if c is not notices[0]] == [c for c in golden["cards"] if c["uuid"] != original["uuid"]]
