"""The workbench pages (service.web.preview): who may reach them, a scenario and a pasted Bundle run
into the cards an EHR would show (compared with the scenario's golden), everything escaped (a
malicious Bundle), nothing recorded, and the feedback analytics.  The same pages in a real
browser: tests/web/test_preview_browser.py."""

from __future__ import annotations

import html
import json
import re

import pytest
from sqlalchemy import func, select

from service.app import create_app
from service.config import load_config
from service.feedback.store import issued_cards
from service.web.preview import preview_enabled
from service.web.preview_html import card_html, markdown
from tests.conftest import CONTENT, T0

CASE_ID = "DAH-05/p01-gpa-hypoxemic"
CASE = CONTENT / "tests" / "DAH-05" / "p01-gpa-hypoxemic.json"
FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def app(tmp_path, content):
    """The workbench previews the guidance itself: the app on the bundled content and its scenario
    patients (not the synthetic protocol content of this folder's other tests)."""
    app = create_app({"database_url": f"sqlite:///{tmp_path / 'feedback.sqlite3'}"}, clock=lambda: T0, content=content)
    app.config.update(TESTING=True)
    return app


def run(client, **form) -> tuple[int, str]:
    response = client.post("/preview", data=form, content_type=FORM)
    return response.status_code, response.get_data(as_text=True)


def cards_in(page: str) -> list[tuple[str, str, str]]:
    """(rule, indicator, summary) of every card on the page, in order."""
    found = re.findall(r'<article class="card indicator-(\w+)" data-indicator="\w+" data-rule="([^"]*)"[^>]*>'
                       r'.*?<h3 class="summary">(.*?)</h3>', page)
    return [(rule, indicator, html.unescape(summary)) for indicator, rule, summary in found]


def golden_cards() -> list[tuple[str, str, str]]:
    golden = json.loads(CASE.with_name("p01-gpa-hypoxemic.response.json").read_text(encoding="utf-8"))
    return [(c["source"]["topic"]["code"], c["indicator"], c["summary"]) for c in golden["cards"]]


# ---- who may reach it ---------------------------------------------------------------------------


def test_on_by_default_only_when_bound_to_loopback_and_cds_preview_decides_otherwise():
    assert preview_enabled(load_config({"host": "127.0.0.1"}, environ={}))
    assert preview_enabled(load_config({"host": "::1"}, environ={}))
    assert not preview_enabled(load_config({"host": "0.0.0.0"}, environ={}))
    assert preview_enabled(load_config({"host": "0.0.0.0"}, environ={"CDS_PREVIEW": "true"}))
    assert not preview_enabled(load_config({"host": "127.0.0.1"}, environ={"CDS_PREVIEW": "false"}))


def test_switched_off_every_preview_path_is_a_404(tmp_path, content):
    app = create_app({"database_url": f"sqlite:///{tmp_path / 'f.sqlite3'}", "preview": False}, clock=lambda: T0,
                     content=content)
    client = app.test_client()
    for path in ("/preview", "/preview/analytics", "/preview/static/preview.js"):
        assert client.get(path).status_code == 404
    assert client.post("/preview", data={"scenario": CASE_ID}, content_type=FORM).status_code == 404


@pytest.mark.parametrize("how", [
    {"environ_base": {"REMOTE_ADDR": "10.1.2.3"}},  # another machine
    {"headers": {"X-Forwarded-For": "203.0.113.9"}},  # through a proxy on this machine
    {"headers": {"Forwarded": "for=203.0.113.9"}},
    {"headers": {"Host": "rebound.example.org"}},  # DNS rebinding: a foreign name resolving to 127.0.0.1
])
def test_only_callers_on_this_machine_reach_it(client, how):
    response = client.get("/preview", **how)
    assert response.status_code == 403
    assert response.get_json()["resourceType"] == "OperationOutcome"


def test_a_post_must_be_this_pages_form(client):
    assert client.post("/preview", json={"scenario": CASE_ID}).status_code == 403
    response = client.post("/preview", data={"scenario": CASE_ID}, content_type=FORM,
                           headers={"Origin": "https://attacker.example"})
    assert response.status_code == 403
    response = client.post("/preview", data={"scenario": CASE_ID}, content_type=FORM,
                           headers={"Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 403
    response = client.post("/preview", data={"scenario": CASE_ID, "service": "dah-patient-view"}, content_type=FORM,
                           headers={"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"})
    assert response.status_code == 200


def test_the_page_lists_the_scenarios_and_loads_only_its_own_script(client):
    response = client.get("/preview")
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and response.mimetype == "text/html"
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "same-origin", "else browsers post the form with Origin: null"
    assert f'value="{CASE_ID}" data-hook="patient-view" data-service="dah-patient-view"' in page
    assert "<script>" not in page and re.search(r"<script src=\"/preview/static/preview.js\"", page)
    script = client.get("/preview/static/preview.js")
    assert script.status_code == 200 and script.mimetype == "text/javascript"
    assert client.get("/preview/static/..%2Fpreview.py").status_code == 404


# ---- runs ---------------------------------------------------------------------------------------


def test_a_scenario_gives_the_cards_of_its_golden_with_the_trace_and_records_nothing(client, app):
    status, page = run(client, scenario=CASE_ID, hook="patient-view", service="dah-patient-view", now="")
    assert status == 200, page
    assert cards_in(page) == golden_cards()
    assert 'value="2026-03-01T12:00:00Z"' in page, "the case's own moment, not today"
    assert page.count('<aside class="trace">') == len(golden_cards())
    assert "applied: <strong>True</strong>" in page
    assert '<button type="button" class="suggestion-label" disabled>' in page
    assert '<select class="override-reasons"' in page
    with app.extensions["cds"].store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(issued_cards)).scalar() == 0


def test_a_pasted_bundle_runs_every_service_of_the_hook(client):
    case = json.loads(CASE.read_text(encoding="utf-8"))
    entries = []
    for value in case["request"]["prefetch"].values():
        if isinstance(value, dict) and value.get("resourceType") == "Bundle":
            entries += [{"resource": e["resource"]} for e in value.get("entry") or []]
        elif isinstance(value, dict):
            entries.append({"resource": value})
    bundle = json.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries})
    status, page = run(client, bundle=bundle, hook="patient-view", now=case["now"])
    assert status == 200, page
    services = re.findall(r'<h2 class="service">(.*?)</h2>', page)
    assert "dah-patient-view" in services and "safety-patient-view" in services
    rules = [rule for rule, _, _ in cards_in(page)]
    assert "DAH-05" in rules and "DAH-01" in rules


def test_an_order_hook_scenario_uses_its_draft_orders_or_the_ones_pasted(client):
    case_id = "DC-DOSE-MISSING/cyc-without-dose-sign"
    golden = json.loads((CONTENT / "tests" / f"{case_id}.response.json").read_text(encoding="utf-8"))
    status, page = run(client, scenario=case_id, hook="order-sign", service="dose-checks-order-sign")
    assert status == 200, page
    assert cards_in(page) == [(c["source"]["topic"]["code"], c["indicator"], c["summary"]) for c in golden["cards"]]
    assert 'id="orders-field">' in page, "the draft-orders field shows on an order hook"

    no_orders = {"resourceType": "Bundle", "type": "collection", "entry": []}
    status, page = run(client, scenario=case_id, hook="order-sign", service="dose-checks-order-sign",
                       draft_orders=json.dumps(no_orders))
    assert status == 200 and cards_in(page) == [], "the pasted (empty) orders replace the case's"
    assert 'class="error"' not in page and 'class="muted no-cards"' in page


def test_bad_input_is_said_on_the_page(client):
    status, page = run(client, hook="patient-view")
    assert status == 400 and "choose a scenario patient or paste a Bundle" in page
    status, page = run(client, bundle='{"resourceType": "Bundle", "entry": []}', hook="order-sign")
    assert status == 400 and "has no Patient" in page
    status, page = run(client, scenario=CASE_ID, hook="order-sign", service="dah-patient-view")
    assert status == 400 and "does not answer order-sign" in page
    status, page = run(client, scenario="../../etc/passwd", hook="patient-view")
    assert status == 400 and "no such scenario" in page
    status, page = run(client, scenario=CASE_ID, now="yesterday")
    assert status == 400 and "not ISO 8601" in page
    status, page = run(client, scenario=CASE_ID, hook="order-sign", service="dose-checks-order-sign",
                       draft_orders='{"resourceType": "Patient"}')
    assert status == 400 and "a FHIR Bundle of the orders" in page


def test_content_status_names_the_content_served(client, app):
    status = client.get("/status/content").get_json()
    assert status["mode"] == "fixed" and status["version"].startswith("sha256:") and status["lastError"] is None
    assert "dah-patient-view" in status["services"]
    assert client.get("/status/content", environ_base={"REMOTE_ADDR": "10.1.2.3"}).status_code == 401, \
        "open mode serves this machine only, the status too"


# ---- escaping -----------------------------------------------------------------------------------

SCRIPT = "<script>alert(1)</script>"


def test_a_malicious_bundle_is_shown_as_text_only(client):
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1970-01-01",
                      "name": [{"text": SCRIPT}]}},
        {"resource": {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p1"},
                      "code": {"text": '"><img src=x onerror=alert(2)>'}}}]}
    text = json.dumps(bundle) + "</textarea>" + SCRIPT  # not JSON: echoed back in the form with the error
    status, page = run(client, bundle=text, hook="patient-view", now="2026-03-01")
    assert status == 400
    assert SCRIPT not in page and "<img src=x" not in page and "</textarea><script>" not in page
    assert "&lt;/textarea&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in page

    status, page = run(client, bundle=json.dumps(bundle), hook="patient-view", now="2026-03-01")
    assert status == 200
    assert SCRIPT not in page and "<img src=x" not in page
    assert "<script" not in page.replace('<script src="/preview/static/preview.js" defer></script>', "")


def test_card_text_and_links_are_escaped_and_only_http_links_are_links():
    card = {"summary": SCRIPT, "indicator": "critical\" onmouseover=\"x",
            "detail": "**a** <b>b</b> [x](javascript:alert(1)) [ok](https://example.org/a?b=1&c=\"2\")"
                      "\n\n- one\n- <i>two</i>",
            "source": {"label": "<b>src</b>", "url": "javascript:alert(1)", "topic": {"code": 'R"1'}},
            "links": [{"label": "l<", "url": "data:text/html,<script>", "type": "absolute"}],
            "overrideReasons": [{"display": "</option><script>"}],
            "suggestions": [{"label": "<s>", "actions": [{"type": "create", "description": "<d>",
                                                          "resource": {"resourceType": "X<", "note": SCRIPT}}]}]}
    out = card_html(card, "svc<")
    assert "<script" not in out and "<b>" not in out and "<i>" not in out and "<s>" not in out
    assert "javascript:" not in out.replace("[x](javascript:alert(1))", "")
    assert 'href="data:' not in out
    assert 'class="card indicator-info" data-indicator="info"' in out, "an unknown indicator is shown as info"
    assert 'data-rule="R&quot;1"' in out
    assert '<a href="https://example.org/a?b=1&amp;c=&quot;2&quot;"' in out
    assert markdown("**a** and *b* `c<`\n\n- x\n- y") == (
        "<p><strong>a</strong> and <em>b</em> <code>c&lt;</code></p><ul><li>x</li><li>y</li></ul>")


# ---- analytics ----------------------------------------------------------------------------------


def test_analytics_show_per_rule_and_week_with_override_reasons(client, app):
    case = json.loads(CASE.read_text(encoding="utf-8"))
    cards = client.post("/cds-services/dah-patient-view", json=case["request"]).get_json()["cards"]
    card = next(c for c in cards if c.get("overrideReasons"))
    reason = card["overrideReasons"][0]
    client.post("/cds-services/dah-patient-view/feedback", json={"feedback": [
        {"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-03-01T12:01:00Z",
         "overrideReason": {"reason": reason, "userComment": SCRIPT}}]})
    response = client.get("/preview/analytics")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    row = re.search(rf'<tr data-rule="{card["source"]["topic"]["code"]}">(.*?)</tr>', page).group(1)
    cells = re.findall(r"<td>(.*?)</td>", row)
    assert cells[1].startswith(str(__import__("datetime").date.today().isocalendar()[0]) + "-W")
    assert cells[2:5] == ["1", "0", "1"] and html.escape(reason["display"]) + ": 1" in cells[7]
    assert SCRIPT not in page and "alert" not in page, "comments are never shown"
    assert client.get("/preview/analytics?since=2000-01-01&until=2000-01-31").get_data(as_text=True).count(
        "No cards were issued") == 1
    assert client.get("/preview/analytics?since=last+week").status_code == 400


def test_the_trace_beside_a_card_shows_each_operand_of_its_condition(client):
    """The preview explains (ApplyContext.explain): DAH-05's `and` chain, operand by operand, with the
    resources behind it; a card's operands are all true (it fired), so none is marked as failing."""
    status, page = run(client, scenario=CASE_ID, hook="patient-view", service="dah-patient-view", now="")
    assert status == 200, page
    operands = re.findall(r'<ul class="operands">(.*?)</ul>', page, re.S)
    assert operands, "no operands in the trace"
    dah05 = next(o for o in operands if "%hypoxemia" in o)
    assert [html.unescape(e) for e in re.findall(r"<code>(.*?)</code> = <strong>true</strong>", dah05)] == [
        "%dahAcute", "%hypoxemia", "%iph.not()", "%sle.not()", "%antiGbm.not()", "%plexRecent.not()"]
    assert "first failing" not in page
    assert re.search(r'<span class="muted">from [^<]*Observation/', page), "the resources behind a condition"


def test_the_first_operand_that_is_not_true_is_marked_once():
    from service.web.preview_html import _operands

    shown = _operands({"operands": [{"expression": "%a", "result": [True]}, {"expression": "%b", "result": []},
                                    {"expression": "%c<x>", "error": "variable %c failed"}]})
    assert re.findall(r"<code>(.*?)</code>", shown) == ["%a", "%b", "%c&lt;x&gt;"]
    assert shown.count("first failing") == 1 and shown.index("first failing") < shown.index("%c")
