"""GET /status/content: the content this worker serves and the last reload it refused.

The answer is service.content.status as JSON: `version` (a hash of the resources served),
`loadedAt`, `checkedAt`, `services`, `lastError` (when, the version refused, what still serves,
and each error with its file and path) and, for content from a FHIR server, `resourceErrors`
(each resource with errors and what serves instead).  It names files and content errors, never
patient data, so it is a GET like discovery: open to this machine in open mode, to anyone who
may reach discovery otherwise (a Bearer token sent with it is checked, service.web.security).
Each worker process answers for itself; after a reload they agree within one check interval.
"""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from service.web import security
from service.web.routes import runtime

blueprint = Blueprint("status", __name__)


@blueprint.before_request
def _guard():
    security.guard(request)


@blueprint.get("/status/content")
def get_content_status():
    status = runtime().content_status
    return jsonify(status.to_json() if status is not None else {"mode": "unknown"})
