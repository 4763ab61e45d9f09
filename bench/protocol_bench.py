"""The protocol work of one call, in process: reading the body within the limits, validating the
request, writing the response; each as the service does it and as it did before (the standard
library parser and a walk of the value, jsonschema on the whole request, Flask's JSON provider).

Reported by bench/http_bench.py beside the HTTP figures; on its own:

    .venv/bin/python bench/protocol_bench.py
"""

from __future__ import annotations

import gc
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bodies import CASES, SCENARIOS, body  # noqa: E402


def timed(fns: dict[str, Callable[[], Any]], budget_s: float = 1.0) -> dict[str, float]:
    """Median milliseconds of each of `fns`, called in turn (so that the machine's load falls on all
    alike) over about `budget_s`, with the garbage collector held off: the work, not the collector
    walking whatever else the process holds.  Each result is kept until the same function has made
    the next one, as a server holds one request's data while the next arrives: every function
    allocates its memory in the same conditions (a parse that can reuse the memory its previous
    result just freed looks several times faster than it is)."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    kept = {name: fn() for name, fn in fns.items()}
    gc.collect()
    gc.disable()
    try:
        deadline = time.perf_counter() + budget_s
        while time.perf_counter() < deadline or min(len(t) for t in times.values()) < 5:
            for name, fn in fns.items():
                started = time.perf_counter()
                result = fn()
                times[name].append(time.perf_counter() - started)
                kept[name] = result
    finally:
        gc.enable()
    return {name: statistics.median(t) * 1000 for name, t in times.items()}


def measure(sizes: tuple[int, ...] = (50, 600, 5000)) -> list[dict[str, Any]]:
    from flask import Flask
    from flask.json.provider import DefaultJSONProvider

    from service import jsonlimits
    from service.hooks import validation
    from service.web.jsonout import OrjsonProvider

    app = Flask(__name__)
    flask_json, orjson_json = DefaultJSONProvider(app), OrjsonProvider(app)
    answer = json.loads((CASES / SCENARIOS["patient-view"][0].replace(".json", ".response.json")).read_text())
    rows = []
    with app.app_context():
        for size in sizes:
            request = body("patient-view", size)
            raw = json.dumps(request).encode()
            hook = request["hook"]

            def jsonschema_whole(request: dict[str, Any] = request, hook: str = hook) -> None:
                validation.schema_issues(validation._REQUEST, request)
                validation.schema_issues(validation._CONTEXT[hook], request["context"], prefix=("context",))

            row: dict[str, Any] = {"resources": size, "body_kb": len(raw) / 1024}
            row.update(timed({
                "json_loads_ms": lambda raw=raw: json.loads(raw),
                "parse_ms": lambda raw=raw: jsonlimits.parse(raw, max_items=10_000),
                "parse_before_ms": lambda raw=raw: jsonlimits.parse_strict(raw, max_items=10_000),
            }, budget_s=2.0 if size > 1000 else 1.0))
            row.update(timed({
                "validate_ms": lambda request=request, hook=hook: validation.validate_request(request, hook),
                "validate_before_ms": jsonschema_whole,
                "respond_ms": lambda: orjson_json.response(answer).get_data(),
                "respond_before_ms": lambda: flask_json.response(answer).get_data(),
            }, budget_s=0.5))
            rows.append(row)
    return rows


def table(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| resources | body | json.loads | read within limits: now (before) | validate request: now (before) "
             "| write the 2-card answer: now (before) |", "|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['resources']} | {r['body_kb']:.0f} kB | {r['json_loads_ms']:.2f} ms "
                     f"| {r['parse_ms']:.2f} ms ({r['parse_before_ms']:.2f} ms) "
                     f"| {r['validate_ms'] * 1000:.0f} us ({r['validate_before_ms'] * 1000:.0f} us) "
                     f"| {r['respond_ms'] * 1000:.0f} us ({r['respond_before_ms'] * 1000:.0f} us) |")
    return lines


if __name__ == "__main__":
    print("\n".join(table(measure())))
