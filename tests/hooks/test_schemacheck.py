"""The compiled validity checks (service.hooks.schemacheck) say "valid" exactly when jsonschema
does, on the service's own schemas, for the scenario requests as EHRs send them and for every
envelope field of them broken in the ways EHRs break it."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from service.hooks.schemacheck import compile_check, json_equal
from service.hooks.validation import _SCHEMAS, SUPPORTED_HOOKS
from tests.conftest import CONTENT

SCHEMAS = {path.name: json.loads(path.read_text(encoding="utf-8")) for path in sorted(_SCHEMAS.glob("*.json"))}
CASES = [json.loads(p.read_text(encoding="utf-8"))["request"] for p in sorted((CONTENT / "tests").glob("*/*.json"))
         if not p.name.endswith(".response.json")]
REPLACEMENTS: list[Any] = [None, True, 0, 1.0, 2.5, -1, "", " ", "x y", "Patient/p1", "p1", "Bearer", "https://ehr.example/fhir",
                           "a" * 129, [], ["x"], ["MedicationRequest/x"], {}, {"resourceType": "Bundle"}]


def variants(value: Any, depth: int = 0) -> Iterator[Any]:
    """`value`, and copies with one member (down to four levels, not into resources) replaced or removed."""
    yield value
    if depth >= 4 or (isinstance(value, dict) and "resourceType" in value and depth > 1):
        return
    if isinstance(value, dict):
        for key in value:
            removed = dict(value)
            del removed[key]
            yield removed
            for sub in [*REPLACEMENTS, *list(variants(value[key], depth + 1))[1:]]:
                yield {**value, key: sub}
    elif isinstance(value, list) and value:
        for sub in [*REPLACEMENTS[:8], *list(variants(value[0], depth + 1))[1:]]:
            yield [sub, *value[1:]]


def instances(schema_name: str) -> list[Any]:
    out: list[Any] = []
    for request in CASES[::15]:
        body = copy.deepcopy(request)
        if schema_name.startswith("context-"):
            out += list(variants(body["context"]))
        elif schema_name.startswith("request"):
            body["fhirAuthorization"] = {"access_token": "t", "token_type": "Bearer", "expires_in": 300,
                                         "scope": "patient/*.read", "subject": "cds"}
            body["fhirServer"] = "https://ehr.example/fhir"
            body["prefetch"] = {k: v for k, v in list(body.get("prefetch", {}).items())[:2]}
            out += list(variants(body))
    feedback = {"feedback": [{"card": "c1", "outcome": "accepted", "acceptedSuggestions": [{"id": "s1"}],
                              "outcomeTimestamp": "2026-03-01T12:00:00Z",
                              "overrideReason": {"reason": {"code": "x", "system": "y"}, "userComment": "z"}}]}
    return out + list(variants(feedback)) + REPLACEMENTS


@pytest.mark.parametrize("name", list(SCHEMAS))
def test_compiled_check_agrees_with_jsonschema(name):
    schema = SCHEMAS[name]
    validator, valid = Draft202012Validator(schema), compile_check(schema)
    seen = {True: 0, False: 0}
    for instance in instances(name):
        expected = validator.is_valid(instance)
        assert valid(instance) is expected, (name, instance)
        seen[expected] += 1
    assert seen[True] > 3 and seen[False] > 3  # both answers were exercised


def test_every_hook_has_a_compiled_context_check():
    assert {f"context-{hook}.schema.json" for hook in SUPPORTED_HOOKS} <= set(SCHEMAS)


@pytest.mark.parametrize("schema", [
    {"type": "object", "patternProperties": {"^x": {"type": "string"}}},
    {"properties": {"a": {"$ref": "https://example.org/other.json"}}},
    {"type": "string", "unevaluatedProperties": False},
])
def test_a_keyword_that_is_not_compiled_is_refused_at_load(schema):
    with pytest.raises(ValueError):
        compile_check(schema)


def test_json_equality_keeps_booleans_apart_from_numbers():
    assert json_equal(1, 1.0) and json_equal({"a": [1, "x"]}, {"a": [1.0, "x"]})
    assert not json_equal(True, 1) and not json_equal(0, False) and not json_equal(None, "null")
