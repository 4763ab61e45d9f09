"""Rule pages (GET /guidance, GET /guidance/{rule-id}): the guidance behind each card, read from
the loaded content and rendered as plain HTML, without Flask."""

from service.guidance.pages import index_page, rule_page
from service.guidance.rules import PATH, PlanRules, Rule, page_path, plan_groups, rule_index

__all__ = ["PATH", "PlanRules", "Rule", "index_page", "page_path", "plan_groups", "rule_index", "rule_page"]
