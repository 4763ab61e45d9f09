"""Rule pages on the synthetic content (tests/fixtures/content/): GET /guidance/{rule-id} shows the
rule's name, the source's own words, the evidence and the choices made, all from the content and all
escaped; GET /guidance lists every rule, grouped by plan; every card links to the page of its rule,
and that page exists.  The clinical content's pages: tests/content/test_rule_pages.py."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import T0
from tests.html_page import LINK_LABEL, Page, page
from tests.protocol_content import BOTH, ORDER_SIGN, PATIENT_VIEW, order_request, patient_view_request

RULES = {  # rule id -> its name (coding.display) in tests/fixtures/content/
    "PROTO-VERY-HIGH": "Very high level", "PROTO-HIGH": "High level", "PROTO-PROBLEMS": "Problems present",
    "PROTO-ORDER": "Ordering", "PROTO-DOSE": "Dose above 10", "PROTO-HELLO": "Hello",
}


def test_rule_page_shows_the_name_the_source_quotes_and_the_citation(client):
    shown = page(client, "/guidance/PROTO-HIGH")
    assert shown.h1 == "High level"
    assert "The level is high" in shown.visible  # the card's title
    assert "Recheck any level above 10 on the same day." in shown.visible  # the source's words
    assert 'Protocol test handbook, section "Levels"' in shown.visible  # where they are from
    assert "Protocol test source" in shown.visible and "https://example.org/protocol-test-source" in shown.hrefs
    assert "Two rechecks are offered; the first is recommended." in shown.visible  # the choice made
    assert "Synthetic plan for protocol tests" in shown.visible  # the plan's title
    assert "PROTO-HIGH" not in shown.visible and "do not contain this recommendation" not in shown.visible


def test_a_rule_without_a_quoted_source_says_so(client):
    shown = page(client, "/guidance/PROTO-PROBLEMS")
    assert shown.h1 == "Problems present"
    assert "do not contain this recommendation" in shown.visible


def test_a_citation_authored_without_url_takes_the_url_it_has_elsewhere_in_the_content(tmp_path):
    from service.content import load_folder
    from service.guidance import rule_index
    from tests.engine.helpers import plan, write

    def card(pid, rule, citation):
        action = {"id": pid, "title": f"Card {pid}", "trigger": [{"type": "named-event", "name": "patient-view"}],
                  "code": [{"coding": [{"system": "http://example.org/fhir/CodeSystem/rule", "code": rule}]}],
                  "documentation": [citation]}
        return plan([action], pid=pid)

    content = load_folder(write(tmp_path, card("a", "R1", {"type": "citation", "display": "G", "url": "https://g.example"}),
                                 card("b", "R2", {"type": "citation", "display": "G"}),
                                 card("c", "R3", {"type": "citation", "display": "H"})))
    rules = rule_index(content)
    assert [(r.label, r.url) for r in rules["R2"].evidence] == [("G", "https://g.example")]
    assert [(r.label, r.url) for r in rules["R3"].evidence] == [("H", None)]


def test_a_rule_in_two_plans_gathers_both(tmp_path):
    from service.app import create_app
    from service.content import load_folder
    from tests.engine.helpers import plan, write

    def card(pid, title, citation):
        action = {"id": pid, "title": title, "trigger": [{"type": "named-event", "name": "patient-view"}],
                  "code": [{"coding": [{"system": "http://example.org/fhir/CodeSystem/rule", "code": "R1",
                                        "display": "Rule one"}]}],
                  "documentation": [{"type": "citation", "display": citation, "url": f"https://example.org/{pid}"}]}
        pd = plan([action], pid=pid)
        pd["title"] = f"Plan {pid}"
        return pd

    content = load_folder(write(tmp_path / "content", card("a", "Card of plan a", "Guide A"),
                                card("b", "Card of plan b", "Guide B")))
    client = create_app({"database_url": f"sqlite:///{tmp_path / 'f.sqlite3'}"}, clock=lambda: T0,
                        content=content).test_client()
    shown = page(client, "/guidance/R1")
    assert shown.h1 == "Rule one"
    for text in ("Card of plan a", "Card of plan b", "Guide A", "Guide B", "Plan a", "Plan b"):
        assert text in shown.visible, text
    assert {"https://example.org/a", "https://example.org/b"} <= set(shown.hrefs)


def test_pages_are_self_contained(client):
    for path in ("/guidance", "/guidance/PROTO-HIGH"):
        response = client.get(path)
        shown = Page(response.get_data(as_text=True))
        assert not {"script", "link", "img", "iframe"} & set(shown.tags)
        assert "default-src 'none'" in response.headers["Content-Security-Policy"]


def test_unknown_rule_is_404_with_operation_outcome(client):
    response = client.get("/guidance/NO-SUCH-RULE")
    assert response.status_code == 404
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["code"] == "not-found" and "NO-SUCH-RULE" in body["issue"][0]["diagnostics"]


def test_index_lists_every_rule_in_the_content(client):
    shown = page(client, "/guidance")
    linked = {h.rsplit("/guidance/", 1)[1] for h in shown.hrefs if "/guidance/" in h}
    assert linked == set(RULES)
    for text in ("Synthetic plan for protocol tests", "Greeter", *RULES.values()):  # grouped by plan, by name
        assert text in shown.visible, text
    assert not [rid for rid in RULES if re.search(rf"(?<![\w-]){re.escape(rid)}(?![\w-])", shown.visible)]


def test_every_card_links_to_its_rule_page_and_the_page_exists(client):
    linked: dict[str, str] = {}
    for service, body in ((PATIENT_VIEW, patient_view_request()), (ORDER_SIGN, order_request("order-sign")),
                          (BOTH, patient_view_request())):
        for card in client.post(service, json=body).get_json()["cards"]:
            topic = card["source"]["topic"]
            links = [link for link in card.get("links", []) if link["label"] == LINK_LABEL]
            assert links == [{"label": LINK_LABEL, "type": "absolute",
                              "url": f"http://localhost/guidance/{topic['code']}"}], card["summary"]
            assert card["links"][-1] == links[0], "the rule page link comes after the content's own links"
            linked[links[0]["url"]] = topic["display"]
    assert len(linked) == 6
    for url, display in linked.items():
        assert page(client, url.removeprefix("http://localhost")).h1 == display


def test_public_base_url_sets_the_card_links_and_the_page_links(make_protocol_app):
    client = make_protocol_app(public_base_url="https://cds.example.org/dah/").test_client()
    cards = client.post(PATIENT_VIEW, json=patient_view_request()).get_json()["cards"]
    urls = [link["url"] for card in cards for link in card["links"] if link["label"] == LINK_LABEL]
    assert urls == [f"https://cds.example.org/dah/guidance/{rule}"
                    for rule in ("PROTO-VERY-HIGH", "PROTO-HIGH", "PROTO-PROBLEMS")]
    assert "https://cds.example.org/dah/guidance" in page(client, "/guidance/PROTO-HIGH").hrefs
    assert "https://cds.example.org/dah/guidance/PROTO-HIGH" in page(client, "/guidance").hrefs


# ---- escaping, on synthetic content whose text tries to inject markup ---------------------------

HOSTILE_ID = "R<1>&\"2"


def hostile_content(tmp_path: Path):
    from service.content import load_folder
    from tests.engine.helpers import plan, write

    action = {
        "id": "a", "title": "Card <b>bold</b>", "trigger": [{"type": "named-event", "name": "patient-view"}],
        "code": [{"coding": [{"system": "http://example.org/fhir/CodeSystem/rule", "code": HOSTILE_ID,
                              "display": "Name <script>alert('name')</script>"}]}],
        "documentation": [
            {"type": "citation", "display": "Other \"guideline\"", "url": "https://example.org/g?a=1&b=\"><script>"},
            {"type": "citation", "display": "Guideline <i>x</i>", "url": "javascript:alert('url')"},
            {"type": "justification", "label": "Source", "display": "Quote </blockquote><script>alert('q')</script>",
             "citation": "Cited <img src=x onerror=alert(1)>"},
            {"type": "justification", "label": "Choice made here", "display": "Choice \"><svg onload=alert(1)>"},
        ],
    }
    pd = plan([action], pid="hostile")
    pd["title"] = "Plan <script>alert('plan')</script>"
    return load_folder(write(tmp_path / "content", pd))


def test_content_text_is_escaped_and_only_web_urls_become_links(tmp_path):
    from service.app import create_app

    app = create_app({"database_url": f"sqlite:///{tmp_path / 'f.sqlite3'}"}, clock=lambda: T0,
                     content=hostile_content(tmp_path))
    client = app.test_client()
    card = client.post("/cds-services/hostile-patient-view", json=dict(patient_view_request(), prefetch={})).get_json()[
        "cards"
    ][0]
    url = card["links"][-1]["url"]
    assert url == "http://localhost/guidance/R%3C1%3E%26%222"

    for path in (url.removeprefix("http://localhost"), "/guidance"):
        html = client.get(path).get_data(as_text=True)
        shown = Page(html)
        assert not {"script", "img", "svg", "b", "i"} & set(shown.tags)
        assert "<script" not in html
        assert not [h for h in shown.hrefs if not h.startswith(("http://localhost/", "https://example.org/"))]
    rule = Page(client.get(url.removeprefix("http://localhost")).get_data(as_text=True))
    assert rule.h1 == "Name <script>alert('name')</script>"  # shown as text, exactly
    assert "Quote </blockquote><script>alert('q')</script>" in rule.visible
    assert "Guideline <i>x</i>" in rule.visible and "javascript:alert('url')" not in rule.hrefs
    assert "https://example.org/g?a=1&b=\"><script>" in rule.hrefs  # the attribute round-trips intact
    assert "Plan <script>alert('plan')</script>" in rule.visible
