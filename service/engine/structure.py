"""FHIR R4 structure of dynamicValue paths: does a path name elements the target resource has?

Rules (R4 `PlanDefinition.action.dynamicValue.path`, `ActivityDefinition.dynamicValue.path`: a
simple path into the resource being produced, as `service.engine.paths` applies it):
- every step is an element of the type reached so far (FHIR R4 element names, `class` for the
  Python-keyword elements; choice elements by their typed name, `valueQuantity`); a misspelt
  element (`doseQuantity.valu`) would be written as an unknown element and the proposed resource
  would be invalid FHIR;
- a step below a repeating element names its item (`dosageInstruction[0].text`): without an
  index, the element would be written as an object where FHIR wants a list;
- a primitive element has no elements below it (`status.code`).
The structure is read from the fhir.resources R4B models (the same models the content validates
against at load): nothing is listed by hand.
"""

from __future__ import annotations

import re
import types
import typing
from functools import cache
from typing import Any

_STEP = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:\[(\d+)\])?$")


@cache
def _model(name: str) -> Any:
    from fhir.resources.R4B import get_fhir_model_class

    try:
        return get_fhir_model_class(name)
    except (KeyError, ValueError, AttributeError):
        return None


@cache
def _elements(model: Any) -> dict[str, tuple[Any, bool]]:
    """Element name -> (model of its type or None for a primitive, whether it repeats)."""
    out: dict[str, tuple[Any, bool]] = {}
    for name, info in model.model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        if not extra.get("element_property"):
            continue
        out[info.alias or name] = _element_type(info.annotation)
    return out


def _element_type(annotation: Any) -> tuple[Any, bool]:
    repeats = False
    while True:
        origin = typing.get_origin(annotation)
        if origin in (typing.Union, types.UnionType):
            annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
        elif origin in (list, typing.List):  # noqa: UP006  (the models' own annotation)
            repeats = True
            annotation = typing.get_args(annotation)[0]
        else:
            break
    klass = getattr(annotation, "get_model_klass", None)
    return (klass() if callable(klass) else None), repeats


def known_type(resource_type: str) -> bool:
    return _model(resource_type) is not None


def path_problem(root: str, path: str) -> str | None:
    """Why `path` does not fit the structure of the FHIR type `root` (a resource type, or a
    backbone model name such as `PlanDefinitionAction`), or None when it does."""
    model = _model(root)
    if model is None:
        return None  # a type the models do not know: nothing to check against
    steps = path.split(".")
    if steps and steps[0] == root:
        steps = steps[1:]
    where = root
    for n, step in enumerate(steps):
        match = _STEP.match(step)
        if match is None:
            return f"{step!r} is not a simple path step"
        name, index = match.group(1), match.group(2)
        if model is None:
            return f"{where} is a primitive: it has no element {name!r}"
        elements = _elements(model)
        if name not in elements:
            near = _nearest(name, elements)
            return f"{where} has no element {name!r}" + (f" (did you mean {near!r}?)" if near else "")
        model, repeats = elements[name]
        last = n == len(steps) - 1
        if repeats and index is None and not last:
            return f"{where}.{name} repeats: name its item ({name}[0])"
        where = f"{where}.{step}"
    return None


def _nearest(name: str, elements: dict[str, Any]) -> str | None:
    import difflib

    found = difflib.get_close_matches(name, list(elements), n=1, cutoff=0.75)
    return found[0] if found else None
