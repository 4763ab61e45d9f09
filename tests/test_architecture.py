"""Layering rules of ARCHITECTURE.md, checked on the source: the layers of service/ and cards/ import
only the layers below them, callers use the engine's public face, no import loops; Flask only in
the web layer, requests only in the FHIR client (urllib3 only in its transport), gunicorn only in
service.serving, fhirpathpy only in the FHIRPath gateway (and the compiler behind it), JWT handling
only in service/auth, orjson only where JSON crosses the boundary (service.jsonlimits, service.web.jsonout),
no clock in the engine, no clinical code in Python."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests import layering
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
    # the gateway and its compiler, which only the gateway imports (test_fhirpath_compiler_behind_gateway)
    "fhirpathpy": lambda p: p in ("service/engine/fhirpath.py", "service/engine/fhirpath_compiled.py",
                                  "service/engine/fhirpath_datetime.py"),
    "prometheus_client": lambda p: p == "service/metrics.py",
    "antlr4": lambda p: p == "service/engine/fhirpath.py",
    "sqlalchemy": lambda p: p.startswith("service/feedback/"),
    "alembic": lambda p: p.startswith("service/feedback/"),
    "jwt": lambda p: p.startswith("service/auth/"),
    "cryptography": lambda p: p.startswith("service/auth/"),
    "orjson": lambda p: p in ("service/jsonlimits.py", "service/web/jsonout.py"),
}


@pytest.mark.parametrize("library", sorted(RULES))
def test_library_is_imported_only_where_the_design_allows(library):
    offenders = [rel(p) for p in SOURCES if library in imports(p) and not RULES[library](rel(p))]
    assert offenders == []


def test_fhirpath_compiler_behind_gateway():
    """The FHIRPath compiler is part of the gateway: nothing but the gateway imports it."""
    def uses_compiler(path: Path) -> bool:
        text = path.read_text()
        return "fhirpath_compiled" in text and path.name != "fhirpath_compiled.py"
    assert [rel(p) for p in SOURCES if uses_compiler(p)] == ["service/engine/fhirpath.py"]


def test_engine_reads_no_clock_and_no_environment():
    for path in (ROOT / "service" / "engine").rglob("*.py"):
        text = path.read_text()
        for forbidden in ("datetime.now(", "datetime.utcnow(", "time.time(", "date.today(", "os.environ"):
            assert forbidden not in text, f"{rel(path)} uses {forbidden}"


def test_only_config_reads_the_environment():
    readers = [rel(p) for p in SOURCES if "os.environ" in p.read_text()]
    assert readers == ["service/config.py"]


# ---- no clinical knowledge in Python -----------------------------------------------------------

# Shapes of clinical codes and the URLs of clinical code systems. Python supplies generic capability;
# every code lives in plandefinitions/ (a ValueSet, a Library, an ActivityDefinition).
CLINICAL_SHAPES = [
    ("LOINC code", re.compile(r"\b\d{3,5}-\d\b")),
    ("SNOMED CT-like id in a string", re.compile(r"(['\"])\d{6,18}\1")),
    (
        "RxNorm-like code next to 'rxnorm'",
        re.compile(r"rxnorm.{0,40}?(['\"])\d{2,8}\1|(['\"])\d{2,8}\2.{0,40}?rxnorm", re.I),
    ),
    ("LOINC system", re.compile(r"loinc\.org", re.I)),
    ("SNOMED CT system", re.compile(r"snomed\.info|snomed\.org", re.I)),
    ("RxNorm system", re.compile(r"nlm\.nih\.gov/research/umls/rxnorm", re.I)),
    ("ICD system", re.compile(r"hl7\.org/fhir/sid/icd|\bicd-?(9|10|11)(-cm)?\b", re.I)),
    ("NDC, CVX or CPT system", re.compile(r"hl7\.org/fhir/sid/(ndc|cvx)|\bama-assn\.org/go/cpt", re.I)),
]

# Matches that are not clinical knowledge: (file, the exact text matched) -> why. Generic systems
# that no pattern above matches need no entry (UCUM http://unitsofmeasure.org, the HL7 code systems
# under http://terminology.hl7.org/CodeSystem/ such as v3-ObservationValue#SUBSETTED or action-type).
ALLOWED_SHAPES: dict[tuple[str, str], str] = {}


def clinical_shapes(text: str) -> list[tuple[int, str, str]]:
    """(line, what, matched text) for every clinical-code shape in a source text."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        for what, pattern in CLINICAL_SHAPES:
            found += [(number, what, m.group(0)) for m in pattern.finditer(line)]
    return found


def test_no_clinical_codes_in_python():
    """Every .py file of service/ and cards/, comments included, is free of clinical-code shapes."""
    offenders = [f"{rel(p)}:{line}: {what} {hit!r}" for p in SOURCES
                 for line, what, hit in clinical_shapes(p.read_text(encoding="utf-8"))
                 if (rel(p), hit) not in ALLOWED_SHAPES]
    assert offenders == []


def test_every_allowed_shape_still_occurs():
    for (path, hit), _why in ALLOWED_SHAPES.items():
        assert any(h == hit for _, _, h in clinical_shapes((ROOT / path).read_text(encoding="utf-8"))), path


@pytest.mark.parametrize("line", [
    'HEMOGLOBIN = "718-7"',
    "# weight is LOINC 29463-7",
    'DAH = "78144005"',
    "codes = {'rxnorm': '6902'}",
    'if coding["code"] == "3002" and "rxnorm" in coding["system"]:',
    'SYSTEM = "http://loinc.org"',
    'SCT = "http://snomed.info/sct"',
    'RX = "http://www.nlm.nih.gov/research/umls/rxnorm"',
    'ICD = "http://hl7.org/fhir/sid/icd-10-cm"',
])
def test_clinical_shapes_are_found(line):
    assert clinical_shapes(line)


@pytest.mark.parametrize("line", [
    'UCUM = "http://unitsofmeasure.org"',
    'SUBSETTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"}',
    'when = "2026-03-01T12:00:00Z"',
    "MAX_BYTES = 10_000_000",
    '"""RxNorm normalized drug names, parsed (RxNorm Technical Documentation)."""',
    'LOOPBACK = "http://2130706433/"',
])
def test_generic_text_is_not_taken_for_a_code(line):
    assert clinical_shapes(line) == []


# ---- layers (tests/layering.py holds the rules; ARCHITECTURE.md explains them) -------------------

# Imports that break the rules on main today, each with the change that removes it. The list only
# shrinks: a new finding fails, and so does an entry that no longer occurs (delete it then).
KNOWN_DEBT: dict[str, dict] = {}


def _keys(kind: str, findings: list) -> set[str]:
    if kind == "import loops":
        return {" <-> ".join(loop) for loop in findings}
    return {finding.split(" (line")[0] for finding in findings}


@pytest.fixture(scope="module")
def findings():
    return layering.check(ROOT)


@pytest.mark.parametrize("kind", ["unplaced modules", "imports across layers", "imports of a package's insides",
                                  "import loops"])
def test_import_graph_follows_the_layers(findings, kind):
    found = _keys(kind, findings[kind])
    debt = set(KNOWN_DEBT.get(kind, {}))
    assert sorted(found - debt) == [], f"{kind}: see ARCHITECTURE.md for what each layer may import"
    assert sorted(debt - found) == [], f"{kind}: fixed, remove from KNOWN_DEBT in {__name__}"


def test_the_layer_table_points_down():
    """Every allowed import goes from a higher layer to a lower one: the table has no cycle, so an
    allowed import can never close a loop between layers."""
    assert layering.cycles(layering.MAY_IMPORT) == []
    assert set(layering.MAY_IMPORT) == set(layering.LAYERS)
    assert all(allowed <= set(layering.LAYERS) for allowed in layering.MAY_IMPORT.values())


# ---- the checker itself, on a tiny fake tree ----------------------------------------------------


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


CLEAN = {
    "service/__init__.py": "",
    "service/errors.py": "class Error(Exception):\n    pass\n",
    "service/engine/__init__.py": "from service.engine.apply import apply\n",
    "service/engine/apply.py": "from service.errors import Error\nfrom . import index\n\n"
    "def apply():\n    return index\n",
    "service/engine/index.py": "",
    "service/hooks/__init__.py": "",
    "service/hooks/call.py": "from service.engine import apply\nfrom cards import render\n",
    "service/web/__init__.py": "from service.hooks import call\n",
    "cards/__init__.py": "",
    "cards/render.py": "import service.engine\n",
}


def test_checker_finds_nothing_in_a_tree_that_follows_the_rules(tmp_path):
    assert layering.check(_tree(tmp_path, CLEAN)) == {
        "unplaced modules": [], "imports across layers": [], "imports of a package's insides": [], "import loops": []}


@pytest.mark.parametrize("files,kind,expected", [
    # engine -> web: an import up the layers, also written relative and inside a function
    ({"service/engine/index.py": "from service.web import x\n"}, "imports across layers",
     ["service.engine.index -> service.web (line 1)"]),
    ({"service/engine/index.py": "def f():\n    from ..hooks import call\n"}, "imports across layers",
     ["service.engine.index -> service.hooks.call (line 2)"]),
    ({"service/engine/index.py": "import cards.render\n"}, "imports across layers",
     ["service.engine.index -> cards.render (line 1)"]),
    ({"service/fhir/__init__.py": "", "service/engine/index.py": "from service import fhir\n"},
     "imports across layers", ["service.engine.index -> service.fhir (line 1)"]),
    # a package that does not exist in CLEAN: its rules apply as soon as it appears
    ({"service/data/__init__.py": "", "service/data/prefetch.py": "from service.hooks.call import x\n"},
     "imports across layers", ["service.data.prefetch -> service.hooks.call (line 1)"]),
    ({"service/content/__init__.py": "", "service/content/folder.py": "from cards import render\n"},
     "imports across layers", ["service.content.folder -> cards.render (line 1)"]),
    # peers: hooks and operations do not import each other
    ({"service/operations/__init__.py": "from service.hooks import call\n"}, "imports across layers",
     ["service.operations -> service.hooks.call (line 1)"]),
    # callers use the engine's public face
    ({"service/hooks/call.py": "from service.engine.apply import apply\n"}, "imports of a package's insides",
     ["service.hooks.call -> service.engine.apply (line 1)"]),
    ({"cards/render.py": "import service.engine.index\n"}, "imports of a package's insides",
     ["cards.render -> service.engine.index (line 1)"]),
    # a loop, even one written lazily inside a function
    ({"service/engine/index.py": "def f():\n    from service.engine.apply import apply\n"}, "import loops",
     [["service.engine.apply", "service.engine.index"]]),
    # a loose module nobody placed in a layer
    ({"service/loose.py": ""}, "unplaced modules", ["service.loose"]),
])
def test_checker_finds_a_violation_added_to_the_tree(tmp_path, files, kind, expected):
    findings = layering.check(_tree(tmp_path, {**CLEAN, **files}))
    assert findings[kind] == expected


def test_cycles_finds_every_loop_and_only_loops():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"d"}, "e": {"a"}, "f": set()}
    assert layering.cycles(graph) == [["a", "b", "c"], ["d"]]
