"""fhirpathpy's FHIRPath test cases (tests/engine/fhirpath_r4_cases/, the FHIRPath R4 cases and
fhirpathpy's own, MIT) on the FHIRPath fast path (service/engine/fhirpath_compiled.py).

Each case is evaluated as fhirpathpy's test harness does (its `evaluate`: the case's resource,
`%resource` and `%context`, the case's variables, the FHIR model it names), once on the fast path
and once on fhirpathpy's tree walker:
- every case the fast path compiles gives the same result (or the same error) on both paths;
- every case written only with constructs the content uses (node kinds, functions, operators) is
  compiled, and passes on the fast path whenever it passes on fhirpathpy's tree walker.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fhirpathpy import evaluate
from fhirpathpy.engine import do_eval
from fhirpathpy.engine.invocations.constants import constants
from fhirpathpy.engine.nodes import FP_Quantity, FP_Type
from fhirpathpy.engine.util import arraify, get_data
from fhirpathpy.models import models
from fhirpathpy.parser import parse

from service.engine.fhirpath_compiled import NotCompiled, compile_node
from service.engine.functions import TABLE
from tests.engine.test_fhirpath_fast_path import content_expressions, shape

CASES = Path(__file__).parent / "fhirpath_r4_cases"
RESOURCES = {p.name: json.loads(p.read_text(encoding="utf-8")) for p in (CASES / "resources").glob("*.json")}
FILES = sorted((CASES / "cases").glob("*.json"))


def cases(path: Path) -> Iterator[tuple[str, dict, Any]]:
    """(description, case with a single expression, subject) of every enabled case of a file."""
    raw = json.loads(path.read_text(encoding="utf-8"))

    def walk(items: list, disabled: bool) -> Iterator[tuple[str, dict]]:
        for item in items:
            group = next((k for k in item if k.startswith("group")), None) if isinstance(item, dict) else None
            if group is not None:
                yield from walk(item[group], disabled or item.get("disable", False))
            elif "expression" in item and not disabled and not item.get("disable"):
                for expression in item["expression"] if isinstance(item["expression"], list) else [item["expression"]]:
                    yield item.get("desc", ""), {**item, "expression": expression}

    for desc, case in walk(raw["tests"], False):
        yield desc, case, raw.get("subject")


OPERATOR_NODES = frozenset({
    "InequalityExpression", "AdditiveExpression", "MultiplicativeExpression", "EqualityExpression", "OrExpression",
    "ImpliesExpression", "AndExpression", "XorExpression", "MembershipExpression", "TypeExpression",
    "UnionExpression", "PolarityExpression",
})


def constructs(node: dict) -> set[str]:
    """What an expression is written with: its node kinds, with the function or operator named."""
    found = set()
    stack = [node]
    while stack:
        item = stack.pop()
        kind = item.get("type", "")
        if kind == "Functn":
            ident = next((c for c in item.get("children", []) if c.get("type") == "Identifier"), None)
            found.add(f"function {ident['text'] if ident else '?'}")
        elif kind in OPERATOR_NODES and item.get("terminalNodeText"):
            found.add(f"{kind} {item['terminalNodeText'][0]}")
        else:
            found.add(kind)
        stack.extend(item.get("children", []))
    return found


def _visit(node: Any) -> Any:
    """fhirpathpy's own result conversion at the end of `evaluate` (apply_parsed_path)."""
    data = get_data(node)
    if isinstance(node, list):
        out = []
        for item in data:
            value = _visit(item)
            if isinstance(value, dict) and list(value) == ["extension"]:
                continue
            out.append(value)
        return out
    if isinstance(data, dict) and not isinstance(data, FP_Type):
        return {k: _visit(v) for k, v in data.items()}
    return data


def run(case: dict, subject: Any, fast: bool) -> list:
    """The case's expression evaluated as fhirpathpy's `evaluate` does, on one path."""
    resource = RESOURCES.get(case.get("inputfile"), subject)
    model = models[case["model"]] if "model" in case else None
    variables: dict[str, Any] = {"resource": resource}
    if "context" in case:
        variables["context"] = evaluate(resource, case["context"])[0]
    variables.update(case.get("variables") or {})
    node = parse(case["expression"])["children"][0]
    evaluator = compile_node(node, {}) if fast else (lambda ctx, data: do_eval(ctx, data, node))
    constants.reset()
    root = arraify(resource)
    ctx = {"dataRoot": root, "vars": {"context": resource, "ucum": "http://unitsofmeasure.org", **variables},
           "model": model, "userInvocationTable": {}}
    return _visit(evaluator(ctx, root))


def matches(result: list, expected: list) -> bool:
    """fhirpathpy's harness comparison: equal lists, or one item equal as a quantity or as text
    (an expected string is read as a FHIRPath literal)."""
    if result == expected:
        return True
    if len(result) == len(expected) == 1:
        want = evaluate({}, expected[0])[0] if isinstance(expected[0], str) else expected[0]
        if isinstance(result[0], FP_Quantity) and isinstance(want, FP_Quantity):
            return result[0] == want
        return str(result[0]) == str(want)
    return False


def outcome(case: dict, subject: Any, fast: bool) -> tuple[str, Any, bool]:
    """('ok', result shape, passes) or ('error', exception type, whether the case expects one)."""
    try:
        result = run(case, subject, fast)
    except NotCompiled:
        raise
    except Exception as exc:  # fhirpathpy raises bare Exception, ValueError, TypeError...
        return "error", type(exc).__name__, bool(case.get("error"))
    try:
        passes = "result" in case and matches(result, case["result"])
    except Exception:  # an expected value fhirpathpy cannot read as a literal
        passes = False
    return "ok", shape(result), passes


@pytest.fixture(scope="module")
def content_constructs(content) -> set[str]:
    return set().union(*(constructs(e._ast) for e in content_expressions(content)))


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_fast_path_passes_fhirpathpy_cases(path: Path, content_constructs: set[str]):
    differing, failing, not_compiled = [], [], []
    for desc, case, subject in cases(path):
        expression = case["expression"]
        try:
            tree = parse(expression)
        except Exception:  # a case about a syntax error: the parser is fhirpathpy's on both paths
            continue
        in_content = constructs(tree) <= content_constructs
        slow = outcome(case, subject, fast=False)
        try:
            quick = outcome(case, subject, fast=True)
        except NotCompiled as exc:  # fine only where the tree walker fails too (wrong arity...)
            if in_content and slow[0] != "error":
                not_compiled.append((desc, expression, str(exc)))
            continue
        if quick[:2] != slow[:2]:
            differing.append((desc, expression, quick[:2], slow[:2]))
        if in_content and slow[2] and not quick[2]:
            failing.append((desc, expression))
    assert differing == []
    assert not_compiled == []
    assert failing == []


def test_the_cases_cover_the_content_constructs(content_constructs: set[str]):
    """The cases exercise every construct the content is written with, bar the project's own
    functions (tests/engine/test_fhirpath.py) and `exclude()` (FHIRPath 2.0 draft, which the
    differential test on the scenarios covers)."""
    covered: set[str] = set()
    for path in FILES:
        for _, case, _ in cases(path):
            try:
                covered |= constructs(parse(case["expression"]))
            except Exception:  # a case about a syntax error
                continue
    own = {f"function {name}" for name in TABLE}
    assert sorted(content_constructs - covered - own) == ["function exclude"]
