"""What clinicians did with the cards (CDS Hooks 2.0 §Feedback), for `dah-cds feedback-report` and
the analytics page.

Rules:
- The population is the cards issued in the window (`since` <= day issued <= `until`, UTC days,
  either end open) and the feedback about them, whenever it arrived: rates never mix cards of
  one period with feedback about another.
- A card counts once per outcome (`accepted`, `overridden`) however many feedback items name it;
  rates are per card issued.
- Override reasons are counted per overridden card and reason, by the reason's display (else its
  code); an override without a reason counts as "(no reason given)".  Free-text comments are
  counted, never shown (they may hold patient details).
- Rows are split by rule, and optionally by service and by week (ISO week of the day issued,
  `2026-W09`); suggestions are reported per rule and suggestion label: offered (on the cards
  issued) and accepted (named in `acceptedSuggestions`).
- Quiet cards (left out because the clinician already decided, service.hooks.suppression) are counted
  per rule as `suppressed`, by the day they were left out, in the same window and splits.
- CSV cells that a spreadsheet would run as a formula (a reason text starting with `=`, sent by
  an EHR) start with `'`.
- Dialect-neutral: rows are read and counted here, not grouped in SQL, so SQLite and PostgreSQL
  give the same report.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select

from service.feedback.store import FeedbackStore, feedback, issued_cards, suggestion_labels, suppressed_cards

NO_REASON = "(no reason given)"
SPLITS = ("service", "week")


@dataclass
class RuleRow:
    rule: str
    service: str | None = None
    week: str | None = None
    issued: int = 0
    accepted: int = 0
    overridden: int = 0
    suppressed: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    comments: int = 0

    def to_json(self) -> dict[str, Any]:
        base = self.issued or 1
        row: dict[str, Any] = {"rule": self.rule}
        if self.service is not None:
            row["service"] = self.service
        if self.week is not None:
            row["week"] = self.week
        row.update({
            "issued": self.issued, "accepted": self.accepted, "overridden": self.overridden,
            "suppressed": self.suppressed,
            "acceptance_rate": round(self.accepted / base, 3), "override_rate": round(self.overridden / base, 3),
            "override_reasons": dict(sorted(self.reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
            "override_comments": self.comments,
        })
        return row


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def week_of(moment: datetime) -> str:
    year, week, _ = _utc(moment).isocalendar()
    return f"{year}-W{week:02d}"


def _window(since: date | None, until: date | None, column: Any = issued_cards.c.issued_at) -> list[Any]:
    where = []
    if since is not None:
        where.append(column >= datetime.combine(since, time(), UTC))
    if until is not None:
        where.append(column < datetime.combine(until + timedelta(days=1), time(), UTC))
    return where


def _reason(item: dict | None) -> str:
    coding = (item or {}).get("reason") if isinstance(item, dict) else None
    if isinstance(coding, dict):
        return str(coding.get("display") or coding.get("code") or NO_REASON)
    return NO_REASON


def rule_report(store: FeedbackStore, since: date | None = None, until: date | None = None,
                split: Iterable[str] = ()) -> list[dict[str, Any]]:
    """One row per rule (and service, and week, as `split` asks), sorted."""
    split = tuple(split)
    unknown = set(split) - set(SPLITS)
    if unknown:
        raise ValueError(f"unknown split {sorted(unknown)}; one of {SPLITS}")
    rows: dict[tuple, RuleRow] = {}
    card_keys: dict[str, tuple] = {}
    with store.engine.connect() as conn:
        for uuid, service, rule, issued_at in conn.execute(
                select(issued_cards.c.uuid, issued_cards.c.service_id, issued_cards.c.rule_id,
                       issued_cards.c.issued_at).where(*_window(since, until))):
            key = (str(rule), service if "service" in split else None, week_of(issued_at) if "week" in split else None)
            rows.setdefault(key, RuleRow(*key)).issued += 1
            card_keys[uuid] = key
        seen: set[tuple[str, str]] = set()
        reasons_seen: set[tuple[str, str]] = set()
        outcomes = conn.execute(
            select(feedback.c.card_uuid, feedback.c.outcome, feedback.c.override_reason)
            .join(issued_cards, issued_cards.c.uuid == feedback.c.card_uuid).where(*_window(since, until))
            .order_by(feedback.c.id))
        for card, outcome, reason in outcomes:
            row = rows[card_keys[card]]
            if (card, outcome) not in seen:
                seen.add((card, outcome))
                if outcome == "accepted":
                    row.accepted += 1
                elif outcome == "overridden":
                    row.overridden += 1
            if outcome == "overridden":
                label = _reason(reason)
                if (card, label) not in reasons_seen:
                    reasons_seen.add((card, label))
                    row.reasons[label] += 1
                if isinstance(reason, dict) and str(reason.get("userComment") or "").strip():
                    row.comments += 1
        for service, rule, at in conn.execute(
                select(suppressed_cards.c.service_id, suppressed_cards.c.rule_id, suppressed_cards.c.suppressed_at)
                .where(*_window(since, until, suppressed_cards.c.suppressed_at))):
            key = (str(rule), service if "service" in split else None, week_of(at) if "week" in split else None)
            rows.setdefault(key, RuleRow(*key)).suppressed += 1
    ordered = sorted(rows.values(), key=lambda r: (r.rule, r.service or "", r.week or ""))
    return [r.to_json() for r in ordered]


def suggestion_report(store: FeedbackStore, since: date | None = None,
                      until: date | None = None) -> list[dict[str, Any]]:
    """One row per rule and suggestion label: offered, accepted, acceptance rate."""
    offered: Counter[tuple[str, str]] = Counter()
    accepted: Counter[tuple[str, str]] = Counter()
    with store.engine.connect() as conn:
        label_of: dict[tuple[str, str], tuple[str, str]] = {}
        for card, suggestion, label, rule in conn.execute(
                select(suggestion_labels.c.card_uuid, suggestion_labels.c.suggestion_uuid, suggestion_labels.c.label,
                       issued_cards.c.rule_id)
                .join(issued_cards, issued_cards.c.uuid == suggestion_labels.c.card_uuid)
                .where(*_window(since, until))):
            key = (str(rule), label or "(no label)")
            offered[key] += 1
            label_of[card, suggestion] = key
        counted: set[tuple[str, str]] = set()
        for card, chosen in conn.execute(
                select(feedback.c.card_uuid, feedback.c.accepted_suggestions)
                .join(issued_cards, issued_cards.c.uuid == feedback.c.card_uuid)
                .where(feedback.c.outcome == "accepted", *_window(since, until))):
            for item in chosen or []:
                suggestion = str(item.get("id")) if isinstance(item, dict) else ""
                key = (str(card), suggestion)
                if key in label_of and key not in counted:
                    counted.add(key)
                    accepted[label_of[key]] += 1
    return [{"rule": rule, "suggestion": label, "offered": n, "accepted": accepted[rule, label],
             "acceptance_rate": round(accepted[rule, label] / n, 3)}
            for (rule, label), n in sorted(offered.items())]


def to_csv(rows: list[dict[str, Any]]) -> str:
    """RFC 4180 CSV with a header; override reasons as `reason=count; ...` in one column."""
    if not rows:
        return ""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell("; ".join(f"{r}={n}" for r, n in v.items()) if isinstance(v, dict) else v)
                         for k, v in row.items()})
    return out.getvalue()


def _cell(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula (OWASP "CSV Injection") is quoted with `'`."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
