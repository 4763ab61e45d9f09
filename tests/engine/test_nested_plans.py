"""A PlanDefinition applied by another's action (R4 §12.18.3.3: a definition that is a PlanDefinition is
applied and its result nested): per-hook service plans over one rules plan (service.engine.link.nest, apply)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from service.content import load_folder
from service.engine import ApplyContext, apply_plan
from service.engine.extensions import EXT_CDS_HOOKS_ENDPOINT, EXT_QUIET_AFTER_OVERRIDE
from service.errors import ContentErrors
from tests.engine.helpers import BASE, cond, library, plan, var, write

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
RULES = f"{BASE}/PlanDefinition/rules"


def hooks(*names: str) -> list[dict]:
    return [{"type": "named-event", "name": n} for n in names]


def card(aid: str, *trigger: str, condition: str | None = None, **extra) -> dict:
    action = {"id": aid, "title": f"card {aid}", "priority": "routine",
              "code": [{"coding": [{"system": f"{BASE}/CodeSystem/test-rules", "code": aid.upper()}]}], **extra}
    if trigger:
        action["trigger"] = hooks(*trigger)
    if condition:
        action["condition"] = [cond(condition)]
    return action


def service(sid: str, hook: str | None, nests: str = RULES, variables: list | None = None,
            condition: str | None = None) -> dict:
    """A service plan: its endpoint and one action applying `nests` for `hook`."""
    action: dict = {"id": f"{sid}-rules", "definitionCanonical": nests}
    if hook:
        action["trigger"] = hooks(hook)
    if condition:
        action["condition"] = [cond(condition)]
    pd = plan([action], variables, pid=sid)
    pd["extension"] = [{"url": EXT_CDS_HOOKS_ENDPOINT, "valueUri": sid}, *pd.get("extension", [])]
    return pd


LIB = library("facts", [var("level", "%observations.resources('Observation').count()")],
              data_requirements=[{"id": "observations", "type": "Observation"}])

RULES_PLAN = plan(
    [
        card("view", "patient-view"),
        card("sign", "order-sign"),
        card("both", "patient-view", "order-sign"),
        card("any"),  # no trigger: whatever the nesting action answers
        card("select", "order-select"),
    ],
    library=[f"{BASE}/Library/facts"],
    pid="rules",
)


@pytest.fixture
def content(tmp_path):
    return load_folder(write(tmp_path, LIB, RULES_PLAN, service("rules-patient-view", "patient-view"),
                             service("rules-order-sign", "order-sign")))


def applied(content, sid: str, hook: str | None, **data) -> list[str]:
    result = apply_plan(content, content.services[sid].plan if sid in content.services else content.plan(sid),
                        ApplyContext(now=NOW, subject="Patient/p1", hook=hook, data=data))
    return [a.id for top in result.actions for a in _cards(top)]


def _cards(action):
    if action.title:
        yield action
    else:
        for child in action.children:
            yield from _cards(child)


def test_each_service_runs_only_the_rules_its_hook_triggers(content):
    assert applied(content, "rules-patient-view", "patient-view") == ["view", "both", "any"]
    assert applied(content, "rules-order-sign", "order-sign") == ["sign", "both", "any"]


def test_without_a_hook_a_service_plan_still_runs_only_its_own_hooks_rules(content):
    # $apply on a service plan with no hook: its action answers patient-view only
    assert applied(content, "rules-patient-view", None) == ["view", "both", "any"]


def test_the_rules_plan_is_applied_on_its_own_for_any_hook(content):
    assert applied(content, "rules", None) == ["view", "sign", "both", "any", "select"]
    assert applied(content, "rules", "order-select") == ["any", "select"]


def test_the_rules_plan_is_not_a_service_and_needs_no_endpoint(content):
    assert sorted(content.services) == ["rules-order-sign", "rules-patient-view"]
    assert content.issues == []  # no profile warning for the rules plan only applied by others
    rules = content.plan("rules")
    assert rules.nested_in == [f"{BASE}/PlanDefinition/rules-order-sign", f"{BASE}/PlanDefinition/rules-patient-view"]


def test_the_rules_plan_served_directly_still_warns(tmp_path):
    content = load_folder(write(tmp_path, LIB, RULES_PLAN))
    assert sorted(content.services) == ["rules-order-select", "rules-order-sign", "rules-patient-view"]
    assert [i.source.file for i in content.issues if "split it per hook" in i.message] == ["PlanDefinition-rules.json"]


def test_a_service_asks_for_the_data_its_nested_rules_read(content):
    svc = content.services["rules-patient-view"]
    assert list(svc.plan.data_requirements) == ["observations"]


def test_ids_are_the_rules_plans_own_so_every_service_gives_a_rule_the_same_identity(content):
    result = apply_plan(content, content.services["rules-patient-view"].plan,
                        ApplyContext(now=NOW, subject="Patient/p1", hook="patient-view"))
    wrapper = result.actions[0]
    assert wrapper.title is None and wrapper.key == f"{BASE}/PlanDefinition/rules-patient-view#PlanDefinition.action[0]"
    assert [c.key for c in wrapper.children] == [f"{RULES}#PlanDefinition.action[{i}]" for i in (0, 2, 3)]
    nested = [e for e in result.trace if e.get("plan") == "rules"]
    assert [e["action"] for e in nested] == ["view", "both", "any"]


def test_the_nested_plan_reads_its_own_variables(tmp_path):
    """The service plan's %level is 100; the rules plan's (its Library's) counts the observations: each plan's
    expressions read their own."""
    obs = {"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Observation", "id": f"o{i}",
                                                             "status": "final", "code": {"text": "x"}}}
                                               for i in range(2)]}
    rules = plan([card("two", condition="%level = 2"), card("hundred", condition="%level = 100")],
                 library=[f"{BASE}/Library/facts"], pid="rules")
    svc = service("rules-patient-view", "patient-view", variables=[var("level", "100")], condition="%level = 100")
    content = load_folder(write(tmp_path, LIB, rules, svc))
    assert applied(content, "rules-patient-view", "patient-view", observations=obs) == ["two"]


def test_the_nesting_actions_condition_gates_the_nested_rules(tmp_path):
    svc = service("rules-patient-view", "patient-view", condition="%observations.exists()")
    content = load_folder(write(tmp_path, LIB, RULES_PLAN, svc))
    assert applied(content, "rules-patient-view", "patient-view") == []


def test_quiet_policies_of_the_nested_rules_are_the_services(tmp_path):
    quiet = card("view", "patient-view", extension=[
        {"url": EXT_QUIET_AFTER_OVERRIDE, "valueDuration": {
            "value": 24, "unit": "h", "system": "http://unitsofmeasure.org", "code": "h"}}])
    rules = plan([quiet], library=[f"{BASE}/Library/facts"], pid="rules")
    content = load_folder(write(tmp_path, LIB, rules, service("rules-patient-view", "patient-view")))
    assert set(content.services["rules-patient-view"].plan.quiet) == {"VIEW"}


def test_a_failed_variable_of_the_nested_plan_is_reported_as_not_evaluated(tmp_path):
    level = "%observations.resources('Observation').first().valueString.substring('x')"  # a string for an integer
    broken = library("facts", [var("level", level)], data_requirements=[{"id": "observations", "type": "Observation"}])
    obs = {"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Observation", "id": f"o{i}",
                                                             "status": "final", "code": {"text": "x"},
                                                             "valueString": "v"}} for i in range(2)]}
    rules = plan([card("view", "patient-view", condition="%level = 'v'")], library=[f"{BASE}/Library/facts"],
                 pid="rules")
    content = load_folder(write(tmp_path, broken, rules, service("rules-patient-view", "patient-view")))
    result = apply_plan(content, content.services["rules-patient-view"].plan,
                        ApplyContext(now=NOW, subject="Patient/p1", hook="patient-view", data={"observations": obs}))
    assert [n.definition.id for n in result.not_evaluated] == ["view"]
    assert any("%level" in str(i) for i in result.issues)
    explained = apply_plan(content, content.services["rules-patient-view"].plan,
                           ApplyContext(now=NOW, subject="Patient/p1", hook="patient-view", data={"observations": obs},
                                        explain=True))
    assert "error" in explained.variables["level"]  # the nested plan's variables are explained too


def test_a_nesting_cycle_is_an_error_at_the_action(tmp_path):
    rules = plan([card("view", "patient-view"),
                  {"id": "again", "definitionCanonical": f"{BASE}/PlanDefinition/rules-patient-view"}], pid="rules")
    with pytest.raises(ContentErrors) as exc:
        load_folder(write(tmp_path, rules, service("rules-patient-view", "patient-view")))
    [error] = exc.value.errors  # once, at the action that closes the cycle
    assert (error.file, error.path) in [("PlanDefinition-rules-patient-view.json",
                                         "PlanDefinition.action[0].definitionCanonical"),
                                        ("PlanDefinition-rules.json", "PlanDefinition.action[1].definitionCanonical")]
    assert "nesting cycle" in error.message


def test_a_plan_nesting_itself_is_a_cycle(tmp_path):
    rules = service("rules", "patient-view", nests=RULES)
    with pytest.raises(ContentErrors, match="nesting cycle: .*rules -> .*rules"):
        load_folder(write(tmp_path, rules))


def test_a_missing_nested_plan_is_an_error_at_the_action(tmp_path):
    with pytest.raises(ContentErrors) as exc:
        load_folder(write(tmp_path, service("rules-patient-view", "patient-view")))
    assert [(e.file, e.path) for e in exc.value.errors] == [
        ("PlanDefinition-rules-patient-view.json", "PlanDefinition.action[0].definitionCanonical")]
    assert "does not resolve" in exc.value.errors[0].message
