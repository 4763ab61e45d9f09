"""Publish the content folder to a FHIR server and load sample patients (`dah-cds publish`).

Content: the folder is validated first (`load_folder`; bad content is never published), then
every ConceptMap, ValueSet, Library, ActivityDefinition and PlanDefinition is PUT by id,
dependencies first, so a service reading its content from that server (service.content.fhir_source) never sees
a PlanDefinition before what it uses.

Sample patients, one JSON file each (a folder means its `*.json` files):
- a `transaction` or `batch` Bundle (e.g. Synthea) is sent as it is;
- a `collection` (or `searchset`, ...) Bundle, a scenario case file (plandefinitions/tests/<RULE>/
  <case>.json: the resources of `request.prefetch`) or a single resource is turned into a
  transaction.  With `id_mode="keep"` every resource is PUT with its own id (optionally with
  `id_prefix` in front, so that cases sharing ids do not overwrite each other); with
  `id_mode="server"` every resource is POSTed with a `urn:uuid:` fullUrl and the references
  between them rewritten, so the server assigns the ids; `"auto"` tries `keep` and falls back to
  `server` when the server refuses the transaction with a 4xx (servers configured to refuse
  client-assigned ids).
Files that are none of these (e.g. `*.response.json` goldens) are skipped and reported.
Every load returns the ids the server used (`ids`: "Type/id" in the file -> "Type/id" stored).
"""

from __future__ import annotations

import copy
import json
import logging
import re
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from service.content.folder import PACKAGE_FILES, load_folder
from service.engine import SUPPORTED_TYPES
from service.errors import FhirAccessError, FhirRequestRefused, FhirServerError
from service.fhir.client import FhirClient

log = logging.getLogger("service.publish")

# Dependencies first: a PlanDefinition is written after everything it can reference.
CONTENT_ORDER = ("ConceptMap", "ValueSet", "Library", "ActivityDefinition", "PlanDefinition")
ID_MODES = ("auto", "keep", "server")
_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


class PublishError(Exception):
    """A file cannot be published or loaded as it is (not a server error)."""


@dataclass
class ContentReport:
    folder: str
    counts: Counter = field(default_factory=Counter)  # resource type -> number PUT

    def summary(self) -> str:
        return ", ".join(f"{self.counts[t]} {t}" for t in CONTENT_ORDER if self.counts[t]) or "nothing"


@dataclass
class LoadReport:
    source: str
    mode: str  # "as-is" (a transaction/batch file), "keep" (PUT, ids kept) or "server" (POST, ids assigned)
    counts: Counter = field(default_factory=Counter)  # resource type -> entries
    ids: dict[str, str] = field(default_factory=dict)  # "Type/id" in the file -> "Type/id" on the server
    note: str = ""

    def id_of(self, reference: str) -> str:
        """The server id of "Type/id" from the file (KeyError if it was not loaded)."""
        return self.ids[reference].split("/", 1)[1]

    @property
    def patients(self) -> list[str]:
        return sorted(v for v in self.ids.values() if v.startswith("Patient/"))

    def summary(self) -> str:
        counts = ", ".join(f"{n} {t}" for t, n in sorted(self.counts.items()))
        how = {"as-is": "sent as is", "keep": "ids kept", "server": "ids assigned by the server"}[self.mode]
        return f"{self.source}: {counts or 'no resources'} ({how}{'; ' + self.note if self.note else ''})"


@dataclass
class Skipped:
    source: str
    reason: str


# ---- content ------------------------------------------------------------------------------------


def content_resources(folder: str | Path) -> list[tuple[str, dict]]:
    """(file name, resource) of every content resource in `folder`, dependencies first.
    Raises ContentErrors (file and path) when the folder does not load cleanly."""
    folder = Path(folder)
    load_folder(folder)  # the same strict checks as the service's start-up
    out = []
    for path in sorted(folder.glob("*.json")):
        if path.name in PACKAGE_FILES:
            continue
        raw = json.loads(path.read_text(encoding="utf-8"))
        if raw.get("resourceType") not in SUPPORTED_TYPES:
            continue
        if not raw.get("id"):
            raise PublishError(f"{path.name}: {raw['resourceType']}.id: a resource needs an id to be published")
        out.append((path.name, raw))
    out.sort(key=lambda item: (CONTENT_ORDER.index(item[1]["resourceType"]), item[1]["id"]))
    return out


def publish_content(client: FhirClient, folder: str | Path) -> ContentReport:
    report = ContentReport(str(folder))
    for name, raw in content_resources(folder):
        try:
            client.put(raw)
        except FhirAccessError as exc:
            raise exc.about(name) from None
        report.counts[raw["resourceType"]] += 1
        log.info("PUT %s/%s (%s)", raw["resourceType"], raw["id"], name)
    return report


# ---- sample patients ----------------------------------------------------------------------------


def patient_files(paths: Iterable[str | Path]) -> list[Path]:
    """Files named, and the `*.json` files of folders named (not recursive, sorted; a scenario
    folder's `*.response.json` goldens are left out)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(f for f in p.glob("*.json") if f.is_file() and not f.name.endswith(".response.json")))
        elif p.is_file():
            out.append(p)
        else:
            raise PublishError(f"{p}: no such file or folder")
    return out


def resources_of(document: Any) -> tuple[str, list[tuple[str | None, dict]]] | None:
    """What a sample file holds: ("transaction", []) for a transaction/batch Bundle sent as is,
    else (kind, [(fullUrl or None, resource)]); None when it is not patient data."""
    if not isinstance(document, dict):
        return None
    if document.get("resourceType") == "Bundle":
        if document.get("type") in ("transaction", "batch"):
            return "transaction", []
        return "bundle", _entries(document)
    if isinstance(document.get("resourceType"), str):
        return "resource", [(None, document)]
    request = document.get("request")
    if isinstance(request, dict) and isinstance(request.get("prefetch"), dict):  # a scenario case
        found: list[tuple[str | None, dict]] = []
        for value in request["prefetch"].values():
            if isinstance(value, dict) and value.get("resourceType") == "Bundle":
                found.extend(_entries(value))
            elif isinstance(value, dict) and isinstance(value.get("resourceType"), str) \
                    and value["resourceType"] != "OperationOutcome":
                found.append((None, value))
        return "case", found
    return None


def _entries(bundle: dict) -> list[tuple[str | None, dict]]:
    out = []
    for entry in bundle.get("entry") or []:
        if isinstance(entry, dict) and isinstance(entry.get("resource"), dict) \
                and isinstance(entry["resource"].get("resourceType"), str):
            out.append((entry.get("fullUrl"), entry["resource"]))
    return out


def _dedupe(items: list[tuple[str | None, dict]]) -> list[tuple[str | None, dict]]:
    """One entry per Type/id (the same resource can be in several prefetch keys)."""
    seen: set[str] = set()
    out = []
    for full_url, resource in items:
        key = f"{resource['resourceType']}/{resource['id']}" if resource.get("id") else None
        if key is not None and key in seen:
            continue
        if key is not None:
            seen.add(key)
        out.append((full_url, resource))
    return out


def to_transaction(items: list[tuple[str | None, dict]], id_mode: str = "keep", id_prefix: str = "") -> dict:
    """A transaction Bundle storing `items`: PUT by (prefixed) id, or POST with urn:uuid fullUrls
    (`id_mode="server"`); references between the items are rewritten to match."""
    if id_mode not in ("keep", "server"):
        raise ValueError(f"id_mode must be 'keep' or 'server', not {id_mode!r}")
    items = _dedupe(items)
    targets: dict[str, str] = {}  # reference in the file -> reference in the transaction
    planned = []
    for full_url, resource in items:
        rtype, rid = resource["resourceType"], resource.get("id")
        if id_mode == "keep" and rid:
            new_id = id_prefix + rid
            if not _ID.match(new_id):
                raise PublishError(f"{rtype}/{rid}: {new_id!r} is not a valid FHIR id")
            new_ref, entry_url = f"{rtype}/{new_id}", None
        else:
            new_id = None
            entry_url = full_url if isinstance(full_url, str) and full_url.startswith("urn:uuid:") \
                else f"urn:uuid:{uuid.uuid4()}"
            new_ref = entry_url
        if rid:
            targets[f"{rtype}/{rid}"] = new_ref
        if isinstance(full_url, str) and full_url:
            targets[full_url] = new_ref
        planned.append((resource, new_id, entry_url))
    entries = []
    for resource, new_id, entry_url in planned:
        body = rewrite_references(copy.deepcopy(resource), targets)
        rtype = body["resourceType"]
        if new_id is not None:
            body["id"] = new_id
            entries.append({"resource": body, "request": {"method": "PUT", "url": f"{rtype}/{new_id}"}})
        else:
            body.pop("id", None)
            body.pop("meta", None)
            entries.append({"fullUrl": entry_url, "resource": body, "request": {"method": "POST", "url": rtype}})
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def rewrite_references(node: Any, targets: dict[str, str]) -> Any:
    """Replace every `reference` found in `targets` (in place; returns `node`)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str):
                if value in targets:
                    node[key] = targets[value]
            else:
                rewrite_references(value, targets)
    elif isinstance(node, list):
        for item in node:
            rewrite_references(item, targets)
    return node


def stored_ids(originals: list[str | None], response: dict, base_url: str) -> dict[str, str]:
    """Each request entry's reference in the file ("Type/id", or its fullUrl) -> "Type/id" where the
    server stored it, from the transaction-response locations (same order as the request entries,
    FHIR R4 §Transaction).  A response with another number of entries cannot be paired with the
    request entries: FhirServerError, although the server may have stored them."""
    entries = response.get("entry") or []
    if not isinstance(entries, list) or len(entries) != len(originals):
        answered = f"{len(entries)} entries" if isinstance(entries, list) else "no entry list"
        raise FhirServerError(
            f"the transaction response has {answered} for the {len(originals)} sent (FHIR R4 §Transaction: "
            "one per request entry, in order), so where the server stored them cannot be told",
            reason="the FHIR server's transaction response does not answer each entry")
    out: dict[str, str] = {}
    for original, got in zip(originals, entries, strict=True):
        location = ((got or {}).get("response") or {}).get("location") if isinstance(got, dict) else None
        if original and isinstance(location, str) and location:
            out[original] = _relative(location, base_url)
    return out


def _relative(location: str, base_url: str) -> str:
    """"Type/id" of a location such as [base]/Patient/1/_history/2 or Patient/1."""
    base = base_url.rstrip("/") + "/"
    if location.startswith(base):
        location = location[len(base):]
    location = location.split("/_history/", 1)[0]
    parts = [p for p in location.split("/") if p]
    return "/".join(parts[-2:])


def load_patient_file(client: FhirClient, path: str | Path, id_mode: str = "auto", id_prefix: str = "",
                      timeout: float | None = None) -> LoadReport | Skipped:
    path = Path(path)
    if id_mode not in ID_MODES:
        raise ValueError(f"id_mode must be one of {ID_MODES}")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return Skipped(path.name, f"not readable JSON ({exc})")
    return load_document(client, document, path.name, id_mode, id_prefix, timeout)


def load_document(client: FhirClient, document: Any, source: str, id_mode: str = "auto", id_prefix: str = "",
                  timeout: float | None = None) -> LoadReport | Skipped:
    """Store one sample document (see the module docstring) on the server."""
    what = resources_of(document)
    if what is None:
        return Skipped(source, "neither a Bundle, a FHIR resource nor a scenario case with request.prefetch")
    kind, items = what
    if kind == "transaction":
        originals = [_original(e) if isinstance(e, dict) else None for e in document.get("entry") or []]
        response = client.transaction(document, timeout=timeout)
        return LoadReport(source, "as-is", _counts(document), stored_ids(originals, response, client.base_url))
    if not items:
        return Skipped(source, f"{kind} holds no resources")
    items = _dedupe(items)
    originals = [f"{r['resourceType']}/{r['id']}" if r.get("id") else u for u, r in items]
    note = ""
    modes = ["keep", "server"] if id_mode == "auto" else [id_mode]
    for i, mode in enumerate(modes):
        bundle = to_transaction(items, mode, id_prefix)
        try:
            response = client.transaction(bundle, timeout=timeout)
        except FhirRequestRefused as exc:
            if i + 1 < len(modes):
                note = f"the server refused client-assigned ids ({exc.message})"
                log.warning("%s: %s; loading with server-assigned ids", source, note)
                continue
            raise
        return LoadReport(source, mode, _counts(bundle), stored_ids(originals, response, client.base_url), note)
    raise AssertionError("unreachable")


def _original(entry: dict) -> str | None:
    resource = entry.get("resource") or {}
    if resource.get("id") and resource.get("resourceType"):
        return f"{resource['resourceType']}/{resource['id']}"
    return entry.get("fullUrl")


def _counts(bundle: dict) -> Counter:
    return Counter((e.get("resource") or {}).get("resourceType", "?") for e in bundle.get("entry") or []
                   if isinstance(e, dict))


def load_patients(client: FhirClient, paths: Iterable[str | Path], id_mode: str = "auto", id_prefix: str = "",
                  timeout: float | None = None) -> list[LoadReport | Skipped]:
    """Load every file; a file whose kept ids overwrite resources an earlier file wrote is
    reported in its note (scenario cases reuse ids such as Condition/cond-1: load several with
    id_mode="server" or an id_prefix each)."""
    results: list[LoadReport | Skipped] = []
    written: dict[str, str] = {}  # "Type/id" on the server -> file that wrote it
    for path in patient_files(paths):
        result = load_patient_file(client, path, id_mode, id_prefix, timeout)
        if isinstance(result, LoadReport) and result.mode == "keep":
            clashes = sorted(ref for ref in result.ids.values() if written.get(ref, result.source) != result.source)
            if clashes:
                more = f" and {len(clashes) - 3} more" if len(clashes) > 3 else ""
                result.note = "; ".join(filter(None, [result.note, f"overwrote {', '.join(clashes[:3])}{more} "
                                                      f"written by {written[clashes[0]]}"]))
            written.update({ref: result.source for ref in result.ids.values()})
        results.append(result)
    return results
