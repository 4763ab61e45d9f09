"""The one gate every endpoint passes before its handler (see routes.blueprint.before_request).

It enforces what the protocol layer needs of every call today (JSON bodies on POST).
Authentication of EHR callers (CDS Hooks 2.0 §Trusting CDS Clients, JWT) belongs here.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Request

from service.errors import BadRequest, UnsupportedMediaType


def guard(request: Request) -> None:
    if request.method == "POST":
        mimetype = (request.mimetype or "").lower()
        if mimetype != "application/json" and not mimetype.endswith("+json"):
            raise UnsupportedMediaType(f"Content-Type must be application/json, got {request.mimetype or 'none'!r}")


def json_body(request: Request) -> Any:
    raw = request.get_data(cache=True)
    if not raw.strip():
        raise BadRequest("request body is empty; a JSON object is required")
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None
