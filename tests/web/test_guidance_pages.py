"""Rule pages: GET /guidance/{rule-id} shows the rule's name, the source's own words, the evidence
and the choices made, all from the content and all escaped; GET /guidance lists every rule; every
card links to the page of its rule, and that page exists."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.conftest import CONTENT, T0

GOLDENS = sorted((CONTENT / "tests").glob("*/*.response.json"))
LINK_LABEL = "Why this recommendation"
CASE = json.loads((CONTENT / "tests" / "DAH-05" / "p01-gpa-hypoxemic.json").read_text())


def content_rules() -> dict[str, list[dict]]:
    """rule id -> the card actions (raw JSON) that carry it, read straight from the content files."""
    rules: dict[str, list[dict]] = {}

    def walk(actions):
        for action in actions:
            titled = action.get("title") or any(
                dv.get("path") == "action.title" for dv in action.get("dynamicValue", [])
            )
            if titled and action.get("code"):
                rules.setdefault(action["code"][0]["coding"][0]["code"], []).append(action)
            walk(action.get("action", []))

    for path in sorted(CONTENT.glob("PlanDefinition-*.json")):
        walk(json.loads(path.read_text()).get("action", []))
    return rules


RULES = content_rules()


class Page(HTMLParser):
    """What a reader sees: the text (not attributes, not the style sheet), the hrefs, the tags."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.text, self.hrefs, self.tags, self._skip, self._h1, self.h1 = [], [], [], 0, False, ""
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.hrefs += [v for k, v in attrs if k == "href"]
        self._skip += tag == "style"
        self._h1 = tag == "h1"

    def handle_endtag(self, tag):
        self._skip -= tag == "style"
        self._h1 = False if tag == "h1" else self._h1

    def handle_data(self, data):
        if not self._skip:
            self.text.append(data)
        if self._h1:
            self.h1 += data

    @property
    def visible(self) -> str:
        return " ".join(self.text)


def page(client, path: str) -> Page:
    response = client.get(path)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    return Page(response.get_data(as_text=True))


def test_rule_page_shows_the_name_the_source_quotes_and_the_citation(client):
    actions = RULES["DAH-05"]
    docs = actions[0]["documentation"]
    quotes = [d["display"] for d in docs if d["type"] == "justification" and d["label"] == "Source"]
    choices = [d["display"] for d in docs if d["type"] == "justification" and d["label"] == "Choice made here"]
    citation = next(d for d in docs if d["type"] == "citation")

    shown = page(client, "/guidance/DAH-05")

    assert shown.h1 == actions[0]["code"][0]["coding"][0]["display"] == "Plasma exchange for DAH with hypoxemia"
    assert quotes and all(q in shown.visible for q in quotes)
    assert "Typically 7 exchanges over 14 days" in shown.visible  # verbatim from the DAH source
    assert citation["display"] in shown.visible and citation["url"] in shown.hrefs
    assert choices and all(c in shown.visible for c in choices)
    assert actions[0]["title"] in shown.visible


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


def test_a_rule_in_two_plans_gathers_both(client):
    citations = {d["display"] for a in RULES["HGB-TRANSFUSE"] for d in a["documentation"] if d["type"] == "citation"}
    titles = [a["title"] for a in RULES["HGB-TRANSFUSE"]]
    shown = page(client, "/guidance/HGB-TRANSFUSE")
    assert len(citations) >= 2 and all(c in shown.visible for c in citations)
    assert len(titles) == 3 and all(t in shown.visible for t in titles)  # one DAH and two IPH cards
    assert "Idiopathic pulmonary hemosiderosis" in shown.visible  # the iph plan's title


@pytest.mark.parametrize("rule_id", sorted(RULES))
def test_every_rule_page_names_the_rule_and_keeps_internal_ids_out_of_the_text(client, rule_id):
    shown = page(client, f"/guidance/{rule_id}")
    display = RULES[rule_id][0]["code"][0]["coding"][0]["display"]
    assert shown.h1 == display
    text = shown.visible
    assert not re.search(r"\bJ-\d+\b|\bseed 00\d", text, re.IGNORECASE)
    named = [rid for rid in RULES if re.search(rf"(?<![\w-]){re.escape(rid)}(?![\w-])", text)]
    assert named == []
    has_quote = any(d.get("label") == "Source" for a in RULES[rule_id] for d in a.get("documentation", []))
    assert has_quote or "do not contain this recommendation" in text


def test_pages_are_self_contained(client):
    for path in ("/guidance", "/guidance/SAFE-PCP"):
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
    assert "Safety with immunosuppression for DAH, SLE-DAH and IPH" in shown.visible  # grouped by plan
    assert not [rid for rid in RULES if re.search(rf"(?<![\w-]){re.escape(rid)}(?![\w-])", shown.visible)]


def test_every_scenario_card_links_to_its_rule_page_and_the_page_exists(client):
    linked: dict[str, str] = {}
    for golden in GOLDENS:
        for card in json.loads(golden.read_text())["cards"]:
            topic = card["source"]["topic"]
            links = [link for link in card.get("links", []) if link["label"] == LINK_LABEL]
            assert links == [{"label": LINK_LABEL, "type": "absolute",
                              "url": f"http://localhost/guidance/{topic['code']}"}], golden.name
            assert card["links"][-1] == links[0], "the rule page link comes after the content's own links"
            linked[links[0]["url"]] = topic["display"]
    assert len(linked) >= 40
    for url, display in linked.items():
        assert page(client, url.removeprefix("http://localhost")).h1 == display


def test_public_base_url_sets_the_card_links_and_the_page_links(tmp_path, content):
    from service.app import create_app

    app = create_app({"database_url": f"sqlite:///{tmp_path / 'f.sqlite3'}", "public_base_url": "https://cds.example.org/dah/"},
                     clock=lambda: T0, content=content)
    client = app.test_client()
    cards = client.post("/cds-services/dah-patient-view", json=CASE["request"]).get_json()["cards"]
    urls = {link["url"] for card in cards for link in card["links"] if link["label"] == LINK_LABEL}
    assert "https://cds.example.org/dah/guidance/DAH-05" in urls
    assert "https://cds.example.org/dah/guidance" in page(client, "/guidance/DAH-05").hrefs
    assert "https://cds.example.org/dah/guidance/DAH-05" in page(client, "/guidance").hrefs


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
    card = client.post("/cds-services/hostile-patient-view", json=dict(CASE["request"], prefetch={})).get_json()[
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
