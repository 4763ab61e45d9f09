"""Golden responses: comparing a scenario's answer with its reviewed golden file, and updating it.

`UPDATE_GOLDEN=1` rewrites the golden files from the service's answers after a reviewed content
change. Before a file is written its change is described card by card and field by field
(case, card rule and summary, field path, old -> new; `service.workbench.diff`) and the descriptions
are printed at the end of the run, so the change can be read before it is committed. Updating
refuses to run when `CI` is set (tests/conftest.py): on CI a golden is only ever compared, never
written.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from service.workbench.diff import ABSENT, describe, field_changes  # noqa: F401  (the diff, shared with dah-cds test)

# Change descriptions of this run, printed by tests/conftest.py's terminal summary.
UPDATES: list[str] = []


def updating() -> bool:
    return os.environ.get("UPDATE_GOLDEN") == "1"


def refusal() -> str | None:
    """Why updating may not run here, or None."""
    if updating() and os.environ.get("CI"):
        return "UPDATE_GOLDEN=1 refuses to run when CI is set: goldens are written locally, reviewed and committed"
    return None


def update(case: str, golden: Path, response: dict) -> None:
    """Describe the change to `golden`, then write `response` there (only when it differs)."""
    old = json.loads(golden.read_text(encoding="utf-8")) if golden.exists() else None
    description = describe(case, old, response)
    if description:
        UPDATES.extend(description)
        golden.write_text(json.dumps(response, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
