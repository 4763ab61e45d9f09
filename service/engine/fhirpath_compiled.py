"""FHIRPath at Python speed: fhirpathpy's parse tree translated once, at load, into Python closures.

Rules:
- Grammar and semantics stay fhirpathpy's.  The tree is fhirpathpy's own (its parser and
  `ASTPathListener`), the functions and operators are fhirpathpy's own implementations
  (`invocation_registry`) and the project's generic functions, called with the same arguments,
  in the same order, with the same side effects on the evaluation context (`$this`) as
  fhirpathpy's tree walker (`fhirpathpy.engine.do_eval`, `doInvoke`, `infix_invoke`,
  `make_param`).  What is gone is the per-call cost of walking a generic tree: the dispatch on
  node type, the merge of the function tables on every call, the re-reading of literals and
  identifiers, the making of each member step's reducer (its per-item FHIR model look-ups stay).
- A closure is `fn(ctx, data) -> list`: `ctx` is fhirpathpy's evaluation context (the dict its
  functions read `$this`, `vars`, `model` from), `data` the input collection.
- `compile_node` translates what it knows; for any other node (a construct the content does
  not use, or one fhirpathpy would reject only when evaluated: wrong arity, unknown
  function) it raises `NotCompiled` with the reason, and the gateway evaluates that expression
  with fhirpathpy's tree walker instead.  The gateway reports which expressions are off the
  fast path (`Expression.slow_reason`).
- An arithmetic or comparison operator whose operands are literals or %variables (`%now - 14 days`)
  is computed once per call: its result is kept, for the call only, in the memo the caller puts in
  the context under `MEMO`, and reused while its operands are the very same objects (fhirpathpy's
  operators are pure functions of their operands, and its values are never changed once made).
- A chain from a %variable that occurs more than once in one expression (`iif(%x.where(..).exists(),
  %x.where(..).count(), 0)`) is computed once per evaluation and reused while it starts from the
  same `$this`, the context left as the first computation left it (`_shared`).  A chain that reads
  `$this`, `$index` or `$total` is always computed.
- `and`, `or` and `implies` skip their right operand when the left one decides (FHIRPath N1 §6.5
  Boolean logic: `false and X` = false, `true or X` = true, `false implies X` = true, X empty
  included).  The answer is fhirpathpy's for every right operand that evaluates; the one difference
  from its tree walker, which always evaluates both, is when the skipped operand would raise (a
  variable that failed, a collection where one value is expected): fhirpathpy raises, the fast path
  answers the verdict (as the engine's `and`-chain conditions already stop at their first operand
  that is not true).
- The function table is bound at compile time: the generic functions must be registered with
  the gateway before content is compiled (the engine package does so on import).
Only the gateway (`engine/fhirpath.py`) uses this module.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

import fhirpathpy.engine as _engine
from fhirpathpy.engine import util as _util
from fhirpathpy.engine.evaluators import create_reduce_member_invocation
from fhirpathpy.engine.evaluators import evaluators as _evaluator_table
from fhirpathpy.engine.invocations import combining as _combining
from fhirpathpy.engine.invocations import existence as _existence
from fhirpathpy.engine.invocations import filtering as _filtering
from fhirpathpy.engine.invocations import invocation_registry
from fhirpathpy.engine.nodes import ResourceNode, TypeInfo

from service.engine.fhirpath_datetime import shifted

Ctx = dict[str, Any]
Fn = Callable[[Ctx, Any], list[Any]]
Table = Mapping[str, Mapping[str, Any]]

# fhirpathpy's helpers, typed for the calls made here (the library's own are unannotated).
_util_arraify: Callable[[Any], list[Any]] = _util.arraify


def _arraify(x: Any) -> list[Any]:
    """fhirpathpy's util.arraify in one call: a list as it is, None as [], any other value in a list."""
    if type(x) is list:
        return x
    if x is None:
        return []
    return _util_arraify(x) if isinstance(x, list) else [x]


def _is_nullable(x: Any) -> bool:
    """fhirpathpy's util.is_nullable (None or an empty list) in one call."""
    return x is None or (isinstance(x, list) and not x)


_is_empty: Callable[[Any], bool] = _util.is_empty
_flatten: Callable[[list[Any]], list[Any]] = _util.flatten
_is_number: Callable[[Any], bool] = _util.is_number
_is_capitalized: Callable[[Any], bool] = _util.is_capitalized
_reduce_member: Callable[[Any, str], Callable[[list[Any], Any], list[Any]]] = create_reduce_member_invocation
_create_node: Callable[..., Any] = ResourceNode.create_node
_PARAM_CHECKS: Mapping[str, Callable[[Any], Any]] = _engine.param_check_table
_EVALUATORS: Mapping[str, Callable[[Ctx, Any, Mapping[str, Any]], list[Any]]] = _evaluator_table
_BUILTINS: Mapping[str, Any] = invocation_registry
_type_info: Callable[..., Any] = TypeInfo

# Expression nodes whose value is an infix call, and the operator their token names
# (fhirpathpy evaluators: op_expression, alias_op_expression, union_expression).
_INFIX = frozenset({"InequalityExpression", "AdditiveExpression", "MultiplicativeExpression", "EqualityExpression",
                    "OrExpression", "ImpliesExpression", "AndExpression", "XorExpression"})
_ALIASES = {"MembershipExpression": {"contains": "containsOp", "in": "inOp"},
            "TypeExpression": {"is": "isOp", "as": "asOp"}}
# Operators that are pure functions of their two operands (they read nothing else from the context).
_PURE_OPERATORS = frozenset({"+", "-", "*", "/", "div", "mod", "&", "=", "!=", "~", "!~", "<", ">", "<=", ">="})
# The key of the evaluation context under which the caller may put a dict that lives for one call.
MEMO = "fhirpath_compiled.memo"
_PASS_THROUGH = frozenset({"TermExpression", "ParenthesizedTerm", "InvocationTerm"})
_CONSTANT_LITERALS = frozenset({"NumberLiteral", "StringLiteral", "BooleanLiteral", "QuantityLiteral",
                                "DateTimeLiteral", "TimeLiteral"})


class NotCompiled(Exception):
    """A node this module does not translate; the expression runs on fhirpathpy's tree walker."""


def compile_node(node: Mapping[str, Any], table: Table) -> Fn:
    """The closure for one node of fhirpathpy's parse tree; `table` is the user invocation table
    the evaluation context will carry (fhirpathpy's `userInvocationTable`)."""
    return _Compiler(table, _repeated_chains(node)).node(node)


def _this_or_root(ctx: Ctx) -> Any:
    return ctx["$this"] if "$this" in ctx else ctx["dataRoot"]


class _Compiler:
    def __init__(self, table: Table, repeated: Mapping[int, object] | None = None):
        self.registry: dict[str, Mapping[str, Any]] = {**_BUILTINS, **table}
        # The occurrences (node ids of this tree) of chains from a %variable met more than once in the
        # expression, each with the token the occurrences of one chain share their value under (_shared).
        self.repeated = repeated or {}

    def node(self, node: Mapping[str, Any]) -> Fn:
        kind = node.get("type")
        children: list[Mapping[str, Any]] = node.get("children") or []
        if kind in _PASS_THROUGH or kind == "LiteralTerm":
            if not children:
                raise NotCompiled(f"{kind} without a child")
            return self.node(children[0])
        if kind in _CONSTANT_LITERALS:
            return _constant(_literal(node))
        if kind == "NullLiteral":
            return lambda ctx, data: []
        if kind == "ExternalConstantTerm":
            return _external_constant(node)
        if kind == "InvocationExpression":
            chain = _chain([self.node(c) for c in children])
            token = self.repeated.get(id(node))
            return chain if token is None else _shared(chain, token)
        if kind == "MemberInvocation":
            return _member(_identifier(children[0]).replace("`", ""))
        if kind == "FunctionInvocation":
            return self.function(children[0])
        if kind == "ThisInvocation":
            return lambda ctx, data: _arraify(ctx["$this"])
        if kind == "IndexInvocation":
            return lambda ctx, data: _arraify(ctx["$index"])
        if kind == "TotalInvocation":
            return lambda ctx, data: _arraify(ctx["$total"])
        if kind in _INFIX:
            return self.infix(node["terminalNodeText"][0], children)
        if kind == "UnionExpression":
            return self.infix("|", children)
        if kind in _ALIASES:
            op = node["terminalNodeText"][0]
            if op not in _ALIASES[kind]:
                raise NotCompiled(f"{kind} {op!r}")
            return self.infix(_ALIASES[kind][op], children)
        if kind == "IndexerExpression":
            return _indexer(self.node(children[0]), self.node(children[1]))
        if kind == "PolarityExpression":
            return _polarity(node["terminalNodeText"][0], self.node(children[0]))
        raise NotCompiled(f"node {kind}")

    # ---- parameters (fhirpathpy make_param) ------------------------------------------------

    def param(self, kind: Any, node: Mapping[str, Any]) -> Callable[[Ctx, Any], Any]:
        """`param(ctx, parent)` -> the argument fhirpathpy's make_param would pass."""
        if kind == "Expr":
            body = self.node(node)

            def expr(ctx: Ctx, parent: Any) -> Any:
                def func(data: Any) -> list[Any]:
                    ctx["$this"] = this = _arraify(data)
                    return body(ctx, this)
                return func
            return expr
        if kind == "AnyAtRoot":
            body = self.node(node)

            def at_root(ctx: Ctx, parent: Any) -> Any:
                ctx["$this"] = this = _this_or_root(ctx)
                return body(ctx, this)
            return at_root
        if kind == "Identifier":
            if node.get("type") != "TermExpression":
                raise NotCompiled("identifier parameter that is not a term")
            text = node["text"]
            return lambda ctx, parent: text
        if kind == "TypeSpecifier":
            parts = node["text"].replace("`", "").split(".")
            if len(parts) not in (1, 2):
                raise NotCompiled(f"type specifier {node['text']!r}")
            namespace, name = (None, parts[0]) if len(parts) == 1 else (parts[0], parts[1])
            return lambda ctx, parent: _type_info(name=name, namespace=namespace)
        body = self.node(node)
        if kind == "Any":
            def any_param(ctx: Ctx, parent: Any) -> Any:
                ctx["$this"] = parent
                return body(ctx, parent)
            return any_param
        optional = isinstance(kind, list)
        type_name = kind[0] if optional else kind
        if type_name not in _PARAM_CHECKS:
            raise NotCompiled(f"parameter type {type_name!r}")
        check = _PARAM_CHECKS[type_name]
        literal = _literal_of(node)
        if literal is not None and len(literal) == 1:
            try:
                checked = check(literal[0])  # the checks are pure: a literal that passes passes every time
            except Exception:  # noqa: BLE001  (fhirpathpy raises its type errors when the call is made)
                pass
            else:
                def literal_param(ctx: Ctx, parent: Any) -> Any:
                    ctx["$this"] = parent
                    return checked
                return literal_param

        def typed_param(ctx: Ctx, parent: Any) -> Any:
            ctx["$this"] = parent
            res = body(ctx, parent)
            if not res:
                return []
            if len(res) > 1:
                raise Exception("Unexpected collection" + json.dumps(res)
                                + "; expected singleton of type " + type_name)
            return check(res[0])
        return typed_param

    # ---- calls (fhirpathpy doInvoke, infix_invoke) ----------------------------------------------

    def function(self, functn: Mapping[str, Any]) -> Fn:
        children: list[Mapping[str, Any]] = functn.get("children") or []
        if functn.get("type") != "Functn" or not children or children[0].get("type") != "Identifier":
            raise NotCompiled("function call without a name")
        name = _identifier(children[0])
        raw: list[Mapping[str, Any]] | None = None
        if len(children) > 1 and "children" in children[1]:
            raw = children[1]["children"]
        invocation = self.registry.get(name)
        if invocation is None:
            raise NotCompiled(f"unknown function {name!r}")
        fn: Callable[..., Any] = _LEANER.get(invocation["fn"], invocation["fn"])
        if getattr(fn, "__name__", "") == "trace_fn":
            raise NotCompiled("trace()")
        nullable_input = "nullable_input" in invocation
        if "variadic" in invocation:
            params = [self.param(invocation["variadic"], p) for p in raw or []]

            def variadic(ctx: Ctx, data: Any) -> list[Any]:
                if nullable_input and _is_nullable(data):
                    return []
                this = _this_or_root(ctx)
                args = [p(ctx, this) for p in params]
                return _arraify(fn(ctx, _arraify(data), *args))
            return variadic
        if "arity" not in invocation:
            if raw:
                raise NotCompiled(f"{name}() takes no parameters")

            def plain(ctx: Ctx, data: Any) -> list[Any]:
                if nullable_input and _is_nullable(data):
                    return []
                return _arraify(fn(ctx, _arraify(data)))
            return plain
        count = len(raw) if isinstance(raw, list) else 0
        if count not in invocation["arity"]:
            raise NotCompiled(f"{name}() with {count} parameter(s)")
        kinds = invocation["arity"][count]
        params = [self.param(kind, p) for kind, p in zip(kinds[:count], raw or [], strict=True)]
        nullable = "nullable" in invocation
        if len(params) == 1 and not nullable and not nullable_input:  # the common case, without the lists
            only = params[0]

            def call_one(ctx: Ctx, data: Any) -> list[Any]:
                return _arraify(fn(ctx, data, only(ctx, ctx["$this"] if "$this" in ctx else ctx["dataRoot"])))
            return call_one

        def call(ctx: Ctx, data: Any) -> list[Any]:
            if nullable_input and _is_nullable(data):
                return []
            this = _this_or_root(ctx)
            args = [p(ctx, this) for p in params]
            if nullable and (_is_nullable(data) or any(_is_nullable(a) for a in args)):
                return []
            return _arraify(fn(ctx, data, *args))
        return call

    def infix(self, op: str, children: list[Mapping[str, Any]]) -> Fn:
        invocation = self.registry.get(op)
        if invocation is None or "fn" not in invocation or len(children) != 2:
            raise NotCompiled(f"operator {op!r}")
        kinds = invocation["arity"][2]
        if kinds is None:
            raise NotCompiled(f"operator {op!r} without argument types")
        fn: Callable[..., Any] = _LEANER.get(invocation["fn"], invocation["fn"])
        if op in _DATETIME_SIGN:
            fn = _with_datetime_arithmetic(fn, _DATETIME_SIGN[op])
        left, right = (self.param(kind, c) for kind, c in zip(kinds, children, strict=True))
        nullable = "nullable" in invocation
        if op in _PURE_OPERATORS and all(_stable(c) for c in children):
            return _memoized(op, left, right, fn, nullable)
        decided = _DECIDED_BY_LEFT.get(op)
        if decided is not None and not nullable:
            settles, verdict = decided

            def short_circuit(ctx: Ctx, data: Any) -> list[Any]:
                a = left(ctx, data)
                if a is settles:
                    return [verdict]
                return _arraify(fn(ctx, a, right(ctx, data)))
            return short_circuit

        def binary(ctx: Ctx, data: Any) -> list[Any]:
            a = left(ctx, data)
            b = right(ctx, data)
            if nullable and (_is_nullable(a) or _is_nullable(b)):
                return []
            return _arraify(fn(ctx, a, b))
        return binary


# Boolean operators the left operand can decide (FHIRPath N1 §6.5 Boolean logic: `false and X` is
# false, `true or X` is true, `false implies X` is true whatever X is, empty included): the left
# value that settles it, and the verdict.  fhirpathpy's and_op, or_op and implies_op answer the same
# for every right operand; the right operand is then not evaluated, so an error it would raise
# (a variable that failed, a collection where a single value is expected) is not raised.
_DECIDED_BY_LEFT: Mapping[str, tuple[bool, bool]] = {"and": (False, False), "or": (True, True),
                                                      "implies": (False, True)}


def _where(ctx: Ctx, data: Any, expr: Callable[[Any], list[Any]]) -> list[Any]:
    """fhirpathpy's where_macro, each item's criterion evaluated once: its check_macro_expr
    evaluates a criterion that has a result a second time to read it (the same result: the
    criterion is a pure function of the item and the context it sets first)."""
    if not isinstance(data, list):
        return []
    result = []
    for i, x in enumerate(data):
        ctx["$index"] = i
        verdict = expr(x)
        if len(verdict) > 0 and verdict[0]:
            result.append(x)
    return _flatten(result)


def _exists(ctx: Ctx, coll: Any, expr: Callable[[Any], list[Any]] | None = None) -> bool:
    """fhirpathpy's exists_macro, its filter being `_where`."""
    if expr is not None:
        return _exists(ctx, _where(ctx, coll, expr))
    return not _is_empty(coll)


def _union(ctx: Ctx, coll1: list[Any], coll2: list[Any]) -> list[Any]:
    """fhirpathpy's union_op (`|`, union()): its distinct_fn keeps the first of the items with the same
    json.dumps key, which for strings alone is the first of equal strings (json.dumps is one-to-one on
    them); those are kept directly, without the unit table distinct_fn builds on every call.  Any
    other collection goes to union_op itself."""
    both = coll1 + coll2
    if all(type(item) is str for item in both):
        return list(dict.fromkeys(both))
    union: list[Any] = _combining.union_op(ctx, coll1, coll2)
    return union


# fhirpathpy functions replaced by the same function doing less work (each proved by the R4 cases and
# the differential test of tests/engine).
_LEANER: Mapping[Any, Callable[..., Any]] = {_filtering.where_macro: _where, _existence.exists_macro: _exists,
                                                  _combining.union_op: _union}

_DATETIME_SIGN: Mapping[str, int] = {"+": 1, "-": -1}


def _with_datetime_arithmetic(fn: Callable[..., Any], sign: int) -> Callable[..., Any]:
    """fhirpathpy's `+` or `-`, with DateTime ± Quantity computed natively where
    service.engine.fhirpath_datetime takes the case (the same answer, without string round trips)."""
    def arithmetic(ctx: Ctx, xs: Any, ys: Any) -> Any:
        if type(xs) is list and type(ys) is list and len(xs) == 1 and len(ys) == 1:
            answer = shifted(xs[0], ys[0], sign)
            if answer is not None:
                return answer
        return fn(ctx, xs, ys)
    return arithmetic


def _stable(node: Mapping[str, Any]) -> bool:
    """Whether a node is a literal or a %variable: the same objects each time within one call."""
    while node.get("type") in _PASS_THROUGH or node.get("type") == "LiteralTerm":
        children = node.get("children") or []
        if len(children) != 1:
            return False
        node = children[0]
    return node.get("type") in _CONSTANT_LITERALS or node.get("type") == "ExternalConstantTerm"


# ---- a chain met more than once in one expression -----------------------------------------------

_CONTEXT_READS = frozenset({"ThisInvocation", "IndexInvocation", "TotalInvocation"})
_STATE = ("$this", "$index", "$total")  # what fhirpathpy's functions leave in the context
_ABSENT = object()
# The key of the evaluation context under which one evaluation keeps the chains it has computed.
_SHARED = "fhirpath_compiled.shared"


def _node_key(node: Mapping[str, Any]) -> str:
    return json.dumps(node, sort_keys=True)


def _from_variable(node: Mapping[str, Any]) -> bool:
    """A chain whose first step is a %variable (`%item.dosageInstruction.first().route`)."""
    while node.get("type") == "InvocationExpression" and node.get("children"):
        node = node["children"][0]
    while node.get("type") in _PASS_THROUGH and len(node.get("children") or []) == 1:
        node = node["children"][0]
    return node.get("type") == "ExternalConstantTerm"


def _reads_context(node: Mapping[str, Any]) -> bool:
    stack = [node]
    while stack:
        item = stack.pop()
        if item.get("type") in _CONTEXT_READS:
            return True
        stack.extend(item.get("children") or [])
    return False


def _repeated_chains(root: Mapping[str, Any]) -> dict[int, object]:
    """The chains from a %variable that occur more than once in the expression and read no `$this`,
    `$index` or `$total` anywhere in them (`iif(%x.value.inUnit('kg').exists(), %x.value.inUnit('kg'), {})`):
    each occurrence's node (by id, within this parse tree) -> the token the occurrences of one chain share."""
    by_text: dict[str, list[Mapping[str, Any]]] = {}  # the parser's text (tokens without spaces): a first sort
    stack = [root]
    while stack:
        node = stack.pop()
        if node.get("type") == "InvocationExpression" and _from_variable(node):
            by_text.setdefault(str(node.get("text")), []).append(node)
        stack.extend(node.get("children") or [])
    tokens: dict[int, object] = {}
    for nodes in by_text.values():
        same: dict[str, list[Mapping[str, Any]]] = {}
        for node in nodes if len(nodes) > 1 else ():
            same.setdefault(_node_key(node), []).append(node)
        for chain in same.values():
            if len(chain) > 1 and not _reads_context(chain[0]):
                token = object()
                tokens.update((id(node), token) for node in chain)
    return tokens


def _shared(chain: Fn, token: object) -> Fn:
    """A chain from a %variable computed once per evaluation: its value depends only on the
    variables (fixed for the evaluation) and on the `$this` the context holds when it starts (the
    input of the typed arguments of its calls), and it leaves `$this`, `$index` and `$total` as it
    found them or set them.  So a repeat, from the same `$this` object, gives a copy of the first
    result and sets the context as the first evaluation left it: what evaluating it again gives,
    fhirpathpy's functions being pure.  Kept in the context, which lives for one evaluation."""
    def shared(ctx: Ctx, data: Any) -> list[Any]:
        memo: dict[object, tuple[Any, list[Any], tuple[Any, ...]]] | None = ctx.get(_SHARED)
        if memo is None:
            memo = ctx[_SHARED] = {}
        before = ctx.get("$this", _ABSENT)
        known = memo.get(token)
        if known is not None and known[0] is before:
            for name, value in zip(_STATE, known[2], strict=True):
                if value is _ABSENT:
                    ctx.pop(name, None)
                else:
                    ctx[name] = value
            return list(known[1])
        result = chain(ctx, data)
        memo[token] = (before, list(result), tuple(ctx.get(name, _ABSENT) for name in _STATE))
        return result
    return shared


def _literal_of(node: Mapping[str, Any]) -> list[Any] | None:
    """The value of a node that is a literal (through its pass-through wrappers), else None."""
    while node.get("type") in _PASS_THROUGH or node.get("type") == "LiteralTerm":
        children = node.get("children") or []
        if len(children) != 1:
            return None
        node = children[0]
    return _literal(node) if node.get("type") in _CONSTANT_LITERALS else None


def _same(xs: list[Any], ys: list[Any]) -> bool:
    return len(xs) == len(ys) and all(x is y for x, y in zip(xs, ys, strict=True))


def _memoized(op: str, left: Callable[[Ctx, Any], Any], right: Callable[[Ctx, Any], Any], fn: Callable[..., Any],
              nullable: bool) -> Fn:
    """A pure operator on stable operands, computed once per call for the same operand objects,
    whichever expression asks (see the module's rules; literals are shared: `_literal`)."""
    def binary(ctx: Ctx, data: Any) -> list[Any]:
        a = left(ctx, data)
        b = right(ctx, data)
        if nullable and (_is_nullable(a) or _is_nullable(b)):
            return []
        memo: dict[object, tuple[Any, Any, list[Any]]] | None = ctx.get(MEMO)
        if memo is not None and isinstance(a, list) and isinstance(b, list):
            key = (op, *map(id, a), None, *map(id, b))
            known = memo.get(key)
            if known is not None and _same(known[0], a) and _same(known[1], b):
                return list(known[2])
            result = _arraify(fn(ctx, a, b))
            memo[key] = (list(a), list(b), list(result))
            return result
        return _arraify(fn(ctx, a, b))
    return binary


# ---- leaves and steps --------------------------------------------------------------------


def _identifier(node: Mapping[str, Any]) -> str:
    """fhirpathpy evaluators.identifier: the text without surrounding double quotes."""
    if node.get("type") != "Identifier" or not isinstance(node.get("text"), str):
        raise NotCompiled("expected an identifier")
    return re.sub(r"(^\"|\"$)", "", node["text"])


# Literal values by their parse node, shared by every compiled expression (values fhirpathpy never
# changes once made), so that equal literals are the same objects (`_memoized`).
_LITERALS: dict[str, list[Any]] = {}


def _literal(node: Mapping[str, Any]) -> list[Any]:
    key = json.dumps(node, sort_keys=True)
    if key not in _LITERALS:
        _LITERALS[key] = _EVALUATORS[str(node["type"])]({}, [], node)
    return _LITERALS[key]


def _constant(values: list[Any]) -> Fn:
    """A literal: evaluated once; a fresh list per call (callers may change the list they get,
    never the values, which fhirpathpy only ever creates)."""
    if len(values) == 1:
        value = values[0]
        return lambda ctx, data: [value]
    return lambda ctx, data: list(values)


def _external_constant(node: Mapping[str, Any]) -> Fn:
    """%name (fhirpathpy evaluators.external_constant_term)."""
    constant = (node.get("children") or [{}])[0]
    name = _identifier((constant.get("children") or [{}])[0]).replace("`", "")

    def variable(ctx: Ctx, data: Any) -> list[Any]:
        try:  # one look-up: the gateway's lazy %variables answer KeyError for a name they do not have
            value = ctx["vars"][name]
        except KeyError:
            raise ValueError(f"Attempting to access an undefined environment variable: {name}") from None
        if value is None:
            return []
        if not isinstance(value, list):
            return [value]
        return value
    return variable


def _chain(steps: list[Fn]) -> Fn:
    """a.b.c: each step applied to the previous one's result (evaluators.invocation_expression)."""
    if len(steps) == 2:
        first, second = steps

        def pair(ctx: Ctx, data: Any) -> list[Any]:
            return list(second(ctx, first(ctx, data)))
        return pair

    def chain(ctx: Ctx, data: Any) -> list[Any]:
        for step in steps:
            data = step(ctx, data)
        return list(data)
    return chain


def _member(key: str) -> Fn:
    """A member step (evaluators.member_invocation), with fhirpathpy's own per-item reducer made
    once per model instead of once per call."""
    capitalized = _is_capitalized(key)
    made: list[tuple[Any, Callable[[list[Any], Any], list[Any]]]] = []

    def member(ctx: Ctx, data: Any) -> list[Any]:
        if not isinstance(data, list):
            return []
        if capitalized:
            try:
                return [_create_node(x, key) for x in data if x["resourceType"] == key]
            except TypeError:
                pass
        model = ctx["model"]
        if not made or made[0][0] is not model:
            made[:] = [(model, _reduce_member(model, key))]
        reducer = made[0][1]
        acc: list[Any] = []
        for item in data:
            acc = reducer(acc, item)
        return acc
    return member


def _indexer(collection: Fn, index: Fn) -> Fn:
    """coll[i] (evaluators.indexer_expression)."""
    def indexer(ctx: Ctx, data: Any) -> list[Any]:
        coll = collection(ctx, data)
        idx = index(ctx, data)
        if isinstance(idx, list) and not idx:
            return []
        i = int(idx[0])
        if coll is not None and len(coll) > i >= 0:
            return [coll[i]]
        return []
    return indexer


def _polarity(sign: str, operand: Fn) -> Fn:
    """+x, -x (evaluators.polarity_expression)."""
    def polarity(ctx: Ctx, data: Any) -> list[Any]:
        rtn = operand(ctx, data)
        if len(rtn) != 1:
            raise Exception("Unary " + sign + " can only be applied to an individual number.")
        if not _is_number(rtn[0]):
            raise Exception("Unary " + sign + " can only be applied to a number.")
        if sign == "-":
            rtn[0] = -rtn[0]
        return rtn
    return polarity
