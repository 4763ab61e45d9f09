"""Local terminology: ValueSet expansion (FHIR R4 ValueSet.compose / ValueSet.expansion) and the
content's ConceptMaps.

A ValueSet is expanded once, at load, into a frozenset of "system|code" tokens.
Supported: compose.include with `concept` lists or whole `valueSet` imports, compose.exclude
likewise, and a stored `expansion.contains`.  Intensional filters (`include.filter`) and
whole-system includes need a terminology server and are rejected with a clear message.
ConceptMaps are translation tables (`service.engine.conceptmap`); the medication catalog over
them (`service.engine.products`) is built on first use.  `known(token)` tells whether any
ValueSet or ConceptMap names a concept.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from service.engine.conceptmap import ConceptMaps
from service.engine.fhirjson import Element, Resource
from service.engine.products import Catalog


class TerminologyError(ValueError):
    pass


def canonical(url: str) -> str:
    """Drop a `|version` suffix from a canonical reference."""
    return url.split("|", 1)[0]


class Terminology:
    def __init__(self, valuesets: Mapping[str, Resource], conceptmaps: Sequence[tuple[str, Resource]] = ()) -> None:
        self._sources = {canonical(url): vs for url, vs in valuesets.items()}
        self._expanded: dict[str, frozenset[str]] = {}
        self.maps = ConceptMaps(list(conceptmaps))
        self._known: frozenset[str] | None = None
        self._catalog: Catalog | None = None

    @property
    def medications(self) -> Catalog:
        """The medication catalog (products, ingredients, routes) over the ConceptMaps."""
        if self._catalog is None:
            self._catalog = Catalog(self.maps)
        return self._catalog

    def known(self, token: str) -> bool:
        """Whether any ValueSet or ConceptMap of the content names the concept "system|code"."""
        if self._known is None:
            known = set(self.maps.tokens())
            for url in self._sources:
                try:
                    known |= self.expand(url)
                except TerminologyError:
                    continue  # reported at load
            self._known = frozenset(known)
        return token in self._known

    def __contains__(self, url: str) -> bool:
        return canonical(url) in self._sources

    def urls(self) -> list[str]:
        return sorted(self._sources)

    def expand(self, url: str, _stack: tuple[str, ...] = ()) -> frozenset[str]:
        url = canonical(url)
        if url in self._expanded:
            return self._expanded[url]
        if url in _stack:
            raise TerminologyError(f"ValueSet import cycle: {' -> '.join(_stack + (url,))}")
        vs = self._sources.get(url)
        if vs is None:
            raise TerminologyError(f"unknown ValueSet {url!r}")
        codes = self._expand(vs, _stack + (url,))
        self._expanded[url] = codes
        return codes

    def _expand(self, vs: Resource, stack: tuple[str, ...]) -> frozenset[str]:
        compose = vs.get("compose")
        if not compose:
            return frozenset(_contains(vs.get("expansion", {}).get("contains", [])))
        included = set()
        for i, inc in enumerate(compose.get("include", [])):
            included |= self._part(inc, stack, f"compose.include[{i}]")
        for i, exc in enumerate(compose.get("exclude", [])):
            included -= self._part(exc, stack, f"compose.exclude[{i}]")
        return frozenset(included)

    def _part(self, part: Element, stack: tuple[str, ...], where: str) -> set[str]:
        if part.get("filter"):
            raise TerminologyError(f"{where}.filter needs a terminology server; list the codes with concept[]")
        system = part.get("system")
        imported = [self.expand(u, stack) for u in part.get("valueSet", [])]
        if system:
            if not part.get("concept"):
                raise TerminologyError(f"{where}: a whole code system cannot be expanded locally; list concept[]")
            codes = {f"{system}|{c['code']}" for c in part["concept"]}
            for other in imported:
                codes &= other
            return codes
        if imported:
            codes = set(imported[0])
            for other in imported[1:]:
                codes &= other
            return codes
        raise TerminologyError(f"{where} has neither system nor valueSet")


def _contains(items: list[Element]) -> Iterator[str]:
    for item in items:
        if item.get("system") and item.get("code"):
            yield f"{item['system']}|{item['code']}"
        yield from _contains(item.get("contains", []))
