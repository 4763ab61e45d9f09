"""The quiet policy (cds-quiet-* extensions) is compiled at load: a good one is on the action, a bad
duration or a critical card quiet after an override fails the load naming file and path."""

from __future__ import annotations

from datetime import timedelta

import pytest

from service.content import load_folder
from service.engine.extensions import PROJECT_EXTENSION_BASE
from service.errors import ContentErrors
from tests.engine.helpers import cond, plan, write

REASON_SYSTEM = "http://example.org/fhir/CodeSystem/reasons"


def ext(name: str, **value) -> dict:
    return {"url": PROJECT_EXTENSION_BASE + name, **value}


def hours(n) -> dict:
    return {"valueDuration": {"value": n, "unit": "h", "system": "http://unitsofmeasure.org", "code": "h"}}


def action(*extensions, priority="urgent") -> dict:
    return {
        "id": "a", "title": "Card", "priority": priority,
        "trigger": [{"type": "named-event", "name": "patient-view"}],
        "condition": [cond("true")],
        "extension": [
            {"url": PROJECT_EXTENSION_BASE + "cds-override-reason",
             "valueCoding": {"system": REASON_SYSTEM, "code": "done-elsewhere", "display": "Already done elsewhere"}},
            *extensions,
        ],
    }


def errors_of(folder) -> list[str]:
    with pytest.raises(ContentErrors) as exc:
        load_folder(folder)
    return [str(e) for e in exc.value.errors]


def test_a_policy_is_compiled_onto_its_action(tmp_path):
    content = load_folder(write(tmp_path, plan([action(
        ext("cds-quiet-after-override", **hours(24)), ext("cds-quiet-override-reason", valueCode="done-elsewhere"),
        ext("cds-quiet-after-accept", valueDuration={"value": 2, "system": "http://unitsofmeasure.org",
                                                     "code": "wk"}),
        ext("cds-quiet-scope", valueCode="encounter"), ext("cds-quiet-once-per-draft", valueBoolean=True))])))
    policy = content.services["t-patient-view"].plan.actions[0].quiet
    assert policy is not None
    assert policy.after_override == timedelta(hours=24) and policy.after_accept == timedelta(weeks=2)
    assert policy.override_reasons == {"done-elsewhere"} and policy.scope == "encounter" and policy.once_per_draft
    assert policy.longest == timedelta(weeks=2)


def test_no_extension_no_policy(tmp_path):
    content = load_folder(write(tmp_path, plan([action()])))
    assert content.services["t-patient-view"].plan.actions[0].quiet is None


@pytest.mark.parametrize("duration, message", [
    ({"value": 0, "system": "http://unitsofmeasure.org", "code": "h"}, "positive number"),
    ({"value": -3, "system": "http://unitsofmeasure.org", "code": "d"}, "positive number"),
    ({"value": "24", "system": "http://unitsofmeasure.org", "code": "h"}, "positive number"),
    ({"value": 1, "system": "http://unitsofmeasure.org", "code": "mo"}, "UCUM"),  # a month has no fixed length
    ({"value": 1, "unit": "day", "code": "d"}, "UCUM"),
    ({"value": 100, "system": "http://unitsofmeasure.org", "code": "d"}, "longest quiet window"),
])
def test_a_bad_duration_fails_the_load_with_file_and_path(tmp_path, duration, message):
    errors = errors_of(write(tmp_path, plan([action(ext("cds-quiet-after-accept", valueDuration=duration))])))
    assert len(errors) == 1
    assert "PlanDefinition-t.json" in errors[0] and "action[0].extension[1].valueDuration" in errors[0]
    assert message in errors[0]


def test_a_critical_card_cannot_be_quiet_after_an_override(tmp_path):
    errors = errors_of(write(tmp_path, plan([action(ext("cds-quiet-after-override", **hours(8)), priority="stat")])))
    assert len(errors) == 1 and "critical" in errors[0] and "action[0].extension" in errors[0]


def test_a_critical_card_may_be_quiet_after_its_suggestion_was_accepted(tmp_path):
    content = load_folder(write(tmp_path, plan([action(ext("cds-quiet-after-accept", **hours(8)), priority="stat")])))
    assert content.services["t-patient-view"].plan.actions[0].quiet.after_accept == timedelta(hours=8)


@pytest.mark.parametrize("extensions, message", [
    ([ext("cds-quiet-override-reason", valueCode="done-elsewhere")], "needs cds-quiet-after-override"),
    ([ext("cds-quiet-after-override", **hours(1)), ext("cds-quiet-override-reason", valueCode="unknown")],
     "not one of the action's override reasons"),
    ([ext("cds-quiet-scope", valueCode="hospital")], "cds-quiet-scope must be one of"),
    ([ext("cds-quiet-once-per-draft", valueString="yes")], "needs a valueBoolean"),
])
def test_an_inconsistent_policy_fails_the_load(tmp_path, extensions, message):
    errors = errors_of(write(tmp_path, plan([action(*extensions)])))
    assert any(message in e for e in errors), errors
