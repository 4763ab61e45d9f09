"""The problems found while building a content set: fatal errors (each named by file and path,
reported together) and non-fatal issues (kept on the ContentSet, among them every expression
that is not on the FHIRPath fast path).  Compiling, linking and linting all report here."""

from __future__ import annotations

from service.engine.fhirjson import Element
from service.engine.fhirpath import Expression
from service.engine.model import ContentIssue, Source
from service.errors import ContentError, ExpressionError, UnsupportedLanguage


class Unsupported(Exception):
    """A resource uses an expression language this engine cannot run: it is loaded as an issue
    and serves nothing."""

    def __init__(self, source: Source, message: str):
        super().__init__(message)
        self.issue = ContentIssue(source, message)


class Problems:
    def __init__(self) -> None:
        self.errors: list[ContentError] = []
        self.issues: list[ContentIssue] = []

    def error(self, source: Source, message: str) -> None:
        error = ContentError(source.file, source.path, message)
        if not any(e.file == error.file and e.path == error.path and e.message == error.message for e in self.errors):
            self.errors.append(error)  # a Library's expressions are checked once per plan using it

    def issue(self, source: Source, message: str) -> None:
        self.issues.append(ContentIssue(source, message))

    def expression(self, node: Element | None, source: Source) -> Expression | None:
        """Compile an Expression element; None (and an error) when it is missing or does not
        parse; raises Unsupported for another expression language."""
        if not isinstance(node, dict) or not node.get("expression"):
            self.error(source, "expression is missing (Expression.expression is required here)")
            return None
        try:
            expression = Expression(node["expression"], node.get("language", "text/fhirpath"))
        except UnsupportedLanguage as exc:
            raise Unsupported(source, exc.message) from None
        except ExpressionError as exc:
            self.error(source, exc.message)
            return None
        if expression.slow_reason is not None:
            self.issue(source, f"not on the FHIRPath fast path ({expression.slow_reason}): "
                               "evaluated by fhirpathpy's slower tree walker")
        return expression
