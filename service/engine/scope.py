"""The expressions of one `$apply`: the call's values, the Library variables computed from them, and
every FHIRPath evaluation, with the issues met (R4 PlanDefinition `library` and the `variable`
extension; FHIRPath N1 §Environment variables).

Rules:
- The values the call gives (`%hook`, `%selections`, `%draftOrders`, `%subject`, `%userId`,
  `%encounterId`, and each prefetch key, a missing one being empty) are fixed for the call.
- Each Library variable is evaluated at most once per call, lazily on first read (so in dependency
  order); one that fails is one issue, and every expression that reads it fails too.
- `%item` is bound only inside a cds-for-each subtree.  An expression that does not read `%item` has
  one result per call, kept by its text: several rules often share one condition or collection.
- Fail closed: an expression that cannot be evaluated gives None (`evaluate`) or false (`holds`),
  and the reason is an issue.
- The scope is the lazy variable source of its own evaluations (`fhirpath.Variables`), not a helper
  pointing back at it: a reference cycle would keep the call's data index alive until the next full
  collection.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from service.engine.fhirpath import Evaluation, Expression
from service.engine.model import Variable
from service.errors import ExpressionError


class VariableFailed(ExpressionError):
    """A variable an expression reads could not be computed (the cause is already an issue)."""

    def __init__(self, name: str):
        super().__init__("%" + name, f"variable %{name} failed")
        self.name = name


class Scope:
    """The values, variables and evaluations of one call."""

    def __init__(self, evaluation: Evaluation, variables: dict[str, Variable], values: dict[str, Any], focus: Any):
        self.evaluation = evaluation  # the call's time, data index and terminology
        self.variables = variables  # the plan's own and its Libraries', by name
        self.values = values  # given values, then each variable once computed
        self.focus = focus  # the Patient resource expressions start from
        self.bindings: dict[str, Any] = {}  # %item inside a cds-for-each subtree
        self.failed: set[str] = set()
        self.memo: dict[str, list[Any]] = {}
        self.issues: list[dict[str, Any]] = []

    # ---- the lazy variable source (fhirpath.Variables) ----

    def has(self, name: str) -> bool:
        return name in self.bindings or name in self.values or name in self.variables

    def get(self, name: str) -> Any:
        if name in self.bindings:
            return self.bindings[name]
        return self.variable(name)

    def variable(self, name: str) -> Any:
        if name in self.values:
            return self.values[name]
        if name in self.failed:
            raise VariableFailed(name)
        var = self.variables[name]
        try:
            value = var.expression.evaluate(self.evaluation, self.focus, {}, self)
        except VariableFailed:
            self.failed.add(name)
            raise
        except ExpressionError as exc:
            self.failed.add(name)
            self.issue(str(var.source), f"variable %{name}: {exc.message}")
            raise VariableFailed(name) from None
        self.values[name] = value
        return value

    @contextmanager
    def item(self, item: Any) -> Iterator[None]:
        """`%item` bound to `item` (R4 has no for-each; the project's cds-for-each extension)."""
        outer = self.bindings.get("item")
        self.bindings["item"] = [item]
        try:
            yield
        finally:
            if outer is None:
                self.bindings.pop("item", None)
            else:
                self.bindings["item"] = outer

    # ---- evaluation, failing closed ----

    def evaluate(self, expr: Expression, where: str, focus: Any = None) -> list[Any] | None:
        """The expression's collection, or None with the reason recorded as an issue."""
        shared = focus is None and "item" not in expr.variables
        if shared and expr.text in self.memo:
            return self.memo[expr.text]
        try:
            values = expr.evaluate(self.evaluation, self.focus if focus is None else focus, {}, self)
            if shared:
                self.memo[expr.text] = values
            return values
        except VariableFailed as exc:
            self.issue(where, f"not evaluated: variable %{exc.name} failed")
        except ExpressionError as exc:
            self.issue(where, exc.message)
        return None

    def holds(self, expr: Expression, where: str) -> tuple[bool, str | None]:
        """A condition's verdict, and the reason when it could not be decided (then false)."""
        try:
            return expr.holds(self.evaluation, self.focus, {}, self), None
        except VariableFailed as exc:
            message = f"not evaluated: variable %{exc.name} failed"
        except ExpressionError as exc:
            message = exc.message
        self.issue(where, message)
        return False, message

    def issue(self, where: str, message: str, severity: str = "error") -> None:
        self.issues.append({"severity": severity, "location": where, "message": message})

    def resources_behind(self, expr: Expression, limit: int = 20) -> list[str]:
        """References of the resources behind an expression: its variables' values, followed through
        the variables they are computed from (for the trace)."""
        refs: list[str] = []
        seen: set[str] = set()
        stack = sorted(expr.variables)
        while stack and len(refs) < limit:
            name = stack.pop(0)
            if name in seen:
                continue
            seen.add(name)
            value = self.values.get(name)
            for item in value if isinstance(value, list) else [value]:
                data = getattr(item, "data", item)
                if isinstance(data, dict) and data.get("resourceType") and data.get("id"):
                    ref = f"{data['resourceType']}/{data['id']}"
                    if ref not in refs:
                        refs.append(ref)
            if name in self.variables:
                stack.extend(sorted(self.variables[name].expression.variables - seen))
        return refs[:limit]
