"""The HTTP benchmark's own parts (bench/), not its timings: the bodies it sends make the service
answer the cards of the scenario they come from, at their size; its /proc readings and its report
work on this machine."""

from __future__ import annotations

import argparse
import os
from datetime import timedelta

import pytest

from bench import http_bench
from bench.bodies import SCENARIOS, body, case, count_resources
from tests.conftest import T0


def rules(response) -> set[str]:
    assert response.status_code == 200, response.get_data(as_text=True)
    return {card["source"]["topic"]["code"] for card in response.get_json()["cards"]}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_padded_bodies_answer_the_cases_cards(client, name):
    expected = set(case(name)["expect"]["present"])
    padded = body(name, 600, now=T0)
    assert count_resources(padded) == 600
    small = client.post(f"/cds-services/{SCENARIOS[name][1]}", json=body(name, 50, now=T0))
    assert expected <= rules(small)
    assert rules(client.post(f"/cds-services/{SCENARIOS[name][1]}", json=padded)) == rules(small)


def test_dates_move_with_now_and_padding_goes_back_in_time():
    later = body("patient-view", 80, now=T0 + timedelta(days=10))
    source = case("patient-view")["request"]
    assert later["prefetch"]["patient"]["birthDate"] != source["prefetch"]["patient"]["birthDate"]
    times = [e["resource"]["effectiveDateTime"] for e in later["prefetch"]["observations"]["entry"]]
    assert max(times) <= (T0 + timedelta(days=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert len(set(times)) > 20


def test_proc_readings_and_report():
    assert os.getpid() in http_bench.children(os.getppid())
    assert http_bench.cpu_seconds([os.getpid()]) > 0
    assert http_bench.memory_kb(os.getpid())["VmRSS"] > 0
    side = {"p50_ms": 2.0, "p99_ms": 8.0, "rps": 100.0, "cpu_ms": 4.0, "requests": 300}
    floor = {"p50_ms": 1.0, "p99_ms": 2.0, "rps": 400.0, "cpu_ms": 1.0, "requests": 1200}
    rows = [{"name": "patient-view", "service_id": "dah-patient-view", "resources": n, "c": c, "body_kb": n * 0.6,
             "cards": 2, "rules": ["R1"], "service": {**side, "cpu_ms": 4.0 * n / 50}, "floor": floor}
            for n, c in ((50, 1), (50, 16), (600, 1))]
    servers = {name: {"ready_s": 1.0, "settled_s": 2.0, "start_cpu_s": 3.0, "workers_rss_ready_kb": [1024],
                      "workers_rss_end_kb": [2048], "workers_hwm_kb": [2048], "master_rss_kb": 512}
               for name in ("service", "floor")}
    text = http_bench.report({"date": "d", "machine": "m", "command": "c", "load_before": "0", "load_after": "0",
                              "cases": rows, "servers": servers}, argparse.Namespace(runs=2, duration=5))
    assert "| 2.00 ms | 1.00 ms | 2.0x |" in text and "| 100 | 400 | 1/4.0 |" in text
    assert "p50 2.0x the floor (target: within 5x): met; server CPU 4.0 ms per request (target: under 5 ms): met" \
        in text
    assert "throughput 0.25 of the floor's (target: at least 0.25): met" in text
    assert "grows at most 1.00x as fast as the resources (target: at most linear, 1.0 or less): met" in text
