"""CDS Hooks 2.0 endpoints: discovery, service calls (cards link to their rule pages), feedback."""

from __future__ import annotations

import logging
import time

from flask import Blueprint, current_app, jsonify, request

from service import logcontext, metrics
from service.errors import NotFound
from service.hooks.call import call_service
from service.hooks.discovery import discovery
from service.hooks.feedback import accept_feedback
from service.hooks.request import parse_hook_request
from service.logtext import shown
from service.operations import activity_apply, parameters_from_query, parse_apply_request, plan_apply
from service.runtime import Runtime
from service.web import security
from service.web.policy import WebPolicy

blueprint = Blueprint("cds", __name__)
log = logging.getLogger("service.calls")


def runtime() -> Runtime:
    return current_app.extensions["cds"]


def policy() -> WebPolicy:
    return current_app.extensions["cds_policy"]


@blueprint.before_request
def _guard():
    security.guard(request)


def public_base() -> str:
    """The root URL clinicians' browsers reach the service at, without a trailing slash:
    `public_base_url` when configured (behind a proxy), else this request's root URL."""
    return security.public_root(request, runtime().config.public_base_url)


def _service(service_id: str, content=None):
    svc = (content or runtime().content).services.get(service_id)
    if svc is None:
        raise NotFound(f"no CDS service '{shown(service_id, 100)}'", expression="id")
    return svc


def _trace_requested() -> bool:
    """The caller asked for the trace (or it is on by default), and it may be shown (service.web.policy)."""
    if not policy().trace_allowed:
        return False
    flag = request.args.get("_trace") or request.headers.get("X-CDS-Trace")
    if flag is None:
        return runtime().config.trace_default
    return flag.strip().lower() in ("1", "true", "yes")


@blueprint.get("/cds-services")
def get_discovery():
    return jsonify(discovery(runtime().content))


@blueprint.post("/cds-services/<service_id>")
def post_service(service_id: str):
    started = time.perf_counter()
    rt = runtime()
    content = rt.content  # read once: a content refresh may swap it while this call runs
    svc = _service(service_id, content)
    call = parse_hook_request(security.json_body(request), svc)
    logcontext.bind_hook_instance(call.hook_instance)  # on every log line of this call from here on
    trace = _trace_requested()
    now = rt.clock()
    answer = call_service(content, svc, call, now, security.fetchers(rt, "fhirServer"),
                          trace=trace, guidance_base=public_base(), history=rt.store)
    rt.store.record_cards(svc.id, call.hook_instance, answer.cards, scope=answer.scope, scope_at=now,
                          orders=answer.orders)
    if answer.quiet:
        rt.store.record_suppressed(svc.id, call.hook_instance, answer.quiet, now)
    metrics.cards_answered(answer.cards)
    instance = shown(call.hook_instance)
    if not trace:  # the trace goes to the log when the caller did not ask for it
        if answer.issues:
            log.info("hookInstance=%s issues=%s", instance, shown(answer.issues, 2000))
        if log.isEnabledFor(logging.DEBUG):  # the trace's text is built only for a log that keeps it
            log.debug("hookInstance=%s trace=%s", instance, shown(answer.trace, 20000))
    log.info("hookInstance=%s service=%s cards=%d ms=%.1f", instance, svc.id, len(answer.cards),
             (time.perf_counter() - started) * 1000)
    return jsonify(answer.body)


@blueprint.post("/cds-services/<service_id>/feedback")
def post_feedback(service_id: str):
    rt = runtime()
    svc = _service(service_id)
    result = accept_feedback(rt.store, svc.id, security.json_body(request), rt.config.max_feedback_items,
                             received_at=rt.clock())
    log.info("feedback service=%s stored=%s duplicates=%s", shown(svc.id), result.get("stored"),
             result.get("duplicates"))
    return jsonify(result), 200


# ---- FHIR operations: PlanDefinition/$apply, ActivityDefinition/$apply -------------------------


def _fhir_json(payload: dict, status: int = 200):
    response = jsonify(payload)
    response.status_code = status
    response.mimetype = "application/fhir+json"
    return response


@blueprint.route("/PlanDefinition/$apply", methods=["GET", "POST"])
@blueprint.route("/PlanDefinition/<plan_id>/$apply", methods=["GET", "POST"])
def plan_apply_operation(plan_id: str | None = None):
    """POST with a Parameters body, or the GET form (FHIR R4 §3.1.0.1.5: no side effects, primitive
    parameters as the query)."""
    rt = runtime()
    if request.method == "GET":
        body = parameters_from_query(request.args.to_dict(flat=False), ignored=("_trace",))
    else:
        body = security.json_body(request)
    call = parse_apply_request(body, plan_id)
    return _fhir_json(plan_apply(rt.content, call, plan_id, rt.clock(), security.fetchers(rt, "dataEndpoint"),
                                 trace=_trace_requested()))


@blueprint.post("/ActivityDefinition/$apply")
@blueprint.post("/ActivityDefinition/<activity_id>/$apply")
def post_activity_apply(activity_id: str | None = None):
    rt = runtime()
    call = parse_apply_request(security.json_body(request), activity_id)
    return _fhir_json(activity_apply(rt.content, call, activity_id, rt.clock(), security.fetchers(rt, "dataEndpoint")))
