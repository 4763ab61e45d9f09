"""Service configuration: defaults, overridden by `CDS_*` environment variables, then by
the mapping given to `create_app(config)`.  This is the only module that reads os.environ.

Rules: every field is the variable `CDS_<FIELD>` (README "Configuration" lists each one; a test keeps
the two in step).  A value that cannot be read (`CDS_FHIR_RETRIES=abc`, `CDS_LOG_LEVEL=verbose`) is a
ConfigurationError naming the variable, the value and the form expected, raised before anything
starts (`dah-cds` prints it and exits with 2, no traceback).  The SQLite database lives in
`data_dir` (CDS_DATA_DIR) unless `database_url` names another database.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from service.errors import ConfigurationError

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
    # Writable state (the SQLite database); the image sets /var/lib/dah-cds.  "" = var/ of the checkout.
    data_dir: str = ""
    database_url: str = ""  # "" = sqlite:///<data_dir>/feedback.sqlite3
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
    log_format: str = "text"  # "text": one readable line per event; "json": one JSON object per line
    # GET /metrics (Prometheus): always to loopback callers; to any caller when true (behind a proxy that
    # keeps it internal).
    metrics_public: bool = False
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


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("text", "json")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
# Fields whose value is one of a few words: field -> the words (compared without case).
_CHOICES = {"log_level": LOG_LEVELS, "log_format": LOG_FORMATS}


def variable(name: str) -> str:
    """The environment variable of a configuration field."""
    return "CDS_" + name.upper()


def _refuse(name: str, raw: object, expected: str) -> ConfigurationError:
    return ConfigurationError(f"{variable(name)}={str(raw)[:100]!r}: expected {expected}")


def _coerce(name: str, kind: object, raw: str) -> Any:
    optional = isinstance(kind, str) and kind.endswith(" | None")
    if optional:
        kind = str(kind)[: -len(" | None")]
        if kind != "str" and raw.strip() == "":
            return None
    text = raw.strip()
    if kind in (bool, "bool"):
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise _refuse(name, raw, "true or false (also 1/0, yes/no, on/off)" + (", or empty" if optional else ""))
    if kind in (int, "int"):
        try:
            whole = int(text)
        except ValueError:
            raise _refuse(name, raw, "a whole number (e.g. 2)") from None
        if whole < 0:
            raise _refuse(name, raw, "a whole number, 0 or more")
        return whole
    if kind in (float, "float"):
        try:
            number = float(text)
        except ValueError:
            raise _refuse(name, raw, "a number of seconds or bytes (e.g. 10 or 2.5)") from None
        if not number >= 0 or number == float("inf"):
            raise _refuse(name, raw, "a finite number, 0 or more")
        return number
    if name in _CHOICES:
        word = text.upper() if name == "log_level" else text.lower()
        if word not in _CHOICES[name]:
            raise _refuse(name, raw, "one of " + ", ".join(_CHOICES[name]))
        return word
    return raw


def _resolved(cfg: Config) -> Config:
    data_dir = cfg.data_dir or str(PROJECT_ROOT / "var")
    database_url = cfg.database_url or "sqlite:///" + str(Path(data_dir) / "feedback.sqlite3")
    return replace(cfg, data_dir=data_dir, database_url=database_url)


def load_config(overrides: dict | None = None, environ: dict | None = None) -> Config:
    """Defaults <- CDS_<FIELD> environment variables <- `overrides`.  A malformed variable raises
    ConfigurationError naming it and the form expected."""
    env = os.environ if environ is None else environ
    values = {}
    for f in fields(Config):
        raw = env.get(variable(f.name))
        if raw is not None:
            values[f.name] = _coerce(f.name, f.type, raw)
    cfg = replace(Config(), **values)
    if overrides:
        unknown = set(overrides) - {f.name for f in fields(Config)}
        if unknown:
            raise ValueError(f"unknown configuration keys: {sorted(unknown)}")
        cfg = replace(cfg, **overrides)
    return _resolved(cfg)


def process_environment(name: str) -> str | None:
    """A variable of the process environment that is not configuration (PROMETHEUS_MULTIPROC_DIR)."""
    return os.environ.get(name)


def set_process_environment(name: str, value: str | None) -> None:
    """Set (None: remove) a variable for this process and the workers it starts (`dah-cds serve` tells
    prometheus_client its multiprocess directory this way, before any worker imports it)."""
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value
