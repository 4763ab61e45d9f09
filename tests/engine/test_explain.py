"""An explained $apply (`ApplyContext.explain`): each condition's `and` operands with their own
results, and every variable's value; nothing of it when not asked for."""

from __future__ import annotations

from datetime import UTC, datetime

from service.content import load_folder
from service.engine import ApplyContext, apply_plan
from tests.engine.helpers import BASE, cond, library, plan, var, write

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PV = [{"type": "named-event", "name": "patient-view"}]

LIB = library(
    "x",
    [
        var("weightKg", "%observations.resources('Observation', 'http://loinc.org|29463-7').latest().value.inUnit('kg')"),
        var("heavy", "%weightKg > 100"),
        var("adult", "true"),
        var("broken", "%weightKg.first().substring('x')"),  # a string argument where an integer is required
    ],
    data_requirements=[{"id": "observations", "type": "Observation"}],
)

WEIGHT_80 = {
    "resourceType": "Bundle",
    "type": "searchset",
    "entry": [{"resource": {
        "resourceType": "Observation", "id": "w1", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
        "effectiveDateTime": "2026-02-27T08:00:00Z",
        "valueQuantity": {"value": 80, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"},
    }}],
}


def _apply(tmp_path, condition: str, explain: bool):
    card = {"id": "big-dose", "title": "Heavy patient", "trigger": PV, "condition": [cond(condition)]}
    content = load_folder(write(tmp_path, LIB, plan([card], library=[f"{BASE}/Library/x"])))
    ctx = ApplyContext(now=NOW, subject="Patient/p1", data={"observations": WEIGHT_80}, hook="patient-view",
                       hook_instance="h", explain=explain)
    return apply_plan(content, content.plan("t"), ctx)


def test_each_operand_of_the_and_chain_has_its_result(tmp_path):
    result = _apply(tmp_path, "%adult and %heavy and (%weightKg > 10 or %adult)", explain=True)
    (entry,) = result.trace
    assert entry["applied"] is False
    operands = entry["conditions"][0]["operands"]
    assert operands == [
        {"expression": "%adult", "result": [True]},
        {"expression": "%heavy", "result": [False]},
        {"expression": "(%weightKg > 10 or %adult)", "result": [True]},
    ]
    first_failing = next(o for o in operands if o.get("result") != [True])
    assert first_failing["expression"] == "%heavy"


def test_every_variable_has_its_value_or_its_error(tmp_path):
    result = _apply(tmp_path, "%adult", explain=True)
    assert result.variables["weightKg"] == {"value": [80]}  # inUnit gives the number in kg
    assert result.variables["heavy"] == {"value": [False]}
    assert "error" in result.variables["broken"]
    # A variable no rule read fails only in the explanation, not among the call's issues.
    assert not any("broken" in issue["message"] for issue in result.issues)


def test_an_operand_that_fails_carries_its_error(tmp_path):
    result = _apply(tmp_path, "%adult and %broken", explain=True)
    operands = result.trace[0]["conditions"][0]["operands"]
    assert operands[0] == {"expression": "%adult", "result": [True]}
    assert operands[1]["expression"] == "%broken" and "error" in operands[1]


def test_not_explained_unless_asked(tmp_path):
    result = _apply(tmp_path, "%adult and %heavy", explain=False)
    assert "operands" not in result.trace[0]["conditions"][0]
    assert result.variables == {}


def _apply_cards(folder, conditions: list[str], explain: bool):
    cards = [{"id": f"card-{n}", "title": f"Card {n}", "trigger": PV, "condition": [cond(c)]}
             for n, c in enumerate(conditions)]
    content = load_folder(write(folder, LIB, plan(cards, library=[f"{BASE}/Library/x"])))
    ctx = ApplyContext(now=NOW, subject="Patient/p1", data={"observations": WEIGHT_80}, hook="patient-view",
                       hook_instance="h", explain=explain)
    return apply_plan(content, content.plan("t"), ctx)


def test_explaining_adds_no_issue_and_a_variable_it_saw_fail_is_reported_when_a_rule_reads_it(tmp_path):
    # The first rule stops at %heavy (false): only the explanation reads %broken there.
    alone = _apply_cards(tmp_path / "alone", ["%heavy and %broken", "%adult"], explain=True)
    assert alone.issues == []
    # A later rule reads it: its failure is the call's issue, with its cause, explained or not.
    conditions = ["%heavy and %broken", "%adult and %broken"]
    plain = _apply_cards(tmp_path / "plain", conditions, explain=False)
    explained = _apply_cards(tmp_path / "explained", conditions, explain=True)
    assert explained.issues == plain.issues
    assert [i["message"] for i in plain.issues if i["message"].startswith("variable %broken:")] != []
    assert [e["applied"] for e in explained.trace] == [e["applied"] for e in plain.trace] == [False, False]
    assert "error" in explained.trace[0]["conditions"][0]["operands"][1]


def test_not_explained_no_operand_is_evaluated_and_conditions_run_on_the_fast_path(tmp_path, monkeypatch):
    from service.engine.fhirpath import Expression

    def refuse(*args, **kwargs):
        raise AssertionError("operands evaluated without explain")

    monkeypatch.setattr(Expression, "operands", refuse)
    result = _apply_cards(tmp_path, ["%adult and %heavy", "%adult"], explain=False)
    assert [e["applied"] for e in result.trace] == [False, True]
    content = load_folder(tmp_path)
    assert all(c.expression.slow_reason is None for a in content.plan("t").actions for c in a.conditions)
