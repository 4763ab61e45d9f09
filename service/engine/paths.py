"""dynamicValue paths (R4 `PlanDefinition.action.dynamicValue.path`): the simple FHIRPath
paths (`a.b[0].c`, optionally led by the resource type) that set or remove an element of a
proposed resource.  Anything else in a path is a ValueError naming it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from service.engine.fhirjson import Resource

_STEP = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:\[(\d+)\])?$")
EMPTY_LITERAL = "{}"  # FHIRPath's empty collection: as a dynamicValue, removes the element


def _steps(resource: Resource, path: str) -> Iterator[tuple[str, int | None, bool]]:
    """(name, list index or None, is last) for each step of a simple FHIRPath path (`a.b[0].c`);
    a leading resource type is skipped."""
    steps = path.split(".")
    if steps and steps[0] == resource.get("resourceType"):
        steps = steps[1:]
    for n, step in enumerate(steps):
        m = _STEP.match(step)
        if not m:
            raise ValueError(f"dynamicValue path {path!r}: {step!r} is not a simple path step")
        yield m.group(1), (int(m.group(2)) if m.group(2) is not None else None), n == len(steps) - 1


def set_path(resource: Resource, path: str, value: Any) -> None:
    """Set `value` at a simple FHIRPath path (`a.b[0].c`), creating what is missing."""
    node: Any = resource
    for name, index, last in _steps(resource, path):
        if index is None:
            if last:
                node[name] = value
            else:
                node = node.setdefault(name, {})
                if not isinstance(node, dict):
                    raise ValueError(f"dynamicValue path {path!r}: {name} is a list; give an index")
        else:
            items = node.setdefault(name, [])
            while len(items) <= index:
                items.append({})
            if last:
                items[index] = value
            else:
                node = items[index]


def remove_path(resource: Resource, path: str) -> None:
    """Remove the element at a simple FHIRPath path (`a.b[0].c`; a last step with an index
    removes that item of the list, without one the whole element); nothing when it is absent."""
    node: Any = resource
    for name, index, last in _steps(resource, path):
        if not isinstance(node, dict) or name not in node:
            return
        if index is None:
            if last:
                del node[name]
                return
            node = node[name]
        else:
            items = node[name]
            if not isinstance(items, list) or index >= len(items):
                return
            if last:
                del items[index]
                if not items:
                    del node[name]
                return
            node = items[index]
