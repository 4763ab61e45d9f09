"""HTTP layer: the only Flask/werkzeug importers besides app.py."""

from __future__ import annotations

from flask import Flask

from service.runtime import Runtime


def register(app: Flask, runtime: Runtime) -> None:
    from service.web import errors, guidance, routes

    from flask_cors import CORS

    app.extensions["cds"] = runtime
    # Bodies past the limit are refused (413) before they are read (werkzeug: Content-Length, or
    # counted while reading a chunked body).
    app.config["MAX_CONTENT_LENGTH"] = runtime.config.max_request_bytes
    app.register_blueprint(routes.blueprint)
    app.register_blueprint(guidance.blueprint)
    errors.register(app)
    # Browser-based EHRs and sandboxes call from other origins (CDS Hooks 2.0 §CORS).
    # `cors_origins` is "*" or a comma-separated list of origins (CDS_CORS_ORIGINS).
    origins = [o.strip() for o in runtime.config.cors_origins.split(",") if o.strip()]
    CORS(app, origins=origins, allow_headers=["Authorization", "Content-Type"],
         methods=["GET", "POST", "OPTIONS"], max_age=600)
