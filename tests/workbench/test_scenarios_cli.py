"""`dah-cds test`: scenario cases against their goldens in-process, a readable per-card, per-field
diff on failure, and `--accept` as the reviewed way to write a new golden."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.conftest import CONTENT

CASE = "DAH-05/p01-gpa-hypoxemic"


@pytest.fixture
def cases(tmp_path):
    """A content folder whose tests/ holds a copy of the DAH-05 cases (goldens may be edited)."""
    shutil.copytree(CONTENT / "tests" / "DAH-05", tmp_path / "tests" / "DAH-05")
    return tmp_path


def _golden(folder):
    return folder / "tests" / "DAH-05" / "p01-gpa-hypoxemic.response.json"


def _stale_dose(folder) -> str:
    """Make the golden say another cyclophosphamide dose, as if the content changed; the old text."""
    path = _golden(folder)
    golden = json.loads(path.read_text())
    action = golden["cards"][0]["suggestions"][0]["actions"][1]
    old = action["resource"]["dosageInstruction"][0]["text"]
    action["resource"]["dosageInstruction"][0]["text"] = old.replace("1200 mg", "1100 mg")
    path.write_text(json.dumps(golden, indent=2, ensure_ascii=False) + "\n")
    return old


def test_selected_rules_pass(dah_cds):
    code, out, _ = dah_cds("test", "DAH-05", "SAFE-PCP")
    assert code == 0, out
    assert "0 failed" in out
    n = len(list((CONTENT / "tests" / "DAH-05").glob("*.response.json")))
    n += len(list((CONTENT / "tests" / "SAFE-PCP").glob("*.response.json")))
    assert f"({n} case(s))" in out


def test_a_changed_dose_is_shown_card_by_card_and_field_by_field(dah_cds, cases):
    old = _stale_dose(cases)
    code, out, _ = dah_cds("test", CASE, "--content", str(cases))
    assert code == 1
    assert f"FAIL {CASE}: P01" in out
    assert "  ~ card DAH-01 'Acute DAH: start IV methylprednisolone pulse" in out
    line = next(x for x in out.splitlines() if "suggestions[0].actions[1].resource.dosageInstruction[0].text" in x)
    assert "'Cyclophosphamide 1100 mg IV" in line and "-> 'Cyclophosphamide 1200 mg IV" in line
    assert "{" not in line  # a field, not a dict dump
    assert old.replace("1200 mg", "1100 mg") in _golden(cases).read_text()  # without --accept: not written


def test_accept_shows_asks_then_writes(dah_cds, cases, monkeypatch):
    _stale_dose(cases)
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda question: "n")
    code, out, _ = dah_cds("test", CASE, "--content", str(cases), "--accept")
    assert code == 1 and "1100 mg" in _golden(cases).read_text()  # declined: nothing written
    monkeypatch.setattr("builtins.input", lambda question: "y")
    code, out, _ = dah_cds("test", CASE, "--content", str(cases), "--accept")
    assert code == 0 and "suggestions[0].actions[1]" in out and "ACCEPTED" in out
    written = _golden(cases).read_text()
    assert written == (CONTENT / "tests" / "DAH-05" / "p01-gpa-hypoxemic.response.json").read_text()
    code, out, _ = dah_cds("test", CASE, "--content", str(cases))
    assert code == 0


def test_accept_without_a_terminal_needs_yes(dah_cds, cases, monkeypatch):
    _stale_dose(cases)
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    code, out, _ = dah_cds("test", CASE, "--content", str(cases), "--accept")
    assert code == 1 and "use --yes" in out and "1100 mg" in _golden(cases).read_text()
    code, out, _ = dah_cds("test", CASE, "--content", str(cases), "--accept", "--yes")
    assert code == 0 and "1200 mg" in _golden(cases).read_text()


def test_a_broken_expectation_is_never_accepted(dah_cds, cases):
    path = cases / "tests" / "DAH-05" / "p01-gpa-hypoxemic.json"
    case = json.loads(path.read_text())
    case["expect"]["absent"].append("DAH-05")
    path.write_text(json.dumps(case, indent=2))
    before = _golden(cases).read_text()
    _stale_dose(cases)
    code, out, _ = dah_cds("test", CASE, "--content", str(cases), "--accept", "--yes")
    assert code == 1
    assert "! a DAH-05 card is shown; the case says it must not be" in out
    assert "not accepted" in out
    assert _golden(cases).read_text() != before  # still the edited (stale) golden, not the answer
    assert "1100 mg" in _golden(cases).read_text()


def test_unknown_rule(dah_cds):
    code, _, err = dah_cds("test", "DAH-99")
    assert code == 2 and "no scenario case of DAH-99" in err
