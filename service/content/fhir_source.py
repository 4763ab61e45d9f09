"""Content from a FHIR server instead of the content folder (`CDS_CONTENT_FHIR_BASE_URL`).

What is served: every `PlanDefinition?status=active` (all pages; `statuses` widens it, e.g.
"active,draft" for content not yet signed off, "" = any status), plus the Libraries,
ActivityDefinitions, PlanDefinitions and ValueSets they reference, found by canonical URL
(`Library?url=...`, ...) and followed transitively (a Library's depends-on, a ValueSet's
compose.include.valueSet, ValueSet URLs quoted in expressions, ...), plus every ConceptMap of
the same statuses (no expression names a ConceptMap: the engine reads all the loaded ones for
medication identity).  A canonical whose URL
names its type (`.../Library/x`) is searched as that type; otherwise the type follows from
where it is used (`library` -> Library, `definitionCanonical` -> ActivityDefinition or
PlanDefinition, `valueSet` -> ValueSet, relatedArtifact -> Library or ValueSet).

The resources are built with the same strict `build_content` as the folder, each named
"<Type>/<id>" where a folder would name the file.  A bad resource does not take the rest
down: when the build raises ContentErrors, each resource named is replaced by its last good
version (the one the previous successful build used, so a broken edit of a PlanDefinition keeps
its services in discovery, serving what they served before); a resource with no good version
before is dropped together with the PlanDefinitions that use it (directly or through other
resources).  Either way it is listed as an error issue in `ContentSet.issues` (and in the
status, `GET /status/content`) and logged, and the build is retried, so the good
PlanDefinitions still serve.

Refresh: `start(runtime)` runs a daemon thread that reloads every `refresh_seconds`, and at
once on `reload_now()` (SIGHUP under `dah-cds serve`), and swaps `runtime.content` in one
assignment.  A refresh that fails (server down, refused token, a
build that cannot be repaired) keeps the previous content.  Until a first load succeeds the
service serves no services and retries every `min(refresh_seconds, 10)` seconds.  Nothing is
rebuilt when no resource changed (same ids, versionIds and lastUpdated).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from urllib.parse import quote

from service import metrics
from service.content.background import Background
from service.content.status import ContentStatus, content_version
from service.content.watch import register
from service.engine import ContentIssue, ContentSet, Source, build_content
from service.errors import ContentErrors, FhirAccessError
from service.fhir.client import FhirClient

log = logging.getLogger("service.content")

CONTENT_TYPES = ("PlanDefinition", "ActivityDefinition", "Library", "ValueSet", "ConceptMap")
SEARCH_CHUNK = 20  # canonical URLs per `url=a,b,...` search
FIRST_LOAD_RETRY_SECONDS = 10.0
_TYPED = re.compile(r"/(PlanDefinition|ActivityDefinition|Library|ValueSet)/[^/|#]+(\|.*)?$")
_RELATIVE = re.compile(r"^(PlanDefinition|ActivityDefinition|Library|ValueSet)/([A-Za-z0-9\-.]{1,64})$")
_QUOTED_URL = re.compile(r"'((?:https?|urn):[^'\s]+)'")
# Where a canonical is used -> the types it can be.
_FIELD_TYPES = {
    "library": ("Library",),
    "definitionCanonical": ("ActivityDefinition", "PlanDefinition"),
    "valueSet": ("ValueSet",),
    "resource": ("Library", "ValueSet"),  # relatedArtifact.resource (depends-on)
}


class ContentSourceError(Exception):
    """The server's content could not be loaded (the previous content stays)."""


def references(resource: dict) -> set[tuple[str, str]]:
    """(canonical or "Type/id", type) pairs `resource` may depend on."""
    found: set[tuple[str, str]] = set()

    def add(value: str, types: tuple[str, ...]) -> None:
        if not value or value.startswith("#"):
            return
        rel = _RELATIVE.match(value)
        typed = _TYPED.search(value)
        if rel:
            found.add((value, rel.group(1)))
        elif typed:
            found.add((value, typed.group(1)))
        else:
            found.update((value, t) for t in types)

    def walk(node, key: str | None) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, k)
        elif isinstance(node, list):
            for item in node:
                walk(item, key)
        elif isinstance(node, str):
            if key in _FIELD_TYPES:
                add(node, _FIELD_TYPES[key])
            elif key == "expression":
                for url in _QUOTED_URL.findall(node):
                    if _TYPED.search(url):
                        add(url, ())

    walk({k: v for k, v in resource.items() if k not in ("id", "url", "meta", "text")}, None)
    return found


class FhirContentSource:
    """Loads content from one FHIR server and keeps `runtime.content` up to date."""

    def __init__(self, client: FhirClient, refresh_seconds: float = 300.0, statuses: str = "active",
                 build: Callable[[list[tuple[str, dict]]], ContentSet] = build_content):
        self.client = client
        self.refresh_seconds = refresh_seconds
        self.statuses = ",".join(s.strip() for s in statuses.split(",") if s.strip())
        self._build = build
        self._lock = threading.Lock()
        self._fingerprint: tuple | None = None
        self._content: ContentSet | None = None
        self._logged_issues: list[str] = []
        self._good: dict[str, dict] = {}  # "Type/id" -> the version the last successful build used
        self._included: dict[str, dict] = {}
        self._background = Background("content-refresh", f"content refresh from {client.base_url}")
        self.last_error: str | None = None
        self.status = ContentStatus("fhir-server", client.base_url)

    @property
    def base_url(self) -> str:
        return self.client.base_url

    # ---- fetch ------------------------------------------------------------------------------

    def fetch(self) -> tuple[dict[str, dict], dict[str, set[str]]]:
        """Resources by "Type/id", and what each depends on ("Type/id" -> set of "Type/id")."""
        resources: dict[str, dict] = {}
        by_canonical: dict[tuple[str, str], set[str]] = {}  # (reference, type) -> names found
        query = f"PlanDefinition?status={quote(self.statuses, safe=',')}" if self.statuses else "PlanDefinition"
        for raw in self._search(query):
            resources.setdefault(_name(raw), raw)
        maps = f"ConceptMap?status={quote(self.statuses, safe=',')}" if self.statuses else "ConceptMap"
        for raw in self._search(maps):
            resources.setdefault(_name(raw), raw)
        pending = {ref for raw in resources.values() for ref in references(raw)}
        while pending:
            wanted = sorted(pending - by_canonical.keys())
            pending = set()
            for found_ref, raws in self._resolve(wanted).items():
                by_canonical[found_ref] = {_name(r) for r in raws}
                for raw in raws:
                    if _name(raw) not in resources:
                        resources[_name(raw)] = raw
                        pending |= {ref for ref in references(raw) if ref not in by_canonical}
        deps = {name: set().union(*(by_canonical.get(ref, set()) for ref in references(raw))) - {name}
                for name, raw in resources.items()}
        return resources, deps

    def _search(self, query: str) -> list[dict]:
        bundle = self.client.search_all(query + ("&" if "?" in query else "?") + "_count=100")
        if bundle.get("resourceType") != "Bundle":
            raise ContentSourceError(f"{self.base_url}{query} answered a {bundle.get('resourceType')}, not a Bundle")
        if any(t.get("code") == "SUBSETTED" for t in (bundle.get("meta") or {}).get("tag") or []):
            raise ContentSourceError(f"{self.base_url}{query}: not every page could be read")
        out = []
        for entry in bundle.get("entry") or []:
            raw = entry.get("resource") if isinstance(entry, dict) else None
            if isinstance(raw, dict) and raw.get("resourceType") in CONTENT_TYPES and raw.get("id") \
                    and (entry.get("search") or {}).get("mode", "match") == "match":
                out.append(raw)
        return out

    def _resolve(self, wanted: list[tuple[str, str]]) -> dict[tuple[str, str], list[dict]]:
        """Search every (reference, type) pair: by `_id` for "Type/id", else by `url` (a version
        suffix `|v` is matched after the search)."""
        out: dict[tuple[str, str], list[dict]] = {ref: [] for ref in wanted}
        for rtype in CONTENT_TYPES:
            ids = {ref: m.group(2) for ref in wanted if ref[1] == rtype and (m := _RELATIVE.match(ref[0]))}
            urls = [ref for ref in wanted if ref[1] == rtype and ref not in ids]
            for chunk in _chunks(list(ids)):
                values = ",".join(_escape(ids[ref]) for ref in chunk)
                for raw in self._search(f"{rtype}?_id={values}"):
                    for ref in chunk:
                        if ref[0] == _name(raw):
                            out[ref].append(raw)
            for chunk in _chunks(urls):
                values = ",".join(sorted({_escape(r.split("|", 1)[0]) for r, _ in chunk}))
                for raw in self._search(f"{rtype}?url={values}"):
                    for ref in chunk:
                        url, _, version = ref[0].partition("|")
                        if raw.get("url") == url and (not version or raw.get("version") == version):
                            out[ref].append(raw)
        return out

    # ---- build ------------------------------------------------------------------------------

    def load(self) -> ContentSet:
        """Fetch and build (raises FhirAccessError or ContentSourceError)."""
        resources, deps = self.fetch()
        fingerprint = tuple(sorted((name, str((raw.get("meta") or {}).get("versionId")),
                                    str((raw.get("meta") or {}).get("lastUpdated")))
                                   for name, raw in resources.items()))
        if self._content is not None and fingerprint == self._fingerprint:
            return self._content
        content = self.build(resources, deps)
        self._good = dict(self._included)
        self._fingerprint, self._content = fingerprint, content
        self.status.served(content, content_version(list(self._included.items())))
        return content

    def build(self, resources: dict[str, dict], deps: dict[str, set[str]]) -> ContentSet:
        """build_content, putting back the last good version of what it names, else dropping it (and
        the PlanDefinitions using it), until it builds."""
        included = dict(sorted(resources.items()))
        issues: list[ContentIssue] = []
        restored: set[str] = set()
        while True:
            try:
                content = self._build(list(included.items()))
            except ContentErrors as exc:
                bad = {e.file for e in exc.errors if e.file in included}
                if not bad:
                    raise ContentSourceError("content from the server does not build: " + str(exc)) from None
                restore = {name for name in bad if name not in restored
                           and self._good.get(name) not in (None, included[name])}
                for err in exc.errors:
                    if err.file in bad:
                        note = (f" (serving its last good version{_version_of(self._good[err.file])})"
                                if err.file in restore else " (skipped)")
                        issues.append(ContentIssue(Source(err.file, err.path), err.message + note, "error"))
                drop = bad - restore
                users = {name for name in included if name.startswith("PlanDefinition/") and name not in drop
                         and _closure(name, deps) & drop}
                for name in sorted(users):
                    culprits = ", ".join(sorted(_closure(name, deps) & drop))
                    issues.append(ContentIssue(Source(name, "PlanDefinition"),
                                               f"not served: it uses {culprits}, which has errors", "error"))
                for name in restore:
                    included[name] = self._good[name]
                restored |= restore
                for name in drop | users:
                    del included[name]
                continue
            content.issues[:0] = issues
            self._included = included
            return content

    # ---- refresh ----------------------------------------------------------------------------

    def _try_load(self, failure: str) -> ContentSet | None:
        """The server's content, or None with the reason logged and kept in `last_error`."""
        try:
            content = self.load()
        except (FhirAccessError, ContentSourceError) as exc:
            self.last_error = getattr(exc, "message", None) or str(exc)
            log.error("%s from %s: %s", failure, self.base_url, self.last_error)
            self.status.failed(self.last_error, f"the last good content ({self.status.version or 'none'})")
            return None
        self.last_error = None
        return content

    def initial(self) -> ContentSet:
        """The first content: loaded now, or an empty set with the reason as an issue."""
        content = self._try_load("content not loaded (serving no services until it loads)")
        if content is None:
            content = build_content([])
            content.issues.append(ContentIssue(Source(self.base_url, ""), f"content not loaded: {self.last_error}",
                                               "error"))
            return content
        self._log_issues(content, first=True)
        return content

    def refresh(self, runtime) -> bool:
        """Reload and swap `runtime.content`; False (previous content kept) when it fails."""
        with self._lock:
            content = self._try_load("content refresh failed, previous content kept")
            if content is None:
                metrics.content_loaded("", 0, ok=False)
                return False
            self.status.checked(clear=True)
            if content is not runtime.content:
                runtime.content = content  # one assignment: a request sees the old set or the new one
                metrics.content_loaded(self.status.version or "", len(content.services))
                self._log_issues(content)
                log.info("content from %s: %d PlanDefinition, services: %s", self.base_url, len(content.plans),
                         ", ".join(sorted(content.services)) or "none")
            return True

    def _log_issues(self, content: ContentSet, first: bool = False) -> None:
        lines = [str(i) for i in content.issues]
        if lines != self._logged_issues:
            if not first:  # create_app logs the first set itself
                for issue in content.issues:
                    (log.error if issue.severity == "error" else log.warning)("%s", issue)
            self._logged_issues = lines

    def reload_now(self) -> None:
        """Refresh at once (the background thread wakes up)."""
        self._background.wake()

    def start(self, runtime, on_signal: bool = False) -> None:
        """Refresh in a daemon thread: every refresh_seconds (never when <= 0), and on reload_now()
        when `on_signal` (registered for service.content.watch.reload_all)."""
        if on_signal:
            register(self)
        if self.refresh_seconds <= 0 and not on_signal:
            return

        def interval() -> float | None:
            if self.refresh_seconds <= 0:
                return None
            return self.refresh_seconds if self._content is not None \
                else min(self.refresh_seconds, FIRST_LOAD_RETRY_SECONDS)

        self._background.start(lambda: self.refresh(runtime), interval)

    def stop(self) -> None:
        self._background.stop()


def _version_of(raw: dict) -> str:
    version = (raw.get("meta") or {}).get("versionId")
    return f" {version}" if version else ""


def _name(raw: dict) -> str:
    return f"{raw['resourceType']}/{raw['id']}"


def _closure(name: str, deps: dict[str, set[str]]) -> set[str]:
    seen: set[str] = set()
    stack = [name]
    while stack:
        for dep in deps.get(stack.pop(), ()):
            if dep not in seen:
                seen.add(dep)
                stack.append(dep)
    return seen


def _chunks(items: list, size: int = SEARCH_CHUNK):
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _escape(value: str) -> str:
    """A search value: FHIR escapes `,` `$` `|` `\\` with a backslash; then percent-encoded."""
    for ch in ("\\", ",", "$"):
        value = value.replace(ch, "\\" + ch)
    return quote(value, safe=":/")
