"""The published FHIRPath function library (plandefinitions/FUNCTIONS.md) describes exactly the
functions the engine registers (`service.engine.functions.TABLE`), with the same arguments, and
each description has the parts another engine needs to implement it."""

from __future__ import annotations

import re

import pytest

from service.engine.functions import TABLE
from tests.conftest import CONTENT

LIBRARY = CONTENT / "FUNCTIONS.md"
HEADING = re.compile(r"^### `(\w+)\((.*)\)`$", re.MULTILINE)


def documented() -> dict[str, tuple[str, str]]:
    """Function name -> (argument list as written, the description's text up to the next heading)."""
    text = LIBRARY.read_text(encoding="utf-8")
    matches = list(HEADING.finditer(text))
    out: dict[str, tuple[str, str]] = {}
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        body = text[m.end():end].split("\n## ", 1)[0]
        assert m.group(1) not in out, f"{m.group(1)} is described twice"
        out[m.group(1)] = (m.group(2), body)
    return out


def arities(signature: str) -> tuple[set[int], bool]:
    """The argument counts a written signature allows (`a [, b]` -> {1, 2}), and whether it ends
    in a repeated argument (`code...`)."""
    required = signature.split("[", 1)[0]
    optional = signature[len(required):]
    n_required = len([a for a in required.split(",") if a.strip()])
    n_optional = len([a for a in re.sub(r"[\[\]]", "", optional).split(",") if a.strip()])
    variadic = signature.rstrip("]").endswith("...")
    return set(range(n_required, n_required + n_optional + 1)), variadic


def test_every_registered_function_is_described_and_nothing_else():
    assert sorted(documented()) == sorted(TABLE)


@pytest.mark.parametrize("name", sorted(TABLE))
def test_the_described_signature_is_the_registered_one(name):
    signature, _ = documented()[name]
    counts, variadic = arities(signature)
    entry = TABLE[name]
    assert variadic == ("variadic" in entry), signature
    if not variadic:
        assert counts == set(entry.get("arity", {0: []})), (signature, entry.get("arity"))


@pytest.mark.parametrize("name", sorted(TABLE))
def test_each_description_gives_input_result_failure_and_an_example(name):
    _, body = documented()[name]
    assert "**Input**" in body and "**Result**" in body and "**Failure**" in body, name
    example = re.search(r"\*\*Examples?\*\*: `([^`]+)`", body)
    assert example and f"{name}(" in example.group(1), f"{name}: the example must call it"
