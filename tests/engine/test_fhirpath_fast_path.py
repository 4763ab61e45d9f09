"""The FHIRPath fast path (service/engine/fhirpath_compiled.py) on the bundled content.

- Every expression of the content is on the fast path (`Expression.slow_reason` is None); an
  expression that is not is listed with the reason, so a new construct in the content shows here.
- Differential: every FHIRPath evaluation made while every scenario case of plandefinitions/tests/
  is answered (variables, conditions, dynamic values, prefetch templates) is made twice, on the
  fast path and on fhirpathpy's tree walker, and the two give the same collection: same items, same
  Python types, same FHIR type paths of the nodes, or the same error.
- The one allowed difference: `and`, `or` and `implies` skip their right operand when the left one
  decides (FHIRPath N1 §6.5), so where that operand would raise, fhirpathpy's tree walker raises and
  the fast path answers the verdict (`test_the_left_operand_decides_and_the_right_one_is_not_evaluated`).
  The differential compares every evaluation as it is; no scenario meets that case.
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


@pytest.mark.parametrize("text, verdict", [
    ("false and ('a' | 'b')", [False]),
    ("true or ('a' | 'b')", [True]),
    ("false implies ('a' | 'b')", [True]),
])
def test_the_left_operand_decides_and_the_right_one_is_not_evaluated(text, verdict):
    """The allowed difference from fhirpathpy: its tree walker evaluates the right operand, a
    collection of two where one Boolean is expected, and raises; the fast path answers the verdict."""
    expression = Expression(text)
    assert expression.slow_reason is None
    evaluation = Evaluation(datetime(2026, 3, 1, tzinfo=UTC), DataIndex())
    node, _ = expression._root
    with pytest.raises(ExpressionError):
        expression._run(evaluation, (node, None), {}, {}, None)
    assert to_python(expression.evaluate(evaluation, {}, {})) == verdict


@pytest.mark.parametrize("text, expected", [
    ("true and ('a' | 'b').exists()", [True]), ("true and {}", []), ("false or {}", []),
    ("{} and false", [False]), ("{} or true", [True]), ("true implies false", [False]),
])
def test_the_right_operand_is_evaluated_when_the_left_one_does_not_decide(text, expected):
    evaluation = Evaluation(datetime(2026, 3, 1, tzinfo=UTC), DataIndex())
    assert to_python(Expression(text).evaluate(evaluation, {}, {})) == expected


def _both_paths(text: str, variables: dict[str, Any]) -> tuple[list[Any], list[Any]]:
    """The expression's value on the fast path and on fhirpathpy's tree walker."""
    expression = Expression(text)
    assert expression.slow_reason is None
    evaluation = Evaluation(datetime(2026, 3, 1, tzinfo=UTC), DataIndex())
    node, _ = expression._root
    walked = expression._run(evaluation, (node, None), {}, variables, None)
    return to_python(expression.evaluate(evaluation, {}, variables)), to_python(walked)


def test_a_chain_repeated_in_an_expression_is_computed_once_per_evaluation(monkeypatch):
    from fhirpathpy.engine.invocations.filtering import where_macro

    from service.engine import fhirpath_compiled

    calls = []
    leaner = fhirpath_compiled._LEANER[where_macro]
    monkeypatch.setitem(fhirpath_compiled._LEANER, where_macro,
                        lambda ctx, data, expr: calls.append(1) or leaner(ctx, data, expr))
    text = "iif(%xs.where(value > 1).exists(), %xs.where(value > 1).count(), 0)"
    fast, walked = _both_paths(text, {"xs": [{"value": 1}, {"value": 2}, {"value": 3}]})
    assert fast == walked == [2]
    assert len(calls) == 1  # the second occurrence is the first one's value


@pytest.mark.parametrize("text, expected", [
    # The repeated chain `%s.substring(start, 1)` reads each item of select() through its argument
    # `start` (the outer $this): its value differs per item and must not be shared across them.
    ("%items.select(%s.substring(start, 1)) | %items.select(%s.substring(start, 1))", ["a", "b", "c"]),
    # A repeat after a where() has moved $this gives what the first occurrence gave.
    ("%items.where(start > 0).count().toString() & '/' & %items.where(start > 0).count().toString()", ["2/2"]),
    ("(%items.where(start > 0).select(%s.substring(start, 1)) | %items.where(start > 0).select(%s.substring(start, 1)))"
     ".count()", [2]),
])
def test_a_repeated_chain_gives_what_the_tree_walker_gives(text, expected):
    variables = {"items": [{"start": 0}, {"start": 1}, {"start": 2}], "s": "abc"}
    fast, walked = _both_paths(text, variables)
    assert fast == walked == expected
