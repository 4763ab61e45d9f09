"""`dah-cds validate` catches what would break at run time (tests/fixtures/broken-content/README.md):
one fixture per check, each mistake reported once, with file, JSON line and action id."""

from __future__ import annotations

from pathlib import Path

import pytest

from service import cli
from service.workbench.report import validate_folder
from tests.conftest import CONTENT, ROOT

BROKEN = ROOT / "tests" / "fixtures" / "broken-content"

# fixture -> the one error line `validate` prints for it (file:line, where, message start)
EXPECTED = {
    "dynamicvalue-path": "ERROR ActivityDefinition-proto-recheck.json:22 dynamicValue[0].path: dynamicValue path "
                         "'code.textt': ServiceRequest.code has no element 'textt' (did you mean 'text'?)",
    "dynamicvalue-repeating": "ERROR ActivityDefinition-proto-recheck.json:22 dynamicValue[0].path: dynamicValue path "
                              "'note.text': ServiceRequest.note repeats: name its item (note[0])",
    "action-path": "ERROR PlanDefinition-proto.json:99 action problems > dynamicValue[0].path: dynamicValue path "
                   "'action.titel': PlanDefinitionAction has no element 'titel' (did you mean 'title'?)",
    "hook-name": "ERROR PlanDefinition-proto.json:67 action problems > trigger[0].name: hook 'patient-veiw' is not a "
                 "CDS Hooks hook (did you mean 'patient-view'?)",
    "summary-length": "ERROR PlanDefinition-proto.json:61 action problems > title: card summary (title) is 156 "
                      "characters; CDS Hooks wants fewer than 140",
    "rule-code": "ERROR PlanDefinition-proto.json:59 action problems > code: card action has no rule code",
    "shadowed-title": "ERROR PlanDefinition-proto.json:99 action problems > dynamicValue[0].path: the static title is "
                      "never shown",
    "cascade-invalid-library": "ERROR Library-proto.json:5 status: FHIR R4 validation: Input should be a valid string",
    "nested-plan-missing": "ERROR PlanDefinition-proto-view.json:24 action proto-rules > definitionCanonical: "
                           "http://example.org/fhir/PlanDefinition/proto-rules does not resolve to a loaded "
                           "ActivityDefinition or PlanDefinition",
    "nested-plan-cycle": "ERROR PlanDefinition-proto.json:134 action again > definitionCanonical: PlanDefinition "
                         "nesting cycle: http://example.org/fhir/PlanDefinition/proto-view -> "
                         "http://example.org/fhir/PlanDefinition/proto -> http://example.org/fhir/PlanDefinition/proto-view",
}


def _validate(folder: Path, capsys) -> tuple[int, list[str]]:
    code = cli.main(["validate", str(folder)])
    captured = capsys.readouterr()
    return code, [line for line in (captured.out + captured.err).splitlines() if line]  # warnings, then errors


@pytest.mark.parametrize("check", sorted(EXPECTED))
def test_each_mistake_is_one_error_with_file_line_and_action(check, capsys):
    code, lines = _validate(BROKEN / check, capsys)
    assert code == 1
    errors = [line for line in lines if line.startswith("ERROR")]
    assert len(errors) == 1, lines  # once: no repeats, no cascade
    assert errors[0].startswith(EXPECTED[check]), errors[0]
    assert "action[" not in errors[0]  # the action by its id
    assert lines[-1] == f"1 error(s) in {BROKEN / check}"


# fixture -> what the file says on the line the error names (the element itself, or the action
# that lacks one)
AT_LINE = {
    "dynamicvalue-path": '"path": "code.textt"',
    "dynamicvalue-repeating": '"path": "note.text"',
    "action-path": '"path": "action.titel"',
    "hook-name": '"name": "patient-veiw"',
    "summary-length": '"title": "Coded problems are present: review every one',
    "rule-code": "{",
    "shadowed-title": '"path": "action.title"',
    "cascade-invalid-library": '"status": [',
    "nested-plan-missing": '"definitionCanonical": "http://example.org/fhir/PlanDefinition/proto-rules"',
    "nested-plan-cycle": '"definitionCanonical": "http://example.org/fhir/PlanDefinition/proto-view"',
}


@pytest.mark.parametrize("check", sorted(AT_LINE))
def test_the_json_line_is_where_the_element_is(check):
    file, number = EXPECTED[check].split()[1].rsplit(":", 1)
    text = (BROKEN / check / file).read_text(encoding="utf-8").splitlines()[int(number) - 1]
    assert text.strip().startswith(AT_LINE[check]), text


def test_one_missing_valueset_quoted_three_times_is_one_error_with_three_places(capsys):
    code, lines = _validate(BROKEN / "duplicate-valueset", capsys)
    assert code == 1
    assert lines[:4] == [
        "ERROR ValueSet http://example.org/fhir/ValueSet/proto-level is not in the content (3 places)",
        "  at Library-proto.json:19 variable %highLevel",
        "  at Library-proto.json:37 variable %levelRecorded",
        "  at Library-proto.json:45 variable %lowLevel",
    ]


def test_an_invalid_library_does_not_cascade_into_its_plans():
    report = validate_folder(BROKEN / "cascade-invalid-library")
    assert [p.message for p in report.errors] == ["FHIR R4 validation: Input should be a valid string"]


@pytest.mark.parametrize("folder", [CONTENT, ROOT / "tests" / "fixtures" / "content"], ids=["guidance", "synthetic"])
def test_the_shipped_content_passes(folder, capsys):
    code, lines = _validate(folder, capsys)
    assert code == 0, lines
    assert lines[-1].startswith(f"OK {folder}")


def test_every_fixture_is_tested():
    folders = {p.name for p in BROKEN.iterdir() if p.is_dir()}
    assert folders == set(EXPECTED) | {"duplicate-valueset"}
