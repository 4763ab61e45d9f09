"""Prefetch tokens (CDS Hooks 2.0 §Prefetch tokens; 3.0 ballot FHIRPath tokens) filled in for one call.

Tokens: `{{context.<field>}}` (primitives only), `{{userPractitionerId}}`,
`{{userPractitionerRoleId}}`, `{{userPatientId}}`, `{{userRelatedPersonId}}` (from userId), and
the 3.0-ballot FHIRPath tokens (`{{today() - 90 days}}`,
`{{context.draftOrders.entry.resource.ofType(MedicationRequest).medication.resolve().id}}`,
`%otherKey` for an already resolved key); several values are joined with commas (search OR).
Every value is percent-encoded when it is filled in (RFC 3986 §2.1, every character but the
unreserved ones), so a value such as `x&_count=1000&_include=*`, `x#` or `../Patient` is one
value of one parameter (or one path segment), never more parameters, a cut query or another path.
A template with a token that has no value renders to None: that key has no data.
The draft orders are indexed once per call: FHIRPath tokens read them through the call's data index
(`index`), the one the engine's `$apply` is then given (`ApplyContext.index`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any
from urllib.parse import quote

from service.engine import DataIndex, Evaluation, Expression, to_python
from service.errors import ExpressionError

log = logging.getLogger("service.prefetch")

_TOKEN = re.compile(r"\{\{(.+?)\}\}")
_SIMPLE = re.compile(r"^(context\.[A-Za-z0-9_]+|user(Practitioner|PractitionerRole|Patient|RelatedPerson)Id)$")
KEY_REF = re.compile(r"%([A-Za-z_][A-Za-z0-9_]*)")


class Tokens:
    """The token values of one call: its context as the caller sent it, its user, its time."""

    def __init__(self, context: Mapping[str, Any], user: str | None = None, now: datetime | None = None,
                 index: DataIndex | None = None):
        """`index`: the call's data index, to be passed on to `$apply` (made with the content's
        terminology); without one, tokens index the draft orders for themselves."""
        self.context = context
        self.user = user
        self.now = now
        self.index = index if index is not None else DataIndex()
        self._evaluation: Evaluation | None = None

    def render(self, tmpl: str, resolved: Mapping[str, Any] | None = None) -> str | None:
        """Fill the template's tokens; None when a token has no value (the key then means no data)."""
        missing = False

        def fill(m: re.Match) -> str:
            nonlocal missing
            token = m.group(1).strip()
            values = [self._simple(token)] if _SIMPLE.match(token) else self._fhirpath(token, resolved or {})
            values = [str(v) for v in values if isinstance(v, (str, int)) and not isinstance(v, bool) and v != ""]
            if not values:
                missing = True
                return ""
            return ",".join(quote(v, safe="") for v in dict.fromkeys(values))

        out = _TOKEN.sub(fill, tmpl)
        return None if missing else out

    def _simple(self, token: str) -> Any:
        if token.startswith("context."):
            return self.context.get(token[len("context."):])
        kind = token[len("user"):-len("Id")]  # userPractitionerId -> Practitioner
        user = self.user
        return user.split("/", 1)[1] if isinstance(user, str) and user.startswith(kind + "/") else None

    def _fhirpath(self, token: str, resolved: Mapping[str, Any]) -> list:
        expr = _compiled(token)
        if expr is None or self.now is None:
            log.warning("prefetch token {{%s}} is not a usable FHIRPath expression", token)
            return []
        if self._evaluation is None:
            self.index.add(self.context.get("draftOrders"))
            self._evaluation = Evaluation(self.now, self.index, None, stub_references=True)
        try:
            values = expr.evaluate(self._evaluation, {"context": dict(self.context)},
                                   {k: ([] if v is None else v) for k, v in resolved.items()})
        except ExpressionError as exc:
            log.warning("prefetch token {{%s}}: %s", token, exc.message)
            return []
        return to_python(values)


def render(tmpl: str, context: Mapping[str, Any], user: str | None = None, now: datetime | None = None,
           resolved: Mapping[str, Any] | None = None) -> str | None:
    """One template filled in for `context` (see Tokens.render)."""
    return Tokens(context, user, now).render(tmpl, resolved)


@lru_cache(maxsize=512)
def _compiled(token: str) -> Expression | None:
    try:
        return Expression(token)
    except ExpressionError:
        return None
