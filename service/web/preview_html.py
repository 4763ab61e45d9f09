"""The preview and analytics pages as HTML, without Flask.

Rules:
- Every value that comes from content, cards, a scenario, the form or the feedback store is
  escaped (`html.escape`, quotes included) where it is written; nothing is inserted unescaped.
- Card `detail` is CDS Hooks GitHub-flavoured markdown (CDS Hooks 2.0 §Card Attributes); it is
  shown through `markdown()`, which escapes the text first and then builds a small set of
  elements (paragraphs, `-`/`*` lists, `**bold**`, `*italic*`, `` `code` ``, and
  `[text](url)` links whose URL is http or https); raw HTML in markdown stays text.
- Links (card links, source URLs, markdown links) are made only for http and https URLs, open
  in a new tab with `rel="noopener noreferrer"`; any other URL (javascript:, data:) is shown as
  text.
- The pages load only the preview's own script and style sheet (the policy is set by
  service.web.preview); there is no inline script or style.
- Cards show what an EHR shows (CDS Hooks 2.0 §Card Attributes): indicator colour, summary,
  detail, source, suggestions with their actions and resources, links, override reasons; the
  trace is beside each card.
- Quiet cards (left out because of a decision, service.hooks.suppression) are listed after each
  service's cards, greyed, outside the cards an EHR would show: why, until when, the override
  reason and the link to the rule page.  A card of a rule with a quiet policy has buttons that mark
  a decision on it (service.web.preview_quiet); they post the page's form again.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from service.hooks.call import TRACE_EXTENSION
from service.web.preview_quiet import decision
from service.web.preview_run import HOOKS, ORDER_HOOKS, Scenario, ServiceRun

INDICATORS = ("critical", "warning", "info")


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def safe_url(url: Any) -> str | None:
    """`url` when it is an absolute http(s) URL, else None."""
    if not isinstance(url, str):
        return None
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    return url.strip() if parts.scheme in ("http", "https") and parts.netloc else None


def link(url: Any, text: Any) -> str:
    href = safe_url(url)
    if href is None:
        return esc(text)
    return f'<a href="{esc(href)}" target="_blank" rel="noopener noreferrer">{esc(text)}</a>'


# ---- markdown (a safe subset) -----------------------------------------------------------------

_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_ITALIC = re.compile(r"(?<![*\w])[*_](?![*\s])(.+?)(?<![*\s])[*_](?![*\w])")
_BULLET = re.compile(r"^\s*[-*+]\s+")
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")


def _inline(escaped: str) -> str:
    """Inline markdown on text that is already escaped."""
    codes: list[str] = []

    def keep_code(match: re.Match[str]) -> str:
        codes.append(f"<code>{match.group(1)}</code>")
        return f"\0{len(codes) - 1}\0"

    def make_link(match: re.Match[str]) -> str:
        url = html.unescape(match.group(2))
        href = safe_url(url)
        if href is None:
            return match.group(0)
        return f'<a href="{esc(href)}" target="_blank" rel="noopener noreferrer">{match.group(1)}</a>'

    text = _CODE.sub(keep_code, escaped)
    text = _LINK.sub(make_link, text)
    text = _BOLD.sub(r"<strong>\1</strong>", text)
    text = _ITALIC.sub(r"<em>\1</em>", text)
    return re.sub(r"\0(\d+)\0", lambda m: codes[int(m.group(1))], text)


def markdown(text: Any) -> str:
    """The safe subset of markdown described in the module docstring, as HTML."""
    if not isinstance(text, str) or not text.strip():
        return ""
    out: list[str] = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = [line.rstrip() for line in block.split("\n") if line.strip()]
        if lines and all(_BULLET.match(line) for line in lines):
            items = "".join("<li>" + _inline(esc(_BULLET.sub("", line))) + "</li>" for line in lines)
            out.append(f"<ul>{items}</ul>")
        else:
            out.append("<p>" + "<br>".join(_inline(esc(line)) for line in lines) + "</p>")
    return "".join(out)


# ---- cards ------------------------------------------------------------------------------------


def _resource_text(resource: dict) -> str:
    for path in (("dosageInstruction", 0, "text"), ("code", "text"), ("medicationCodeableConcept", "text")):
        value: Any = resource
        for step in path:
            try:
                value = value[step]
            except (KeyError, IndexError, TypeError):
                value = None
                break
        if isinstance(value, str):
            return value
    return ""


def _suggestion(suggestion: dict) -> str:
    actions = []
    for action in suggestion.get("actions") or []:
        resource = action.get("resource") if isinstance(action.get("resource"), dict) else None
        what = f"{esc(action.get('type'))}: {esc(action.get('description'))}"
        if resource is not None:
            summary = esc(resource.get("resourceType")) + (f" - {esc(_resource_text(resource))}"
                                                            if _resource_text(resource) else "")
            what += (f'<details class="resource"><summary>{summary}</summary>'
                     f"<pre>{esc(json.dumps(resource, indent=2, ensure_ascii=False))}</pre></details>")
        elif action.get("resourceId"):
            what += f" ({esc(', '.join(map(str, action.get('resourceId') or [])))})"
        actions.append(f"<li>{what}</li>")
    recommended = ' <span class="recommended">recommended</span>' if suggestion.get("isRecommended") else ""
    return (f'<li class="suggestion"><button type="button" class="suggestion-label" disabled>'
            f"{esc(suggestion.get('label'))}</button>{recommended}<ul>{''.join(actions)}</ul></li>")


def _operands(condition: dict) -> str:
    """Each operand of a condition's `and` chain with its result (the service explains previews:
    ApplyContext.explain); the first one that is not true is marked, as `dah-cds run --trace` does."""
    rows, failed = [], False
    for operand in condition.get("operands") or []:
        if "error" in operand:
            shown = f'<span class="error">error: {esc(operand["error"])}</span>'
            first = not failed
        else:
            result = operand.get("result")
            value = result[0] if isinstance(result, list) and len(result) == 1 else result  # a FHIRPath singleton
            shown = f"<strong>{esc(json.dumps(value, ensure_ascii=False))}</strong>"
            first = not failed and value is not True
        failed = failed or first
        mark = ' <span class="first-failing">first failing</span>' if first else ""
        rows.append(f"<li><code>{esc(operand.get('expression'))}</code> = {shown}{mark}</li>")
    return f'<ul class="operands">{"".join(rows)}</ul>' if rows else ""


def _condition(condition: dict) -> str:
    kind = f' <span class="muted">({esc(condition.get("kind"))})</span>' if condition.get("kind") else ""
    resources = condition.get("resources") or []
    used = f' <span class="muted">from {esc(", ".join(map(str, resources)))}</span>' if resources else ""
    return (f"<li><code>{esc(condition.get('expression'))}</code> = "
            f"<strong>{esc(json.dumps(condition.get('result')))}</strong>{kind}{used}{_operands(condition)}</li>")


def _trace(entries: list[dict]) -> str:
    if not entries:
        return '<p class="muted">No trace.</p>'
    items = []
    for entry in entries:
        conditions = "".join(_condition(c) for c in entry.get("conditions") or [])
        rest = {k: v for k, v in entry.items() if k not in ("action", "path", "conditions", "applied")}
        more = (f"<details><summary>more</summary><pre>{esc(json.dumps(rest, indent=2, ensure_ascii=False))}"
                "</pre></details>") if rest else ""
        items.append(f'<li><span class="action-id">{esc(entry.get("action"))}</span> '
                     f'<span class="muted">{esc(entry.get("path"))}</span> '
                     f"applied: <strong>{esc(entry.get('applied'))}</strong>"
                     f"<ul>{conditions}</ul>{more}</li>")
    return f'<ul class="trace-list">{"".join(items)}</ul>'


def card_html(card: dict, service: str, controls: str = "") -> str:
    indicator = card.get("indicator") if card.get("indicator") in INDICATORS else "info"
    source = card.get("source") or {}
    topic = source.get("topic") or {}
    rule = topic.get("code") or ""
    parts = [
        f'<div class="card-row"><article class="card indicator-{indicator}" data-indicator="{indicator}" '
        f'data-rule="{esc(rule)}" data-service="{esc(service)}">',
        f'<div class="stripe"></div><div class="card-body"><header><span class="indicator">{esc(indicator)}</span>'
        f'<h3 class="summary">{esc(card.get("summary"))}</h3></header>',
    ]
    if card.get("detail"):
        parts.append(f'<div class="detail">{markdown(card.get("detail"))}</div>')
    parts.append(f'<p class="source">Source: {link(source.get("url"), source.get("label"))}'
                 + (f' <span class="muted">{esc(topic.get("display"))}</span>' if topic.get("display") else "")
                 + "</p>")
    suggestions = card.get("suggestions") or []
    if suggestions:
        behaviour = card.get("selectionBehavior")
        parts.append(f'<ul class="suggestions" data-selection="{esc(behaviour)}">'
                     + "".join(_suggestion(s) for s in suggestions) + "</ul>")
    links = card.get("links") or []
    if links:
        parts.append('<ul class="links">' + "".join(
            f"<li>{link(x.get('url'), x.get('label'))} <span class=\"muted\">{esc(x.get('type'))}</span></li>"
            for x in links) + "</ul>")
    reasons = card.get("overrideReasons") or []
    if reasons:
        options = "".join(f"<option>{esc(r.get('display') or r.get('code'))}</option>" for r in reasons)
        parts.append(f'<p class="override">Dismiss: <select class="override-reasons" aria-label="override reason">'
                     f"{options}</select></p>")
    parts.append(controls)
    parts.append("</div></article>")
    trace = (card.get("extension") or {}).get(TRACE_EXTENSION) or []
    parts.append(f'<aside class="trace"><details open><summary>Why (trace)</summary>{_trace(trace)}</details></aside>')
    parts.append("</div>")
    return "".join(parts)


QUIET_REASONS = {"overridden": "overridden", "accepted": "a suggestion was accepted and its order is active",
                 "repeat": "already shown at order-select for these draft orders"}


def _mark(value: dict[str, Any], text: str, kind: str) -> str:
    """A button that posts the page's form with one more decision."""
    return (f'<button type="submit" form="preview-form" name="decide" class="mark mark-{kind}" '
            f'value="{esc(json.dumps(value, ensure_ascii=False))}">{esc(text)}</button>')


def decide_controls(card: dict, result: ServiceRun) -> str:
    """The buttons that mark a decision on a card of a rule with a quiet policy (else nothing)."""
    rule = ((card.get("source") or {}).get("topic") or {}).get("code")
    if result.scope is None or result.at is None or rule not in result.quiet_rules:
        return ""
    buttons = [_mark(decision(rule, result.scope, result.at, "overridden", r), "Mark overridden: "
                     + str(r.get("display") or r.get("code")), "overridden")
               for r in card.get("overrideReasons") or [] if isinstance(r, dict)]
    if not buttons:
        buttons.append(_mark(decision(rule, result.scope, result.at, "overridden"), "Mark overridden", "overridden"))
    for s in card.get("suggestions") or []:
        orders = result.orders.get((str(card.get("uuid")), str(s.get("uuid"))), [])
        buttons.append(_mark(decision(rule, result.scope, result.at, "accepted", orders=orders),
                             f"Mark accepted: {s.get('label')}", "accepted"))
    return f'<p class="decide">Try a decision: {" ".join(buttons)}</p>'


def quiet_html(quiet: dict, service: str) -> str:
    """A card left out as quiet: greyed, not among the cards an EHR would show."""
    indicator = quiet.get("indicator") if quiet.get("indicator") in INDICATORS else "info"
    page = quiet.get("link") or {}
    parts = [f'<article class="quiet-card indicator-{indicator}" data-rule="{esc(quiet.get("rule"))}" '
             f'data-reason="{esc(quiet.get("reason"))}" data-service="{esc(service)}">',
             f'<header><span class="indicator">{esc(indicator)}</span> <span class="summary">'
             f'{esc(quiet.get("summary"))}</span></header>',
             f'<p>Quiet: <span class="reason">{esc(QUIET_REASONS.get(str(quiet.get("reason")), quiet.get("reason")))}'
             f'</span>, until <time class="until">{esc(quiet.get("until"))}</time>'
             + (f'; override reason <span class="override-reason">{esc(quiet.get("overrideReason"))}</span>'
                if quiet.get("overrideReason") else "") + "</p>"]
    if page.get("url"):
        parts.append(f'<p class="rule-page">{link(page.get("url"), page.get("label") or "Rule page")}</p>')
    parts.append("</article>")
    return "".join(parts)


def _decisions(form: dict[str, str]) -> str:
    """The decisions marked on the page, carried by the form, and the button to forget them."""
    hidden = f'<input type="hidden" name="decisions" id="decisions" value="{esc(form.get("decisions", ""))}">'
    try:
        marked = json.loads(form.get("decisions") or "[]")
    except ValueError:
        marked = []
    if not isinstance(marked, list) or not marked:
        return hidden
    items = "".join(f'<li>{esc(d.get("rule"))}: {esc(d.get("outcome"))}'
                    + (f' ({esc((d.get("reason") or {}).get("code"))})' if d.get("reason") else "")
                    + f' <span class="muted">{esc(d.get("at"))}, patient {esc(d.get("patient"))}</span></li>'
                    for d in marked if isinstance(d, dict))
    return (f'{hidden}<div id="decisions-marked" class="wide"><p>Decisions marked on this page (the service '
            f'records none of them): </p><ul>{items}</ul><button type="submit" name="forget" value="1" '
            f'id="forget">Forget them</button></div>')


# ---- pages ------------------------------------------------------------------------------------


def _page(title: str, body: str) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{esc(title)}</title>"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<link rel="stylesheet" href="/preview/static/preview.css">'
            '<script src="/preview/static/preview.js" defer></script></head>'
            f'<body><nav><a href="/preview">Preview</a> <a href="/preview/analytics">Feedback analytics</a> '
            f'<a href="/guidance">Rules</a> <a href="/status/content">Content status</a></nav>{body}</body></html>')


def _options(values: Iterable[tuple[str, str]], selected: str) -> str:
    return "".join(f'<option value="{esc(v)}"{" selected" if v == selected else ""}>{esc(label)}</option>'
                   for v, label in values)


def preview_page(form: dict[str, str], scenarios: list[Scenario], services: list[tuple[str, tuple[str, ...]]],
                 runs: list[ServiceRun] | None = None, error: str | None = None) -> str:
    """The form (sticky with `form`'s values) and, after a run, the cards of each service."""
    groups: dict[str, list[Scenario]] = {}
    for scenario in scenarios:
        groups.setdefault(scenario.id.split("/", 1)[0], []).append(scenario)
    scenario_options = ['<option value="">(paste a Bundle below)</option>']
    for group, items in groups.items():
        options = "".join(
            f'<option value="{esc(s.id)}" data-hook="{esc(s.hook)}" data-service="{esc(s.service)}" '
            f'data-now="{esc(s.now)}"{" selected" if s.id == form.get("scenario") else ""}>'
            f"{esc(s.id.split('/', 1)[1])}: {esc(s.description[:120])}</option>" for s in items)
        scenario_options.append(f'<optgroup label="{esc(group)}">{options}</optgroup>')
    hook = form.get("hook") or "patient-view"
    service_options = [("", "every service of the hook")] + [(sid, f"{sid} ({', '.join(hooks)})")
                                                             for sid, hooks in services]
    orders_hidden = "" if hook in ORDER_HOOKS else " hidden"
    body = [
        "<h1>Preview</h1>",
        '<form method="post" action="/preview" id="preview-form" class="controls">',
        f'<label>Scenario patient <select name="scenario" id="scenario">{"".join(scenario_options)}</select></label>',
        f'<label>Hook <select name="hook" id="hook">{_options(((h, h) for h in HOOKS), hook)}</select></label>',
        f'<label>Service <select name="service" id="service">{_options(service_options, form.get("service", ""))}'
        "</select></label>",
        f'<label>Date (the service\'s clock) <input name="now" id="now" value="{esc(form.get("now", ""))}" '
        'placeholder="2026-03-01T12:00:00Z"></label>',
        f'<label class="wide">Patient data: a FHIR Bundle (used when no scenario is chosen)'
        f'<textarea name="bundle" id="bundle" rows="6">{esc(form.get("bundle", ""))}</textarea></label>',
        f'<label class="wide" id="orders-field"{orders_hidden}>Draft orders (a Bundle; empty: the scenario\'s own)'
        f'<textarea name="draft_orders" id="draft-orders" rows="4">{esc(form.get("draft_orders", ""))}</textarea>'
        "</label>",
        _decisions(form),
        '<button type="submit" id="run">Run</button></form>',
    ]
    if error:
        body.append(f'<p class="error" role="alert">{esc(error)}</p>')
    if runs is not None:
        body.append('<section id="results">')
        for result in runs:
            body.append(f'<h2 class="service">{esc(result.service)}</h2>')
            if result.error:
                body.append(f'<p class="error" role="alert">{esc(result.error)}</p>')
            elif not result.cards:
                body.append('<p class="muted no-cards">No cards.</p>')
            body.extend(card_html(card, result.service, decide_controls(card, result)) for card in result.cards)
            if result.quiet:
                body.append(f'<div class="quiet-cards"><h3>Quiet: not shown ({len(result.quiet)})</h3>'
                            + "".join(quiet_html(q, result.service) for q in result.quiet) + "</div>")
        body.append("</section>")
    return _page("Preview", "".join(body))


def analytics_page(rows: list[dict[str, Any]], since: str, until: str, error: str | None = None) -> str:
    """Per rule and week: shown, accepted, overridden, rates, override reasons."""
    body = [
        "<h1>Feedback analytics</h1>",
        '<form method="get" action="/preview/analytics" class="controls">',
        f'<label>From <input name="since" value="{esc(since)}" placeholder="2026-03-01"></label>',
        f'<label>To <input name="until" value="{esc(until)}" placeholder="2026-03-31"></label>',
        '<button type="submit">Show</button></form>',
    ]
    if error:
        body.append(f'<p class="error" role="alert">{esc(error)}</p>')
    if not rows:
        body.append('<p class="muted">No cards were issued in this period.</p>')
    else:
        body.append('<table id="analytics"><thead><tr><th>Rule</th><th>Week</th><th>Shown</th><th>Accepted</th>'
                    "<th>Overridden</th><th>Accepted %</th><th>Overridden %</th><th>Override reasons</th>"
                    "<th>Not shown again</th></tr></thead><tbody>")
        for r in rows:
            reasons = "".join(f"<li>{esc(reason)}: {esc(n)}</li>" for reason, n in r["override_reasons"].items())
            body.append(
                f'<tr data-rule="{esc(r["rule"])}"><td>{esc(r["rule"])}</td><td>{esc(r.get("week"))}</td>'
                f'<td>{esc(r["issued"])}</td><td>{esc(r["accepted"])}</td><td>{esc(r["overridden"])}</td>'
                f'<td>{100 * r["acceptance_rate"]:.1f}</td><td>{100 * r["override_rate"]:.1f}</td>'
                f'<td><ul class="reasons">{reasons}</ul></td><td>{esc(r.get("suppressed", 0))}</td></tr>')
        body.append("</tbody></table>")
    return _page("Feedback analytics", "".join(body))
