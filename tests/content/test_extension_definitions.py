"""Every extension the content uses is either a standard one or a project extension whose
StructureDefinition ships in plandefinitions/ (`service.engine.extensions`), and every shipped
definition is a valid FHIR R4 extension definition that says where it may be used."""

from __future__ import annotations

import json

import pytest
from fhir.resources.R4B import get_fhir_model_class

from service.engine.extensions import PROJECT_EXTENSION_BASE, PROJECT_EXTENSIONS
from tests.conftest import CONTENT

STANDARD = "http://hl7.org/fhir/StructureDefinition/"
# Elements of a data type context, by the element names that carry that type in the content.
TYPE_ELEMENTS = {"DataRequirement": ("dataRequirement", "input", "output"),
                 "RelatedArtifact": ("documentation", "relatedArtifact")}
DEFINITIONS = {p.name: json.loads(p.read_text(encoding="utf-8"))
               for p in sorted(CONTENT.glob("StructureDefinition-*.json"))}


def _extension_uses(value, where: str):
    """(url, path, value keys) of every extension and modifierExtension in a resource."""
    if isinstance(value, dict):
        for key in ("extension", "modifierExtension"):
            for ext in value.get(key, []) if isinstance(value.get(key), list) else []:
                yield ext.get("url"), where, sorted(k for k in ext if k.startswith("value"))
        for key, item in value.items():
            yield from _extension_uses(item, f"{where}.{key}")
    elif isinstance(value, list):
        for item in value:
            yield from _extension_uses(item, where)


def _content_uses():
    for path in sorted(CONTENT.glob("*.json")):
        resource = json.loads(path.read_text(encoding="utf-8"))
        if resource["resourceType"] != "StructureDefinition":
            yield from ((path.name, *use) for use in _extension_uses(resource, resource["resourceType"]))


def test_each_project_extension_has_exactly_one_definition():
    assert sorted(sd["url"] for sd in DEFINITIONS.values()) == sorted(PROJECT_EXTENSIONS)
    for name, sd in DEFINITIONS.items():
        assert name == f"StructureDefinition-{sd['id']}.json"
        assert sd["url"] == PROJECT_EXTENSION_BASE + sd["id"]


@pytest.mark.parametrize("name", sorted(DEFINITIONS))
def test_definition_is_a_valid_r4_extension_definition(name):
    sd = DEFINITIONS[name]
    get_fhir_model_class("StructureDefinition").model_validate(sd)
    assert (sd["fhirVersion"], sd["kind"], sd["type"], sd["derivation"]) == ("4.0.1", "complex-type", "Extension",
                                                                            "constraint")
    assert sd["baseDefinition"] == "http://hl7.org/fhir/StructureDefinition/Extension"
    assert sd["context"] and all(c["type"] == "element" for c in sd["context"])
    elements = {e["id"]: e for e in sd["differential"]["element"]}
    assert elements["Extension.url"]["fixedUri"] == sd["url"]
    assert elements["Extension.value[x]"]["min"] == 1 and elements["Extension.value[x]"]["type"]
    assert elements["Extension.extension"]["max"] == "0"  # simple extensions


def test_every_extension_the_content_uses_is_standard_or_defined_here():
    defined = {sd["url"]: sd for sd in DEFINITIONS.values()}
    uses = list(_content_uses())
    assert uses
    for file, url, where, value_keys in uses:
        if url.startswith(STANDARD):
            continue
        assert url in defined, f"{file}: {where}: {url} has no StructureDefinition in {CONTENT.name}/"
        sd = defined[url]
        contexts = {c["expression"] for c in sd["context"]}
        last = where.rsplit(".", 1)[-1]
        assert any(where == c or where.startswith(c + ".") or last in TYPE_ELEMENTS.get(c, ()) for c in contexts), \
            (file, where, url, contexts)
        value_types = {t["code"] for e in sd["differential"]["element"] if e["id"] == "Extension.value[x]"
                       for t in e["type"]}
        assert value_keys and all(k.removeprefix("value") in {t[0].upper() + t[1:] for t in value_types}
                                  for k in value_keys), (file, where, url, value_keys)


def test_no_project_extension_under_the_placeholder_domain():
    for path in sorted(CONTENT.glob("*.json")):
        assert "example.org/fhir/StructureDefinition" not in path.read_text(encoding="utf-8"), path.name
