"""Engine-only $apply benchmark: every PlanDefinition of the bundled content that answers a hook
(patient-view by default), against one patient with 500 Observations, 50 Conditions and 50
MedicationRequests (and, for order hooks, four drafted orders of which two are selected): all of
them back to back (what the EHR gets when it calls every service) and each on its own (one
service call).

Reports medians over many runs and the ratio to a plain `json.loads` of the same request,
measured in the same run (machines here are noisy; ratios travel, absolute numbers less).

    .venv/bin/python bench/apply_bench.py [--runs 300] [--hook patient-view]

With `--case plandefinitions/tests/<RULE-ID>/<case>.json` the patient is that scenario case's
request instead, applied at the case's `now` (as the scenario tests do), by the case's service only.

    .venv/bin/python bench/apply_bench.py --case plandefinitions/tests/DAH-05/p01-gpa-hypoxemic.json

With `--against-tree-walker` the content is loaded a second time with every expression refused by
the FHIRPath fast path (so fhirpathpy's tree walker evaluates it, as before the fast path existed),
and every call of all services is also timed on that copy, interleaved in the same run.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from service import data as data_layer  # noqa: E402
from service.content import load_folder  # noqa: E402
from service.engine import ApplyContext, apply_plan  # noqa: E402

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LOINC = ["29463-7", "8302-2", "718-7", "59408-5", "2708-6", "2703-7", "3150-0", "50984-4", "2160-0", "14682-9",
         "2276-4", "31254-6", "29643-4", "29644-2", "71773-6", "600-7", "8867-4", "9279-1", "8310-5", "2345-7"]
UNITS = {"29463-7": "kg", "8302-2": "cm", "718-7": "g/dL", "59408-5": "%", "2708-6": "%", "2703-7": "mm[Hg]",
         "3150-0": "%", "50984-4": "mm[Hg]", "2160-0": "mg/dL", "14682-9": "umol/L", "2276-4": "ng/mL"}
RXNORM = ["3002", "121191", "6902", "8640", "8638", "68149", "1256", "5521", "198335", "60212", "197361", "310965"]
RXNORM_SYSTEM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"
ACTIVE = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]}
DAILY = {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}}


def iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def daily_mg(dose: float) -> list[dict]:
    """A dosageInstruction of `dose` mg once a day."""
    return [{"timing": DAILY, "doseAndRate": [{"doseQuantity": {"value": dose, "unit": "mg", "system": UCUM,
                                                                 "code": "mg"}}]}]


def medication(code: str) -> dict:
    return {"coding": [{"system": RXNORM_SYSTEM, "code": code}]}


def request(n_obs: int = 500, n_cond: int = 50, n_med: int = 50, seed: int = 7) -> dict:
    rnd = random.Random(seed)
    pid = "bench"
    conds = [{"resourceType": "Condition", "id": f"c{i}", "clinicalStatus": ACTIVE,
              "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": f"Z{i:02d}.{i % 10}"}]},
              "onsetDateTime": iso(T0 - timedelta(days=rnd.randint(1, 900))),
              "subject": {"reference": f"Patient/{pid}"}}
             for i in range(n_cond - 3)]
    for i, (system, code) in enumerate([("http://snomed.info/sct", "195353004"), ("http://snomed.info/sct", "78144005"),
                                        ("http://hl7.org/fhir/sid/icd-10-cm", "R04.2")]):
        conds.append({"resourceType": "Condition", "id": f"k{i}", "clinicalStatus": ACTIVE,
                      "code": {"coding": [{"system": system, "code": code}]},
                      "onsetDateTime": iso(T0 - timedelta(hours=6 + 30 * i)),
                      "subject": {"reference": f"Patient/{pid}"}})
    obs = []
    for i in range(n_obs):
        code = LOINC[i % len(LOINC)]
        value = {"29463-7": 80, "8302-2": 180, "718-7": 8 + rnd.random() * 3, "59408-5": 88 + rnd.random() * 8,
                 "2703-7": 55 + rnd.random() * 20, "3150-0": 40}.get(code, rnd.random() * 100)
        obs.append({"resourceType": "Observation", "id": f"o{i}", "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
                    "subject": {"reference": f"Patient/{pid}"},
                    "effectiveDateTime": iso(T0 - timedelta(hours=1 + i // len(LOINC) * 6)),
                    "valueQuantity": {"value": round(value, 1), "unit": UNITS.get(code, "1"), "system": UCUM,
                                      "code": UNITS.get(code, "1")}})
    meds = [{"resourceType": "MedicationRequest", "id": f"m{i}",
             "status": rnd.choice(["active", "completed", "stopped"]), "intent": "order",
             "subject": {"reference": f"Patient/{pid}"}, "authoredOn": iso(T0 - timedelta(days=rnd.randint(1, 400))),
             "medicationCodeableConcept": medication(RXNORM[i % len(RXNORM)]),
             "dosageInstruction": daily_mg(10 * (1 + i % 5))}
            for i in range(n_med)]

    def bundle(items):
        return {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in items]}

    patient = {"resourceType": "Patient", "id": pid, "gender": "male", "birthDate": "1980-05-05"}
    drafts = [{"resourceType": "MedicationRequest", "id": f"d{code}", "status": "draft", "intent": "order",
               "subject": {"reference": f"Patient/{pid}"}, "medicationCodeableConcept": medication(code),
               "dosageInstruction": daily_mg(dose)}
              for code, dose in (("6902", 40), ("3002", 1500), ("68149", 1000), ("5521", 600))]
    return {"hook": "patient-view", "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
            "context": {"userId": "Practitioner/1", "patientId": pid,
                        "draftOrders": {"resourceType": "Bundle", "type": "collection",
                                        "entry": [{"resource": d} for d in drafts]},
                        "selections": ["MedicationRequest/d6902", "MedicationRequest/d3002"]},
            "prefetch": {"patient": patient, "conditions": bundle(conds), "observations": bundle(obs),
                         "medications": bundle(meds), "procedures": bundle([]), "services": bundle([]),
                         "allergies": bundle([]), "encounter": None}}


def load_on_tree_walker():
    """The bundled content once more, every expression refused by the FHIRPath fast path."""
    from service.engine import fhirpath_compiled

    def refuse(node, table):
        raise fhirpath_compiled.NotCompiled("benchmark: on the tree walker")

    compile_node = fhirpath_compiled.compile_node
    fhirpath_compiled.compile_node = refuse
    try:
        return load_folder(ROOT / "plandefinitions")
    finally:
        fhirpath_compiled.compile_node = compile_node


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--hook", default="patient-view")
    parser.add_argument("--case", type=Path, help="a scenario case file: its request, `now` and service")
    parser.add_argument("--against-tree-walker", action="store_true",
                        help="also time the calls with the content on fhirpathpy's tree walker, in the same run")
    parser.add_argument("--no-gc-freeze", dest="gc_freeze", action="store_false")
    args = parser.parse_args()

    content = load_folder(ROOT / "plandefinitions")
    walker = load_on_tree_walker() if args.against_tree_walker else None
    if args.gc_freeze:
        gc.collect()
        gc.freeze()  # as the service does after loading content (see service.app)
    now, subject = T0, "Patient/bench"
    if args.case is not None:
        case = json.loads(args.case.read_text(encoding="utf-8"))
        now = datetime.fromisoformat(case["now"].replace("Z", "+00:00"))
        services = [content.services[case["service"]]]
        args.hook = services[0].hook
        text = json.dumps(case["request"])
        subject = f"Patient/{case['request']['context']['patientId']}"
    else:
        services = [s for s in content.services.values() if s.hook == args.hook]
        text = json.dumps(request())
    body = json.loads(text)

    tokens = data_layer.Tokens(body["context"], body["context"].get("userId"), now)

    def _context(svc, data) -> ApplyContext:
        drafts = body["context"].get("draftOrders") if svc.hook != "patient-view" else None
        selections = body["context"].get("selections", []) if svc.hook == "order-select" else []
        return ApplyContext(now=now, subject=subject, data=data, hook=svc.hook, hook_instance=body["hookInstance"],
                            draft_orders=drafts, selections=selections)

    def engine_once(on=content) -> int:
        cards = 0
        for svc in services:
            plan = on.services[svc.id].plan
            data = data_layer.resolve(plan, on.terminology, tokens, body["prefetch"], None)
            ctx = _context(svc, data)
            cards += len(apply_plan(on, plan, ctx).actions)
        return cards

    cards = engine_once()  # warm caches (UCUM registry, compiled expressions)
    for _ in range(5):
        engine_once()
    if walker is not None:
        assert engine_once(walker) == cards
        for _ in range(5):
            engine_once(walker)
    def service_once(svc) -> None:
        data = data_layer.resolve(svc.plan, content.terminology, tokens, body["prefetch"], None)
        apply_plan(content, svc.plan, _context(svc, data))

    loads, engine, walked = [], [], []
    per_service: dict[str, list[float]] = {s.id: [] for s in services}
    for _ in range(args.runs):  # interleaved, so all see the same machine load
        t = time.perf_counter()
        json.loads(text)
        loads.append(time.perf_counter() - t)
        t = time.perf_counter()
        engine_once()
        engine.append(time.perf_counter() - t)
        if walker is not None:
            t = time.perf_counter()
            engine_once(walker)
            walked.append(time.perf_counter() - t)
        for svc in services:
            t = time.perf_counter()
            service_once(svc)
            per_service[svc.id].append(time.perf_counter() - t)
    loads_ms = statistics.median(loads) * 1000
    engine_ms = statistics.median(engine) * 1000
    result = {
        "hook": args.hook, "services": sorted(s.id for s in services), "runs": args.runs,
        "request_bytes": len(text), "applied_top_level_actions": cards,
        "json_loads_median_ms": round(loads_ms, 3), "engine_apply_median_ms": round(engine_ms, 3),
        "engine_p90_ms": round(sorted(engine)[int(0.9 * len(engine))] * 1000, 3),
        "ratio_engine_to_json_loads": round(engine_ms / loads_ms, 2),
        "per_service_call_median_ms": {k: round(statistics.median(v) * 1000, 3)
                                       for k, v in sorted(per_service.items())},
        "per_service_ratio_to_json_loads": {k: round(statistics.median(v) * 1000 / loads_ms, 2)
                                            for k, v in sorted(per_service.items())},
    }
    if walked:
        walked_ms = statistics.median(walked) * 1000
        result["tree_walker_engine_apply_median_ms"] = round(walked_ms, 3)
        result["ratio_tree_walker_to_json_loads"] = round(walked_ms / loads_ms, 2)
        result["speedup_fast_path"] = round(walked_ms / engine_ms, 2)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
