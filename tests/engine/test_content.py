"""Content loading: strict validation, every problem named with file and path."""

from __future__ import annotations

import json

import pytest

from service.content import load_folder
from service.errors import ContentErrors
from tests.engine.helpers import BASE, cond, library, plan, var, write

GOOD_ACTION = {
    "id": "a",
    "title": "Card",
    "trigger": [{"type": "named-event", "name": "patient-view"}],
    "condition": [cond("true")],
}


def errors_of(folder) -> list[str]:
    with pytest.raises(ContentErrors) as exc:
        load_folder(folder)
    return [str(e) for e in exc.value.errors]


def test_good_content_loads_with_one_service_per_hook(tmp_path):
    action = dict(
        GOOD_ACTION,
        trigger=[{"type": "named-event", "name": "patient-view"}, {"type": "named-event", "name": "order-sign"}],
    )
    content = load_folder(write(tmp_path, plan([action])))
    assert sorted(content.services) == ["t-order-sign", "t-patient-view"]


def test_unreadable_json_names_the_file(tmp_path):
    (tmp_path / "PlanDefinition-x.json").write_text("{not json")
    assert any(e.startswith("PlanDefinition-x.json") and "not readable JSON" in e for e in errors_of(tmp_path))


def test_fhir_model_violation_names_the_path(tmp_path):
    bad = plan([GOOD_ACTION])
    bad["action"][0] = dict(GOOD_ACTION, bogus=1)
    errs = errors_of(write(tmp_path, bad))
    assert any("PlanDefinition-t.json: PlanDefinition.action[0].bogus" in e for e in errs), errs


def test_malformed_expression_names_file_and_condition(tmp_path):
    errs = errors_of(write(tmp_path, plan([dict(GOOD_ACTION, condition=[cond("where(")])])))
    assert errs == [e for e in errs if "PlanDefinition.action[0].condition[0].expression" in e and "syntax error" in e]


def test_undefined_variable_is_an_error(tmp_path):
    errs = errors_of(write(tmp_path, plan([dict(GOOD_ACTION, condition=[cond("%nowhere.exists()")])])))
    assert any("undefined variable(s): %nowhere" in e for e in errs)


def test_variable_cycle_is_rejected(tmp_path):
    errs = errors_of(write(tmp_path, plan([GOOD_ACTION], variables=[var("a", "%b"), var("b", "%a")])))
    assert any("variable dependency cycle" in e for e in errs)


def test_unresolved_definition_and_library(tmp_path):
    action = dict(GOOD_ACTION, definitionCanonical=f"{BASE}/ActivityDefinition/missing")
    errs = errors_of(write(tmp_path, plan([action], library=[f"{BASE}/Library/missing"])))
    assert any("ActivityDefinition/missing does not resolve" in e for e in errs)
    assert any("Library/missing does not resolve" in e for e in errs)


def test_unknown_valueset_in_expression(tmp_path):
    action = dict(
        GOOD_ACTION, condition=[cond(f"%draftOrders.resources('MedicationRequest', '{BASE}/ValueSet/nope').exists()")]
    )
    assert any(
        "ValueSet http://example.org/fhir/ValueSet/nope is not in the content" in e
        for e in errors_of(write(tmp_path, plan([action])))
    )


def test_library_variables_and_depends_on(tmp_path):
    base = library("base", [var("one", "1")])
    top = library("top", [var("two", "%one + 1")], depends=[f"{BASE}/Library/base"])
    action = dict(GOOD_ACTION, condition=[cond("%two = 2")])
    content = load_folder(write(tmp_path, base, top, plan([action], library=[f"{BASE}/Library/top"])))
    assert set(content.plan("t").variables) == {"one", "two"}


def test_duplicate_variable_names_across_libraries(tmp_path):
    a = library("a", [var("x", "1")])
    b = library("b", [var("x", "2")])
    errs = errors_of(write(tmp_path, a, b, plan([GOOD_ACTION], library=[f"{BASE}/Library/a", f"{BASE}/Library/b"])))
    assert any("variable %x is already defined" in e for e in errs)


def test_cql_plan_is_skipped_with_an_issue_not_fatal(tmp_path):
    cql = plan(
        [
            dict(
                GOOD_ACTION,
                condition=[
                    {"kind": "applicability", "expression": {"language": "text/cql", "expression": "Is Eligible"}}
                ],
            )
        ],
        pid="cql",
    )
    content = load_folder(write(tmp_path, cql, plan([GOOD_ACTION])))
    assert "t-patient-view" in content.services and not content.plan("cql")
    assert any("text/cql" in str(i) for i in content.issues)


def test_bad_codes_are_reported(tmp_path):
    action = dict(GOOD_ACTION, priority="soon", selectionBehavior="pick-some")
    errs = errors_of(write(tmp_path, plan([action])))
    assert any("priority must be one of" in e for e in errs)
    assert any("selectionBehavior must be one of" in e for e in errs)


def test_item_only_inside_for_each(tmp_path):
    errs = errors_of(write(tmp_path, plan([dict(GOOD_ACTION, condition=[cond("%item.exists()")])])))
    assert any("%item exists only under a cds-for-each action" in e for e in errs)


def test_bundled_content_loads(content):
    assert {"dah-patient-view", "safety-patient-view", "safety-order-select", "safety-order-sign"} <= set(
        content.services
    )
    # Every served PlanDefinition conforms to the CDS Hooks service profile: one cqf-cdsHooksEndpoint, one hook.
    assert content.issues == []
    for sid, svc in content.services.items():
        assert svc.hooks == (svc.hook,)
        assert [e["valueUri"] for e in svc.plan.raw["extension"] if e["url"].endswith("/cqf-cdsHooksEndpoint")] == [sid]
    # The rules plans answering several hooks are applied by their per-hook service plans, not served themselves.
    for pid, hooks in {"dah": ("order-sign", "patient-view"), "safety": ("order-select", "order-sign", "patient-view"),
                       "dose-checks": ("order-select", "order-sign")}.items():
        rules = content.plan(pid)
        assert rules is not None and tuple(rules.hooks) == hooks
        assert sorted(rules.nested_in) == [f"{BASE}/PlanDefinition/{pid}-{h}" for h in hooks]
        assert all(svc.plan is not rules for svc in content.services.values())


def test_all_problems_are_reported_together(tmp_path):
    (tmp_path / "PlanDefinition-x.json").write_text(
        json.dumps(plan([dict(GOOD_ACTION, condition=[cond("(")])], pid="x"))
    )
    (tmp_path / "PlanDefinition-y.json").write_text(
        json.dumps(plan([dict(GOOD_ACTION, condition=[cond("%q")])], pid="y"))
    )
    errs = errors_of(tmp_path)
    assert any(e.startswith("PlanDefinition-x.json") for e in errs) and any(
        e.startswith("PlanDefinition-y.json") for e in errs
    )
