"""A JSON Schema compiled once into Python checks that answer only "valid or not"; no Flask.

Rule: `compile_check(schema)` gives a function that is True exactly when the instance is valid
against `schema` under JSON Schema 2020-12 as jsonschema's Draft202012Validator applies it (no
format assertion), for the keywords the service's request, context and feedback schemas use:
type, required, properties, additionalProperties, items, minItems, maxItems, minLength,
maxLength, pattern, const, enum, dependentRequired, if/then/else, and `$ref` to the schema's own
`$defs`.  A schema using any other keyword is refused when it is compiled (ValueError), so a new
keyword in a schema cannot go unchecked.  service.hooks.validation runs this first and asks
jsonschema for the violations, with their paths, only when a body is not valid: a valid call
costs microseconds, an invalid one gets the same OperationOutcome as before.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Check = Callable[[Any], bool]

_ANNOTATIONS = frozenset({"$schema", "$id", "$defs", "title", "description", "format", "$comment", "examples"})
_TYPES: dict[str, Check] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer()),
}


def json_equal(a: Any, b: Any) -> bool:
    """Equality of JSON values as JSON Schema defines it (§4.2.2): true is not 1, 1 is 1.0."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, str) or isinstance(b, str) or a is None or b is None:
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return False


def compile_check(schema: dict[str, Any]) -> Check:
    """The validity check of `schema` (a root schema: its `$defs` are what `$ref` may name)."""
    defs: dict[str, Check] = {}
    root_defs = schema.get("$defs", {})

    def ref(target: str) -> Check:
        prefix = "#/$defs/"
        if not target.startswith(prefix) or target[len(prefix):] not in root_defs:
            raise ValueError(f"$ref {target!r}: only this schema's own $defs can be named")
        name = target[len(prefix):]
        if name not in defs:
            defs[name] = lambda v: False  # a placeholder while a recursive definition compiles
            compiled = build(root_defs[name])
            defs[name] = compiled
        return lambda v: defs[name](v)

    def build(node: Any) -> Check:
        if node is True:
            return lambda v: True
        if node is False:
            return lambda v: False
        if not isinstance(node, dict):
            raise ValueError(f"not a schema: {node!r}")
        checks: list[Check] = []
        for keyword, value in node.items():
            if keyword in _ANNOTATIONS or keyword in ("then", "else"):
                continue
            checks.append(keyword_check(keyword, value, node))
        if len(checks) == 1:
            return checks[0]
        return lambda v: all(check(v) for check in checks)

    def keyword_check(keyword: str, value: Any, node: dict[str, Any]) -> Check:
        if keyword == "$ref":
            return ref(value)
        if keyword == "type":
            kinds = [_TYPES[k] for k in (value if isinstance(value, list) else [value])]
            return lambda v: any(kind(v) for kind in kinds)
        if keyword == "required":
            names = tuple(value)
            return lambda v: not isinstance(v, dict) or all(n in v for n in names)
        if keyword == "properties":
            props = {name: build(sub) for name, sub in value.items()}
            return lambda v: not isinstance(v, dict) or all(check(v[n]) for n, check in props.items() if n in v)
        if keyword == "additionalProperties":
            named = frozenset(node.get("properties", {}))
            if "patternProperties" in node:
                raise ValueError("additionalProperties with patternProperties is not compiled")
            extra = build(value)
            return lambda v: not isinstance(v, dict) or all(extra(item) for k, item in v.items() if k not in named)
        if keyword == "items":
            if "prefixItems" in node:
                raise ValueError("items with prefixItems is not compiled")
            each = build(value)
            return lambda v: not isinstance(v, list) or all(each(item) for item in v)
        if keyword == "minItems":
            return lambda v: not isinstance(v, list) or len(v) >= value
        if keyword == "maxItems":
            return lambda v: not isinstance(v, list) or len(v) <= value
        if keyword == "minLength":
            return lambda v: not isinstance(v, str) or len(v) >= value
        if keyword == "maxLength":
            return lambda v: not isinstance(v, str) or len(v) <= value
        if keyword == "pattern":
            search = re.compile(value).search  # jsonschema: re.search, unanchored unless the pattern is
            return lambda v: not isinstance(v, str) or search(v) is not None
        if keyword == "const":
            return lambda v: json_equal(v, value)
        if keyword == "enum":
            return lambda v: any(json_equal(v, option) for option in value)
        if keyword == "dependentRequired":
            rules = {name: tuple(deps) for name, deps in value.items()}
            return lambda v: not isinstance(v, dict) or all(d in v for n, deps in rules.items() if n in v for d in deps)
        if keyword == "if":
            condition = build(value)
            then = build(node.get("then", True))
            otherwise = build(node.get("else", True))
            return lambda v: then(v) if condition(v) else otherwise(v)
        raise ValueError(f"JSON Schema keyword {keyword!r} is not compiled")

    return build(schema)
