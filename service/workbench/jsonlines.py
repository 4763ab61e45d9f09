"""The line of an element in a JSON file's text, for error messages an editor can jump to.

`element_lines(text)` maps every element's path (a tuple of keys and list indexes) to the line
(1-based) where its value starts; `line_of(lines, steps)` answers the deepest existing prefix of
`steps`, so an error about a missing element points at its parent.  A scanner of JSON's own
grammar (RFC 8259), not a parser: the text is known to be valid JSON (it was loaded).
"""

from __future__ import annotations

import bisect
import json
import re

_WS = re.compile(r"[ \t\r\n]*")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_SCALAR = re.compile(r"[^,\]}\s]+")

Steps = tuple[str | int, ...]


def _end(pattern: re.Pattern[str], text: str, pos: int) -> int:
    """Where `pattern`'s match at `pos` ends; the text is valid JSON, so a token always matches."""
    match = pattern.match(text, pos)
    if match is None:
        raise ValueError(f"not JSON at character {pos}")
    return match.end()


def element_lines(text: str) -> dict[Steps, int]:
    out: dict[Steps, int] = {}
    starts = [m.start() for m in re.finditer("\n", text)]

    def line(pos: int) -> int:
        return bisect.bisect_left(starts, pos) + 1

    def skip(pos: int) -> int:
        return _end(_WS, text, pos)

    def value(pos: int, path: Steps) -> int:
        pos = skip(pos)
        out[path] = line(pos)
        char = text[pos]
        if char == "{":
            pos = skip(pos + 1)
            if text[pos] == "}":
                return pos + 1
            while True:
                key = _STRING.match(text, pos)
                assert key is not None, "object key"
                name = json.loads(key.group(0))
                pos = skip(key.end())
                pos = value(pos + 1, (*path, name))  # past ':'
                pos = skip(pos)
                if text[pos] == "}":
                    return pos + 1
                pos = skip(pos + 1)  # past ','
        if char == "[":
            pos = skip(pos + 1)
            if text[pos] == "]":
                return pos + 1
            index = 0
            while True:
                pos = skip(value(pos, (*path, index)))
                index += 1
                if text[pos] == "]":
                    return pos + 1
                pos += 1
        if char == '"':
            return _end(_STRING, text, pos)
        return _end(_SCALAR, text, pos)

    value(0, ())
    return out


_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def steps_of(path: str) -> Steps:
    """`PlanDefinition.action[2].title` -> ("action", 2, "title") (a leading type name dropped)."""
    parts: list[str | int] = [int(i) if i else name for name, i in _STEP.findall(path)]
    if parts and isinstance(parts[0], str) and parts[0][:1].isupper():
        parts = parts[1:]
    return tuple(parts)


def line_of(lines: dict[Steps, int], steps: Steps) -> int | None:
    for n in range(len(steps), -1, -1):
        if steps[:n] in lines:
            return lines[steps[:n]]
    return None
