"""Content from a folder (`CDS_CONTENT_DIR`, default plandefinitions/).

Every `*.json` directly in the folder is one FHIR R4 resource; subfolders (scenario tests) are
not content, nor are FHIR NPM package manifests.  A file that is not JSON or not a resource is
an error, reported together with every problem the engine's build finds
(`service.engine.build_content`: compile, link, lint).
"""

from __future__ import annotations

import json
from pathlib import Path

from service.engine import ContentSet, build_content
from service.errors import ContentError, ContentErrors

PACKAGE_FILES = ("package.json", ".index.json")  # FHIR NPM package manifests, not resources


def read_folder(directory: str | Path) -> tuple[list[tuple[str, dict]], list[ContentError]]:
    """(file name, resource) for every resource file of the folder, and the files that are not."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ContentErrors([ContentError(str(directory), "", "content folder does not exist")])
    raws: list[tuple[str, dict]] = []
    errors: list[ContentError] = []
    for path in sorted(directory.glob("*.json")):
        if path.name in PACKAGE_FILES:
            continue
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            errors.append(ContentError(path.name, "", f"not readable JSON: {exc}"))
            continue
        if not isinstance(raw, dict) or not isinstance(raw.get("resourceType"), str):
            errors.append(ContentError(path.name, "", "not a FHIR resource (no resourceType)"))
            continue
        raws.append((path.name, raw))
    return raws, errors


def load_folder(directory: str | Path) -> ContentSet:
    """Read and build the folder's content; raise ContentErrors listing all problems."""
    raws, errors = read_folder(directory)
    return build_read(raws, errors)


def build_read(raws: list[tuple[str, dict]], errors: list[ContentError]) -> ContentSet:
    """Build what read_folder read; raise ContentErrors with its unreadable files and the build's errors."""
    try:
        content = build_content(raws)
    except ContentErrors as exc:
        raise ContentErrors(errors + exc.errors) from None
    if errors:
        raise ContentErrors(errors)
    return content
