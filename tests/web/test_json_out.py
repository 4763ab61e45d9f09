"""Responses are written by orjson (service.web.jsonout): the JSON Flask wrote, compact and with
sorted keys, UTF-8 text as it is, and Flask's own forms where orjson would differ."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

from tests.protocol_content import PATIENT_VIEW, patient_view_request


def test_a_service_call_answers_compact_sorted_utf8_json(client):
    response = client.post(PATIENT_VIEW, json=patient_view_request())
    assert response.status_code == 200 and response.mimetype == "application/json"
    raw = response.get_data()
    body = json.loads(raw)
    assert body["cards"]
    assert raw == (json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n").encode()


def test_an_error_outcome_is_written_the_same_way(client):
    response = client.post(PATIENT_VIEW, json={"hook": "patient-view"})
    assert response.status_code == 400
    assert response.get_data().startswith(b'{"issue":[{') and response.get_json()["resourceType"] == "OperationOutcome"


def test_values_orjson_writes_differently_keep_flasks_form(app):
    with app.app_context():
        response = app.json.response({"at": datetime(2026, 3, 1, 12, tzinfo=UTC), "dose": Decimal("1.5"),
                                      "big": 2**70, "text": "é"})
    assert json.loads(response.get_data()) == {"at": "Sun, 01 Mar 2026 12:00:00 GMT", "dose": "1.5",
                                               "big": 2**70, "text": "é"}
