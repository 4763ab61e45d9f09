"""What the service knows about the content it serves, for `GET /status/content` and the log.

Rules: the status names the content being served (its version: a hash of the resources as
loaded, when it was loaded, its services) and, separately, the last attempt that was refused
(when, the version refused, and every error with its file and path).  A refused attempt never
changes what is served; a later successful load clears the error.  In FHIR-server mode each
resource with errors is listed with what is served instead: its last good version, or nothing.
The status holds no patient data; one status object per worker process, replaced field by
field under a lock and read as one JSON snapshot.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from service.engine import ContentSet
from service.errors import ContentError


def content_version(raws: list[tuple[str, dict]]) -> str:
    """A short hash of the resources (file or "Type/id" name and JSON), independent of key order."""
    digest = hashlib.sha256()
    for name, raw in sorted(raws, key=lambda item: item[0]):
        digest.update(name.encode("utf-8", "surrogatepass") + b"\0")
        digest.update(json.dumps(raw, sort_keys=True, ensure_ascii=True).encode() + b"\0")
    return "sha256:" + digest.hexdigest()[:16]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class ContentStatus:
    """The content served by this process and the last refused reload."""

    mode: str  # "folder", "fhir-server" or "fixed" (content given in code: tests, embedding)
    source: str  # the folder or the FHIR base URL
    version: str | None = None
    loaded_at: str | None = None
    checked_at: str | None = None
    services: list[str] = field(default_factory=list)
    last_error: dict[str, Any] | None = None
    resource_errors: list[dict[str, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def served(self, content: ContentSet, version: str) -> None:
        """`content` (of `version`) is now served; a refused attempt before it is cleared."""
        with self._lock:
            self.version, self.loaded_at = version, _now()
            self.checked_at = self.loaded_at
            self.services = sorted(content.services)
            self.last_error = None
            self.resource_errors = [
                {"resource": issue.source.file, "path": issue.source.path, "message": issue.message}
                for issue in content.issues if issue.severity == "error"]

    def checked(self, clear: bool = False) -> None:
        """A check found nothing new to serve; `clear`: and the source answered (an error before is over)."""
        with self._lock:
            self.checked_at = _now()
            if clear:
                self.last_error = None

    def refused(self, errors: list[ContentError], version: str | None, kept: str) -> None:
        """A reload was refused: `errors` (file, path, message); `kept` says what still serves."""
        with self._lock:
            self.checked_at = _now()
            self.last_error = {
                "at": self.checked_at,
                "version": version,
                "kept": kept,
                "errors": [{"file": e.file, "path": e.path, "message": e.message} for e in errors],
            }

    def failed(self, message: str, kept: str) -> None:
        """A reload could not be attempted (a FHIR server down, a folder gone)."""
        with self._lock:
            self.checked_at = _now()
            self.last_error = {"at": self.checked_at, "version": None, "kept": kept,
                               "errors": [{"file": self.source, "path": "", "message": message}]}

    def to_json(self) -> dict[str, Any]:
        with self._lock:
            return {
                "mode": self.mode,
                "source": self.source,
                "version": self.version,
                "loadedAt": self.loaded_at,
                "checkedAt": self.checked_at,
                "services": list(self.services),
                "lastError": json.loads(json.dumps(self.last_error)) if self.last_error else None,
                "resourceErrors": [dict(e) for e in self.resource_errors],
            }
