"""Flask app factory: wiring only."""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable
from datetime import datetime

from flask import Flask

from service import logcontext, metrics
from service.auth import authentication
from service.config import load_config
from service.content.fhir_source import FhirContentSource
from service.content.status import ContentStatus, content_version
from service.content.watch import FolderWatch
from service.engine import ContentSet
from service.feedback import FeedbackStore
from service.fhir.budget import Budget
from service.fhir.client import FhirClient
from service.runtime import Runtime, utc_now


def _fetcher_factory(config):
    """Called once per call that fetches: the call's FHIR requests share one Budget (deadline, bytes)."""

    def factory(base_url: str, token: str | None):
        budget = Budget(config.call_deadline_seconds, config.fhir_max_call_bytes)
        client = FhirClient(base_url, access_token=token, timeout=config.fhir_timeout_seconds,
                            retries=config.fhir_retries, max_pages=config.fhir_max_pages, budget=budget,
                            max_response_bytes=config.fhir_max_response_bytes)
        return client

    return factory


def _content_source(cfg) -> FhirContentSource:
    client = FhirClient(cfg.content_fhir_base_url, access_token=cfg.content_fhir_token or None,
                        timeout=cfg.fhir_timeout_seconds, retries=cfg.fhir_retries, max_pages=1000,
                        max_response_bytes=cfg.fhir_max_response_bytes)
    return FhirContentSource(client, refresh_seconds=cfg.content_refresh_seconds, statuses=cfg.content_fhir_status)


def create_app(config: dict | None = None, *, clock: Callable[[], datetime] | None = None,
               content: ContentSet | None = None, reload_content: bool = False,
               content_snapshot: str | None = None) -> Flask:
    """Build the service.  Bad content raises ContentErrors (file and path): the service
    refuses to start rather than serve part of the guidance.  With `content_fhir_base_url` the
    content comes from that FHIR server instead (service.content.fhir_source: bad resources there
    keep their last good version or are skipped, and are reported; it is refreshed every
    `content_refresh_seconds`).  `reload_content` (`dah-cds serve`): folder content is watched
    and reloaded in place, only when it builds (service.content.watch), and both sources reload
    on service.content.watch.reload_all(); `content_snapshot` keeps the last good folder content
    for a process that starts while the folder is broken.  A bad
    trusted-clients file, or no trusted clients on a non-loopback host, raises ConfigurationError
    (service.auth)."""
    cfg = load_config(config)
    logcontext.configure(cfg.log_level, cfg.log_format)  # only when nothing else has configured logging
    from service.web import register

    app = Flask(__name__)
    store = FeedbackStore(cfg.database_url)
    clock = clock or utc_now
    authenticator = authentication(cfg, store.first_use_of_token, clock)  # refuses unsafe set-ups first
    source = watch = None
    if content is None and cfg.content_fhir_base_url:
        source = _content_source(cfg)
        content = source.initial()
        status = source.status
    elif content is None:
        watch = FolderWatch(cfg.content_dir, cfg.content_watch_seconds, content_snapshot)
        content = watch.initial()
        status = watch.status
    else:
        status = ContentStatus("fixed", "given to create_app")
        status.served(content, content_version(list(content.resources.items())))
    runtime = Runtime(
        config=cfg,
        content=content,
        store=store,
        fetcher_factory=_fetcher_factory(cfg),
        clock=clock,
        authenticator=authenticator,
        content_status=status,
    )
    for issue in runtime.content.issues:
        logging.getLogger("service.content").warning("%s", issue)
    register(app, runtime)
    if source is not None:
        app.extensions["cds_content_source"] = source
        source.start(runtime, on_signal=reload_content)
    if watch is not None and reload_content:
        app.extensions["cds_content_watch"] = watch
        watch.start(runtime)
    version = status.version or ""
    metrics.content_loaded(version, len(runtime.content.services))
    # Loaded content lives as long as the process: keep it out of the collector's way.
    gc.collect()
    gc.freeze()
    logging.getLogger("service.app").info(
        "ready: %d CDS services, content version %s (%s), %s mode", len(runtime.content.services), version,
        cfg.content_fhir_base_url and "FHIR server" or "folder", "open" if authenticator is None else "trusted-clients")
    return app
