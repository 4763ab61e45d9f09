"""The protocol work of one call, in process: reading the body within the limits, validating the
request, writing the response; each as the service does it and as it did before (the standard
library parser and a walk of the value, jsonschema on the whole request, Flask's JSON provider).

Reported by bench/http_bench.py beside the HTTP figures; on its own:

    .venv/bin/python bench/protocol_bench.py
"""

from __future__ import annotations

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


def timed(fn: Callable[[], Any], budget_s: float = 0.5) -> float:
    """Median milliseconds of `fn` over runs filling about `budget_s`."""
    fn()
    times = []
    deadline = time.perf_counter() + budget_s
    while time.perf_counter() < deadline or len(times) < 5:
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


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

            rows.append({
                "resources": size, "body_kb": len(raw) / 1024,
                "json_loads_ms": timed(lambda raw=raw: json.loads(raw)),
                "parse_ms": timed(lambda raw=raw: jsonlimits.parse(raw, max_items=10_000)),
                "parse_before_ms": timed(lambda raw=raw: jsonlimits.parse_strict(raw, max_items=10_000)),
                "validate_ms": timed(lambda request=request, hook=hook: validation.validate_request(request, hook)),
                "validate_before_ms": timed(jsonschema_whole),
                "respond_ms": timed(lambda: orjson_json.response(answer).get_data()),
                "respond_before_ms": timed(lambda: flask_json.response(answer).get_data()),
            })
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
