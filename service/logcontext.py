"""The service's log lines: one event per line, in JSON or readable text, each carrying the request
it belongs to.

Rules:
- The web layer opens a per-request context (`bind_request`, then `bind_hook_instance` once the
  body is parsed) held in contextvars, and closes it when the request ends (`reset`).  A logging
  filter (`ContextFilter`) copies it onto every record, so every line of one call (the 412 line,
  the FHIR fetch lines, the per-call line) names its request id and hookInstance, whichever module
  logs it.  No module state of the engine is involved: the context is the request's, not the
  engine's.
- A request id comes from the caller's `X-Request-ID` when it is a sane token (1-128 characters of
  letters, digits and `-._:`), else it is generated (32 hex digits); the web layer echoes it back.
- `CDS_LOG_FORMAT=text` (the default: a person reads it during development) writes
  `time LEVEL logger [rid=... hookInstance=...] message`; `json` writes one JSON object per line
  (`time`, `level`, `logger`, `message`, `request_id`, `hookInstance`, `exception`) for a log
  collector.  Messages keep service.logtext's rules (one line, escaped; tokens are never passed to
  a logger); JSON escapes the rest.

Kept at the top of service/: a leaf every layer logs through (base).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import uuid
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import IO, Any

from service.logtext import OneLineFormatter, one_line, shown

_REQUEST_ID: ContextVar[str | None] = ContextVar("cds_request_id", default=None)
_HOOK_INSTANCE: ContextVar[str | None] = ContextVar("cds_hook_instance", default=None)
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def request_id_from(header: str | None) -> str:
    """The caller's request id when it is a sane token, else a new one."""
    if header is not None and _SANE_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


def bind_request(request_id: str) -> tuple[Token[str | None], Token[str | None]]:
    """Open the log context of one request; give the result to `reset` when it ends."""
    return _REQUEST_ID.set(request_id), _HOOK_INSTANCE.set(None)


def bind_hook_instance(hook_instance: str) -> None:
    _HOOK_INSTANCE.set(shown(hook_instance, 128))


def reset(tokens: tuple[Token[str | None], Token[str | None]]) -> None:
    _REQUEST_ID.reset(tokens[0])
    _HOOK_INSTANCE.reset(tokens[1])


def current_request_id() -> str | None:
    return _REQUEST_ID.get()


class ContextFilter(logging.Filter):
    """Copies the request's log context onto each record (`request_id`, `hook_instance`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _REQUEST_ID.get()
        record.hook_instance = _HOOK_INSTANCE.get()
        return True


class TextFormatter(OneLineFormatter):
    """`time LEVEL logger [rid=... hookInstance=...] message`: one readable line."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(context)s%(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging API)
        parts = []
        request_id = getattr(record, "request_id", None)
        hook_instance = getattr(record, "hook_instance", None)
        if request_id:
            parts.append(f"rid={request_id}")
        if hook_instance:
            parts.append(f"hookInstance={hook_instance}")
        record.context = f"[{' '.join(parts)}] " if parts else ""
        return super().formatMessage(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": one_line(record.getMessage()),
        }
        for attribute, key in (("request_id", "request_id"), ("hook_instance", "hookInstance")):
            value = getattr(record, attribute, None)
            if value:
                event[key] = value
        if record.exc_info:
            event["exception"] = self.formatException(record.exc_info)
        return json.dumps(event, ensure_ascii=True)


class _ServiceHandler(logging.StreamHandler):
    """The handler `configure` installs (told apart from handlers others installed)."""


def formatter(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else TextFormatter()


def configure(level: str, log_format: str, stream: IO[str] | None = None) -> None:
    """Send the root logger's events to `stream` (stderr) in `log_format`, at `level`.  Done only when
    nothing else (a test harness, an embedding application) has configured logging; calling it again
    replaces the handler it installed before."""
    root = logging.getLogger()
    ours = [h for h in root.handlers if isinstance(h, _ServiceHandler)]
    if len(ours) < len(root.handlers):
        return
    for handler in ours:
        root.removeHandler(handler)
    handler = _ServiceHandler(stream or sys.stderr)
    handler.setFormatter(formatter(log_format))
    handler.addFilter(ContextFilter())
    root.addHandler(handler)
    root.setLevel(level)
