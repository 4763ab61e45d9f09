"""The version of a loaded content set: the first 12 hex digits of a SHA-256 over every resource
(canonical URL and JSON, keys sorted), so the same resources always give the same version and any
change to one gives another.  Shown in the start-up line and `cds_content_info` (service.metrics)."""

from __future__ import annotations

import hashlib
import json

from service.engine import ContentSet


def content_version(content: ContentSet) -> str:
    digest = hashlib.sha256()
    for url in sorted(content.resources):
        digest.update(url.encode("utf-8", "surrogatepass") + b"\0")
        digest.update(json.dumps(content.resources[url], sort_keys=True, ensure_ascii=True).encode() + b"\0")
    return digest.hexdigest()[:12]
