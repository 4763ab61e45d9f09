"""HTTP layer: the only Flask/werkzeug importers besides app.py."""

from __future__ import annotations

from flask import Flask

from service.runtime import Runtime


def register(app: Flask, runtime: Runtime) -> None:
    from flask_cors import CORS

    from service.web import errors, guidance, headers, ops, preview, routes, status
    from service.web.jsonout import OrjsonProvider
    from service.web.policy import web_policy

    policy = web_policy(runtime)  # refuses an unsafe CORS setting before anything is served
    app.json = OrjsonProvider(app)  # responses written by orjson
    app.extensions["cds"] = runtime
    app.extensions["cds_policy"] = policy
    # Bodies past the limit are refused (413) before they are read (werkzeug: Content-Length, or
    # counted while reading a chunked body).
    app.config["MAX_CONTENT_LENGTH"] = runtime.config.max_request_bytes
    ops.register(app)  # request id, access line and metrics of every request; /health, /ready, /metrics
    app.register_blueprint(routes.blueprint)
    app.register_blueprint(guidance.blueprint)
    app.register_blueprint(status.blueprint)
    preview.register(app, runtime.config)  # the workbench, on loopback only (service.web.preview)
    errors.register(app)
    headers.register(app)
    # Browser-based EHRs and sandboxes call from other origins (CDS Hooks 2.0 §CORS); which ones:
    # service.web.policy.  "*" is sent as "*", never as the caller's origin repeated.
    if policy.cors_origins:
        CORS(app, origins=list(policy.cors_origins), send_wildcard=True, always_send=False, vary_header=True,
             allow_headers=["Authorization", "Content-Type"], methods=["GET", "POST", "OPTIONS"], max_age=600)
