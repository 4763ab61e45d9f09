"""Hook calls that fetch their data from a real FHIR server (no prefetch): the same cards as with
prefetch, paging, bearer tokens, and every failure of the server answered 412, never 500.

Runs against the local test server or FHIR_BASE_URL (e.g. HAPI); only the portable subset of
FHIR REST is used (transactions, PUT with client ids, token/reference/date search, _sort,
_include, paging through `next` links)."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from samples import RUN, cards_digest, case, case_now, load_case, request_without_prefetch, topics

from cards.schema import response_errors
from service import data as data_layer
from service.fhir.client import FhirClient
from tests.conftest import T0, shared_path

pytestmark = pytest.mark.integration

P01 = "DAH-05/p01-gpa-hypoxemic.json"  # patient-view, GPA with hypoxemic DAH
P14 = "SAFE-PCP/p14-rtx-selected-sulfa-allergy.json"  # order-select, rituximab selected


def make_app(tmp_path, content, now, **config):
    from service.app import create_app

    app = create_app({"database_url": f"sqlite:///{tmp_path / 'f.sqlite3'}", "fhir_retries": 0, **config},
                     clock=lambda: now, content=content)
    app.config.update(TESTING=True)
    return app


def post(app, service: str, request: dict):
    return app.test_client().post(f"/cds-services/{service}", json=request)


@pytest.fixture(scope="module")
def fhir(fhir_base_url):
    return FhirClient(fhir_base_url, timeout=60)


@pytest.fixture(scope="module")
def loaded(fhir):
    """The two scenario cases stored on the server: {case path: LoadReport}."""
    return {path: load_case(fhir, case(path), label) for path, label in ((P01, "p01"), (P14, "p14"))}


# ---- same cards with and without prefetch ----------------------------------------------------------


@pytest.mark.parametrize("path", [P01, P14])
def test_cards_fetched_from_the_server_match_the_prefetched_ones(path, loaded, fhir_base_url, tmp_path, content):
    data = case(path)
    app = make_app(tmp_path, content, case_now(data))
    prefetched = post(app, data["service"], data["request"])
    assert prefetched.status_code == 200
    fetched = post(app, data["service"], request_without_prefetch(data, loaded[path], fhir_base_url))
    assert fetched.status_code == 200, fetched.get_json()
    assert cards_digest(fetched.get_json()) == cards_digest(prefetched.get_json())
    for rule in data["expect"]["present"]:
        assert rule in topics(fetched.get_json())
    assert response_errors(fetched.get_json()) == []


def test_every_prefetch_template_is_answered_by_the_server(loaded, fhir, content):
    """The queries the service sends (token lists, _sort=-date, _count, _include, status lists,
    _id) are all understood: a 200 searchset or resource, never a 400."""
    report = loaded[P01]
    context = {"patientId": report.id_of("Patient/p01"), "userId": "Practitioner/example", "encounterId": "none"}
    seen = set()
    for service in content.services.values():
        for key, template in data_layer.templates(service.plan, content.terminology).items():
            url = data_layer.render(template, context, "Practitioner/example", T0, {})
            if url is None or url in seen:
                continue
            seen.add(url)
            body = fhir.fetch(url)
            assert body["resourceType"] in ("Bundle", "Patient"), (key, url, body)
    assert len(seen) >= 8


def test_observations_come_back_newest_first(loaded, fhir, content):
    """The observation template sorts with `_sort=-date`: the server must honour it."""
    report = loaded[P01]
    template = data_layer.templates(content.services["dah-patient-view"].plan, content.terminology)["observations"]
    assert "_sort=-date" in template
    url = data_layer.render(template, {"patientId": report.id_of("Patient/p01")}, None, T0, {})
    dates = [e["resource"].get("effectiveDateTime") for e in fhir.search_all(url)["entry"]]
    assert len(dates) == 10 and None not in dates
    assert dates == sorted(dates, reverse=True)


# ---- paging ------------------------------------------------------------------------------------------


def test_more_conditions_than_one_page_are_all_fetched(fhir, fhir_base_url, tmp_path, content):
    data = case(P01)
    fillers = [{"resourceType": "Condition", "id": f"filler-{i}",
                "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                               "code": "resolved"}]},
                "code": {"coding": [{"system": "http://example.org/test-codes", "code": f"filler-{i}"}]},
                "subject": {"reference": "Patient/p01"}, "onsetDateTime": f"2020-01-{i + 1:02d}"} for i in range(26)]
    report = load_case(fhir, data, "paging", extra=fillers)
    pid = report.id_of("Patient/p01")

    first_page = requests.get(f"{fhir_base_url}/Condition", params={"patient": pid},
                              headers={"Accept": "application/fhir+json"}, timeout=30).json()
    assert len(first_page.get("entry", [])) < 30, "the server does not page: the test proves nothing"
    assert any(link["relation"] == "next" for link in first_page["link"])

    app = make_app(tmp_path, content, case_now(data))
    runtime = app.extensions["cds"]
    fetched: dict[str, dict] = {}
    factory = runtime.fetcher_factory

    class Recording:
        def __init__(self, reader):
            self.reader = reader

        def fetch(self, url):
            fetched[url.split("?")[0]] = result = self.reader.fetch(url)
            return result

        def rest_of(self, bundle):
            return self.reader.rest_of(bundle)

    def recording_factory(base_url, token):
        return Recording(factory(base_url, token))

    runtime.fetcher_factory = recording_factory
    response = post(app, data["service"], request_without_prefetch(data, report, fhir_base_url))
    assert response.status_code == 200, response.get_json()
    assert len(fetched["Condition"]["entry"]) == 30
    assert "DAH-05" in topics(response.get_json())
    prefetched = post(app, data["service"], data["request"]).get_json()
    assert cards_digest(response.get_json()) == cards_digest(prefetched)


# ---- bearer token ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def token_server_case(fhir_server_with_token):
    base_url, token = fhir_server_with_token
    report = load_case(FhirClient(base_url, access_token=token, timeout=60), case(P01), "p01")
    return base_url, token, report


def test_bearer_token_is_passed_to_the_server(token_server_case, tmp_path, content):
    base_url, token, report = token_server_case
    data = case(P01)
    app = make_app(tmp_path, content, case_now(data))
    response = post(app, data["service"], request_without_prefetch(data, report, base_url, token=token))
    assert response.status_code == 200, response.get_json()
    assert cards_digest(response.get_json()) == cards_digest(post(app, data["service"], data["request"]).get_json())


@pytest.mark.parametrize("token", [None, "wrong-token"], ids=["no-token", "wrong-token"])
def test_refused_token_is_412_with_operation_outcome(token, token_server_case, tmp_path, content, caplog):
    base_url, real_token, report = token_server_case
    data = case(P01)
    app = make_app(tmp_path, content, case_now(data))
    response = post(app, data["service"], request_without_prefetch(data, report, base_url, token=token))
    assert response.status_code == 412
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "security"
    assert real_token not in response.get_data(as_text=True) and real_token not in caplog.text
    if token:
        assert token not in response.get_data(as_text=True) and token not in caplog.text


# ---- the server down or slow ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_server_down_is_412(loaded, tmp_path, content):
    data = case(P01)
    app = make_app(tmp_path, content, case_now(data))
    request = request_without_prefetch(data, loaded[P01], f"http://127.0.0.1:{free_port()}/fhir")
    response = post(app, data["service"], request)
    assert response.status_code == 412
    assert response.get_json()["resourceType"] == "OperationOutcome"
    assert response.get_json()["issue"][0]["code"] == "transient"


class DelayingProxy:
    """Forwards GETs to the real server after `delay` seconds (stdlib only)."""

    def __init__(self, upstream: str, delay: float):
        self.upstream = upstream.rstrip("/")
        self.delay = delay
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (stdlib name)
                time.sleep(proxy.delay)
                path = self.path[len("/fhir"):]
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("accept", "authorization")}
                try:
                    answer = requests.get(proxy.upstream + path, headers=headers, timeout=30)
                    body = answer.content.replace(proxy.upstream.encode(), proxy.base.encode())
                    self.send_response(answer.status_code)
                    self.send_header("Content-Type", answer.headers.get("Content-Type", "application/fhir+json"))
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/fhir"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def proxy(fhir_base_url):
    p = DelayingProxy(fhir_base_url, delay=0.0)
    yield p
    p.close()


def test_through_a_proxy_that_is_fast_enough_the_cards_are_the_same(proxy, loaded, tmp_path, content):
    data = case(P01)
    proxy.delay = 0.05
    app = make_app(tmp_path, content, case_now(data), fhir_timeout_seconds=5)
    response = post(app, data["service"], request_without_prefetch(data, loaded[P01], proxy.base))
    assert response.status_code == 200, response.get_json()
    assert cards_digest(response.get_json()) == cards_digest(post(app, data["service"], data["request"]).get_json())


def test_slow_server_is_412_timeout(proxy, loaded, tmp_path, content):
    data = case(P01)
    proxy.delay = 1.0
    app = make_app(tmp_path, content, case_now(data), fhir_timeout_seconds=0.3)
    started = time.perf_counter()
    response = post(app, data["service"], request_without_prefetch(data, loaded[P01], proxy.base))
    assert response.status_code == 412
    assert response.get_json()["issue"][0]["code"] == "timeout"
    assert time.perf_counter() - started < 1.0, "one timeout ends the call"


# ---- Synthea patients through every service -----------------------------------------------------------


SYNTHEA_FILES = ["Enda_Schaefer_dd760206-6c4e-4e25-a799-f5c563e489a1.json",
                 "Hershel_Marvin_71a7f9d4-45b7-481b-b571-7ee0caca6e2a.json",
                 "Liz_Conn_27c911c6-f045-4ffa-af5d-6eba57ac94b2.json",
                 "Lupe_Little_f8a42e66-8c03-4ee6-85e3-3817c2942de1.json",
                 "Maria_Luisa_Razo_d060a28c-4e03-4435-8b2e-1cbfa38ca43b.json",
                 "Tony_Beer_bb8cd3e5-8910-4eea-bbc6-3f64a4a655b8.json"]


def draft_orders(bundle: dict, patient_ref: str) -> dict:
    """Drafts made from the patient's own MedicationRequests (or one uncoded order), as an EHR
    would send them: status draft, new ids, the stored patient as subject."""
    meds = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "MedicationRequest"][:2]
    if not meds:
        meds = [{"resourceType": "MedicationRequest", "intent": "order",
                 "medicationCodeableConcept": {"text": "test medication"}}]
    drafts = []
    for i, med in enumerate(meds):
        draft = {k: v for k, v in med.items() if k not in ("requester", "encounter", "reasonReference", "meta")}
        draft |= {"id": f"draft-{i}", "status": "draft", "subject": {"reference": patient_ref},
                  "authoredOn": T0.isoformat()}
        drafts.append({"resource": draft})
    return {"resourceType": "Bundle", "type": "collection", "entry": drafts}


@pytest.mark.parametrize("name", SYNTHEA_FILES, ids=lambda n: n.split("_")[0])
def test_synthea_patient_through_every_service(name, fhir, fhir_base_url, tmp_path, content):
    from service.content.publish import load_document

    bundle = json.loads(shared_path("external", "synthea", name).read_text())
    patient = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    report = load_document(fhir, bundle, name, timeout=120)
    pid = report.id_of(f"Patient/{patient['id']}")
    app = make_app(tmp_path, content, T0)
    drafts = draft_orders(bundle, f"Patient/{pid}")
    for service in sorted(content.services.values(), key=lambda s: s.id):
        hook = service.hooks[0]
        context = {"userId": "Practitioner/example", "patientId": pid}
        if hook in ("order-select", "order-sign"):
            context["draftOrders"] = drafts
        if hook == "order-select":
            context["selections"] = [f"MedicationRequest/{drafts['entry'][0]['resource']['id']}"]
        request = {"hook": hook, "hookInstance": f"{RUN}-{service.id}-{pid}", "context": context,
                   "fhirServer": fhir_base_url}
        response = app.test_client().post(f"/cds-services/{service.id}?_trace=true", json=request)
        assert response.status_code == 200, (service.id, response.get_json())
        body = response.get_json()
        assert response_errors({"cards": body["cards"]}) == [], service.id
        trace = next(iter(body.get("extension", {}).values()), {})
        assert trace.get("issues") == [], (service.id, trace.get("issues"))
