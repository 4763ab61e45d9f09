"""CDS Hooks 2.0 §Trusting CDS Clients over HTTP: real tokens signed with keys generated here,
verified by the service against a trusted-clients file.  Every refusal is a 401 with a
`WWW-Authenticate: Bearer` challenge and an OperationOutcome that does not say which check
failed; no token ever reaches a log."""

from __future__ import annotations

import json
import logging
import threading
import uuid

import pytest

from service.errors import ConfigurationError
from tests.conformance.helpers import base_request
from tests.conftest import T0, shared_path
from tests.protocol_content import PATIENT_VIEW, PATIENT_VIEW_RULES, topics
from tests.trust_helpers import (
    Listener,
    claims,
    es384_key,
    hs256_with_public_key,
    jwks,
    rs384_key,
    sign,
    unsigned,
    write_clients,
)

ISS = "https://ehr.example.org"
SERVICE = PATIENT_VIEW
AUD = "http://localhost" + SERVICE  # the Flask test client's root URL + path
NOW = T0.timestamp()
ES = es384_key()
RS = rs384_key()
OTHER = es384_key("ehr-es384")  # same kid as ES, another key: what an attacker holds


@pytest.fixture(autouse=True)
def no_token_in_logs(caplog):
    """No log record of any phase holds a token (header.payload.signature) or its signature."""
    caplog.set_level(logging.DEBUG)
    yield caplog
    for record in caplog.get_records("setup") + caplog.get_records("call"):
        text = record.getMessage()
        assert "eyJ" not in text, f"a token reached the log: {record.name}: {text[:120]}"


@pytest.fixture
def listeners():
    started = []

    def start(**routes):
        listener = Listener(routes=routes)
        started.append(listener)
        return listener

    yield start
    for listener in started:
        listener.close()


@pytest.fixture
def make_app(tmp_path, synthetic_content):
    from service.app import create_app

    def make(*clients, db="feedback.sqlite3", **config):
        clients = clients or ({"iss": ISS, "jwks": jwks(ES, RS), "fhirServers": ["https://ehr.example.org/fhir"]},)
        path = write_clients(tmp_path / "trusted-clients.json", *clients)
        cfg = {"database_url": f"sqlite:///{tmp_path / db}", "trusted_clients": path, "fhir_retries": 0, **config}
        app = create_app(cfg, clock=lambda: T0, content=synthetic_content)
        app.config.update(TESTING=True)
        return app.test_client()

    return make


@pytest.fixture
def client(make_app):
    return make_app()


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def token(key=ES, aud=AUD, iss=ISS, **extra) -> str:
    header = {k: extra.pop(k) for k in ("kid", "jku") if k in extra}
    return sign(key, claims(iss, aud, NOW, **extra), **header)


def refused(response, challenge_error: bool = True):
    assert response.status_code == 401, response.get_data(as_text=True)
    challenge = response.headers.get("WWW-Authenticate", "")
    assert challenge.startswith("Bearer")
    assert ('error="invalid_token"' in challenge) is challenge_error
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome"
    expected = "invalid token" if challenge_error else "authentication required"
    assert [i["diagnostics"] for i in body["issue"]] == [expected]
    assert body["issue"][0]["code"] == "login"


# ---- accepted --------------------------------------------------------------------------------


@pytest.mark.parametrize("key", [ES, RS], ids=["ES384", "RS384"])
def test_a_valid_token_gets_cards(client, key):
    response = client.post(SERVICE, json=base_request(), headers=bearer(token(key)))
    assert response.status_code == 200, response.get_json()
    assert topics(response.get_json()) == PATIENT_VIEW_RULES


def test_iat_half_a_second_ahead_is_accepted_as_the_sandbox_sends_it(client):
    t = sign(ES, claims(ISS, AUD, NOW) | {"iat": NOW + 0.5})
    assert client.post(SERVICE, json=base_request(), headers=bearer(t)).status_code == 200


def test_aud_may_be_an_array_holding_the_url(client):
    assert client.post(SERVICE, json=base_request(), headers=bearer(token(aud=[AUD]))).status_code == 200


def test_the_scheme_name_is_case_insensitive(client):
    assert client.post(SERVICE, json=base_request(), headers={"Authorization": "bearer " + token()}).status_code == 200


# ---- refused: the 14 ways in, and a token that lives too long ------------------------------


def _expired():
    return token(iat=NOW - 600, exp=NOW - 300)


REFUSALS = {
    "no token": lambda: {},
    "garbage": lambda: bearer("not-a-jwt"),
    "alg none": lambda: bearer(unsigned(claims(ISS, AUD, NOW), ES.kid)),
    "HS256 keyed with the public key": lambda: bearer(hs256_with_public_key(ES, claims(ISS, AUD, NOW))),
    "unknown kid": lambda: bearer(token(kid="no-such-kid")),
    "signed by another key": lambda: bearer(token(key=OTHER)),
    "ES384 naming the RSA key": lambda: bearer(token(kid=RS.kid)),
    "expired": lambda: bearer(_expired()),
    "not yet valid (nbf)": lambda: bearer(token(nbf=NOW + 60)),
    "issued in the future": lambda: bearer(token(iat=NOW + 60, exp=NOW + 360)),
    "wrong aud": lambda: bearer(token(aud="http://localhost/cds-services/other-service")),
    "wrong iss": lambda: bearer(token(iss="https://evil.example.org")),
    "missing kid": lambda: bearer(sign(ES, claims(ISS, AUD, NOW), kid=None)),
    "missing jti": lambda: bearer(sign(ES, {k: v for k, v in claims(ISS, AUD, NOW).items() if k != "jti"})),
    "Basic instead of Bearer": lambda: {"Authorization": "Basic ZWhyOnBhc3N3b3Jk"},
    "living a day (exp - iat over CDS_JWT_MAX_LIFETIME_SECONDS)": lambda: bearer(token(lifetime=86400)),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_a_bad_token_is_refused_with_401_and_no_detail(client, case):
    response = client.post(SERVICE, json=base_request(), headers=REFUSALS[case]())
    refused(response, challenge_error=case not in ("no token", "Basic instead of Bearer"))


def test_the_refusal_reason_is_logged_without_the_token(client, caplog):
    caplog.set_level(logging.INFO, logger="service.auth")
    t = _expired()
    refused(client.post(SERVICE, json=base_request(), headers=bearer(t)))
    reasons = [r.getMessage() for r in caplog.records if r.name == "service.auth" and "401" in r.getMessage()]
    assert len(reasons) == 1 and "expired" in reasons[0] and t.split(".")[2] not in reasons[0]


def test_a_replayed_jti_is_refused(client):
    t = token()
    assert client.post(SERVICE, json=base_request(), headers=bearer(t)).status_code == 200
    refused(client.post(SERVICE, json=base_request(), headers=bearer(t)))


def test_a_replay_on_a_second_instance_sharing_the_database_is_refused(make_app):
    first, second = make_app(), make_app()  # two service instances, one SQLite file
    t = token()
    assert first.post(SERVICE, json=base_request(), headers=bearer(t)).status_code == 200
    refused(second.post(SERVICE, json=base_request(), headers=bearer(t)))


def test_racing_instances_let_exactly_one_use_a_token(database_url):
    from service.feedback import FeedbackStore

    stores = [FeedbackStore(database_url) for _ in range(4)]
    jtis = [f"jti-{i}" for i in range(25)]
    wins: dict[str, list[bool]] = {j: [] for j in jtis}
    barrier = threading.Barrier(len(stores))

    def claim(store):
        barrier.wait()
        for jti in jtis:
            wins[jti].append(store.first_use_of_token(ISS, jti, int(NOW) + 300, int(NOW)))

    threads = [threading.Thread(target=claim, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(sorted(w) == [False, False, False, True] for w in wins.values()), wins


def test_a_token_id_is_free_again_after_the_token_expired(database_url):
    from service.feedback import FeedbackStore

    store = FeedbackStore(database_url)
    assert store.first_use_of_token(ISS, "j", 1000, 900) is True
    assert store.first_use_of_token(ISS, "j", 1300, 999) is False
    assert store.first_use_of_token("https://other.example.org", "j", 1300, 999) is True  # per issuer
    assert store.first_use_of_token(ISS, "j", 1400, 1001) is True


# ---- jku: only the listed URL, fetched, cached, refetched on rotation --------------------------


@pytest.mark.parametrize("keys", ["inline", "jku"])
def test_a_jku_to_an_unlisted_host_is_refused_and_never_contacted(make_app, listeners, keys):
    ehr = listeners(**{"/jwks.json": (200, jwks(ES))})
    evil = listeners(**{"/jwks.json": (200, jwks(OTHER))})
    source = {"jwks": jwks(ES)} if keys == "inline" else {"jku": ehr.origin + "/jwks.json"}
    client = make_app({"iss": ISS, "fhirServers": [], **source})
    t = sign(OTHER, claims(ISS, AUD, NOW), jku=evil.origin + "/jwks.json")
    refused(client.post(SERVICE, json=base_request(), headers=bearer(t)))
    assert evil.connections == 0 and ehr.connections == 0


def test_keys_come_from_the_listed_jku_and_are_refetched_on_rotation(make_app, listeners):
    ehr = listeners(**{"/jwks.json": (200, jwks(ES))})
    jku = ehr.origin + "/jwks.json"
    client = make_app({"iss": ISS, "jku": jku, "fhirServers": []})
    assert ehr.connections == 0  # fetched on first use, not at start

    def call(key, **header):
        return client.post(SERVICE, json=base_request(), headers=bearer(sign(key, claims(ISS, AUD, NOW), **header)))

    assert call(ES, jku=jku).status_code == 200
    assert call(ES).status_code == 200  # no jku in the header: the listed one is used
    assert len(ehr.requests) == 1  # cached
    assert "Authorization" not in ehr.requests[0][1]

    rotated = es384_key("ehr-es384-2026")
    ehr.routes["/jwks.json"] = (200, jwks(rotated))
    assert call(rotated, jku=jku).status_code == 200  # unknown kid: fetched again
    assert len(ehr.requests) == 2
    refused(call(ES, jku=jku))  # the old key is gone from the set
    refused(call(es384_key("random-kid"), jku=jku))  # another unknown kid right away: not refetched
    assert len(ehr.requests) == 2
    refused(call(rotated, jku=jku + "?x=1"))  # not exactly the listed jku


def test_an_unreachable_jku_refuses_the_call(make_app, listeners):
    ehr = listeners()  # answers 404 to everything
    client = make_app({"iss": ISS, "jku": ehr.origin + "/jwks.json", "fhirServers": []})
    refused(client.post(SERVICE, json=base_request(), headers=bearer(token())))


# ---- which endpoints ---------------------------------------------------------------------------


def _parameters() -> dict:
    return {"resourceType": "Parameters", "parameter": [{"name": "subject", "valueString": "Patient/p1"}]}


@pytest.mark.parametrize("path, body", [
    (PATIENT_VIEW + "/feedback", {"feedback": []}),
    ("/PlanDefinition/proto/$apply", _parameters()),
    ("/PlanDefinition/$apply", _parameters()),
    ("/ActivityDefinition/$apply", _parameters()),
], ids=["feedback", "PlanDefinition-$apply", "PlanDefinition-type-$apply", "ActivityDefinition-$apply"])
def test_feedback_and_apply_need_a_token_for_their_own_url(client, path, body):
    refused(client.post(path, json=body), challenge_error=False)
    refused(client.post(path, json=body, headers=bearer(token())))  # aud of the hook URL: wrong endpoint
    response = client.post(path, json=body, headers=bearer(token(aud="http://localhost" + path)))
    assert response.status_code not in (401, 403), response.get_json()


def test_discovery_is_public_but_a_token_sent_with_it_is_checked(client):
    assert client.get("/cds-services").status_code == 200
    assert client.get("/cds-services", headers=bearer(token(aud="http://localhost/cds-services"))).status_code == 200
    refused(client.get("/cds-services", headers=bearer(token())))  # aud of another endpoint
    assert client.options(SERVICE, headers={"Origin": "https://sandbox.cds-hooks.org",
                                            "Access-Control-Request-Method": "POST"}).status_code == 200


def test_behind_a_proxy_aud_is_the_public_url(make_app):
    client = make_app(public_base_url="https://cds.example.org/dah/")
    public = "https://cds.example.org/dah" + SERVICE
    assert client.post(SERVICE, json=base_request(), headers=bearer(token(aud=public))).status_code == 200
    refused(client.post(SERVICE, json=base_request(), headers=bearer(token(aud=AUD))))


# ---- start-up rules ----------------------------------------------------------------------------


def test_open_mode_only_on_loopback_and_said_loudly(tmp_path, synthetic_content, caplog):
    from service.app import create_app

    db = f"sqlite:///{tmp_path / 'f.sqlite3'}"
    with pytest.raises(ConfigurationError, match="CDS_TRUSTED_CLIENTS"):
        create_app({"database_url": db, "host": "0.0.0.0"}, content=synthetic_content)
    caplog.set_level(logging.WARNING, logger="service.auth")
    app = create_app({"database_url": db, "host": "::1"}, clock=lambda: T0, content=synthetic_content)
    assert any("OPEN MODE" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    open_client = app.test_client()
    assert open_client.post(SERVICE, json=base_request()).status_code == 200
    refused(open_client.post(SERVICE, json=base_request(), environ_overrides={"REMOTE_ADDR": "192.0.2.7"}),
            challenge_error=False)


def test_with_trusted_clients_any_host_may_serve(make_app):
    assert make_app(host="0.0.0.0").get("/cds-services").status_code == 200


def test_a_bad_trusted_clients_file_stops_the_start_naming_file_and_path(tmp_path, synthetic_content):
    from service.app import create_app

    path = write_clients(tmp_path / "clients.json",
                         {"iss": ISS, "jku": "http://ehr.example.org/jwks", "fhirServers": []})
    with pytest.raises(ConfigurationError) as info:
        create_app({"database_url": "sqlite:///:memory:", "trusted_clients": path}, content=synthetic_content)
    assert f"{path}: $.clients[0].jku: jku must use https" in str(info.value)


# ---- the CDS Hooks sandbox, as captured -------------------------------------------------------


def test_a_call_shaped_as_the_sandbox_sends_it_is_served(make_app, listeners):
    """Header and claims exactly as sandbox-captured/patient-view-request.json shows them (ES384, the
    sandbox's kid and jku, iat rounded up to 0.5 s ahead, exp = iat + 300), signed here with a key
    given that kid inline; the FHIR server it names is listed and serves the keys not prefetched."""
    captured = json.loads(shared_path("external", "cds-hooks-examples", "sandbox-captured",
                                      "patient-view-request.json").read_text())
    discovery = json.loads(shared_path("external", "cds-hooks-examples", "sandbox-captured",
                                       "discovery-call.json").read_text())
    fhir = listeners()
    fhir.default = (200, {"resourceType": "Bundle", "type": "searchset", "total": 0})
    header, sandbox_claims = captured["jwt_header"], captured["jwt_claims"]
    key = es384_key(header["kid"])
    client = make_app({"iss": sandbox_claims["iss"], "jwks": jwks(key), "fhirServers": [fhir.origin + "/fhir"]})

    def sandbox_token(path):
        lifetime = sandbox_claims["exp"] - sandbox_claims["iat"]
        payload = dict(sandbox_claims, aud="http://localhost" + path, iat=round(NOW + 0.4),
                       exp=round(NOW + 0.4) + lifetime, jti=str(uuid.uuid4()))
        return sign(key, payload, jku=header["jku"])

    assert client.get(discovery["path"], headers=bearer(sandbox_token(discovery["path"]))).status_code == 200
    body = dict(captured["body"], fhirServer=fhir.origin + "/fhir")
    response = client.post(SERVICE, json=body, headers=bearer(sandbox_token(SERVICE)))
    assert response.status_code == 200, response.get_json()
    assert fhir.requests and all(path.startswith("/fhir/") for path, _ in fhir.requests)


def test_the_get_form_of_apply_needs_a_token_too(client):
    path = "/PlanDefinition/proto/$apply"
    refused(client.get(path + "?subject=Patient/p1"), challenge_error=False)
    response = client.get(path + "?subject=Patient/p1", headers=bearer(token(aud="http://localhost" + path)))
    assert response.status_code == 200, response.get_json()
