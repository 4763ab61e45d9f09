"""`dah-cds validate`: everything wrong with a content folder, said so an informatician can fix it.

Rules:
- The folder is read and built as the service loads it (`service.content.read_folder`,
  `service.engine.build_content`: FHIR R4 validity, expressions, references, variables, ValueSets,
  units, dynamicValue paths against the target's structure, hook names), then the card invariants
  are checked (`standards`).  Anything that fails the load is an error; so is a broken card
  invariant (the service would send a card a clinician cannot use).
- Each problem names its file and the JSON line of the element (or of the nearest element that
  exists), the action by its `id` (`action dah-05`, not `action[2]`; the index only when the
  action has no id) and the rest of the path inside the action, a variable by its name.
- One message is one problem: the same message at several places is reported once, with every
  place (a missing ValueSet quoted by five expressions is one error).  A resource that is not valid
  FHIR is reported once, without what follows from its absence (`service.engine` problems).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from service.content import read_folder
from service.engine import ContentSet, build_content
from service.errors import ContentErrors
from service.workbench import standards
from service.workbench.jsonlines import Steps, element_lines, line_of, steps_of

_GENERIC = "FHIR R4 validation"


@dataclass(frozen=True)
class Place:
    file: str
    line: int | None
    where: str  # "action dah-05 > dynamicValue[0].path", or the path inside the resource

    def __str__(self) -> str:
        at = f"{self.file}:{self.line}" if self.line else self.file
        return f"{at} {self.where}".rstrip()


@dataclass
class Problem:
    severity: str  # error | warning
    message: str
    places: list[Place] = field(default_factory=list)

    def lines(self) -> list[str]:
        label = self.severity.upper()
        if len(self.places) == 1:
            return [f"{label} {self.places[0]}: {self.message}"]
        return [f"{label} {self.message} ({len(self.places)} places)", *(f"  at {p}" for p in self.places)]


@dataclass
class Report:
    folder: Path
    problems: list[Problem]
    content: ContentSet | None

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity != "error"]


def validate_folder(folder: str | Path) -> Report:
    folder = Path(folder)
    try:
        raws, unreadable = read_folder(folder)
    except ContentErrors as exc:
        return Report(folder, [Problem("error", e.message, [Place(e.file, None, "")]) for e in exc.errors], None)
    found: list[tuple[str, str, str, str]] = [("error", e.file, e.path, e.message) for e in unreadable]
    content: ContentSet | None = None
    try:
        content = build_content(raws)
    except ContentErrors as exc:
        found += [("error", e.file, e.path, e.message) for e in exc.errors]
    found += [("error", f.file, f.path, f.message) for f in standards.check_resources(raws)]
    if content is not None:
        found += [(i.severity, i.source.file, i.source.path, i.message) for i in content.issues]
    locate = _Locator(folder, dict(raws))
    grouped: dict[tuple[str, ...], Problem] = {}
    for severity, file, path, message in found:
        # A FHIR validation message does not name what it is about ("Input should be a valid string"):
        # it is one problem per element; every other message names its subject.
        key = (severity, message, file, path) if message.startswith(_GENERIC) else (severity, message)
        problem = grouped.setdefault(key, Problem(severity, message))
        place = locate(file, path)
        if place not in problem.places:
            problem.places.append(place)
    problems = sorted(grouped.values(), key=lambda p: (p.severity != "error", p.places[0].file if p.places else ""))
    return Report(folder, problems, content)


class _Locator:
    """file + engine path -> Place (line in the file, action named by its id)."""

    def __init__(self, folder: Path, raws: dict[str, dict]):
        self.folder = folder
        self.raws = raws
        self.lines: dict[str, dict[Steps, int]] = {}

    def __call__(self, file: str, path: str) -> Place:
        steps = steps_of(path) if path else ()
        return Place(file, self._line(file, steps), _where(self.raws.get(file), steps, path))

    def _line(self, file: str, steps: Steps) -> int | None:
        if file not in self.lines:
            try:
                self.lines[file] = element_lines((self.folder / file).read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, ValueError, AssertionError, IndexError, AttributeError):
                self.lines[file] = {}
        return line_of(self.lines[file], steps) if self.lines[file] else None


def _where(raw: dict | None, steps: Steps, path: str) -> str:
    """`action dah-05 > dynamicValue[0].path` for a path inside an action; else the path itself."""
    node: Any = raw
    last_action: tuple[int, str] | None = None
    for n, step in enumerate(steps):
        if isinstance(node, dict) and isinstance(step, str):
            node = node.get(step)
        elif isinstance(node, list) and isinstance(step, int) and step < len(node):
            node = node[step]
        else:
            break
        if isinstance(step, int) and n > 0 and steps[n - 1] == "action" and isinstance(node, dict):
            last_action = (n, f"action {node['id']}" if node.get("id") else _path(steps[: n + 1]))
        if last_action is None and isinstance(node, dict) and n > 0 and steps[n - 1] == "extension":
            name = (node.get("valueExpression") or {}).get("name")
            if isinstance(name, str) and node.get("url", "").endswith("/variable"):
                return f"variable %{name}"  # a Library or plan variable, by its name
    if last_action is None:
        return _path(steps) or path
    n, name = last_action
    rest = _path(steps[n + 1:])
    return name + (f" > {rest}" if rest else "")


def _path(steps: Steps) -> str:
    out = ""
    for step in steps:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else step)
    return out
