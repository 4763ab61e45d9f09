"""Rule pages as plain HTML: one page per rule, and an index of all rules by PlanDefinition.

Rules of the output:
- every piece of content text is escaped with html.escape (quote=True), attribute values too;
  nothing from the content is ever interpreted as markup;
- a link is written only for an http(s) URL; any other URL (javascript:, data:, relative) is
  shown as text;
- one self-contained document: a little inline CSS, no scripts, no external assets;
- rule ids appear only in URLs, never in the text (the content's names and words do the talking).
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape
from urllib.parse import urlsplit

from service.guidance.rules import PlanRules, Reference, Rule

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;line-height:1.5;color:#1b1b1b;
margin:0;background:#fff}
main{max-width:46rem;margin:0 auto;padding:1.5rem 1rem 3rem}
h1{font-size:1.6rem;margin:.5rem 0}
h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
blockquote{margin:0;padding:.4rem .9rem;border-left:4px solid #5b7db1;background:#f4f7fb}
figure{margin:0 0 1rem}
figcaption{font-size:.85rem;color:#555;margin:.2rem 0 0 1rem}
.meta{color:#555;margin:.2rem 0}
.status{display:inline-block;background:#fff4d6;border:1px solid #e6c65c;padding:.1rem .5rem;border-radius:.3rem}
nav a{font-size:.9rem}
li{margin:.3rem 0}
"""

NO_QUOTE = "The source summaries do not contain this recommendation; it rests on the evidence and choices below."


def rule_page(rule: Rule, index_url: str) -> str:
    """The page of one rule."""
    body = [f'<nav><a href="{_text(index_url)}">All rules</a></nav>',
            f"<h1>{_text(rule.name)}</h1>",
            f'<p class="meta">Part of: {_text("; ".join(rule.plans))}</p>']
    status = _status(rule.statuses)
    if status:
        body.append(f'<p class="meta"><span class="status">{_text(status)}</span></p>')
    if rule.cards:
        body.append(_section("Cards this rule can show", _list(_text(t) for t in rule.cards)))
    quotes = "\n".join(
        "<figure><blockquote>" + _text(q.text) + "</blockquote>"
        + (f"<figcaption>{_text(q.cited_from)}</figcaption>" if q.cited_from else "") + "</figure>"
        for q in rule.quotes) or f"<p>{_text(NO_QUOTE)}</p>"
    body.append(_section("What the source says", quotes))
    if rule.evidence:
        body.append(_section("Evidence cited", _list(_reference(r) for r in rule.evidence)))
    if rule.choices:
        body.append(_section("Choices made beyond the source", _list(_text(c) for c in rule.choices)))
    if rule.reading:
        body.append(_section("Further reading", _list(_reference(r) for r in rule.reading)))
    return _document(rule.name, body)


def index_page(groups: list[PlanRules], page_url: Callable[[str], str]) -> str:
    """All rules, grouped by PlanDefinition, each linking to its page (`page_url(rule_id)`)."""
    body = ["<h1>Guidance behind the cards</h1>",
            "<p>Every card links to the page of its recommendation: the source's own words, the evidence "
            "cited and the choices made beyond the source.</p>"]
    for group in groups:
        items = _list(f'<a href="{_text(page_url(rule.id))}">{_text(rule.name)}</a>' for rule in group.rules)
        body.append(_section(group.title, items))
    if not groups:
        body.append("<p>No guidance is loaded.</p>")
    return _document("Guidance behind the cards", body)


def _document(title: str, body: list[str]) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{_text(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n"
            + "\n".join(body) + "\n</main>\n</body>\n</html>\n")


def _section(heading: str, inner: str) -> str:
    return f"<section>\n<h2>{_text(heading)}</h2>\n{inner}\n</section>"


def _list(items) -> str:
    return "<ul>\n" + "\n".join(f"<li>{item}</li>" for item in items) + "\n</ul>"


def _reference(ref: Reference) -> str:
    if ref.url and _web_url(ref.url):
        return f'<a href="{_text(ref.url)}">{_text(ref.label)}</a>'
    if ref.url and ref.url != ref.label:
        return f"{_text(ref.label)} ({_text(ref.url)})"
    return _text(ref.label)


def _status(statuses: list[str]) -> str:
    """PlanDefinition.status other than active, in words (FHIR R4 publication-status)."""
    if "draft" in statuses:
        return "Draft guidance: not yet approved for clinical use"
    others = sorted({s for s in statuses if s != "active"})
    return f"Guidance status: {', '.join(others)}" if others else ""


def _web_url(url: str) -> bool:
    parts = urlsplit(url.strip())
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _text(value: str) -> str:
    """Text or attribute value: every character that could start markup or end a quoted
    attribute (& < > " ') becomes a character reference."""
    return escape(value, quote=True)
