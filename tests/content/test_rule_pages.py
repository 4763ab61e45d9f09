"""The rule pages of the clinical content (GET /guidance, /guidance/{rule-id}): every rule of
plandefinitions/ has a page that names it, quotes its source and keeps internal ids out of the
text; the index lists every rule; every card of every scenario golden links to its rule's page.
How a page is built and escaped is shown on synthetic content in tests/web/test_guidance_pages.py."""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import CONTENT
from tests.html_page import LINK_LABEL, page

GOLDENS = sorted((CONTENT / "tests").glob("*/*.response.json"))


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


def test_index_lists_every_rule_in_the_content(client):
    shown = page(client, "/guidance")
    linked = {h.rsplit("/guidance/", 1)[1] for h in shown.hrefs if "/guidance/" in h}
    assert linked == set(RULES)
    assert "Safety with immunosuppression for DAH, lupus DAH and IPH" in shown.visible  # grouped by plan
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
