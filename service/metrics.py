"""Prometheus metrics of the service (prometheus_client; the only module that imports it).

What is measured (names as `GET /metrics` shows them):
- `cds_requests_total{service,status}` and `cds_request_duration_seconds{service,status}`: every
  HTTP request, labelled with the CDS service id for hook calls and feedback, else the endpoint's
  name (`discovery`, `apply`, `guidance`, `health`...); `unknown` for a path no route serves, so a
  caller cannot create labels at will;
- `cds_cards_total{rule,indicator}`: cards answered, per rule (the card's `source.topic` code) and
  indicator;
- `cds_fhir_request_duration_seconds{method}` and `cds_fhir_request_failures_total{method,reason}`:
  each FHIR request of the FHIR client (retries included), and those that failed, by error type;
- `cds_content_info{version}` (1 for the content being served, 0 for one served before), `cds_content_services`,
  `cds_content_reloads_total{result}` (`ok`/`failed`) and
  `cds_content_last_reload_timestamp_seconds`.

Several processes (gunicorn workers) share one set of numbers through prometheus_client's
multiprocess mode: `dah-cds serve` gives each master a fresh directory
(`PROMETHEUS_MULTIPROC_DIR`, set before any worker imports this module) and tells it when a worker
exits (`worker_exited`); `exposition()` then aggregates every worker's files.  Without that
variable (tests, a single process) the numbers live in this process.  Recording costs a few
microseconds per call (tests/test_metrics.py measures it).

Kept at the top of service/: a leaf every layer records through (base).
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from service.config import process_environment

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Read once, as prometheus_client reads it when it is imported: the numbers are written and read in
# the same mode, whatever changes the environment later.
_MULTIPROC_DIR = process_environment(MULTIPROC_ENV) or None
CONTENT_TYPE = CONTENT_TYPE_LATEST
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0)

REQUESTS = Counter("cds_requests", "HTTP requests answered", ["service", "status"])
REQUEST_SECONDS = Histogram("cds_request_duration_seconds", "Time to answer an HTTP request",
                            ["service", "status"], buckets=_LATENCY_BUCKETS)
CARDS = Counter("cds_cards", "Cards answered", ["rule", "indicator"])
FHIR_SECONDS = Histogram("cds_fhir_request_duration_seconds", "Time of one FHIR request, retries included",
                         ["method"], buckets=_LATENCY_BUCKETS)
FHIR_FAILURES = Counter("cds_fhir_request_failures", "FHIR requests that failed", ["method", "reason"])
CONTENT_INFO = Gauge("cds_content_info", "The content version being served (1)", ["version"],
                     multiprocess_mode="livemax")
CONTENT_SERVICES = Gauge("cds_content_services", "CDS services being served", multiprocess_mode="livemax")
CONTENT_RELOADS = Counter("cds_content_reloads", "Content loads and reloads", ["result"])
CONTENT_LAST_RELOAD = Gauge("cds_content_last_reload_timestamp_seconds", "When content was last loaded",
                            multiprocess_mode="livemax")

_version: list[str] = []
# (metric, label values) -> the labelled child: `labels()` takes a lock and builds a key on every
# call; the label values are few (services, statuses, rules), so the children are kept here.
_children: dict[tuple[int, tuple[str, ...]], Any] = {}


def _child(metric: Any, *values: str) -> Any:
    key = (id(metric), values)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*values)
    return child


def request_done(service: str, status: int, seconds: float) -> None:
    code = str(status)
    _child(REQUESTS, service, code).inc()
    _child(REQUEST_SECONDS, service, code).observe(seconds)


def cards_answered(cards: list[dict]) -> None:
    for card in cards:
        source = card.get("source") or {}
        topic = source.get("topic") or {}
        _child(CARDS, str(topic.get("code") or "none"), str(card.get("indicator") or "none")).inc()


def fhir_request(method: str, seconds: float, failure: str | None = None) -> None:
    FHIR_SECONDS.labels(method).observe(seconds)
    if failure is not None:
        FHIR_FAILURES.labels(method, failure).inc()


def content_loaded(version: str, services: int, ok: bool = True) -> None:
    """Content was (re)loaded (`ok`), or a reload failed and the content served stays."""
    CONTENT_RELOADS.labels("ok" if ok else "failed").inc()
    if not ok:
        return
    if _version and _version[0] != version:
        CONTENT_INFO.labels(_version[0]).set(0)  # (labels cannot be removed in multiprocess mode)
    _version[:] = [version]
    CONTENT_INFO.labels(version).set(1)
    CONTENT_SERVICES.set(services)
    CONTENT_LAST_RELOAD.set(time.time())


def multiprocess_dir() -> str | None:
    """The directory the numbers of all workers are kept in (None: this process's memory)."""
    return _MULTIPROC_DIR


def exposition() -> bytes:
    """The metrics in Prometheus' text format: every worker's under gunicorn, else this process's."""
    if _MULTIPROC_DIR:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=_MULTIPROC_DIR)
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def worker_exited(pid: int) -> None:
    """A worker ended: its live gauges no longer count (prometheus_client multiprocess mode)."""
    if _MULTIPROC_DIR:
        multiprocess.mark_process_dead(pid, _MULTIPROC_DIR)


__all__ = ["CONTENT_TYPE", "MULTIPROC_ENV", "cards_answered", "content_loaded", "exposition", "fhir_request",
           "request_done", "worker_exited"]
