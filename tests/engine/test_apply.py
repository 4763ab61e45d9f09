"""PlanDefinition/ActivityDefinition $apply semantics on tiny synthetic content."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from service.content import load_folder
from service.engine import ApplyContext, DataIndex, apply_plan
from tests.engine.helpers import BASE, action_type, cond, dv, library, plan, project_ext, var, write

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PV = [{"type": "named-event", "name": "patient-view"}]
OS = [{"type": "named-event", "name": "order-select"}]

WEIGHT_LIB = library(
    "w",
    [
        var(
            "weightKg", "%observations.resources('Observation', 'http://loinc.org|29463-7').latest().value.inUnit('kg')"
        ),
        var("calls", "%weightKg * 2"),
    ],
    data_requirements=[{"id": "observations", "type": "Observation"}],
)

DOSE_AD = {
    "resourceType": "ActivityDefinition",
    "id": "dose",
    "url": f"{BASE}/ActivityDefinition/dose",
    "status": "active",
    "kind": "MedicationRequest",
    "intent": "proposal",
    "productCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "3002"}]},
    "dosage": [
        {"doseAndRate": [{"doseQuantity": {"unit": "mg", "system": "http://unitsofmeasure.org", "code": "mg"}}]}
    ],
    "dynamicValue": [
        {
            "path": "dosageInstruction[0].doseAndRate[0].doseQuantity.value",
            "expression": {"language": "text/fhirpath", "expression": "((15 * %weightKg) / 10).round(0) * 10"},
        }
    ],
}


def observations(*kg):
    return {
        "resourceType": "Bundle",
        "entry": [
            {
                "resource": {
                    "resourceType": "Observation",
                    "id": f"w{i}",
                    "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
                    "effectiveDateTime": f"2026-02-2{i}T00:00:00Z",
                    "valueQuantity": {"value": v, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"},
                }
            }
            for i, v in enumerate(kg)
        ],
    }


def run(tmp_path, actions, data=None, hook="patient-view", variables=None, draft=None, selections=(), extra=()):
    content = load_folder(
        write(tmp_path, WEIGHT_LIB, DOSE_AD, *extra, plan(actions, variables=variables, library=[f"{BASE}/Library/w"]))
    )
    ctx = ApplyContext(
        now=NOW,
        subject="Patient/p1",
        data=data or {},
        hook=hook,
        hook_instance="hi",
        draft_orders=draft,
        selections=list(selections),
    )
    return apply_plan(content, content.plan("t"), ctx)


def test_trigger_selects_actions_by_hook(tmp_path):
    result = run(tmp_path, [{"id": "pv", "title": "PV", "trigger": PV}, {"id": "os", "title": "OS", "trigger": OS}])
    assert [a.id for a in result.actions] == ["pv"]


def test_applicability_all_and_any(tmp_path):
    any_ext = [{"url": "http://hl7.org/fhir/StructureDefinition/cqf-applicabilityBehavior", "valueCode": "any"}]
    result = run(
        tmp_path,
        [
            {"id": "all", "title": "all", "trigger": PV, "condition": [cond("true"), cond("false")]},
            {
                "id": "any",
                "title": "any",
                "trigger": PV,
                "condition": [cond("true"), cond("false")],
                "extension": any_ext,
            },
        ],
    )
    assert [a.id for a in result.actions] == ["any"]


def test_start_stop_conditions_are_traced_not_evaluated(tmp_path):
    result = run(tmp_path, [{"id": "a", "title": "A", "trigger": PV, "condition": [cond("false", "start")]}])
    assert [a.id for a in result.actions] == ["a"]
    assert "not evaluated" in result.trace[0]["conditions"][0]["result"]


def test_nested_actions_inherit_trigger_and_have_their_own_conditions(tmp_path):
    result = run(
        tmp_path,
        [
            {
                "id": "card",
                "title": "Card",
                "trigger": PV,
                "action": [
                    {"id": "yes", "title": "yes", "condition": [cond("1 < 2")]},
                    {"id": "no", "title": "no", "condition": [cond("2 < 1")]},
                ],
            }
        ],
    )
    assert [c.id for c in result.actions[0].children] == ["yes"]


def test_definition_creates_resource_with_dose_from_patient_data(tmp_path):
    result = run(
        tmp_path,
        [{"id": "card", "title": "Card", "trigger": PV, "definitionCanonical": f"{BASE}/ActivityDefinition/dose"}],
        data={"observations": observations(70, 80)},
    )
    res = result.actions[0].resource
    assert res["resourceType"] == "MedicationRequest" and res["status"] == "draft" and res["intent"] == "proposal"
    assert res["subject"] == {"reference": "Patient/p1"}
    assert res["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] == 1200  # latest weight 80 kg
    assert res["instantiatesCanonical"] == [f"{BASE}/ActivityDefinition/dose"]


def test_missing_input_drops_the_resource_never_guesses(tmp_path):
    result = run(
        tmp_path,
        [
            {
                "id": "card",
                "title": "Card",
                "trigger": PV,
                "action": [{"id": "order", "title": "Order", "definitionCanonical": f"{BASE}/ActivityDefinition/dose"}],
            }
        ],
    )
    assert result.actions[0].children == []
    assert any("is empty" in i["message"] for i in result.issues)


def test_action_dynamic_values_customise_the_card(tmp_path):
    result = run(
        tmp_path,
        [
            {
                "id": "card",
                "title": "static",
                "trigger": PV,
                "dynamicValue": [
                    {
                        "path": "action.title",
                        "expression": {
                            "language": "text/fhirpath",
                            "expression": "'Weight ' + %weightKg.toString() + ' kg'",
                        },
                    },
                    {
                        "path": "action.priority",
                        "expression": {
                            "language": "text/fhirpath",
                            "expression": "iif(%weightKg > 75, 'stat', 'routine')",
                        },
                    },
                ],
            }
        ],
        data={"observations": observations(80)},
    )
    assert result.actions[0].title == "Weight 80 kg" and result.actions[0].priority == "stat"


def test_expression_error_fails_closed_and_is_traced(tmp_path):
    two = observations(80, 81)  # two weights where the variable expects one: a runtime error
    variables = [var("heavy", "%observations.resources('Observation').value.inUnit('kg') > 1")]
    result = run(
        tmp_path,
        [{"id": "card", "title": "Card", "trigger": PV, "condition": [cond("%heavy or true")]}],
        data={"observations": two},
        variables=variables,
    )
    assert result.actions == []
    assert result.trace[0]["conditions"][0]["result"] is False
    assert any("%heavy" in i["message"] for i in result.issues)


def test_a_unit_that_does_not_convert_is_present_but_unusable(tmp_path):
    """A2: the value reads as empty (not an error), so a rule can say "unknown unit" and still fire."""
    bad = {
        "observations": {
            "resourceType": "Bundle",
            "entry": [
                {
                    "resource": {
                        "resourceType": "Observation",
                        "id": "x",
                        "status": "final",
                        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
                        "effectiveDateTime": "2026-02-28",
                        "valueQuantity": {"value": 11, "unit": "stone"},
                    }
                }
            ],
        }
    }
    action = {
        "id": "card",
        "title": "Card",
        "trigger": PV,
        "condition": [cond("%weightKg.empty() and %observations.resources('Observation').latest().value.exists()")],
        "dynamicValue": [
            {
                "path": "action.description",
                "expression": {
                    "language": "text/fhirpath",
                    "expression": "'weight recorded in an unknown unit (' & "
                    "%observations.resources('Observation').latest().value.unit & ')'",
                },
            }
        ],
    }
    result = run(tmp_path, [action], data=bad)
    assert [a.description for a in result.actions] == ["weight recorded in an unknown unit (stone)"]
    assert result.issues == []


def test_variables_are_evaluated_once_per_call(tmp_path, monkeypatch):
    from service.engine.fhirpath import Expression

    calls = []
    original = Expression.evaluate

    def counting(self, *args, **kwargs):
        calls.append(self.text)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Expression, "evaluate", counting)
    run(
        tmp_path,
        [
            {"id": f"c{i}", "title": "x", "trigger": PV, "condition": [cond("%calls > 0 and %weightKg > 0")]}
            for i in range(5)
        ],
        data={"observations": observations(70)},
    )
    weight = WEIGHT_LIB["extension"][0]["valueExpression"]["expression"]
    assert calls.count(weight) == 1 and calls.count("%weightKg * 2") == 1


def test_variables_are_computed_only_when_read(tmp_path, monkeypatch):
    """An `and` chain stops at its first false operand: later variables are never computed."""
    from service.engine.fhirpath import Expression

    calls = []
    original = Expression.evaluate
    monkeypatch.setattr(
        Expression, "evaluate", lambda self, *a, **k: calls.append(self.text) or original(self, *a, **k)
    )
    result = run(
        tmp_path,
        [{"id": "c", "title": "x", "trigger": PV, "condition": [cond("false and %calls > 0")]}],
        data={"observations": observations(70)},
    )
    assert result.actions == [] and "%weightKg * 2" not in calls


def test_for_each_and_update_target(tmp_path):
    draft = {
        "resourceType": "Bundle",
        "entry": [
            {
                "resource": {
                    "resourceType": "MedicationRequest",
                    "id": "m1",
                    "status": "draft",
                    "intent": "order",
                    "dosageInstruction": [{"doseAndRate": [{"doseQuantity": {"value": 40, "unit": "mg"}}]}],
                }
            },
            {"resource": {"resourceType": "MedicationRequest", "id": "m2", "status": "draft", "intent": "order"}},
        ],
    }
    each = project_ext(
        "cds-for-each", "%draftOrders.resources('MedicationRequest').where(('MedicationRequest/' + id) in %selections)"
    )
    target = project_ext("cds-target", "%item")
    update = action_type("update")
    result = run(
        tmp_path,
        [
            {
                "id": "dc",
                "title": "Dose",
                "trigger": OS,
                "extension": each,
                "condition": [cond("%item.dosageInstruction.exists()")],
                "dynamicValue": [
                    {
                        "path": "action.title",
                        "expression": {"language": "text/fhirpath", "expression": "'Dose of ' + %item.id"},
                    }
                ],
                "action": [
                    {
                        "id": "fix",
                        "title": "Set 1000 mg",
                        "type": update,
                        "extension": target,
                        "dynamicValue": [
                            {
                                "path": "dosageInstruction[0].doseAndRate[0].doseQuantity.value",
                                "expression": {"language": "text/fhirpath", "expression": "1000"},
                            }
                        ],
                    }
                ],
            }
        ],
        hook="order-select",
        draft=draft,
        selections=["MedicationRequest/m1", "MedicationRequest/m2"],
    )
    assert [a.title for a in result.actions] == ["Dose of m1"]
    fix = result.actions[0].children[0]
    assert fix.type == "update" and fix.resource["id"] == "m1"
    assert fix.resource["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] == 1000
    assert draft["entry"][0]["resource"]["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] == 40


@pytest.mark.parametrize("weights,expected", [((70,), True), ((), False)])
def test_variables_from_library_drive_conditions(tmp_path, weights, expected):
    result = run(
        tmp_path,
        [{"id": "c", "title": "c", "trigger": PV, "condition": [cond("%weightKg.exists()")]}],
        data={"observations": observations(*weights)},
    )
    assert bool(result.actions) is expected


def test_related_action_orders_suggestions(tmp_path):
    from cards.render import render_cards

    result = run(
        tmp_path,
        [
            {
                "id": "card",
                "title": "Card",
                "trigger": PV,
                "selectionBehavior": "any",
                "action": [
                    {
                        "id": "second",
                        "title": "Second",
                        "definitionCanonical": f"{BASE}/ActivityDefinition/dose",
                        "relatedAction": [{"actionId": "first", "relationship": "after-end"}],
                    },
                    {"id": "first", "title": "First", "definitionCanonical": f"{BASE}/ActivityDefinition/dose"},
                    {
                        "id": "zero",
                        "title": "Zero",
                        "definitionCanonical": f"{BASE}/ActivityDefinition/dose",
                        "relatedAction": [{"actionId": "first", "relationship": "before-start"}],
                    },
                ],
            }
        ],
        data={"observations": observations(70)},
    )
    card = render_cards([result], "hi")[0]
    assert [s["label"] for s in card["suggestions"]] == ["Zero", "First", "Second"]
    assert card["selectionBehavior"] == "any"


def test_empty_literal_removes_what_an_update_no_longer_says(tmp_path):
    draft = {
        "resourceType": "Bundle",
        "entry": [
            {
                "resource": {
                    "resourceType": "MedicationRequest",
                    "id": "m1",
                    "status": "draft",
                    "intent": "order",
                    "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">1050 mg</div>'},
                    "note": [{"text": "1050 mg IV"}, {"text": "with mesna"}],
                    "dosageInstruction": [
                        {
                            "text": "1050 mg IV",
                            "patientInstruction": "1050 mg",
                            "doseAndRate": [{"doseQuantity": {"value": 1050, "unit": "mg"}}],
                        },
                        {"text": "then 1050 mg"},
                    ],
                }
            }
        ],
    }
    each = project_ext("cds-for-each", "%draftOrders.resources('MedicationRequest')")
    target = project_ext("cds-target", "%item")
    update = action_type("update")

    result = run(
        tmp_path,
        [
            {
                "id": "dc",
                "title": "Dose",
                "trigger": OS,
                "extension": each,
                "action": [
                    {
                        "id": "fix",
                        "title": "Set 530 mg",
                        "type": update,
                        "extension": target,
                        "dynamicValue": [
                            dv("dosageInstruction[0].doseAndRate[0].doseQuantity.value", "530"),
                            dv("text", "{}"),
                            dv("note", "{}"),
                            dv("note[0].text", "'530 mg IV'"),
                            dv("dosageInstruction[1]", "{}"),
                            dv("dosageInstruction[0].patientInstruction", " {} "),
                            dv("dosageInstruction[0].text", "'530 mg IV'"),
                            dv("dosageInstruction[0].timing.code", "{}"),
                        ],
                    }
                ],
            }
        ],
        hook="order-select",
        draft=draft,
    )
    assert result.issues == []
    fixed = result.actions[0].children[0].resource
    # the draft's narrative is removed, and a new one is generated from the corrected order
    assert "1050" not in fixed["text"]["div"] and "530 mg IV" in fixed["text"]["div"]
    assert fixed["note"] == [{"text": "530 mg IV"}]
    assert fixed["dosageInstruction"] == [
        {"text": "530 mg IV", "doseAndRate": [{"doseQuantity": {"value": 530, "unit": "mg"}}]}
    ]
    assert draft["entry"][0]["resource"]["note"][0]["text"] == "1050 mg IV"  # the EHR's draft is not changed


def test_expression_that_yields_nothing_still_fails_closed(tmp_path):
    draft = {
        "resourceType": "Bundle",
        "entry": [
            {
                "resource": {
                    "resourceType": "MedicationRequest",
                    "id": "m1",
                    "status": "draft",
                    "intent": "order",
                    "note": [{"text": "x"}],
                }
            }
        ],
    }
    each = project_ext("cds-for-each", "%draftOrders.resources('MedicationRequest')")
    target = project_ext("cds-target", "%item")
    update = action_type("update")
    result = run(
        tmp_path,
        [
            {
                "id": "dc",
                "title": "Dose",
                "trigger": OS,
                "extension": each,
                "action": [
                    {
                        "id": "fix",
                        "title": "Fix",
                        "type": update,
                        "extension": target,
                        "dynamicValue": [
                            {
                                "path": "note",
                                "expression": {"language": "text/fhirpath", "expression": "iif(false, 'x', {})"},
                            }
                        ],
                    }
                ],
            }
        ],
        hook="order-select",
        draft=draft,
    )
    assert result.actions[0].children == []


def test_a_prebuilt_data_index_is_used_when_made_with_the_contents_terminology(tmp_path):
    content = load_folder(write(tmp_path, plan([{"id": "a", "title": "Card", "condition": [cond("true")]}])))
    index = DataIndex(content.terminology)
    result = apply_plan(content, content.plan("t"), ApplyContext(now=NOW, subject="Patient/p", index=index))
    assert result.context.index is index and [a.title for a in result.actions] == ["Card"]
    with pytest.raises(ValueError, match="terminology"):
        apply_plan(content, content.plan("t"), ApplyContext(now=NOW, subject="Patient/p", index=DataIndex()))


def test_stable_ids_are_rfc4122_version_5_uuids_of_their_parts():
    """applymodel.stable_id writes uuid5 out directly; it must be the standard library's uuid5."""
    import random
    import uuid

    from service.engine.applymodel import _NAMESPACE, stable_id

    rnd = random.Random(7)
    for _ in range(2000):
        parts = ["".join(rnd.choice("abcé|/-: 0123456789") for _ in range(rnd.randint(0, 40)))
                 for _ in range(rnd.randint(1, 4))]
        made = stable_id(*parts)
        assert made == str(uuid.uuid5(_NAMESPACE, "|".join(parts)))
        assert uuid.UUID(made).version == 5
