"""Service configuration: defaults, overridden by `CDS_*` environment variables, then by
the mapping given to `create_app(config)`.  This is the only module that reads os.environ.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Config:
    content_dir: str = str(PROJECT_ROOT / "plandefinitions")
    # Content from a FHIR server instead of content_dir (service.content.fhir_source); "" = the folder.
    content_fhir_base_url: str = ""
    content_fhir_token: str = ""
    content_fhir_status: str = "active"  # PlanDefinition.status values served ("active,draft": unsigned content)
    content_refresh_seconds: float = 300.0
    # Folder content checked for changes this often by `dah-cds serve` (service.content.watch); 0 = on SIGHUP only.
    content_watch_seconds: float = 2.0
    # The workbench page GET /preview (service.web.preview); None = on only when bound to a loopback host.
    preview: bool | None = None
    database_url: str = "sqlite:///" + str(PROJECT_ROOT / "var" / "feedback.sqlite3")
    fhir_timeout_seconds: float = 10.0  # each read; bounded by what is left of the call's deadline
    fhir_max_pages: int = 20
    fhir_retries: int = 2
    # One deadline for all the FHIR work of one call (service.fhir.budget): a 412 before any worker timeout.
    call_deadline_seconds: float = 20.0
    fhir_max_response_bytes: int = 20_000_000  # one answer of a FHIR server, streamed and cut off past this
    fhir_max_call_bytes: int = 50_000_000  # all the answers read for one call
    # Request input (service.web.security, service.jsonlimits): body size, items in any JSON array,
    # feedback items (413).
    max_request_bytes: int = 5_000_000
    max_array_items: int = 10_000
    max_feedback_items: int = 100
    trace_default: bool = False
    # `?_trace=true` honoured at all; None = only in open mode (no trusted clients, loopback).
    trace_allowed: bool | None = None
    log_level: str = "INFO"
    # Comma-separated origins browsers may call from, or "*"; None = "*" in open mode, no origin otherwise.
    cors_origins: str | None = None
    host: str = "127.0.0.1"  # the bind address: without trusted_clients only a loopback host may serve
    port: int = 8080
    # The URL clients reach the service at, behind a proxy (JWT `aud`, links); "" = the request's own root URL.
    public_base_url: str = ""
    # CDS Hooks §Trusting CDS Clients: path of the trusted-clients JSON file (service.auth.clients); "" = open.
    trusted_clients: str = ""
    jwt_clock_skew_seconds: float = 5.0
    jwt_max_lifetime_seconds: float = 3600.0  # a token whose exp - iat is longer is refused; 0 = no limit
    # Serving (service.serving, `dah-cds serve`): gunicorn gthread workers, threads each, and the time a
    # client may keep a thread waiting for its request's bytes before it gets 408.
    workers: int = 2
    threads: int = 8
    request_read_timeout_seconds: float = 10.0


def _coerce(kind, raw: str):
    if isinstance(kind, str) and kind.endswith(" | None"):
        kind = kind[: -len(" | None")]
        if kind != "str" and raw.strip() == "":
            return None
    if kind is bool or kind == "bool":
        return raw.strip().lower() in ("1", "true", "yes", "on")
    if kind is int or kind == "int":
        return int(raw)
    if kind is float or kind == "float":
        return float(raw)
    return raw


def load_config(overrides: dict | None = None, environ: dict | None = None) -> Config:
    """Defaults <- CDS_<FIELD> environment variables <- `overrides`."""
    env = os.environ if environ is None else environ
    values = {}
    for f in fields(Config):
        raw = env.get("CDS_" + f.name.upper())
        if raw is not None:
            values[f.name] = _coerce(f.type, raw)
    cfg = replace(Config(), **values)
    if overrides:
        unknown = set(overrides) - {f.name for f in fields(Config)}
        if unknown:
            raise ValueError(f"unknown configuration keys: {sorted(unknown)}")
        cfg = replace(cfg, **overrides)
    return cfg
