"""Rule pages over HTTP: GET /guidance (all rules) and GET /guidance/{rule-id} (one rule).

Plain HTML (`text/html; charset=utf-8`) built by service.guidance from the content being served;
a rule id the content does not define is a 404 with an OperationOutcome, like every other error.
Links inside the pages are absolute, from the same public base URL as the card links.
"""

from __future__ import annotations

from flask import Blueprint, Response

from service import guidance
from service.errors import NotFound
from service.logtext import shown
from service.web.routes import public_base, runtime

blueprint = Blueprint("guidance", __name__)

# The pages load nothing from elsewhere and run no script.
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
}


def _html(page: str) -> Response:
    return Response(page, status=200, content_type="text/html; charset=utf-8", headers=HEADERS)


def _page_url(rule_id: str) -> str:
    return public_base() + guidance.page_path(rule_id)


@blueprint.get(guidance.PATH)
def get_index():
    return _html(guidance.index_page(guidance.plan_groups(runtime().content), _page_url))


@blueprint.get(guidance.PATH + "/<rule_id>")
def get_rule(rule_id: str):
    rule = guidance.rule_index(runtime().content).get(rule_id)
    if rule is None:
        raise NotFound(f"no guidance page for rule '{shown(rule_id, 100)}'", expression="rule-id")
    return _html(guidance.rule_page(rule, public_base() + guidance.PATH))
