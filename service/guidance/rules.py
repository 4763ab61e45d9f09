"""The rules behind the cards, gathered from the loaded content for the rule pages.

Rule: a card action (an action with a `title`, or a dynamicValue that sets `action.title`) is
identified by the first coding of its `code`, the value a card shows as `source.topic`.  Several
actions, in one or more PlanDefinitions, can share that rule id; the rule gathers them all.
Everything a page shows comes from the content (FHIR R4 PlanDefinition.action):

- name: the rule coding's `display` (else the first action's title; never the rule id);
- plans: the `title` of each PlanDefinition the rule appears in; cards: each action's `title`;
- `documentation` (RelatedArtifact) by type:
  - `justification` labelled "Source": the source's own words (`display`) and where they come
    from (`citation`);
  - any other `justification`: a choice made beyond the source (`display`);
  - `citation`: the evidence (`display` or `label`, `url`);
  - `documentation` other than a SMART app link: further reading.

An entry repeated on several actions is listed once, in content order; a citation without a url
takes the url the same citation (same text) has elsewhere in the content.  Nothing here knows a
clinical term: the conventions are the element names above.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote

from service.engine import EXT_LINK_TYPE, ActionDef, ContentSet

PATH = "/guidance"
SOURCE_LABEL = "source"  # justification label (case-insensitive) of a quote from the source


def page_path(rule_id: str) -> str:
    """The path of a rule's page, relative to the service root."""
    return f"{PATH}/{quote(rule_id, safe='')}"


@dataclass(frozen=True)
class Quote:
    text: str
    cited_from: str | None = None


@dataclass
class Reference:
    label: str
    url: str | None = None


@dataclass
class Rule:
    id: str
    display: str = ""  # the rule coding's display
    plans: list[str] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)  # PlanDefinition.status of those plans
    cards: list[str] = field(default_factory=list)
    quotes: list[Quote] = field(default_factory=list)
    evidence: list[Reference] = field(default_factory=list)
    reading: list[Reference] = field(default_factory=list)
    choices: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The rule coding's display, else the first card title (never the rule id)."""
        return self.display or (self.cards[0] if self.cards else "Recommendation")


@dataclass
class PlanRules:
    """One PlanDefinition and its rules, in content order (the index page's groups)."""

    title: str
    rules: list[Rule]


def rule_index(content: ContentSet) -> dict[str, Rule]:
    """rule id -> Rule, in content order."""
    return _collect(content)[0]


def plan_groups(content: ContentSet) -> list[PlanRules]:
    """The PlanDefinitions that have rules, each with its rules (a rule shared by two plans is
    listed under both, as the same Rule)."""
    return _collect(content)[1]


def _collect(content: ContentSet) -> tuple[dict[str, Rule], list[PlanRules]]:
    rules: dict[str, Rule] = {}
    groups = []
    for plan in content.plans.values():
        title = plan.raw.get("title") or plan.raw.get("name") or plan.id
        status = plan.raw.get("status") or "unknown"
        in_plan: dict[str, Rule] = {}
        for action in _card_actions(plan.actions):
            rule_id = _rule_id(action.raw)
            if rule_id is None:
                continue
            rule = rules.setdefault(rule_id, Rule(rule_id))
            if title not in rule.plans:
                rule.plans.append(title)
                rule.statuses.append(status)
            _add_action(rule, action.raw)
            in_plan[rule_id] = rule
        if in_plan:
            groups.append(PlanRules(title, list(in_plan.values())))
    # A citation authored without a url (set per patient by a dynamicValue) gets the url the
    # same citation has elsewhere in the content.
    urls = {ref.label: ref.url for rule in rules.values() for ref in rule.evidence if ref.url}
    for rule in rules.values():
        for ref in rule.evidence:
            ref.url = ref.url or urls.get(ref.label)
    return rules, groups


def _card_actions(actions: list[ActionDef]):
    for action in actions:
        if action.raw.get("title") or any(dv.path == "action.title" for dv in action.dynamic_values):
            yield action
        yield from _card_actions(action.children)


def _rule_id(raw: dict) -> str | None:
    coding = next((c for cc in raw.get("code", []) for c in cc.get("coding", [])), None)
    return (coding or {}).get("code") or None


def _add_action(rule: Rule, raw: dict) -> None:
    coding = next(c for cc in raw.get("code", []) for c in cc.get("coding", []))
    if not rule.display and coding.get("display"):
        rule.display = coding["display"]
    title = raw.get("title")
    if title and title not in rule.cards:
        rule.cards.append(title)
    for doc in raw.get("documentation", []):
        kind, text = doc.get("type"), doc.get("display") or doc.get("label")
        if kind == "justification" and doc.get("display"):
            if (doc.get("label") or "").strip().lower() == SOURCE_LABEL:
                quote_ = Quote(doc["display"], doc.get("citation"))
                if quote_ not in rule.quotes:
                    rule.quotes.append(quote_)
            elif doc["display"] not in rule.choices:
                rule.choices.append(doc["display"])
        elif kind == "citation" and text:
            _add_reference(rule.evidence, text, doc.get("url"))
        elif kind == "documentation" and (text or doc.get("url")) and not _smart(doc):
            _add_reference(rule.reading, text or doc["url"], doc.get("url"))


def _add_reference(refs: list[Reference], label: str, url: str | None) -> None:
    """Once per label; a url seen on any entry with that label is kept."""
    for ref in refs:
        if ref.label == label:
            ref.url = ref.url or url
            return
    refs.append(Reference(label, url))


def _smart(doc: dict) -> bool:
    return any(e.get("url") == EXT_LINK_TYPE and e.get("valueCode") == "smart" for e in doc.get("extension", []))
