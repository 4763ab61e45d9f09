"""The FHIRPath gateway: strict parsing, typed errors, bound time, generic functions."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from service.engine.fhirpath import Evaluation, Expression, as_boolean, to_python
from service.engine.index import DataIndex
from service.engine.terminology import Terminology
from service.errors import ExpressionError, UnsupportedLanguage

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
VS = "http://example.org/fhir/ValueSet/weights"


TERMINOLOGY = Terminology(
    {
        VS: {
            "resourceType": "ValueSet",
            "compose": {"include": [{"system": "http://loinc.org", "concept": [{"code": "29463-7"}]}]},
        }
    }
)


def ev(expr: str, index: DataIndex | None = None, **variables):
    """Evaluate as one call does: its own Evaluation (time, data index, terminology)."""
    evaluation = Evaluation(NOW, index if index is not None else DataIndex(), TERMINOLOGY)
    return to_python(Expression(expr).evaluate(evaluation, {}, variables))


def obs(oid, code, value, unit, when, system="http://loinc.org"):
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"coding": [{"system": system, "code": code}]},
        "effectiveDateTime": when,
        "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit},
    }


BUNDLE = {
    "resourceType": "Bundle",
    "entry": [
        {"resource": obs("w1", "29463-7", 150, "[lb_av]", "2026-02-27T08:00:00Z")},
        {"resource": obs("w2", "29463-7", 70, "kg", "2026-02-20T08:00:00Z")},
        {"resource": obs("h1", "8302-2", 70, "[in_i]", "2026-02-27T08:00:00Z")},
    ],
}


@pytest.mark.parametrize("bad", ["where(", "a b", "1 +", "%x.", "Observation.value.", "(1 + 2"])
def test_malformed_expressions_are_rejected_at_compile(bad):
    with pytest.raises(ExpressionError, match="syntax error"):
        Expression(bad)


def test_unknown_function_is_rejected_at_compile():
    with pytest.raises(ExpressionError, match="unknown function"):
        Expression("name.frobnicate()")


def test_other_languages_are_reported_as_unsupported():
    with pytest.raises(UnsupportedLanguage, match="text/cql"):
        Expression("Now()", "text/cql")


def test_runtime_errors_become_expression_errors():
    with pytest.raises(ExpressionError, match="in expression"):
        ev("%b.resources('Observation', 'http://loinc.org|29463-7').id > 'a'", b=BUNDLE)


def test_a_unit_that_does_not_convert_gives_nothing_not_an_error():
    assert ev("%b.resources('Observation', 'http://loinc.org|29463-7').first().value.inUnit('mL')", b=BUNDLE) == []


def test_now_and_today_are_the_bound_time_not_the_clock():
    assert ev("now()") == ["2026-03-01T12:00:00+00:00"]
    assert ev("%now - 24 hours < now()") == [True]
    assert ev("today()") == ["2026-03-01"]


def test_variables_are_listed_for_dependency_analysis():
    assert Expression("%a + %b.where(x = %`c`)").variables == {"a", "b", "c"}


def test_resources_narrows_by_type_and_code_and_valueset():
    assert ev("%b.resources('Observation').count()", b=BUNDLE) == [3]
    assert ev("%b.resources('Observation', 'http://loinc.org|8302-2').id", b=BUNDLE) == ["h1"]
    assert ev(f"%b.resources('Observation', '{VS}').id", b=BUNDLE) == ["w1", "w2"]
    assert ev("%b.resources('Condition').count()", b=BUNDLE) == [0]


def test_latest_and_units():
    assert ev("%b.resources('Observation', 'http://loinc.org|29463-7').latest().id", b=BUNDLE) == ["w1"]
    weight = ev("%b.resources('Observation', 'http://loinc.org|29463-7').latest().value.inUnit('kg')", b=BUNDLE)[0]
    assert weight == pytest.approx(68.0388555)
    assert ev("%b.resources('Observation', 'http://loinc.org|8302-2').latest().value.inUnit('cm')", b=BUNDLE) == [177.8]


def test_clinical_time_and_hours_ago():
    assert ev("%b.resources('Observation', 'http://loinc.org|29463-7').latest().hoursAgo()", b=BUNDLE) == [52]
    assert ev("%b.resources('Observation').where(clinicalTime() >= %now - 7 days).count()", b=BUNDLE) == [2]


def test_daily_dose_from_timing_and_dose_with_units():
    mr = {
        "resourceType": "MedicationRequest",
        "dosageInstruction": [
            {
                "timing": {"repeat": {"frequency": 1, "period": 12, "periodUnit": "h"}},
                "doseAndRate": [
                    {"doseQuantity": {"value": 0.5, "unit": "g", "system": "http://unitsofmeasure.org", "code": "g"}}
                ],
            }
        ],
    }
    assert ev("%m.dailyDose('mg')", m=[mr]) == [1000]
    mr["dosageInstruction"][0]["timing"]["repeat"] = {"frequency": 3, "period": 1, "periodUnit": "wk"}
    assert ev("%m.dailyDose('mg')", m=[mr]) == [pytest.approx(214.2857)]
    del mr["dosageInstruction"][0]["timing"]
    assert ev("%m.dailyDose('mg')", m=[mr]) == []


def test_age_in_years_at_now():
    assert ev("%p.ageInYears()", p=[{"resourceType": "Patient", "birthDate": "1966-03-02"}]) == [59]
    assert ev("%p.ageInYears()", p=[{"resourceType": "Patient", "birthDate": "1966-03-01"}]) == [60]


def test_round_is_half_up():
    assert ev("(2.5).round(0) | (3.5).round(0) | (2.45).round(1)") == [3, 4, 2.5]


def test_member_of_uses_local_expansion():
    assert ev(f"%c.memberOf('{VS}')", c=[{"coding": [{"system": "http://loinc.org", "code": "29463-7"}]}]) == [True]
    assert ev(f"%c.memberOf('{VS}')", c=[{"coding": [{"system": "http://loinc.org", "code": "8302-2"}]}]) == [False]


def test_conditions_need_a_single_boolean():
    assert as_boolean([True], "x") is True
    assert as_boolean([], "x") is False
    with pytest.raises(ExpressionError):
        as_boolean([Decimal(1)], "x")
    with pytest.raises(ExpressionError):
        as_boolean([True, False], "x")


def q(value, unit):
    return {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}


def test_in_unit_maps_over_a_collection():
    assert ev("%q.inUnit('g/dL').max()", q=[q(90, "g/L"), q(8.1, "g/dL")]) == [9]
    assert ev("%q.inUnit('mm[Hg]')", q=[q(7.5, "kPa")]) == [pytest.approx(56.2546)]


def test_in_unit_with_molar_mass_converts_substance_to_mass():
    assert ev("%q.inUnit('mg/dL', 113.12)", q=[q(212, "umol/L")]) == [pytest.approx(2.398, abs=1e-3)]
    assert ev("%q.inUnit('g/dL', 16114.5)", q=[q(5, "mmol/L")]) == [pytest.approx(8.057, abs=1e-3)]
    assert ev("%q.inUnit('kg', 10)", q=[q(3, "mL")]) == []  # volume to mass: no molar mass helps


def test_offset_units_are_refused():
    assert ev("%q.inUnit('[degF]')", q=[q(37, "Cel")]) == []


def test_status_and_time_filters_run_in_python():
    items = [
        dict(obs("a", "1", 1, "kg", "2026-02-28T00:00:00Z"), status="final"),
        dict(obs("b", "1", 2, "kg", "2026-01-01T00:00:00Z"), status="cancelled"),
        {
            "resourceType": "Condition",
            "id": "c",
            "clinicalStatus": {"coding": [{"code": "active"}]},
            "onsetDateTime": "2026-02-01",
        },
    ]
    assert ev("%i.withStatus('final', 'active').id", i=items) == ["a", "c"]
    assert ev("%i.since(%now - 7 days).id", i=items) == ["a"]
    assert ev("%i.before(%now - 7 days).id", i=items) == ["b", "c"]


def test_latest_with_an_element_skips_items_without_it():
    items = [
        obs("old", "1", 80, "kg", "2026-02-01T00:00:00Z"),
        {
            "resourceType": "Observation",
            "id": "new",
            "status": "final",
            "effectiveDateTime": "2026-02-28T00:00:00Z",
            "dataAbsentReason": {"text": "refused"},
        },
    ]
    assert ev("%i.latest().id", i=items) == ["new"]
    assert ev("%i.latest('value').id", i=items) == ["old"]


def test_interpretation_and_reference_range_filters():
    pos = dict(obs("p", "31254-6", 0.5, "[U]", "2026-02-28"), interpretation=[{"coding": [{"code": "POS"}]}])
    high = dict(obs("h", "31254-6", 5.2, "[U]", "2026-02-28"), referenceRange=[{"high": {"value": 1.0, "code": "[U]"}}])
    normal = dict(
        obs("n", "31254-6", 0.2, "[U]", "2026-02-28"), referenceRange=[{"high": {"value": 1.0, "code": "[U]"}}]
    )
    items = [pos, high, normal]
    assert ev("%i.interpreted('POS', 'H').id", i=items) == ["p"]
    assert ev("%i.aboveReferenceRange().id", i=items) == ["h"]


def test_daily_dose_maps_over_orders():
    def mr(dose):
        return {
            "resourceType": "MedicationRequest",
            "dosageInstruction": [
                {
                    "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
                    "doseAndRate": [
                        {
                            "doseQuantity": {
                                "value": dose,
                                "unit": "mg",
                                "system": "http://unitsofmeasure.org",
                                "code": "mg",
                            }
                        }
                    ],
                }
            ],
        }

    assert ev("%m.dailyDose('mg').sum()", m=[mr(20), mr(40), {"resourceType": "MedicationRequest"}]) == [60]
    assert ev("%m.dailyDose('mg').toString()", m=[mr(200)]) == ["200"]


def test_resources_from_generic_functions_keep_their_fhir_type():
    bundle = {
        "resourceType": "Bundle",
        "entry": [
            {"resource": {"resourceType": "Condition", "id": "c1"}},
            {
                "resource": {
                    "resourceType": "ServiceRequest",
                    "id": "s",
                    "reasonReference": [{"reference": "Condition/c1"}],
                }
            },
        ],
    }
    index = DataIndex()
    index.add(bundle)
    assert ev("%b.resources('ServiceRequest').reasonReference.resolve().ofType(Condition).id", index, b=bundle) == [
        "c1"
    ]
    assert ev("%b.resources('Condition').first() is Condition", index, b=bundle) == [True]
