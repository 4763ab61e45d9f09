"""What a clinician reads is correct, consistent and free of internal ids (content matrix A3, A4).

Every scenario case (`plandefinitions/tests/<RULE-ID>/*.json`) is called through the service, as
`tests/scenarios` does, and every card it returns is read the way a clinician reads it:

- no internal id (judgement call `J-nn`, rule id, "seed 00x", a section sign) in the summary, the
  detail, a suggestion label, an action description or any text of a suggested resource; the rule
  id belongs in `source.topic` only;
- every card has a detail; mg/kg has at most one decimal, percentages none, nothing more than two;
- the source cited matches the patient's condition: IPH -> the IPH source, SLE -> EULAR, ANCA
  vasculitis, anti-GBM disease or unknown cause -> KDIGO (the ventilation card cites ARDSNet and the
  HBV card the rituximab label whatever the cause);
- every dose a suggested MedicationRequest states in its free texts equals its structured dose, and
  the drug its instructions name is the drug it codes (a note may mention other drugs);
- a suggestion label names the drug of every order the suggestion creates or changes, and no other
  (a drug left out with its reason in parentheses, e.g. "(cyclophosphamide: record weight ...)", is
  allowed).

The case's condition (IPH, SLE, anti-GBM) is read here from its own data and the content's ValueSets,
not from the Library's variables, so a wrong etiology switch in the content is caught.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

import pytest

from tests.conftest import CONTENT
from tests.scenarios.cases import CASES, case_id

VS = "http://example.org/fhir/ValueSet/"

# ---- reading a response ------------------------------------------------------------------------

_INTERNAL_IDS = [
    (re.compile(r"\bJ-\d+"), "judgement-call id"),
    (re.compile(r"\b[Ss]eeds? 0\d\d"), "seed reference"),
    (re.compile(r"\bseeds?\b", re.I), "the word 'seed'"),
    (re.compile(r"\b(?:DAH|SLE|IPH|SAFE|DC|HGB)-[A-Z0-9-]+\b"), "rule id"),
    (re.compile("§"), "section sign"),
]
# Resource elements that are identifiers, not text.
_NOT_TEXT = {"id", "system", "url", "reference", "instantiatesCanonical", "code", "fullUrl"}


def internal_ids(text: str) -> list[str]:
    return [f"{what} {m.group(0)!r}" for rx, what in _INTERNAL_IDS for m in rx.finditer(text or "")]


def resource_strings(node, path: str = ""):
    """(path, text) for every text a clinician can read in a resource (identifiers, codes and
    references left out)."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k in _NOT_TEXT and not isinstance(v, dict):
                continue
            yield from resource_strings(v, f"{path}.{k}" if path else k)
    elif isinstance(node, list):
        for v in node:
            yield from resource_strings(v, path)
    elif isinstance(node, str):
        yield path, node


def clinician_texts(card: dict):
    """(where, text) for everything on a card a clinician reads."""
    yield "summary", card["summary"]
    yield "detail", card.get("detail", "")
    yield "source.label", card["source"].get("label", "")
    for s in card.get("suggestions", []):
        yield "suggestion.label", s["label"]
        for a in s["actions"]:
            yield "action.description", a.get("description", "")
            for key, text in resource_strings(a.get("resource", {})):
                yield f"{a['resource']['resourceType']}.{key}", text
    for link in card.get("links", []):
        yield "link.label", link["label"]


# ---- doses in free text -----------------------------------------------------------------------

# "530 mg", "500-1000 mg", "1 g", "1200 mg/day"; not "15 mg/kg", "750 mg/m2", "15 mg/mL", "7 g/dL".
_DOSE = re.compile(
    r"(?<![\d.])(\d+(?:\.\d+)?)(?:\s*(?:-|–|to)\s*(\d+(?:\.\d+)?))?\s*(mg|g)\b"
    r"(?!\s*/\s*(?:kg|m2|m²|m\^2|ml|l|dl|kg/day)\b)"
    r"(\s*(?:/\s*(?:day|d)\b|per day\b|a day\b))?", re.I)
_DAYS = {"h": 1 / 24, "d": 1, "wk": 7, "mo": 30, "a": 365}


def stated_doses(text: str) -> list[tuple[float, bool, str]]:
    """Every dose a text states: (mg, is it a daily amount, the words)."""
    out = []
    for m in _DOSE.finditer(text or ""):
        factor = 1000.0 if m.group(3).lower() == "g" else 1.0
        daily = m.group(4) is not None
        for number in (m.group(1), m.group(2)):
            if number is not None:
                out.append((float(number) * factor, daily, m.group(0).strip()))
    return out


def structured_dose(dosage: dict) -> tuple[float | None, float | None]:
    """A Dosage's dose and daily dose in mg (None when not a mass, or no timing for the daily dose)."""
    quantity = ((dosage.get("doseAndRate") or [{}])[0]).get("doseQuantity") or {}
    unit = (quantity.get("code") or quantity.get("unit") or "").strip()
    if quantity.get("value") is None or not (unit == "g" or unit.startswith("mg")):
        return None, None
    dose = float(quantity["value"]) * (1000.0 if unit == "g" else 1.0)
    repeat = (dosage.get("timing") or {}).get("repeat") or {}
    try:
        days = float(repeat["period"]) * _DAYS[repeat["periodUnit"]]
        return dose, dose * float(repeat.get("frequency", 1)) / days
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return dose, None


def _plain(html: str) -> str:
    return re.sub(r"<[^>]+>", " ", html or "")


def dose_contradictions(request: dict) -> list[str]:
    """Doses stated in a MedicationRequest's free texts that differ from its structured dose."""
    dosages = request.get("dosageInstruction") or []
    structured = [structured_dose(d) for d in dosages]
    if not structured or any(dose is None for dose, _ in structured):
        return []  # no dose in mg to compare with (e.g. 1 tablet): nothing to check
    problems = []

    def check(where: str, text: str, allowed: list[tuple[float | None, float | None]]):
        for mg, daily, words in stated_doses(text):
            values = [d for pair in allowed for d in ((pair[1],) if daily else (pair[0], pair[1]))]
            if not any(v is not None and abs(v - mg) < 0.5 for v in values):
                problems.append(f"{where}: {words!r} but the order's dose is "
                                f"{', '.join(f'{d:g} mg' for d, _ in allowed)}")

    for dosage, pair in zip(dosages, structured, strict=True):
        check("dosageInstruction.text", dosage.get("text", ""), [pair])
        check("dosageInstruction.patientInstruction", dosage.get("patientInstruction", ""), [pair])
        for extra in dosage.get("additionalInstruction") or []:
            check("dosageInstruction.additionalInstruction", extra.get("text", ""), [pair])
    for note in request.get("note") or []:
        check("note", note.get("text", ""), structured)
    check("text.div", _plain((request.get("text") or {}).get("div", "")), structured)
    return problems


# ---- drug names -------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def drug_words() -> frozenset[str]:
    """Drug names the content knows: the first word of every medication ValueSet concept and of every
    ActivityDefinition product."""
    words = set()
    for path in CONTENT.glob("ValueSet-vs-med-*.json"):
        for include in json.loads(path.read_text()).get("compose", {}).get("include", []):
            words |= {c["display"].split()[0].lower() for c in include.get("concept", []) if c.get("display")}
    for path in CONTENT.glob("ActivityDefinition-*.json"):
        product = json.loads(path.read_text()).get("productCodeableConcept") or {}
        words |= {c["display"].split()[0].lower() for c in product.get("coding", []) if c.get("display")}
    return frozenset(w for w in words if w.isalpha())


def named_drugs(text: str) -> set[str]:
    return {w for w in drug_words() if re.search(rf"\b{w}\b", text or "", re.I)}


def coded_drugs(request: dict) -> set[str]:
    concept = request.get("medicationCodeableConcept") or {}
    names = " ".join([concept.get("text", "")] + [c.get("display", "") for c in concept.get("coding", [])])
    return named_drugs(names)


def _outside_parentheses(text: str) -> str:
    while True:
        stripped = re.sub(r"\([^()]*\)", "", text)
        if stripped == text:
            return text
        text = stripped


# ---- the case's condition, from its own data --------------------------------------------------


def _entries(bundle) -> list[dict]:
    if not isinstance(bundle, dict):
        return []
    if bundle.get("resourceType") != "Bundle":
        return [bundle]
    return [e["resource"] for e in bundle.get("entry", []) if isinstance(e, dict) and "resource" in e]


def _valid(condition: dict) -> bool:
    clinical = {c.get("code") for c in (condition.get("clinicalStatus") or {}).get("coding", [])}
    verification = {c.get("code") for c in (condition.get("verificationStatus") or {}).get("coding", [])}
    return bool(clinical & {"active", "recurrence", "relapse"}) and not verification & {"refuted", "entered-in-error"}


def patient_conditions(case: dict, content) -> set[str]:
    prefetch = case["request"].get("prefetch", {})
    tokens = {
        f"{c.get('system')}|{c.get('code')}"
        for cond in _entries(prefetch.get("conditions"))
        if cond.get("resourceType") == "Condition" and _valid(cond)
        for c in (cond.get("code") or {}).get("coding", [])
    }
    found = {name for name in ("iph", "sle", "anti-gbm") if tokens & content.terminology.expand(VS + "vs-" + name)}
    for obs in _entries(prefetch.get("observations")):
        codes = {c.get("code") for c in (obs.get("code") or {}).get("coding", [])}
        flags = {c.get("code") for i in obs.get("interpretation", []) for c in i.get("coding", [])}
        value = (obs.get("valueQuantity") or {}).get("value")
        high = ((obs.get("referenceRange") or [{}])[0].get("high") or {}).get("value")
        if "31254-6" in codes and (
            flags & {"POS", "H", "HH", "A"} or (value is not None and high is not None and value > high)
        ):
            found.add("anti-gbm")
    return found


SOURCES = {
    "IPH": ("IPH literature review", "https://pubmed.ncbi.nlm.nih.gov/30278795/"),
    "EULAR": ("EULAR 2019 SLE recommendations", "https://doi.org/10.1136/annrheumdis-2019-215089"),
    "KDIGO": ("KDIGO 2021 Glomerular Diseases guideline", "https://kdigo.org/guidelines/gd/"),
}
TOPIC_SOURCES = {"DAH-15": "ARDSNet", "SAFE-HBV-RTX": "FDA rituximab label"}


def expected_sources(conditions: set[str]) -> set[str]:
    if "iph" in conditions:
        return {"IPH"}
    if "sle" in conditions:
        return {"EULAR", "KDIGO"} if "anti-gbm" in conditions else {"EULAR"}
    return {"KDIGO"}


# ---- the cases' answers -----------------------------------------------------------------------


@pytest.fixture
def run_case(scenario_runs):
    """(case, response) of a scenario case, from the session's one run of every case."""
    def answer(path: Path) -> tuple[dict, dict]:
        run = scenario_runs[case_id(path)]
        assert run.status == 200, run.body
        return run.case, run.body
    return answer


def topic(card: dict) -> str:
    return card["source"].get("topic", {}).get("code", "")


# ---- the checks -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", CASES, ids=case_id)
def test_no_internal_ids_in_clinician_text(path, run_case):
    _, response = run_case(path)
    problems = [f"{topic(card)} {where}: {hit} in {text!r}"
                for card in response["cards"] for where, text in clinician_texts(card) for hit in internal_ids(text)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", CASES, ids=case_id)
def test_every_card_has_a_detail(path, run_case):
    _, response = run_case(path)
    assert [topic(c) for c in response["cards"] if not (c.get("detail") or "").strip()] == []


_NOT_NUMBERS = re.compile(r"https?://\S+|\d{4}-\d\d-\d\d(?:T[\d:.]+(?:Z|[+-]\d\d:\d\d)?)?")  # urls, dates


@pytest.mark.parametrize("path", CASES, ids=case_id)
def test_numbers_have_sensible_precision(path, run_case):
    _, response = run_case(path)
    problems = []
    for card in response["cards"]:
        for where, text in clinician_texts(card):
            if ".medication" in where:
                continue  # the product name the EHR sent (e.g. 'sodium chloride 0.9%'), not written here
            text = _NOT_NUMBERS.sub("", text)
            for rx, what in (
                (r"\d+\.\d{3,}", "more than two decimals"),
                (r"\d+\.\d{2,}\s*mg/kg", "mg/kg with two decimals"),
                (r"\d+\.\d+\s*%", "a percentage with decimals"),
            ):
                problems += [f"{topic(card)} {where}: {what}: {m.group(0)!r}" for m in re.finditer(rx, text)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", CASES, ids=case_id)
def test_source_matches_the_patients_condition(path, run_case, content):
    case, response = run_case(path)
    expected = expected_sources(patient_conditions(case, content))
    for card in response["cards"]:
        label, url = card["source"].get("label", ""), card["source"].get("url")
        if topic(card) in TOPIC_SOURCES:
            assert label.startswith(TOPIC_SOURCES[topic(card)]), (topic(card), label)
            continue
        cited = [name for name, (prefix, _) in SOURCES.items() if label.startswith(prefix)]
        assert cited and cited[0] in expected, (
            f"{topic(card)} cites {label!r}; the patient's condition calls for {expected}"
        )
        assert url == SOURCES[cited[0]][1], f"{topic(card)}: {label!r} with url {url!r}"


def suggested_requests(response: dict):
    for card in response["cards"]:
        for suggestion in card.get("suggestions", []):
            for action in suggestion["actions"]:
                resource = action.get("resource")
                if resource and resource.get("resourceType") == "MedicationRequest":
                    yield card, suggestion, action, resource


@pytest.mark.parametrize("path", CASES, ids=case_id)
def test_order_texts_state_the_structured_dose(path, run_case):
    _, response = run_case(path)
    problems = [f"{topic(card)} {action['type']} {suggestion['label']!r}: {p}"
                for card, suggestion, action, request in suggested_requests(response)
                for p in dose_contradictions(request)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", CASES, ids=case_id)
def test_order_texts_name_the_coded_drug(path, run_case):
    _, response = run_case(path)
    problems = []
    for card, suggestion, action, request in suggested_requests(response):
        coded = coded_drugs(request)
        texts = [d.get("text", "") for d in request.get("dosageInstruction", [])]
        texts += [d.get("patientInstruction", "") for d in request.get("dosageInstruction", [])]
        if action["type"] == "update":  # a dose check's card and button speak of the order they change
            texts += [card["summary"], suggestion["label"], action["description"]]
        for text in texts:
            wrong = named_drugs(text) - coded
            if wrong:
                problems.append(f"{topic(card)}: {sorted(wrong)} named in {text!r}; the order codes {sorted(coded)}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", CASES, ids=case_id)
def test_suggestion_labels_name_exactly_the_orders(path, run_case):
    _, response = run_case(path)
    problems = []
    for card in response["cards"]:
        for suggestion in card.get("suggestions", []):
            ordered = set()
            for action in suggestion["actions"]:
                resource = action.get("resource") or {}
                if resource.get("resourceType") == "MedicationRequest":
                    ordered |= coded_drugs(resource)
            label = suggestion["label"]
            missing = ordered - named_drugs(label)
            promised = named_drugs(_outside_parentheses(label)) - ordered
            if missing or promised:
                problems.append(f"{topic(card)} {label!r}: orders {sorted(ordered)}, label misses {sorted(missing)}, "
                                f"promises {sorted(promised)}")
    assert not problems, "\n".join(problems)


# ---- the readers themselves -------------------------------------------------------------------


def test_a_prescriber_text_contradicting_the_dose_is_found():
    request = {
        "resourceType": "MedicationRequest",
        "dosageInstruction": [
            {
                "text": "cyclophosphamide 1050 mg IV",
                "timing": {"repeat": {"frequency": 1, "period": 2, "periodUnit": "wk"}},
                "doseAndRate": [
                    {"doseQuantity": {"value": 530, "unit": "mg", "system": "http://unitsofmeasure.org", "code": "mg"}}
                ],
            }
        ],
    }
    assert dose_contradictions(request) == ["dosageInstruction.text: '1050 mg' but the order's dose is 530 mg"]
    request["dosageInstruction"][0]["text"] = (
        "Cyclophosphamide 530 mg IV every 2 weeks (10 mg/kg x 53 kg, age-adjusted)"
    )
    assert dose_contradictions(request) == []
    request["note"] = [{"text": "range 500-1000 mg"}]
    assert {p.split(":")[0] for p in dose_contradictions(request)} == {"note"}


def test_factors_weights_and_concentrations_are_not_doses():
    assert stated_doses("Cyclophosphamide 870 mg IV once (15 mg/kg x 58 kg); 750 mg/m2; 15 mg/mL; Hgb 7 g/dL; "
                        "1 mg/kg/day") == [(870.0, False, "870 mg")]
    assert stated_doses("1 g twice daily (2000 mg/day)") == [(1000.0, False, "1 g"), (2000.0, True, "2000 mg/day")]


def test_daily_amounts_compare_with_the_daily_dose():
    request = {"dosageInstruction": [{"text": "Mycophenolate 650 mg twice daily (1300 mg/day)",
                                      "timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}},
                                      "doseAndRate": [{"doseQuantity": {"value": 650, "code": "mg"}}]}]}
    assert dose_contradictions(request) == []
    request["dosageInstruction"][0]["text"] = "Mycophenolate 650 mg twice daily (650 mg/day)"
    assert len(dose_contradictions(request)) == 1


def test_prednisolone_is_not_prednisone():
    prednisolone = {
        "medicationCodeableConcept": {"coding": [{"display": "prednisolone"}], "text": "prednisoLONE 5 MG tablet"}
    }
    assert coded_drugs(prednisolone) == {"prednisolone"}
    assert named_drugs("Prednisone 60 mg by mouth once daily") == {"prednisone"}
    assert named_drugs("Methylprednisolone 1000 mg IV") == {"methylprednisolone"}


def test_internal_ids_are_recognised():
    assert internal_ids("cap 60 mg (J-26); seed 001; see SAFE-INFX; content matrix §7") != []
    assert len(internal_ids("SLE-DAH step-down")) == 1
    assert internal_ids("DAH in SLE: anti-GBM, TMP-SMX, MPO-ANCA, PR3-ANCA, non-IPH DAH") == []


def test_the_case_condition_is_read_from_its_own_data(content):
    iph_case = json.loads((CONTENT / "tests" / "SAFE-LTBI" / "p08-iph-child-exacerbation.json").read_text())
    sle_case = json.loads((CONTENT / "tests" / "SAFE-INFX" / "p05-sle-dah-ed.json").read_text())
    assert "iph" in patient_conditions(iph_case, content)
    assert patient_conditions(sle_case, content) == {"sle"}


def test_no_internal_ids_in_service_descriptions(client):
    """Discovery's `title` and `description` are what EHR staff and clinicians read when they pick a
    service (CDS Hooks 2.0 §Discovery): the same rule as for card text."""
    services = client.get("/cds-services").get_json()["services"]
    found = {s["id"]: internal_ids(f"{s.get('title', '')} {s.get('description', '')}") for s in services}
    assert {sid: ids for sid, ids in found.items() if ids} == {}
