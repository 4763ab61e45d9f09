"""Layering rules of the design, checked on the source: Flask only in the web layer,
requests only in the FHIR client (urllib3 only in its transport), gunicorn only in service.serving, fhirpathpy only in the FHIRPath gateway, JWT handling only in
service/auth, no clock in the engine."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

SOURCES = sorted([*(ROOT / "service").rglob("*.py"), *(ROOT / "cards").rglob("*.py")])


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


RULES = {
    "flask": lambda p: p.startswith("service/web/") or p == "service/app.py",
    "werkzeug": lambda p: p.startswith("service/web/"),
    "requests": lambda p: p.startswith("service/fhir/"),
    "urllib3": lambda p: p == "service/fhir/transport.py",
    "gunicorn": lambda p: p == "service/serving.py",
    "fhirpathpy": lambda p: p == "service/engine/fhirpath.py",
    "antlr4": lambda p: p == "service/engine/fhirpath.py",
    "sqlalchemy": lambda p: p.startswith("service/feedback/"),
    "jwt": lambda p: p.startswith("service/auth/"),
    "cryptography": lambda p: p.startswith("service/auth/"),
}


@pytest.mark.parametrize("library", sorted(RULES))
def test_library_is_imported_only_where_the_design_allows(library):
    offenders = [rel(p) for p in SOURCES if library in imports(p) and not RULES[library](rel(p))]
    assert offenders == []


def test_engine_reads_no_clock_and_no_environment():
    for path in (ROOT / "service" / "engine").rglob("*.py"):
        text = path.read_text()
        for forbidden in ("datetime.now(", "datetime.utcnow(", "time.time(", "date.today(", "os.environ"):
            assert forbidden not in text, f"{rel(path)} uses {forbidden}"


def test_only_config_reads_the_environment():
    readers = [rel(p) for p in SOURCES if "os.environ" in p.read_text()]
    assert readers == ["service/config.py"]


def test_no_clinical_codes_in_python():
    """Codes and thresholds live in plandefinitions/: no LOINC/RxNorm/SNOMED code in the code."""
    import re

    pattern = re.compile(r"['\"](29463-7|718-7|78144005|121191|3002|6902|8640|55464009)['\"]")
    offenders = [rel(p) for p in SOURCES if pattern.search(p.read_text())]
    assert offenders == []
