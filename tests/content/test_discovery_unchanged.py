"""Discovery is what EHRs are configured against: moving the content to standard extensions
(cqf-cdsHooksEndpoint naming the services of single-hook plans) must not change it.
`discovery.json` is the discovery response of the bundled content before that move; a deliberate
change of a service's id, hook, title, description or prefetch updates it in the same commit."""

from __future__ import annotations

import json
from pathlib import Path

EXPECTED = Path(__file__).with_name("discovery.json")


def test_discovery_of_the_bundled_content_is_unchanged(client):
    response = client.get("/cds-services")
    assert response.status_code == 200
    expected = json.loads(EXPECTED.read_text(encoding="utf-8"))
    actual = response.get_json()
    assert [(s["id"], s["hook"]) for s in actual["services"]] == [(s["id"], s["hook"]) for s in expected["services"]]
    assert actual == expected
