"""Folder content reloaded inside the running process, never by restarting it.

Rules:
- The folder is checked every `poll_seconds` (CDS_CONTENT_WATCH_SECONDS; 0 = only when asked)
  and whenever `reload_now()` is called (`dah-cds serve` calls it on SIGHUP, service.serving).
  A check is a `stat` of the folder's `*.json` files (name, size, modification time); only a
  change reads the files.
- What was read is built exactly as at start (service.content.folder: read, compile, link,
  lint).  Only content that builds is swapped in, in one assignment of `runtime.content`: a call
  sees the old set or the new one, never a mix.  Content whose resources are the same as what
  is served (same version hash) is not swapped.
- A folder that does not build is refused: the last good content keeps serving, every error is
  logged with its file and path, and the status (service.content.status, `GET /status/content`)
  shows it until a later load succeeds.
- The last good content is also written to `snapshot` (a JSON file, replaced atomically), when
  one is given.  A process that starts while the folder does not build (a worker gunicorn
  replaces after a crash, while an edit is broken) serves the snapshot instead, and says so; with
  no snapshot it refuses to start, as a fresh service does with broken content.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import weakref
from pathlib import Path
from typing import Any

from service import metrics
from service.content.background import Background
from service.content.folder import PACKAGE_FILES, build_read, read_folder
from service.content.status import ContentStatus, content_version
from service.engine import ContentSet, build_content
from service.errors import ContentError, ContentErrors

log = logging.getLogger("service.content")

Fingerprint = tuple[tuple[str, int, int], ...]
_REGISTERED: weakref.WeakSet[Any] = weakref.WeakSet()


def register(reloader: Any) -> None:
    """A content source (it has `reload_now()`) that `reload_all()` reaches."""
    _REGISTERED.add(reloader)


def reload_all() -> None:
    """Ask every content source of this process to reload now (safe in a signal handler: it only
    sets an event)."""
    for reloader in list(_REGISTERED):
        reloader.reload_now()


def fingerprint(directory: Path) -> Fingerprint:
    """(name, size, mtime in ns) of every content file of the folder; () when it cannot be read."""
    out = []
    try:
        for path in sorted(directory.glob("*.json")):
            if path.name in PACKAGE_FILES:
                continue
            try:
                st = path.stat()
            except OSError:
                continue
            out.append((path.name, st.st_size, st.st_mtime_ns))
    except OSError:
        return ()
    return tuple(out)


class FolderWatch:
    """Keeps `runtime.content` equal to the folder's last content that builds."""

    def __init__(self, directory: str | Path, poll_seconds: float = 2.0, snapshot: str | Path | None = None):
        self.directory = Path(directory)
        self.poll_seconds = poll_seconds
        self.snapshot = Path(snapshot) if snapshot else None
        self.status = ContentStatus("folder", str(self.directory))
        self._seen: Fingerprint | None = None
        self._lock = threading.Lock()
        self._forced = False
        self._background = Background("content-watch", f"content reload from {self.directory}")

    # ---- loading ------------------------------------------------------------------------------

    def _read(self) -> tuple[Fingerprint, list[tuple[str, dict]], list[ContentError], str]:
        seen = fingerprint(self.directory)  # taken before reading: a change while reading is seen next time
        raws, errors = read_folder(self.directory)
        return seen, raws, errors, content_version(raws)

    def initial(self) -> ContentSet:
        """The content to start with: the folder's, else the snapshot's (the folder's errors are
        then reported), else ContentErrors."""
        seen, raws, errors, version = self._read()
        try:
            content = build_read(raws, errors)
        except ContentErrors as exc:
            fallback = self._from_snapshot()
            if fallback is None:
                raise
            content, kept = fallback
            self._seen = seen
            self.status.served(content, kept)
            self.status.refused(exc.errors, version, f"the last good content ({kept}), from {self.snapshot}")
            self._log_refused(exc.errors, kept)
            return content
        self._seen = seen
        self.status.served(content, version)
        self._write_snapshot(raws, version)
        return content

    def check(self, runtime: Any, force: bool = False) -> bool:
        """Reload when the folder changed (or `force`); True when new content was swapped in."""
        with self._lock:
            seen = fingerprint(self.directory)
            if not force and seen == self._seen:
                self.status.checked()
                return False
            seen, raws, errors, version = self._read()
            self._seen = seen
            if version == self.status.version and not errors:  # back to what is served
                if self.status.last_error is not None:
                    self.status.served(runtime.content, version)
                    log.info("content in %s is again the content served (%s)", self.directory, version)
                self.status.checked()
                return False
            try:
                content = build_read(raws, errors)
            except ContentErrors as exc:
                kept = self.status.version or "none"
                self.status.refused(exc.errors, version, f"the last good content ({kept})")
                self._log_refused(exc.errors, kept)
                metrics.content_loaded(kept, len(runtime.content.services), ok=False)
                return False
            runtime.content = content  # one assignment: a call sees the old set or the new one
            self.status.served(content, version)
            metrics.content_loaded(version, len(content.services))
            self._write_snapshot(raws, version)
            for issue in content.issues:
                (log.error if issue.severity == "error" else log.warning)("%s", issue)
            log.info("content reloaded from %s: version %s, services: %s", self.directory, version,
                     ", ".join(sorted(content.services)) or "none")
            return True

    def _log_refused(self, errors: list[ContentError], kept: str) -> None:
        for err in errors:
            log.error("content reload refused: %s", err)
        log.error("content in %s has %d error(s): still serving %s", self.directory, len(errors), kept)

    # ---- the snapshot of the last good content -----------------------------------------------

    def _write_snapshot(self, raws: list[tuple[str, dict]], version: str) -> None:
        if self.snapshot is None:
            return
        try:
            self.snapshot.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.snapshot.parent, prefix=".snapshot-", suffix=".json")
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump({"version": version, "resources": [[name, raw] for name, raw in raws]}, out)
            os.replace(tmp, self.snapshot)
        except OSError as exc:
            log.warning("last good content not saved to %s: %s", self.snapshot, exc)

    def _from_snapshot(self) -> tuple[ContentSet, str] | None:
        if self.snapshot is None or not self.snapshot.is_file():
            return None
        try:
            saved = json.loads(self.snapshot.read_text(encoding="utf-8"))
            raws = [(str(name), raw) for name, raw in saved["resources"]]
            return build_content(raws), str(saved["version"])
        except (OSError, ValueError, KeyError, TypeError, ContentErrors) as exc:
            log.error("the last good content in %s cannot be used: %s", self.snapshot, exc)
            return None

    # ---- the background thread ----------------------------------------------------------------

    def reload_now(self) -> None:
        self._forced = True
        self._background.wake()

    def start(self, runtime: Any) -> None:
        """Check in a daemon thread: every poll_seconds, and at once on reload_now()."""
        register(self)

        def task() -> None:
            force, self._forced = self._forced, False
            self.check(runtime, force=force)

        self._background.start(task, lambda: self.poll_seconds if self.poll_seconds > 0 else None)

    def stop(self) -> None:
        self._background.stop()
