"""The informatician's workbench: GET/POST /preview (cards as an EHR shows them, with the trace) and
GET /preview/analytics (feedback per rule and week).  Server-rendered HTML (service.web.preview_html)
with one small script; runs are made by service.web.preview_run.

Who may use it (the preview runs the rules on whatever data it is sent and shows the trace, so
it must never become an unauthenticated way to run things on an exposed service):
- it exists only when enabled: `preview` (CDS_PREVIEW) true, or, unset, when the service is bound
  to a loopback host (`CDS_HOST`); otherwise every /preview path is a 404;
- enabled, it answers only callers on this machine: a loopback client address, a `Host` that
  names a loopback host (a page of another site whose name is made to resolve to 127.0.0.1, DNS
  rebinding, is refused), and no proxy headers (`Forwarded`, `X-Forwarded-For`, `X-Real-IP`: a
  proxy on this machine would otherwise pass remote callers off as local).  So CDS_PREVIEW=true
  on a service bound to a public address still serves the preview only through an SSH tunnel
  or on the host itself.  It needs no JWT: the CDS client trust (service.web.security) is for
  EHRs, and these rules replace it;
- a POST must be a form of this page: `application/x-www-form-urlencoded`, with an `Origin`
  (when the browser sends one) equal to the service's own, and not `Sec-Fetch-Site: cross-site`;
- it never fetches from a FHIR server and records no card (service.web.preview_run); it reads the
  feedback store to leave out quiet cards as a call would, and the decisions marked on its cards stay
  in the page (service.web.preview_quiet);
- answers are `Cache-Control: no-store`, `Referrer-Policy: same-origin` (so the browser names the
  page's origin on its posts), with a policy that allows only the preview's own script
  and style sheet (no inline script), forms posted to itself only, and no framing.
"""

from __future__ import annotations

import json
from datetime import date
from importlib import resources
from urllib.parse import urlsplit

from flask import Blueprint, Flask, Response, request

from service.config import Config
from service.errors import InvalidRequest, NotFound, NotPermitted
from service.feedback.report import rule_report
from service.fhir.outbound import is_loopback_host
from service.web import preview_html, preview_quiet, preview_run, security
from service.web.routes import runtime

blueprint = Blueprint("preview", __name__)

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")
# `same-origin`, not the service's usual `no-referrer`: under no-referrer a browser sends its form
# posts with `Origin: null` (Fetch standard, "serializing a request origin"), which is refused here.
HEADERS = {"Content-Security-Policy": CSP, "Cache-Control": "no-store", "X-Frame-Options": "DENY",
           "Referrer-Policy": "same-origin"}
PROXY_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Real-IP")
STATIC = {"preview.js": "text/javascript; charset=utf-8", "preview.css": "text/css; charset=utf-8"}
FORM_FIELDS = ("scenario", "hook", "service", "now", "bundle", "draft_orders", "decisions")


def preview_enabled(config: Config) -> bool:
    """CDS_PREVIEW, or (unset) whether the service is bound to a loopback host."""
    return config.preview if config.preview is not None else is_loopback_host(config.host)


def register(app: Flask, config: Config) -> None:
    if preview_enabled(config):
        app.register_blueprint(blueprint)


@blueprint.before_request
def _guard() -> None:
    if not is_loopback_host(request.remote_addr or ""):
        raise NotPermitted("the preview answers callers on this machine only")
    if any(request.headers.get(h) for h in PROXY_HEADERS):
        raise NotPermitted("the preview is not served through a proxy")
    if not is_loopback_host(urlsplit("//" + (request.host or "")).hostname or ""):
        raise NotPermitted("the preview is reached at a loopback address only (localhost, 127.0.0.1, [::1])")
    if request.method == "POST":
        if request.mimetype != "application/x-www-form-urlencoded":
            raise NotPermitted("the preview takes its own form only")
        origin = request.headers.get("Origin")
        if (origin is not None and origin != request.host_url.rstrip("/")) \
                or request.headers.get("Sec-Fetch-Site") == "cross-site":
            raise NotPermitted("the preview takes its own form only (another site sent this)")


def _html(page: str, status: int = 200) -> Response:
    return Response(page, status=status, content_type="text/html; charset=utf-8", headers=HEADERS)


def _services() -> list[tuple[str, tuple[str, ...]]]:
    return [(sid, svc.hooks) for sid, svc in sorted(runtime().content.services.items())]


@blueprint.get("/preview")
def get_preview() -> Response:
    rt = runtime()
    return _html(preview_html.preview_page({}, preview_run.scenarios(rt.config.content_dir), _services()))


@blueprint.post("/preview")
def post_preview() -> Response:
    rt = runtime()
    content = rt.content  # read once: a reload may swap it meanwhile
    form = {name: request.form.get(name, "") for name in FORM_FIELDS}
    scenarios = preview_run.scenarios(rt.config.content_dir)
    page = lambda runs=None, error=None: preview_html.preview_page(  # noqa: E731
        form, scenarios, _services(), runs, error)
    try:
        scenario = None
        if form["scenario"]:
            scenario = next((s for s in scenarios if s.id == form["scenario"]), None)
            if scenario is None:
                raise InvalidRequest("no such scenario")
        hook = form["hook"] or (scenario.hook if scenario else "patient-view")
        if hook not in preview_run.HOOKS:
            raise InvalidRequest(f"unknown hook; one of {', '.join(preview_run.HOOKS)}")
        form["hook"] = hook
        if form["service"]:
            service = content.services.get(form["service"])
            if service is None or hook not in service.hooks:
                raise InvalidRequest(f"the service chosen does not answer {hook}")
            services = [service]
        else:
            services = [svc for _, svc in sorted(content.services.items()) if hook in svc.hooks]
        default_now = preview_run.parse_now(scenario.now, rt.clock()) if scenario and scenario.now else rt.clock()
        now = preview_run.parse_now(form["now"], default_now)
        form["now"] = now.isoformat().replace("+00:00", "Z")
        decisions = [] if request.form.get("forget") else preview_quiet.parse_decisions(form["decisions"])
        decisions += preview_quiet.parse_decisions(request.form.get("decide", ""))
        if len(decisions) > preview_quiet.MAX_DECISIONS:
            raise InvalidRequest(f"at most {preview_quiet.MAX_DECISIONS} decisions can be marked; forget them")
        form["decisions"] = json.dumps(decisions, ensure_ascii=False) if decisions else ""
        runs = preview_run.run(content, services, hook, scenario, form["bundle"], form["draft_orders"], now,
                               security.public_root(request, rt.config.public_base_url), rt.config.max_array_items,
                               preview_quiet.PreviewHistory(decisions, rt.store))
    except InvalidRequest as exc:
        return _html(page(error=exc.message), status=400)
    return _html(page(runs=runs))


@blueprint.get("/preview/analytics")
def get_analytics() -> Response:
    since, until = request.args.get("since", "").strip(), request.args.get("until", "").strip()
    try:
        first = date.fromisoformat(since) if since else None
        last = date.fromisoformat(until) if until else None
    except ValueError:
        return _html(preview_html.analytics_page([], since, until, "dates are YYYY-MM-DD"), status=400)
    rows = rule_report(runtime().store, first, last, split=("week",))
    return _html(preview_html.analytics_page(rows, since, until))


@blueprint.get("/preview/static/<name>")
def get_static(name: str) -> Response:
    if name not in STATIC:
        raise NotFound("no such file")
    text = resources.files("service.web").joinpath("static", name).read_text(encoding="utf-8")
    return Response(text, content_type=STATIC[name], headers={"Cache-Control": "no-cache"})
