"""The FHIRPath gateway: the only importer of fhirpathpy.

Rules (FHIRPath N1, http://hl7.org/fhirpath/N1/):
- Expressions are parsed strictly at load: any syntax error, or text left over after a
  complete expression, raises ExpressionError.  fhirpathpy alone accepts both silently.
- Evaluation uses the FHIR R4 model, so choice types (`Observation.value`) resolve.
- `now()`, `today()` and `%now` read the evaluation time the engine binds, never the clock.
- Library exceptions become ExpressionError; nothing from fhirpathpy leaks out.
- The generic functions of `service.engine.functions` are registered here.
- Per-call state (evaluation time, data index, terminology) is an `Evaluation` the caller
  passes to `Expression.evaluate`/`holds`; it travels in fhirpathpy's evaluation context (the
  `ctx` dict fhirpathpy hands to every invocation, never copied) and every generic function
  receives it as its first argument.  No module or context-variable state is per call.
- Expressions run on the fast path (`fhirpath_compiled`: the parse tree translated once into
  Python closures, fhirpathpy's semantics and functions); one that uses a construct it does not
  translate runs on fhirpathpy's tree walker, and says why in `Expression.slow_reason`.
- Variables may be supplied lazily (computed on first use), and a condition that is an
  `and` chain stops at the first operand that is not true (FHIRPath §6.5 allows not
  evaluating the second operand): rules that do not apply cost little.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import TYPE_CHECKING, Any, Concatenate, Protocol, Required, TypeAlias, TypedDict

from antlr4 import CommonTokenStream, InputStream, Token
from antlr4.error.ErrorListener import ErrorListener
from antlr4.tree.Tree import ParseTreeWalker
from fhirpathpy.engine import do_eval
from fhirpathpy.engine.invocations.constants import constants
from fhirpathpy.engine.nodes import FP_DateTime as FP_DateTime  # re-exported: the generic functions read them
from fhirpathpy.engine.nodes import FP_Quantity as FP_Quantity
from fhirpathpy.engine.nodes import FP_Time, FP_Type, ResourceNode
from fhirpathpy.models import models
from fhirpathpy.parser.ASTPathListener import ASTPathListener
from fhirpathpy.parser.generated.FHIRPathLexer import FHIRPathLexer
from fhirpathpy.parser.generated.FHIRPathParser import FHIRPathParser

from service.engine import fhirpath_compiled
from service.errors import ExpressionError, UnsupportedLanguage

if TYPE_CHECKING:
    from service.engine.index import DataIndex
    from service.engine.terminology import Terminology

FHIRPATH_LANGUAGES = ("text/fhirpath",)
_R4 = models["r4"]
_VARIABLE = re.compile(r"%(?:`([^`]+)`|([A-Za-z_][A-Za-z0-9_]*))")
# Variables every FHIRPath evaluation has (FHIRPath §Environment variables; FHIR §2.1.9.1.4).
STANDARD_VARIABLES = frozenset({"ucum", "context", "resource", "rootResource", "sct", "loinc"})
# The key of fhirpathpy's evaluation context under which the `Evaluation` of the call travels.
_EVALUATION = "service.evaluation"
# A node of fhirpathpy's syntax tree: {"type", "text", "children"}.
Node: TypeAlias = dict[str, Any]


class _RaisingListener(ErrorListener):  # type: ignore[misc]  # antlr4 ships no types
    def syntaxError(self, recognizer: Any, offendingSymbol: Any, line: int, column: int, msg: str,  # noqa: N802
                    e: Any) -> None:
        raise SyntaxError(f"line {line}, column {column}: {msg}")


@functools.lru_cache(maxsize=8192)
def _parse_strict(text: str) -> tuple[Node, tuple[str, ...]]:
    """The AST, and the source text of each operand of the top-level `and` chain (for the trace).
    Parsed once per distinct text (antlr's parser is most of a content load; content repeats many
    expressions across rules and reloads); the AST is read, never changed, by what uses it."""
    listener = _RaisingListener()
    lexer = FHIRPathLexer(InputStream(text))
    lexer.removeErrorListeners()
    lexer.addErrorListener(listener)
    tokens = CommonTokenStream(lexer)
    parser = FHIRPathParser(tokens)
    parser.removeErrorListeners()
    parser.addErrorListener(listener)
    tree = parser.expression()
    if tokens.LA(1) != Token.EOF:
        tok = tokens.LT(1)
        raise SyntaxError(f"column {tok.column}: unexpected {tok.text!r} after a complete expression")
    ast = ASTPathListener()
    ParseTreeWalker().walk(ast, tree)
    root: Node = ast.parentStack[0]
    return root, tuple(_conjunct_texts(tree, text))


def _conjunct_texts(tree: Any, text: str) -> list[str]:
    """The source text of each operand of a top-level `and` chain, in order (as `_conjuncts`
    splits the AST: a parenthesised chain is one operand)."""
    if isinstance(tree, FHIRPathParser.AndExpressionContext):
        return _conjunct_texts(tree.expression(0), text) + _conjunct_texts(tree.expression(1), text)
    return [text[tree.start.start:tree.stop.stop + 1].strip()]


class Evaluation:
    """Per-call state the generic functions need: the evaluation time, the data index and the
    terminology.  Made once per call by the caller and passed to every evaluation."""

    __slots__ = ("now", "fp_now", "fp_today", "index", "terminology", "allowed_cache", "stub_references", "memo")

    def __init__(self, now: datetime, index: DataIndex, terminology: Terminology | None = None,
                 stub_references: bool = False) -> None:
        self.now = now
        # ms precision: hour/minute arithmetic needs it
        self.fp_now = FP_DateTime(now.isoformat(timespec="milliseconds"))
        self.fp_today = FP_DateTime(now.date().isoformat())
        self.index = index
        self.terminology = terminology
        self.allowed_cache: dict[tuple[object, ...], frozenset[str]] = {}
        # resolve() of a reference not in the data: nothing (engine), or a {resourceType, id} stub
        # (prefetch templates only need the id: CDS Hooks 3.0 ballot §Prefetch tokens).
        self.stub_references = stub_references
        self.memo: dict[object, Any] = {}  # fast path: operators on literals and %variables, this call


# A generic function: `fn(evaluation, inputs, *args)`, the arguments as fhirpathpy passes them.
GenericFunction: TypeAlias = Callable[Concatenate[Evaluation, list[Any], ...], Any]


class Invocation(TypedDict, total=False):
    """An entry of the function table, in fhirpathpy's user invocation table format: the function,
    and its parameter types by argument count (`arity`) or for any count (`variadic`)."""

    fn: Required[GenericFunction]
    arity: dict[int, list[str]]
    variadic: str


class LazyVariables(Protocol):
    """`%variables` computed on first use."""

    def has(self, name: str) -> bool: ...

    def get(self, name: str) -> Any:
        """The value of `name`; KeyError when it has no variable of that name."""


def _now(evaluation: Evaluation, inputs: list[Any]) -> FP_DateTime:
    return evaluation.fp_now


def _today(evaluation: Evaluation, inputs: list[Any]) -> FP_DateTime:
    return evaluation.fp_today


# fhirpathpy functions that read its clock (fhirpathpy.engine.invocations.datetime).
_FHIRPATHPY_CLOCK = frozenset({"now", "today", "timeOfDay"})
_BUILTIN_OVERRIDES: dict[str, Invocation] = {
    "now": {"fn": _now},
    "today": {"fn": _today},
}


# The generic functions (and the time overrides), each `fn(evaluation, inputs, *args)`: filled once,
# when `service.engine.functions` registers its table (the engine package imports it at start).
_FUNCTIONS: dict[str, Invocation] = dict(_BUILTIN_OVERRIDES)


def register(table: Mapping[str, Invocation]) -> None:
    """Add generic functions to the gateway (done once, at import of the module that defines them)."""
    _FUNCTIONS.update(table)
    _invocations.cache_clear()


def _function_table() -> dict[str, Invocation]:
    return _FUNCTIONS


def _bound(fn: GenericFunction) -> Callable[..., Any]:
    """fhirpathpy calls an invocation `fn(ctx, inputs, *args)`: hand the function the call's
    Evaluation from `ctx` and its inputs unwrapped (what fhirpathpy does for user functions)."""
    def invoke(ctx: dict[str, Any], inputs: list[Any], *args: Any) -> Any:
        return fn(ctx[_EVALUATION], [_data(i) for i in inputs], *args)
    return invoke


def _data(item: Any) -> Any:
    """fhirpathpy's util.get_data in one call: a node's data, a float as a Decimal."""
    value = item.data if isinstance(item, ResourceNode) else item
    return Decimal(str(value)) if isinstance(value, float) else value


@cache
def _invocations() -> dict[str, dict[str, Any]]:
    """The function table in fhirpathpy's calling convention, built once."""
    return {name: {**entry, "fn": _bound(entry["fn"])} for name, entry in _function_table().items()}


class Variables(dict[str, Any]):
    """`%variables` for one evaluation: given values, plus names computed on first use by `lazy`
    (an object with `has(name)` and `get(name)`)."""

    def __init__(self, given: Mapping[str, Any], lazy: LazyVariables | None = None) -> None:
        super().__init__(given)
        self._lazy = lazy

    def __contains__(self, name: object) -> bool:
        return dict.__contains__(self, name) or (self._lazy is not None and isinstance(name, str)
                                                 and self._lazy.has(name))

    def __missing__(self, name: str) -> Any:
        if self._lazy is None:
            raise KeyError(name)
        value = self._lazy.get(name)  # KeyError for a name it does not have
        self[name] = value
        return value


def _conjuncts(node: Node) -> list[Node]:
    if node.get("type") == "AndExpression" and len(node.get("children", [])) == 2:
        return _conjuncts(node["children"][0]) + _conjuncts(node["children"][1])
    return [node]


def _known_functions() -> set[str]:
    from fhirpathpy.engine.invocations import invocation_registry

    return set(invocation_registry) | set(_function_table())


def _function_names(node: Node) -> set[str]:
    names = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if item.get("type") == "Functn":
            ident = next((c for c in item.get("children", []) if c.get("type") == "Identifier"), None)
            if ident is not None:
                names.add(ident["text"].strip("`"))
        stack.extend(item.get("children", []))
    return names


class Expression:
    """A compiled FHIRPath expression."""

    __slots__ = ("text", "variables", "slow_reason", "_ast", "_root", "_conjuncts", "_operand_texts", "_reads_clock")

    def __init__(self, text: str, language: str = "text/fhirpath") -> None:
        if language not in FHIRPATH_LANGUAGES:
            raise UnsupportedLanguage(text, f"expression language {language!r} is not supported (only text/fhirpath)")
        if not isinstance(text, str) or not text.strip():
            raise ExpressionError(str(text), "empty expression")
        self.text = text
        try:
            self._ast, self._operand_texts = _parse_strict(text)
        except SyntaxError as exc:
            raise ExpressionError(text, f"syntax error: {exc.msg}") from None
        except Exception as exc:  # antlr recognition errors raised by the lexer
            raise ExpressionError(text, f"syntax error: {exc}") from None
        unknown = sorted(_function_names(self._ast) - _known_functions())
        if unknown:
            raise ExpressionError(text, f"unknown function(s): {', '.join(unknown)}")
        self.variables = frozenset(a or b for a, b in _VARIABLE.findall(text))
        # now() and today() are the gateway's (the call's time); fhirpathpy's clock serves the rest.
        self._reads_clock = bool((_function_names(self._ast) - set(_BUILTIN_OVERRIDES)) & _FHIRPATHPY_CLOCK)
        self.slow_reason: str | None = None  # why the expression is not on the fast path
        self._root = self._step(self._ast["children"][0])
        self._conjuncts = [self._step(node) for node in _conjuncts(self._root[0])]

    def _step(self, node: Node) -> tuple[Node, fhirpath_compiled.Fn | None]:
        """The node and its compiled closure (None: fhirpathpy's tree walker evaluates it)."""
        try:
            return node, fhirpath_compiled.compile_node(node, _invocations())
        except fhirpath_compiled.NotCompiled as exc:
            self.slow_reason = self.slow_reason or str(exc)
        except Exception as exc:  # noqa: BLE001  (nesting too deep; a literal fhirpathpy reads only when run)
            self.slow_reason = self.slow_reason or f"{type(exc).__name__}: {exc}"
        return node, None

    def _run(self, evaluation: Evaluation, step: tuple[Node, fhirpath_compiled.Fn | None], resource: Any,
             variables: Mapping[str, Any], lazy: LazyVariables | None) -> list[Any]:
        focus = resource if resource is not None else {}
        env = Variables({"context": focus, "ucum": "http://unitsofmeasure.org", **variables}, lazy)
        env["now"] = evaluation.fp_now
        if self._reads_clock:  # fhirpathpy's own clock, kept for one evaluation (its timeOfDay())
            constants.reset()
        data_root = focus if isinstance(focus, list) else [focus]  # fhirpathpy's arraify of a value that is not None
        ctx = {"dataRoot": data_root, "vars": env, "model": _R4, "userInvocationTable": _invocations(),
               _EVALUATION: evaluation, fhirpath_compiled.MEMO: evaluation.memo}
        try:
            node, fast = step
            result = fast(ctx, data_root) if fast is not None else do_eval(ctx, data_root, node)
        except ExpressionError:
            raise
        except RecursionError:
            raise ExpressionError(self.text, "expression nests too deeply") from None
        except Exception as exc:  # fhirpathpy raises bare Exception for type and arity errors
            raise ExpressionError(self.text, str(exc) or type(exc).__name__) from None
        return result if isinstance(result, list) else [result]

    def evaluate(self, evaluation: Evaluation, resource: Any, variables: Mapping[str, Any],
                 lazy: LazyVariables | None = None) -> list[Any]:
        """Evaluate on `resource` with `%variables` (and `lazy` ones) for the call `evaluation`;
        returns a collection."""
        return self._run(evaluation, self._root, resource, variables, lazy)

    def holds(self, evaluation: Evaluation, resource: Any, variables: Mapping[str, Any],
              lazy: LazyVariables | None = None) -> bool:
        """A condition's truth: a single `true`; an `and` chain stops at its first operand that is not."""
        for step in self._conjuncts:
            if not as_boolean(self._run(evaluation, step, resource, variables, lazy), self.text):
                return False
        return True

    def operands(self, evaluation: Evaluation, resource: Any, variables: Mapping[str, Any],
                 lazy: LazyVariables | None = None) -> list[tuple[str, list[Any] | ExpressionError]]:
        """Each operand of the top-level `and` chain (the whole expression when it is not one) with
        its own result, or the error evaluating it: every operand is evaluated, so a trace shows
        which one is not true.  For explaining a condition only; `holds` decides it."""
        out: list[tuple[str, list[Any] | ExpressionError]] = []
        texts = self._operand_texts if len(self._operand_texts) == len(self._conjuncts) else (self.text,)
        steps = self._conjuncts if len(texts) == len(self._conjuncts) else [self._root]
        for text, step in zip(texts, steps, strict=True):  # each step on the fast path as `holds` runs it
            try:
                out.append((text, self._run(evaluation, step, resource, variables, lazy)))
            except ExpressionError as exc:
                out.append((text, exc))
        return out

    def calls(self) -> list[tuple[str, tuple[str | None, ...]]]:
        """Every function call in the expression: (name, its arguments that are string literals,
        None for the others), for load-time checks of literal arguments."""
        out = []
        stack = [self._ast]
        while stack:
            node = stack.pop()
            if node.get("type") == "Functn":
                children = node.get("children", [])
                ident = next((c for c in children if c.get("type") == "Identifier"), None)
                params = next((c for c in children if c.get("type") == "ParamList"), None)
                if ident is not None:
                    args = tuple(_string_literal(p) for p in (params or {}).get("children", []))
                    out.append((ident["text"].strip("`"), args))
            stack.extend(node.get("children", []))
        return out

    def __repr__(self) -> str:
        return f"Expression({self.text!r})"


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r"}


def _string_literal(node: Node) -> str | None:
    """The value of a parameter that is a plain string literal ('kg'), else None."""
    while node.get("type") in ("TermExpression", "LiteralTerm") and len(node.get("children", [])) == 1:
        node = node["children"][0]
    text = node.get("text")
    if node.get("type") != "StringLiteral" or not isinstance(text, str) or len(text) < 2:
        return None
    body = text[1:-1]
    if "\\" not in body:
        return body
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), body)


def typed(items: list[Any]) -> list[Any]:
    """Resources returned by a generic function, typed by their resourceType so that
    `ofType()`, `is` and choice-type navigation work on them (fhirpathpy types nodes, not dicts)."""
    return [ResourceNode.create_node(r, r["resourceType"])
            if isinstance(r, dict) and isinstance(r.get("resourceType"), str) else r for r in items]


def to_python(value: Any) -> Any:
    """Unwrap fhirpathpy nodes into plain JSON-ready Python values."""
    if isinstance(value, list):
        return [to_python(v) for v in value]
    if isinstance(value, ResourceNode):
        return to_python(value.data)
    if isinstance(value, FP_Quantity):
        return {"value": value.value, "unit": value.unit}
    if isinstance(value, (FP_DateTime, FP_Time)):
        return str(value)
    if isinstance(value, FP_Type):
        return str(value)
    if isinstance(value, dict):
        return {k: to_python(v) for k, v in value.items()}
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and abs(value) < 10**15 else float(value)
    return value


def singleton(values: list[Any], expression: str) -> Any:
    """FHIRPath singleton evaluation (§4.5): empty -> None, one -> it, more -> error."""
    if not values:
        return None
    if len(values) > 1:
        raise ExpressionError(expression, f"expected a single value, got {len(values)}")
    return to_python(values[0])


def as_boolean(values: list[Any], expression: str) -> bool:
    """A condition's truth (FHIR PlanDefinition.action.condition): true only for a single `true`."""
    value = singleton(values, expression)
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    raise ExpressionError(expression, f"condition must be Boolean, got {type(value).__name__}")

