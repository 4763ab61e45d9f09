"""Local ConceptMap translation (FHIR R4 ConceptMap, what `$translate` answers, without a server).

Every loaded ConceptMap contributes its groups: a source concept "system|code" (system =
`group.source`, else the map's `sourceUri`) -> its targets (system = `group.target`, else
`targetUri`).  A target *maps* when it has a code and its equivalence is neither `unmatched`
nor `disjoint` (R4 ConceptMapEquivalence); its `product` entries are kept as properties
(property URI -> value).  An element is *listed* even when none of its targets maps: a map can
say "this concept maps to nothing" (e.g. a dose form with no single route).
Built once at load; lookups are dictionary reads.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from service.engine.fhirjson import Resource

NOT_MAPPED = ("unmatched", "disjoint")


@dataclass(frozen=True)
class Target:
    system: str
    code: str
    display: str | None
    equivalence: str | None
    properties: tuple[tuple[str, str], ...]  # (ConceptMap.group.element.target.product.property, value)
    file: str
    path: str  # FHIRPath-like location of the target in its file

    @property
    def token(self) -> str:
        return f"{self.system}|{self.code}"

    def property(self, uri: str) -> tuple[str, str] | None:
        """(value, path of the value) of the first product property `uri`."""
        for i, (prop, value) in enumerate(self.properties):
            if prop == uri:
                return value, f"{self.path}.product[{i}].value"
        return None


@dataclass(frozen=True)
class Element:
    source_system: str
    code: str
    display: str | None
    targets: tuple[Target, ...]  # the mapped ones only
    file: str
    path: str

    @property
    def token(self) -> str:
        return f"{self.source_system}|{self.code}"


class ConceptMaps:
    """Every element of every loaded ConceptMap, by source token."""

    def __init__(self, maps: Sequence[tuple[str, Resource]] = ()) -> None:
        self._by_source: dict[str, list[Element]] = {}
        self.elements: list[Element] = []
        for file, raw in maps:
            for element in _elements(file, raw):
                self.elements.append(element)
                self._by_source.setdefault(element.token, []).append(element)

    def __bool__(self) -> bool:
        return bool(self.elements)

    def listed(self, token: str) -> bool:
        return token in self._by_source

    def targets(self, token: str) -> tuple[Target, ...]:
        """The mapped targets of a source concept, over every map that lists it, in load order."""
        found = self._by_source.get(token)
        if not found:
            return ()
        return tuple(t for element in found for t in element.targets)

    def tokens(self) -> frozenset[str]:
        """Every concept the maps name, as source or as mapped target."""
        return frozenset(self._by_source) | frozenset(t.token for e in self.elements for t in e.targets)


def _elements(file: str, raw: Resource) -> Iterator[Element]:
    for g, group in enumerate(raw.get("group") or []):
        source = group.get("source") or raw.get("sourceUri") or ""
        target_system = group.get("target") or raw.get("targetUri") or ""
        for e, element in enumerate(group.get("element") or []):
            if not isinstance(element.get("code"), str):
                continue
            path = f"ConceptMap.group[{g}].element[{e}]"
            targets = []
            for t, target in enumerate(element.get("target") or []):
                if not isinstance(target.get("code"), str) or target.get("equivalence") in NOT_MAPPED:
                    continue
                props = tuple((p.get("property"), p.get("value")) for p in target.get("product") or []
                              if isinstance(p.get("property"), str) and isinstance(p.get("value"), str))
                targets.append(Target(target_system, target["code"], target.get("display"), target.get("equivalence"),
                                      props, file, f"{path}.target[{t}]"))
            yield Element(source, element["code"], element.get("display"), tuple(targets), file, path)
