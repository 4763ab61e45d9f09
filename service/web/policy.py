"""What the HTTP layer allows a caller besides authentication: which browser origins (CORS) and
whether the trace is shown.  Safe defaults, decided once at start from the configuration.

Rules:
- CORS (CDS Hooks 2.0 §CORS; Fetch standard): `cors_origins` (CDS_CORS_ORIGINS) is "*" or a
  comma-separated list of origins (`https://ehr.example.org`, `http://localhost:3000`: scheme,
  host, optional port; nothing else).  Unset: "*" in open mode (no trusted clients, served on
  loopback only), no origin at all otherwise.  A listed origin is answered with exactly that
  origin; "*" is answered with "*" and never by repeating the caller's origin; `null` (sandboxed
  frames, file: pages) is never an allowed origin, and listing it stops the start.
- Trace (`?_trace=true`, `X-CDS-Trace`): it shows the rules' logic and the data each used.
  Honoured only when `trace_allowed` (CDS_TRACE_ALLOWED) is true; unset, only in open mode.
  Asked for where it is not allowed, the call is answered without it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from service.errors import ConfigurationError
from service.runtime import Runtime

_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$|^https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$")


@dataclass(frozen=True)
class WebPolicy:
    cors_origins: tuple[str, ...]  # ("*",), listed origins, or () for none
    trace_allowed: bool


def cors_origins(setting: str | None, open_mode: bool) -> tuple[str, ...]:
    if setting is None:
        return ("*",) if open_mode else ()
    origins = tuple(o.strip() for o in setting.split(",") if o.strip())
    if "*" in origins:
        if len(origins) > 1:
            raise ConfigurationError("cors_origins (CDS_CORS_ORIGINS) is either * or a list of origins, not both")
        return origins
    for origin in origins:
        if origin.lower() == "null":
            raise ConfigurationError("cors_origins (CDS_CORS_ORIGINS) must not list null: any sandboxed page or "
                                     "local file would be allowed")
        if not _ORIGIN.match(origin):
            raise ConfigurationError(f"cors_origins (CDS_CORS_ORIGINS): {origin!r} is not an origin "
                                     "(scheme://host[:port], no path, no trailing slash)")
    return origins


def web_policy(runtime: Runtime) -> WebPolicy:
    open_mode = runtime.authenticator is None
    allowed = runtime.config.trace_allowed
    return WebPolicy(cors_origins(runtime.config.cors_origins, open_mode),
                     open_mode if allowed is None else allowed)
