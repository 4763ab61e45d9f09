"""The FHIRPath fast path (service/engine/fhirpath_compiled.py) on the bundled content.

- Every expression of the content is on the fast path (`Expression.slow_reason` is None); an
  expression that is not is listed with the reason, so a new construct in the content shows here.
- Differential: every FHIRPath evaluation made while every scenario case of plandefinitions/tests/
  is answered (variables, conditions, dynamic values, prefetch templates) is made twice, on the
  fast path and on fhirpathpy's tree walker, and the two give the same collection: same items, same
  Python types, same FHIR type paths of the nodes, or the same error.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from fhirpathpy.engine.nodes import FP_Type, ResourceNode

from service.engine.fhirpath import Evaluation, Expression, to_python
from service.engine.index import DataIndex
from service.engine.model import Source
from service.engine.problems import Problems
from service.errors import ExpressionError
from tests.scenarios.cases import CASES, Runs


def content_expressions(content) -> list[Expression]:
    """Every Expression reachable from the loaded content (plans, actions, libraries, activities)."""
    found: dict[int, Expression] = {}
    seen: set[int] = set()
    stack: list[Any] = [content]
    while stack:
        item = stack.pop()
        if id(item) in seen or isinstance(item, (str, bytes, int, float, Decimal, bool, type(None))):
            continue
        seen.add(id(item))
        if isinstance(item, Expression):
            found[id(item)] = item
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend(item)
        elif dataclasses.is_dataclass(item):
            stack.extend(getattr(item, f.name) for f in dataclasses.fields(item))
        elif hasattr(item, "__dict__"):
            stack.extend(vars(item).values())
    return list(found.values())


def test_every_content_expression_is_on_the_fast_path(content):
    expressions = content_expressions(content)
    assert len(expressions) > 300  # the walk reached the content's expressions
    slow = sorted((e.text, e.slow_reason) for e in expressions if e.slow_reason is not None)
    assert slow == []


def test_the_content_loads_without_a_fast_path_issue(content):
    assert [str(i) for i in content.issues if "fast path" in i.message] == []


def test_an_expression_off_the_fast_path_runs_on_the_tree_walker_and_is_reported_at_load():
    problems = Problems()
    source = Source("Library-example.json", "Library.extension[0].valueExpression")
    expression = problems.expression({"language": "text/fhirpath", "expression": "name.given.trace('given')"}, source)
    assert expression is not None and expression.slow_reason == "trace()"
    assert [str(i) for i in problems.issues] == [
        "Library-example.json: Library.extension[0].valueExpression: not on the FHIRPath fast path (trace()): "
        "evaluated by fhirpathpy's slower tree walker"]
    patient = {"resourceType": "Patient", "name": [{"given": ["Ada", "B."]}]}
    evaluation = Evaluation(datetime(2026, 3, 1, tzinfo=UTC), DataIndex())
    assert to_python(expression.evaluate(evaluation, patient, {})) == ["Ada", "B."]
    assert Expression("name.given").slow_reason is None


def shape(value: Any) -> Any:
    """A value as comparable data: Python type names kept (1 != True != Decimal('1')), a node's
    FHIR type path, name and index kept."""
    if isinstance(value, list):
        return ["list", [shape(v) for v in value]]
    if isinstance(value, ResourceNode):
        return ["node", value.path, value.propName, value.index, shape(value.data)]
    if isinstance(value, dict):
        return ["dict", {k: shape(v) for k, v in value.items()}]
    if isinstance(value, FP_Type):
        return [type(value).__name__, str(value)]
    return [type(value).__name__, repr(value)]


@pytest.fixture(scope="module")
def differential(content, tmp_path_factory):
    """Every scenario case answered with each FHIRPath evaluation made on both paths; returns the
    differences and how often each expression was compared."""
    original = Expression._run
    differences: list[tuple[str, Any, Any]] = []
    compared: Counter[str] = Counter()

    def compare(text: str, quick: Any, slow: Any) -> None:
        compared[text] += 1
        if quick != slow:
            differences.append((text, quick, slow))

    def both(self, evaluation, step, resource, variables, lazy):
        node, fast = step
        if fast is None:
            return original(self, evaluation, step, resource, variables, lazy)
        try:
            slow = shape(original(self, evaluation, (node, None), resource, variables, lazy))
        except ExpressionError as exc:
            slow = ["error", str(exc)]
        try:
            result = original(self, evaluation, step, resource, variables, lazy)
        except ExpressionError as exc:
            compare(self.text, ["error", str(exc)], slow)
            raise
        compare(self.text, shape(result), slow)
        return result

    mp = pytest.MonkeyPatch()
    mp.setattr(Expression, "_run", both)
    try:
        runs = Runs(content, tmp_path_factory.mktemp("differential") / "feedback.sqlite3")
        statuses = Counter(run.status for run in runs.values())
    finally:
        mp.undo()
    return differences, compared, statuses


def test_fast_path_gives_what_fhirpathpy_gives_on_every_scenario(differential):
    differences, compared, statuses = differential
    assert statuses == Counter({200: len(CASES)})
    assert differences == []


def test_the_differential_reaches_most_of_the_content(differential, content):
    """The scenarios exercise the content: nearly all of its expressions were compared at least once
    (486 of 488 when written; the others sit behind `and` chains no scenario gets far enough into)."""
    _, compared, _ = differential
    texts = {e.text for e in content_expressions(content)}
    reached = texts & set(compared)
    print(f"compared {sum(compared.values())} evaluations of {len(compared)} expressions; "
          f"{len(reached)} of the content's {len(texts)} reached")
    assert sum(compared.values()) > 10_000
    assert len(reached) / len(texts) > 0.95, f"{len(reached)} of {len(texts)}"
