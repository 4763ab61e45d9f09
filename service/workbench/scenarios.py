"""The scenario cases of plandefinitions/tests/ checked in-process, as `tests/scenarios` checks them.

Rules: a case is run at its own `now` through its own service (`run.run_service`, card links under
`run.LOCAL_ROOT` as in the goldens); it passes when the answer is a valid CDS Hooks response, every
rule of `expect.present` has a card, none of `expect.absent` has one, and the answer equals its
golden.  A failure says which of these broke, the golden's difference card by card and field by
field (`diff.describe`).  A golden is written only by `accept`, for a case whose expectations hold:
a new golden is reviewed, never taken from an answer that breaks what the case is about.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from cards.schema import response_errors
from service.engine import ContentSet
from service.workbench.diff import describe
from service.workbench.patients import Case, read_case
from service.workbench.run import run_service


@dataclass
class Outcome:
    """One case checked."""

    case: Case
    response: dict
    golden: dict | None
    problems: list[str] = field(default_factory=list)  # broken expectations and schema errors
    diff: list[str] = field(default_factory=list)  # the golden's difference, readable

    @property
    def passed(self) -> bool:
        return not self.problems and not self.diff

    @property
    def acceptable(self) -> bool:
        """The answer may become the golden: it keeps every expectation of the case."""
        return not self.problems and bool(self.diff)


def find_cases(folder: Path, selectors: list[str] | None = None) -> list[Path]:
    """Case files under `folder` (`<RULE-ID>/<name>.json`), of the rules (or `RULE/name` cases) named."""
    paths = sorted(p for p in folder.glob("*/*.json") if not p.name.endswith(".response.json"))
    if not selectors:
        return paths
    wanted = [s.strip("/").lower() for s in selectors]
    return [p for p in paths if any(w in (p.parent.name.lower(), f"{p.parent.name}/{p.stem}".lower())
                                    for w in wanted)]


def check(content: ContentSet, path: Path) -> Outcome:
    case = read_case(path)
    golden = json.loads(case.golden.read_text(encoding="utf-8")) if case.golden.exists() else None
    service = content.services.get(case.service)
    if service is None:
        return Outcome(case, {}, golden, [f"no service {case.service!r} in the content"])
    response = run_service(content, service, case.request, case.now).body
    outcome = Outcome(case, response, golden)
    rules = [(c.get("source") or {}).get("topic", {}).get("code") for c in response.get("cards", [])]
    for rule in case.expect.get("present", []):
        if rule not in rules:
            outcome.problems.append(f"expected a {rule} card; cards: {', '.join(map(str, rules)) or 'none'}")
    for rule in case.expect.get("absent", []):
        if rule in rules:
            outcome.problems.append(f"a {rule} card is shown; the case says it must not be")
    outcome.problems += [f"not a valid CDS Hooks response: {e}" for e in response_errors(response)]
    if golden != response:
        outcome.diff = describe(case.id, golden, response)
    return outcome


def accept(outcome: Outcome) -> None:
    """Write the answer as the case's golden, formatted as every golden file (keys sorted, as the service
    sends them)."""
    if not outcome.acceptable:
        raise ValueError(f"{outcome.case.id}: not accepted: " + "; ".join(outcome.problems or ["no change"]))
    text = json.dumps(outcome.response, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    outcome.case.golden.write_text(text, encoding="utf-8")
