"""The scenario cases of plandefinitions/tests/<RULE-ID>/ and their one run per test session.

A case file (format: plandefinitions/tests/README.md) is a CDS Hooks request with the moment it is
made (`now`), the service it calls and the rules it expects to fire or not. `Runs` posts each
case at most once, to one app (the clock set to each case's `now`); the session fixture `scenario_runs`
(tests/conftest.py) hands the answers to every test that reads them: the golden comparison, the
card-level conformance rules and the clinician-text checks. A test that sends something else (the
same case as $apply Parameters, an EHR-shaped variant) makes its own call.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from tests.conftest import CONTENT

CASES = sorted(p for p in (CONTENT / "tests").glob("*/*.json") if not p.name.endswith(".response.json"))


def case_id(path: Path) -> str:
    return f"{path.parent.name}/{path.stem}"


def golden_path(path: Path) -> Path:
    return path.with_name(path.stem + ".response.json")


def moment(case: dict) -> datetime:
    return datetime.fromisoformat(case["now"].replace("Z", "+00:00"))


@dataclass(frozen=True)
class Run:
    """One case and the service's answer to it."""

    path: Path
    case: dict
    status: int
    body: dict

    @property
    def id(self) -> str:
        return case_id(self.path)


class Runs:
    """Case id -> Run, each case posted to its service the first time it is asked for and never again
    (one Flask app, its clock set to each case's `now`)."""

    def __init__(self, content, database: Path, paths: list[Path] = CASES):
        from service.app import create_app

        self._now: list[datetime] = []
        app = create_app({"database_url": f"sqlite:///{database}"}, clock=lambda: self._now[0], content=content)
        self._client = app.test_client()
        self._paths = {case_id(p): p for p in paths}
        self._runs: dict[str, Run] = {}

    def __getitem__(self, key: str) -> Run:
        if key not in self._runs:
            path = self._paths[key]
            case = json.loads(path.read_text(encoding="utf-8"))
            self._now[:] = [moment(case)]
            response = self._client.post(f"/cds-services/{case['service']}", json=case["request"])
            self._runs[key] = Run(path, case, response.status_code, response.get_json())
        return self._runs[key]

    def values(self) -> list[Run]:
        return [self[key] for key in self._paths]
