"""FhirClient against real HTTP servers (stdlib http.server on 127.0.0.1, free ports): no mocks."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from service.errors import (
    FhirAccessError,
    FhirAuthError,
    FhirNotFoundError,
    FhirRequestRefused,
    FhirServerError,
    FhirTimeout,
    FhirUnavailable,
)
from service.fhir.client import FhirClient
from service.web.errors import answer

TOKEN = "s3cr3t-T0KEN-value.abc"


class FakeFhirServer:
    """Answers GETs from `routes`: path-with-query -> (status, body) or a list of them (one per hit);
    PUT/POST from `routes[(method, path)]`, recording (method, path, json body) in `writes`."""

    def __init__(self):
        self.routes: dict = {}
        self.hits: list[tuple[str, dict]] = []
        self.writes: list[tuple[str, str, object]] = []
        self.delay = 0.0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self):  # noqa: N802 (stdlib name)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                server.writes.append((self.command, self.path, json.loads(raw) if raw else None))
                self.do_GET(key=(self.command, self.path))

            do_POST = do_PUT  # noqa: N815

            def do_GET(self, key=None):  # noqa: N802 (stdlib name)
                server.hits.append((self.path, dict(self.headers)))
                if server.delay:
                    time.sleep(server.delay)
                answer = server.routes.get(key or self.path, (404, {"resourceType": "OperationOutcome", "issue": [
                    {"severity": "error", "code": "not-found", "diagnostics": f"no {self.path}"}]}))
                if isinstance(answer, list):
                    answer = answer.pop(0) if len(answer) > 1 else answer[0]
                status, body = answer
                payload = body if isinstance(body, bytes) else json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/fhir+json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    @property
    def base(self) -> str:
        return self.origin + "/fhir"

    def paths(self) -> list[str]:
        return [path for path, _ in self.hits]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = FakeFhirServer()
    yield s
    s.close()


@pytest.fixture
def other_server():
    s = FakeFhirServer()
    yield s
    s.close()


def client(server: FakeFhirServer, **options) -> FhirClient:
    return FhirClient(server.base, **({"access_token": TOKEN, "timeout": 2.0} | options))


def page(server: FakeFhirServer, ids: list[str], next_url: str | None = None) -> dict:
    links = [{"relation": "self", "url": server.base + "/Observation"}]
    if next_url:
        links.append({"relation": "next", "url": next_url})
    return {"resourceType": "Bundle", "type": "searchset", "total": 6, "link": links,
            "entry": [{"fullUrl": f"{server.base}/Observation/{i}",
                       "resource": {"resourceType": "Observation", "id": i}} for i in ids]}


def ids(bundle: dict) -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", [])]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- reads ------------------------------------------------------------------------------------


def test_get_sends_fhir_accept_and_bearer_token(server):
    server.routes["/fhir/Patient/p1"] = (200, {"resourceType": "Patient", "id": "p1"})
    assert client(server).get("Patient/p1") == {"resourceType": "Patient", "id": "p1"}
    path, headers = server.hits[0]
    assert path == "/fhir/Patient/p1"
    assert headers["Accept"] == "application/fhir+json"
    assert headers["Authorization"] == f"Bearer {TOKEN}"


def test_no_token_no_authorization_header(server):
    server.routes["/fhir/Patient/p1"] = (200, {"resourceType": "Patient", "id": "p1"})
    FhirClient(server.base + "/").get("Patient/p1")
    assert "Authorization" not in server.hits[0][1]


def test_get_relative_search_and_absolute_same_origin(server):
    bundle = page(server, ["o1"])
    server.routes["/fhir/Observation?patient=p1&code=http://loinc.org%7C718-7"] = (200, bundle)
    fhir = client(server)
    assert fhir.get("Observation?patient=p1&code=http://loinc.org|718-7") == bundle
    assert fhir.get(server.base + "/Observation?patient=p1&code=http://loinc.org|718-7") == bundle


def test_absolute_url_on_another_origin_is_refused_without_a_request(server, other_server):
    with pytest.raises(FhirServerError, match="refusing to send the access token"):
        client(server).get(other_server.base + "/Patient/p1")
    assert other_server.hits == [] and server.hits == []


def test_operation_outcome_with_200_is_returned_as_is(server):
    outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": "warning", "code": "informational"}]}
    server.routes["/fhir/Observation?patient=p1"] = (200, outcome)
    fhir = client(server)
    assert fhir.get("Observation?patient=p1") == outcome
    assert fhir.search_all("Observation?patient=p1") == outcome


# ---- paging ---------------------------------------------------------------------------------


def test_search_all_merges_three_pages(server):
    server.routes["/fhir/Observation?patient=p1"] = (
        200,
        page(server, ["o1", "o2"], server.base + "/Observation?page=2"),
    )
    server.routes["/fhir/Observation?page=2"] = (200, page(server, ["o3", "o4"], server.base + "/Observation?page=3"))
    server.routes["/fhir/Observation?page=3"] = (200, page(server, ["o5", "o6"]))
    merged = client(server).search_all("Observation?patient=p1")
    assert ids(merged) == ["o1", "o2", "o3", "o4", "o5", "o6"]
    assert merged["type"] == "searchset" and merged["total"] == 6
    assert [link["relation"] for link in merged["link"]] == ["self"]
    assert "meta" not in merged
    assert server.paths() == ["/fhir/Observation?patient=p1", "/fhir/Observation?page=2", "/fhir/Observation?page=3"]
    assert all(h["Authorization"] == f"Bearer {TOKEN}" for _, h in server.hits)


def test_relative_next_link_is_resolved_against_the_base(server):
    server.routes["/fhir/Observation?patient=p1"] = (200, page(server, ["o1"], "Observation?page=2"))
    server.routes["/fhir/Observation?page=2"] = (200, page(server, ["o2"]))
    assert ids(client(server).search_all("Observation?patient=p1")) == ["o1", "o2"]


def test_search_all_stops_at_max_pages_and_marks_the_bundle(server, caplog):
    server.routes["/fhir/Observation?patient=p1"] = (200, page(server, ["o1"], server.base + "/Observation?page=2"))
    server.routes["/fhir/Observation?page=2"] = (200, page(server, ["o2"], server.base + "/Observation?page=3"))
    server.routes["/fhir/Observation?page=3"] = (200, page(server, ["o3"]))
    with caplog.at_level(logging.WARNING, logger="service.fhir"):
        merged = client(server, max_pages=2).search_all("Observation?patient=p1")
    assert ids(merged) == ["o1", "o2"]
    assert len(server.hits) == 2
    assert merged["meta"]["tag"][0]["code"] == "SUBSETTED"
    assert {"relation": "next", "url": server.base + "/Observation?page=3"} in merged["link"]
    assert "more than 2 pages" in caplog.text


def test_rest_of_a_page_held_elsewhere_merges_the_following_pages_only(server):
    """A paginated prefetch (CDS Hooks 2.0.1 §Prefetch Template) is completed here, as search_all
    completes its first page: the page the EHR sent is not read again."""
    sent = page(server, ["o1"], server.base + "/Observation?page=2")
    server.routes["/fhir/Observation?page=2"] = (200, page(server, ["o2"], "Observation?page=3"))
    server.routes["/fhir/Observation?page=3"] = (200, page(server, ["o3"]))
    merged = client(server).rest_of(sent)
    assert ids(merged) == ["o1", "o2", "o3"]
    assert [link["relation"] for link in merged["link"]] == ["self"]
    assert server.paths() == ["/fhir/Observation?page=2", "/fhir/Observation?page=3"]
    assert ids(sent) == ["o1"], "the page held is not changed"
    unpaged = page(server, ["o9"])
    assert client(server).rest_of(unpaged) is unpaged


def test_fetch_reads_a_type_and_id_and_searches_anything_else(server):
    server.routes["/fhir/Patient/p1"] = (200, {"resourceType": "Patient", "id": "p1"})
    server.routes["/fhir/Observation?patient=p1"] = (200, page(server, ["o1"], "Observation?page=2"))
    server.routes["/fhir/Observation?page=2"] = (200, page(server, ["o2"]))
    assert client(server).fetch("Patient/p1")["id"] == "p1"
    assert ids(client(server).fetch("Observation?patient=p1")) == ["o1", "o2"]


def test_foreign_origin_next_link_is_not_followed(server, other_server, caplog):
    other_server.routes["/fhir/Observation?page=2"] = (200, page(other_server, ["evil"]))
    server.routes["/fhir/Observation?patient=p1"] = (
        200,
        page(server, ["o1"], other_server.base + "/Observation?page=2"),
    )
    with caplog.at_level(logging.WARNING, logger="service.fhir"):
        merged = client(server).search_all("Observation?patient=p1")
    assert ids(merged) == ["o1"]
    assert other_server.hits == []
    assert merged["meta"]["tag"][0]["code"] == "SUBSETTED"
    assert "not on the origin" in caplog.text


def test_a_next_link_back_to_a_page_already_read_is_a_server_fault(server):
    """A search whose pages link in a circle is not data cut short (a notice card) but a broken
    server: FhirServerError (412), after one pass round the circle."""
    server.routes["/fhir/Observation?page=1"] = (200, page(server, ["o1"], server.base + "/Observation?page=1"))
    with pytest.raises(FhirServerError, match="repeats a page") as info:
        client(server).search_all("Observation?page=1")
    assert len(server.hits) == 1
    assert info.value.reason == "the FHIR server's search pages link back to a page already read"
    server.routes["/fhir/Observation?page=2"] = (200, page(server, ["o2"], "Observation?page=1"))
    server.routes["/fhir/Observation?page=1"] = (200, page(server, ["o1"], "Observation?page=2"))
    with pytest.raises(FhirServerError, match="repeats a page"):
        client(server).search_all("Observation?page=1")
    assert len(server.hits) == 3


def test_a_later_page_that_is_not_a_bundle_fails(server):
    server.routes["/fhir/Observation?patient=p1"] = (200, page(server, ["o1"], server.base + "/Observation?page=2"))
    server.routes["/fhir/Observation?page=2"] = (200, {"resourceType": "OperationOutcome", "issue": []})
    with pytest.raises(FhirServerError, match="not a Bundle"):
        client(server).search_all("Observation?patient=p1")


# ---- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("status,error", [(401, FhirAuthError), (403, FhirAuthError), (404, FhirNotFoundError),
                                          (410, FhirNotFoundError), (400, FhirServerError), (500, FhirServerError)])
def test_http_errors_are_typed(server, status, error):
    server.routes["/fhir/Patient/p1"] = (status, {"resourceType": "OperationOutcome",
                                                  "issue": [{"severity": "error", "code": "x", "diagnostics": "nope"}]})
    with pytest.raises(error) as info:
        client(server).get("Patient/p1")
    assert f"{server.base}/Patient/p1" in info.value.message
    assert isinstance(info.value, FhirAccessError) and answer(info.value)[0] == 412
    assert len(server.hits) == 1, "only 502/503/504 are retried"


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_errors_are_retried_then_fail(server, status):
    server.routes["/fhir/Patient/p1"] = (status, b"")
    with pytest.raises(FhirServerError, match=str(status)):
        client(server, retries=2).get("Patient/p1")
    assert len(server.hits) == 3


def test_gateway_error_then_success(server):
    server.routes["/fhir/Patient/p1"] = [(503, b""), (200, {"resourceType": "Patient", "id": "p1"})]
    assert client(server, retries=1).get("Patient/p1")["id"] == "p1"
    assert len(server.hits) == 2


@pytest.mark.parametrize("body", [b"<html>login</html>", b"", b"[1, 2]", b'{"id": "p1"}'])
def test_body_that_is_not_a_fhir_json_resource_is_a_server_error(server, body):
    server.routes["/fhir/Patient/p1"] = (200, body)
    with pytest.raises(FhirServerError, match="GET .*/Patient/p1"):
        client(server).get("Patient/p1")


def test_slow_server_times_out(server):
    server.routes["/fhir/Patient/p1"] = (200, {"resourceType": "Patient", "id": "p1"})
    server.delay = 1.0
    started = time.perf_counter()
    with pytest.raises(FhirTimeout, match="within 0.2 s"):
        client(server, timeout=0.2, retries=2).get("Patient/p1")
    assert time.perf_counter() - started < 0.9, "a timeout is not retried"
    assert len(server.hits) == 1


def test_connection_refused_is_unavailable_after_retries(caplog):
    base = f"http://127.0.0.1:{free_port()}/fhir"
    with caplog.at_level(logging.WARNING, logger="service.fhir"):
        with pytest.raises(FhirUnavailable, match="unreachable") as info:
            FhirClient(base, access_token=TOKEN, retries=1).get("Patient/p1")
    assert f"{base}/Patient/p1" in info.value.message
    assert "retry 1/1" in caplog.text


# ---- the token stays secret ---------------------------------------------------------------------


def test_token_never_in_errors_or_logs(server, caplog):
    server.routes["/fhir/Patient/a"] = (401, {"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "security", "diagnostics": f"bad token {TOKEN}"}]})
    server.routes["/fhir/Patient/b"] = (500, {"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "exception", "diagnostics": f"Authorization: Bearer {TOKEN}"}]})
    server.routes["/fhir/Patient/c"] = (200, b"not json")
    server.routes["/fhir/Patient/d"] = (503, b"")
    fhir = client(server, retries=1)
    caught: list[Exception] = []
    with caplog.at_level(logging.DEBUG):
        for rid in ("a", "b", "c", "d", "missing"):
            with pytest.raises(FhirAccessError) as info:
                fhir.get(f"Patient/{rid}")
            caught.append(info.value)
        refused = FhirClient(f"http://127.0.0.1:{free_port()}/fhir", access_token=TOKEN, retries=0)
        with pytest.raises(FhirUnavailable) as info:
            refused.get("Patient/p1")
        caught.append(info.value)
        server.delay = 1.0
        with pytest.raises(FhirTimeout) as info:
            client(server, timeout=0.2).get("Patient/slow")
        caught.append(info.value)
    assert all(h["Authorization"] == f"Bearer {TOKEN}" for _, h in server.hits)
    for exc in caught:
        text = " ".join([str(exc), repr(exc), json.dumps(answer(exc)[1]), repr(exc.__cause__),
                         repr(exc.__context__)])
        assert TOKEN not in text, type(exc).__name__
    assert caplog.records, "the client logs its requests"
    assert TOKEN not in caplog.text
    assert TOKEN not in repr(fhir)


def test_unusable_token_is_rejected_without_echoing_it(server):
    with pytest.raises(FhirAuthError) as info:
        FhirClient(server.base, access_token="abc\r\nX-Injected: 1")
    assert "abc" not in str(info.value) and server.hits == []


# ---- writes: put, transaction -------------------------------------------------------------------


def test_put_sends_the_resource_to_type_and_id_and_returns_the_stored_one(server):
    stored = {"resourceType": "PlanDefinition", "id": "dah", "meta": {"versionId": "2"}}
    server.routes[("PUT", "/fhir/PlanDefinition/dah")] = (200, stored)
    resource = {"resourceType": "PlanDefinition", "id": "dah", "status": "active"}
    assert client(server).put(resource) == stored
    assert server.writes == [("PUT", "/fhir/PlanDefinition/dah", resource)]
    headers = server.hits[0][1]
    assert headers["Content-Type"] == "application/fhir+json"
    assert headers["Accept"] == "application/fhir+json"
    assert headers["Authorization"] == f"Bearer {TOKEN}"


def test_put_without_a_body_in_the_answer_reads_the_resource_back(server):
    server.routes[("PUT", "/fhir/Library/lib")] = (201, b"")
    server.routes["/fhir/Library/lib"] = (200, {"resourceType": "Library", "id": "lib", "meta": {"versionId": "1"}})
    assert client(server).put({"resourceType": "Library", "id": "lib"})["meta"]["versionId"] == "1"
    assert server.paths() == ["/fhir/Library/lib", "/fhir/Library/lib"]


def test_put_id_cannot_escape_the_resource_path(server):
    server.routes[("PUT", "/fhir/Patient/..%2Fx")] = (200, {"resourceType": "Patient", "id": "../x"})
    client(server).put({"resourceType": "Patient", "id": "../x"})
    assert server.writes[0][1] == "/fhir/Patient/..%2Fx"


@pytest.mark.parametrize("resource", [{"resourceType": "Patient"}, {"id": "x"}, [], None])
def test_put_needs_type_and_id(server, resource):
    with pytest.raises(ValueError):
        client(server).put(resource)
    assert server.hits == []


@pytest.mark.parametrize("status,error", [(400, FhirRequestRefused), (401, FhirAuthError), (404, FhirNotFoundError),
                                          (409, FhirRequestRefused), (422, FhirRequestRefused),
                                          (500, FhirServerError)])
def test_put_errors_are_typed_with_the_server_status_and_diagnostics(server, status, error):
    server.routes[("PUT", "/fhir/Patient/p1")] = (status, {"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "invalid", "details": {"text": "client ids not allowed"}}]})
    with pytest.raises(error) as info:
        client(server).put({"resourceType": "Patient", "id": "p1"})
    assert info.value.server_status == status
    assert f"PUT {server.base}/Patient/p1" in info.value.message
    if issubclass(error, FhirServerError):
        assert "client ids not allowed" in info.value.message


def test_put_is_retried_on_gateway_errors(server):
    server.routes[("PUT", "/fhir/Patient/p1")] = [(503, b""), (200, {"resourceType": "Patient", "id": "p1"})]
    assert client(server, retries=1).put({"resourceType": "Patient", "id": "p1"})["id"] == "p1"
    assert len(server.writes) == 2


def test_transaction_posts_to_the_base_and_returns_the_response_bundle(server):
    answer = {"resourceType": "Bundle", "type": "transaction-response",
              "entry": [{"response": {"status": "201 Created", "location": "Patient/1/_history/1"}}]}
    server.routes[("POST", "/fhir/")] = (200, answer)
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:1",
                "resource": {"resourceType": "Patient"},
                "request": {"method": "POST", "url": "Patient"},
            }
        ],
    }
    assert client(server).transaction(bundle) == answer
    assert server.writes == [("POST", "/fhir/", bundle)]


def test_transaction_is_not_retried(server):
    server.routes[("POST", "/fhir/")] = (503, b"")
    with pytest.raises(FhirServerError, match="503 to POST"):
        client(server, retries=3).transaction({"resourceType": "Bundle", "type": "transaction", "entry": []})
    assert len(server.writes) == 1


@pytest.mark.parametrize("answer", [(200, {"resourceType": "OperationOutcome", "issue": []}), (200, b"")])
def test_transaction_answer_must_be_a_bundle(server, answer):
    server.routes[("POST", "/fhir/")] = answer
    with pytest.raises(FhirServerError, match="not a Bundle"):
        client(server).transaction({"resourceType": "Bundle", "type": "batch", "entry": []})


def test_transaction_needs_a_transaction_or_batch_bundle(server):
    with pytest.raises(ValueError):
        client(server).transaction({"resourceType": "Bundle", "type": "collection"})
    assert server.hits == []


def test_transaction_timeout_and_refused_connection_are_typed(server):
    server.delay = 1.0
    with pytest.raises(FhirTimeout, match="POST"):
        client(server).transaction({"resourceType": "Bundle", "type": "transaction"}, timeout=0.2)
    with pytest.raises(FhirUnavailable, match="POST"):
        FhirClient(f"http://127.0.0.1:{free_port()}/fhir", retries=0).transaction(
            {"resourceType": "Bundle", "type": "transaction"})


def test_token_never_in_write_errors_or_logs(server, caplog):
    server.routes[("PUT", "/fhir/Patient/p1")] = (400, {"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "invalid", "diagnostics": f"header Bearer {TOKEN} rejected"}]})
    server.routes[("POST", "/fhir/")] = (401, b"")
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(FhirServerError) as put_error:
            client(server).put({"resourceType": "Patient", "id": "p1"})
        with pytest.raises(FhirAuthError) as post_error:
            client(server).transaction({"resourceType": "Bundle", "type": "transaction"})
    for exc in (put_error.value, post_error.value):
        assert TOKEN not in str(exc) and TOKEN not in json.dumps(answer(exc)[1])
    assert TOKEN not in caplog.text
