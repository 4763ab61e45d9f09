"""Scale-out on PostgreSQL (README "Deployment"): several stateless instances of `dah-cds serve`,
each its own processes on its own port, share one PostgreSQL, and behave as one service.

- a new database with two instances of two workers each, started at the same moment, boots cleanly
  (the schema is migrated once, under the migration lock), every time;
- a card issued by one instance accepts feedback posted to the other;
- a client token's `jti` used on one instance is refused on the other (CDS Hooks 2.0 §Trusting CDS
  Clients, replay);
- feedback posted concurrently to both instances, every item twice (an EHR's retry, sent to the
  other instance), lands exactly once.

The instances serve the synthetic content of tests/fixtures/content (service `proto-patient-view`).
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, func, select, text

from service.feedback.migrate import head
from service.feedback.schema import feedback, issued_cards
from tests.conftest import T0
from tests.protocol_content import PATIENT_VIEW, REQUESTS
from tests.scaleout.instances import Instance, Instances
from tests.trust_helpers import claims, es384_key, jwks, sign, write_clients

SERVICE = PATIENT_VIEW
FEEDBACK = SERVICE + "/feedback"
REQUEST = json.loads((REQUESTS / "patient-view-high.json").read_text())
ISS = "https://ehr.example.org"
PUBLIC = "https://cds.example.org"  # both trusted instances sit behind one proxy name
KEY = es384_key()


def assert_clean_boot(database_url: str, *instances: Instance) -> None:
    for instance in instances:
        assert instance.process.poll() is None and instance.problems() == [], instance.log_text()[-4000:]
    engine = create_engine(database_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [head()]
    engine.dispose()


@pytest.fixture(scope="module")
def cluster(postgres, tmp_path_factory):
    """On one new database, started together: instances A and B (open, two workers each) and C and D
    (trusting one EHR client, one worker each)."""
    folder = tmp_path_factory.mktemp("scaleout")
    url = postgres.create_database()
    clients = write_clients(folder / "clients.json", {"iss": ISS, "jwks": jwks(KEY), "fhirServers": []})
    open_pair = Instances(folder, url)
    trusted_pair = Instances(folder, url, workers=1, CDS_TRUSTED_CLIENTS=clients, CDS_PUBLIC_BASE_URL=PUBLIC)
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(Instances.start, (open_pair, trusted_pair)))  # a failed start raises here
        yield url, open_pair, trusted_pair
    finally:
        open_pair.stop()
        trusted_pair.stop()


def test_instances_started_together_on_a_new_database_boot_cleanly(cluster):
    url, open_pair, trusted_pair = cluster
    for pair in (open_pair, trusted_pair):
        assert all(i.answers() for i in pair.instances), "an instance stopped answering"
    assert_clean_boot(url, *open_pair.instances, *trusted_pair.instances)


@pytest.mark.parametrize("round_", [1, 2])
def test_two_instances_of_two_workers_boot_cleanly_on_a_new_database_again(postgres, tmp_path, round_):
    url = postgres.create_database()
    with Instances(tmp_path, url) as instances:
        assert_clean_boot(url, *instances)


def issued_card(instance: Instance) -> dict:
    """The card with a suggestion from a call to `instance` (a new hookInstance: a new card uuid)."""
    status, body = instance.post(SERVICE, REQUEST | {"hookInstance": str(uuid.uuid4())})
    assert status == 200, body
    return next(c for c in body["cards"] if c.get("suggestions"))


def test_a_card_issued_by_one_instance_takes_feedback_on_the_other(cluster):
    a, b = cluster[1].instances
    card = issued_card(a)
    item = {"card": card["uuid"], "outcome": "accepted", "outcomeTimestamp": "2026-03-01T12:05:00Z",
            "acceptedSuggestions": [{"id": card["suggestions"][0]["uuid"]}]}
    assert b.post(FEEDBACK, {"feedback": [item]}) == (200, {"stored": 1, "duplicates": 0})
    assert a.post(FEEDBACK, {"feedback": [item]}) == (200, {"stored": 0, "duplicates": 1})  # a retry, on A
    status, body = b.post(FEEDBACK, {"feedback": [item | {"card": "never-issued"}]})
    assert status == 422 and body["issue"][0]["expression"] == ["feedback[0].card"]


def test_a_token_used_on_one_instance_is_refused_on_the_other(cluster):
    c, d = cluster[2].instances
    token = bearer_for(SERVICE)
    assert c.post(SERVICE, REQUEST, token)[0] == 200
    status, body = d.post(SERVICE, REQUEST, token)
    assert status == 401 and body["resourceType"] == "OperationOutcome"
    assert d.post(SERVICE, REQUEST, bearer_for(SERVICE))[0] == 200  # a new token (a new jti) is accepted there


def bearer_for(path: str) -> dict:
    """A valid token of the trusted EHR for `path` at the instances' public URL (a fresh `jti`)."""
    return {"Authorization": "Bearer " + sign(KEY, claims(ISS, PUBLIC + path, time.time()))}


def test_ten_thousand_concurrent_feedback_posts_land_exactly_once(cluster):
    """5,000 feedback items about cards issued by both instances, each posted twice, once to A and once
    to B at about the same moment: 10,000 posts by 24 connections.  The database holds each item once,
    and the answers count 5,000 stored and 5,000 duplicates."""
    url = cluster[0]
    a, b = cluster[1].instances
    cards = [issued_card(a)["uuid"] for _ in range(5)] + [issued_card(b)["uuid"] for _ in range(5)]
    items = [{"card": cards[i % len(cards)], "outcome": "overridden",
              "outcomeTimestamp": (T0 + timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
              "overrideReason": {"userComment": f"retry test {i}"}} for i in range(5000)]
    assert len(set(cards)) == 10
    posts = [(instance, json.dumps({"feedback": [item]}).encode())
             for i, item in enumerate(items) for instance in ((a, b) if i % 2 else (b, a))]
    local = threading.local()

    def send(post: tuple[Instance, bytes]) -> tuple[int, dict]:
        instance, body = post
        connections = local.__dict__.setdefault("connections", {})
        for attempt in (1, 2):
            conn = connections.get(instance.port) or http.client.HTTPConnection("127.0.0.1", instance.port, timeout=60)
            connections[instance.port] = conn
            try:
                conn.request("POST", FEEDBACK, body=body, headers={"Content-Type": "application/json"})
                response = conn.getresponse()
                return response.status, json.loads(response.read())
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                conn.close()  # the server closed a kept-alive connection: the post was not read, send it again
                connections.pop(instance.port)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=24) as pool:
        answers = list(pool.map(send, posts))
    elapsed = time.monotonic() - started
    assert {status for status, _ in answers} == {200}, [a for a in answers if a[0] != 200][:3]
    assert sum(body["stored"] for _, body in answers) == 5000
    assert sum(body["duplicates"] for _, body in answers) == 5000
    engine = create_engine(url)
    with engine.connect() as conn:
        ours = feedback.c.card_uuid.in_(cards)
        assert conn.execute(select(func.count()).select_from(feedback).where(ours)).scalar_one() == 5000
        assert conn.execute(select(func.count(func.distinct(feedback.c.outcome_timestamp)))
                            .where(ours)).scalar_one() == 5000
        assert conn.execute(select(func.count()).select_from(issued_cards)
                            .where(issued_cards.c.uuid.in_(cards))).scalar_one() == 10
    engine.dispose()
    print(f"10,000 feedback posts in {elapsed:.1f} s")
