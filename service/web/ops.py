"""What operators and load balancers read, and what every request leaves behind for them.

Endpoints (no client authentication: a load balancer or Prometheus holds no CDS client's token;
none of them shows patient data, configuration, URLs or error text):
- `GET /health`: the process answers (200 `{"status": "up"}`); nothing else is consulted, so a
  slow database never makes an orchestrator restart a healthy process.
- `GET /ready`: ready to serve calls: content is loaded (at least one CDS service) and the database
  answers.  200 `{"status": "ready", "services": N}`, else 503 with an OperationOutcome whose
  issues name what is not ready ("content", "database"), in the service's words only.
- `GET /metrics`: Prometheus text format (service.metrics).  Answered to loopback callers only,
  unless `metrics_public` (CDS_METRICS_PUBLIC) says any caller may read it (a network where only
  the scraper reaches the port); else 403.

Every request: a request id (`X-Request-ID` when it is a sane token, else generated;
service.logcontext) is bound to the log context for the request's lines and echoed in the
response's `X-Request-ID`; one access line is logged; its count and duration are recorded per
service and status.
"""

from __future__ import annotations

import logging
import time

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request

from service import logcontext, metrics
from service.fhir import outbound
from service.logtext import shown
from service.runtime import Runtime

blueprint = Blueprint("ops", __name__)
access_log = logging.getLogger("service.access")

# Endpoint (Flask's name) -> the `service` label of requests that name no CDS service.
_ENDPOINT_LABELS = {
    "cds.get_discovery": "discovery",
    "cds.plan_apply_operation": "plandefinition-apply",
    "cds.post_activity_apply": "activitydefinition-apply",
    "guidance.get_index": "guidance",
    "guidance.get_rule": "guidance",
    "ops.health": "health",
    "ops.ready": "ready",
    "ops.metrics_text": "metrics",
}


def _runtime() -> Runtime:
    return current_app.extensions["cds"]


@blueprint.get("/health")
def health():
    return jsonify({"status": "up"})


@blueprint.get("/ready")
def ready():
    rt = _runtime()
    content = rt.content
    problems = []
    if not content.services:
        problems.append(("content", "no content loaded: the service has no CDS service to offer yet"))
    if rt.store.reachable() is not None:
        problems.append(("database", "the database does not answer"))
    if not problems:
        return jsonify({"status": "ready", "services": len(content.services)})
    response = jsonify({"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "transient", "diagnostics": text, "expression": [what]}
        for what, text in problems]})
    response.status_code = 503
    return response


@blueprint.get("/metrics")
def metrics_text():
    if not (_runtime().config.metrics_public or outbound.is_loopback_host(request.remote_addr or "")):
        response = jsonify({"resourceType": "OperationOutcome", "issue": [
            {"severity": "error", "code": "forbidden",
             "diagnostics": "metrics are served to this machine only (CDS_METRICS_PUBLIC)"}]})
        response.status_code = 403
        return response
    return Response(metrics.exposition(), content_type=metrics.CONTENT_TYPE)


def _label() -> str:
    service_id = (request.view_args or {}).get("service_id")
    if service_id is not None:
        return service_id if service_id in _runtime().content.services else "unknown"
    endpoint = request.endpoint
    if endpoint is None:
        return "unknown"
    return _ENDPOINT_LABELS.get(endpoint, endpoint)


def _begin() -> None:
    g.cds_started = time.perf_counter()
    g.cds_request_id = logcontext.request_id_from(request.headers.get("X-Request-ID"))
    g.cds_log_tokens = logcontext.bind_request(g.cds_request_id)


def _finish(response: Response) -> Response:
    started = g.get("cds_started")
    if started is None:
        return response
    seconds = time.perf_counter() - started
    response.headers["X-Request-ID"] = g.cds_request_id
    label = _label()
    metrics.request_done(label, response.status_code, seconds)
    access_log.info("%s %s %d %.1fms service=%s", request.method, shown(request.path), response.status_code,
                    seconds * 1000, label)
    return response


def _end(_exc: BaseException | None) -> None:
    tokens = g.pop("cds_log_tokens", None)
    if tokens is not None:
        try:
            logcontext.reset(tokens)
        except ValueError:  # reset from another context (a streamed response): nothing to undo here
            pass


def register(app: Flask) -> None:
    app.register_blueprint(blueprint)
    app.before_request_funcs.setdefault(None, []).insert(0, _begin)  # before every other check
    app.after_request(_finish)
    app.teardown_request(_end)
