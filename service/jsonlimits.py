"""JSON from outside (request bodies, FHIR servers' answers) parsed within limits.

Rules (RFC 8259 with limits of this service), each breach a `JsonRejected` naming the rule and,
where it applies, the JSON path:
- UTF-8 only (RFC 8259 §8.1), no byte order mark;
- `NaN`, `Infinity` and numbers beyond the float range are not JSON numbers (RFC 8259 §6);
- an integer has at most MAX_INT_DIGITS digits (Python's own int/str conversion limit, which would
  otherwise surface as an unexpected ValueError);
- arrays and objects nest at most `max_depth` levels (deeper nesting would exhaust the stack of
  whatever walks the data next);
- no string or member name holds a lone surrogate (`"\\ud800"` is valid JSON but no valid
  Unicode: it cannot be stored, logged or encoded as UTF-8);
- with `max_items`, no array has more items (`too_large` is then set: the request is too large,
  not malformed).
No Flask here.

How (the same rules, two paths): orjson parses the bytes (it refuses invalid UTF-8, a byte order
mark, NaN and Infinity, numbers beyond the float range and lone surrogates by itself), and the
depth and array-size rules are checked on the body's bracket structure with byte operations, not
by walking the parsed value in Python.  Anything the fast path does not accept as it stands goes
to the reference path (the standard library's parser with hooks, then a walk of the value), which
names the rule broken and where: a body orjson refuses, a digit run that may be an integer past
64 bits (orjson would read it as a float), a structure that breaks a limit.  A body either path
accepts gives the same value.

Kept at the top of service/: a leaf used by both web (request bodies) and fhir (servers' answers).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

from service.logtext import shown

MAX_DEPTH = 64
MAX_INT_DIGITS = 4300
_SURROGATE = re.compile(r"[\ud800-\udfff]")


class JsonRejected(ValueError):
    def __init__(self, message: str, path: str = "", too_large: bool = False):
        super().__init__(message)
        self.message = message
        self.path = path
        self.too_large = too_large


def _constant(name: str):
    raise JsonRejected(f"{name} is not a JSON number")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JsonRejected(f"the number {text[:40]} is beyond the range of a JSON number this service reads")
    return value


def _int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise JsonRejected(f"an integer has {digits} digits; at most {MAX_INT_DIGITS} are accepted")
    return int(text)


def parse(raw: bytes, max_depth: int = MAX_DEPTH, max_items: int | None = None) -> Any:
    """`raw` parsed, or JsonRejected."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return parse_strict(raw, max_depth, max_items)
    if not _shape_within(raw, max_depth, max_items):
        return parse_strict(raw, max_depth, max_items)
    return value


# The fast path's view of a body: its structural bytes, strings removed.
_DROP = bytes(range(256)).translate(None, b'"[]{},:')
_STRING = re.compile(rb'"[^"]*"')
_INNERMOST = re.compile(rb"\[,*\]|\{,*\}")
_LONG_DIGITS = b"0" * 19  # 2**63 has 19 digits: a shorter run is an integer orjson keeps exact
_DIGITS_AS_ZERO = bytes(48 if 48 <= i <= 57 else 32 for i in range(256))


def _shape_within(raw: bytes, max_depth: int, max_items: int | None) -> bool:
    """True when `raw` (valid JSON) surely nests at most `max_depth` levels, has no array of more
    than `max_items` items and no run of 19 digits; False sends it to the reference path (which
    decides; a long digit run inside a string only costs that detour).  Strings go first: escaped
    backslashes and quotes, then every string."""
    if _LONG_DIGITS in raw.translate(_DIGITS_AS_ZERO):
        return False
    if b"\\" in raw:
        raw = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    shape = raw.translate(None, _DROP).replace(b'""', b"")
    if b'"' in shape:
        shape = _STRING.sub(b"", shape)
    if max_items is not None:
        # Commas between array items: all commas less those between object members (a member per
        # colon; a non-empty object has one comma fewer than members).  Fewer than `max_items` of
        # them: no array can hold more than `max_items` items.
        objects = shape.count(b"{") - shape.count(b"{}")
        if shape.count(b",") - (shape.count(b":") - objects) >= max_items:
            return _nesting_and_items_within(shape.translate(None, b":"), max_depth, max_items)
    # Depth alone: each pass removes the innermost containers; the passes are the nesting levels.
    shape = shape.translate(None, b",:").replace(b"{", b"[").replace(b"}", b"]")
    for _ in range(max_depth):
        if not shape:
            return True
        shape = shape.replace(b"[]", b"")
    return not shape


def _nesting_and_items_within(shape: bytes, max_depth: int, max_items: int) -> bool:
    """Depth and array size on the bracket-and-comma structure: an innermost array holds only its
    commas, so it has more than `max_items` items when it holds `max_items` commas or more."""
    too_many = re.compile(rb"\[,{%d,}\]" % max_items) if max_items > 0 else re.compile(rb"\[,*\]")
    for _ in range(max_depth):
        if not shape:
            return True
        if too_many.search(shape):
            return False
        shape = _INNERMOST.sub(b"", shape)
    return not shape


def parse_strict(raw: bytes, max_depth: int = MAX_DEPTH, max_items: int | None = None) -> Any:
    """The reference path: `raw` parsed by the standard library and walked, or JsonRejected naming the rule."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JsonRejected(f"not UTF-8 (byte {exc.start})") from None
    if text.startswith("\ufeff"):
        raise JsonRejected("starts with a byte order mark (RFC 8259 §8.1: not allowed)")
    try:
        value = json.loads(text, parse_constant=_constant, parse_float=_float, parse_int=_int)
    except JsonRejected:
        raise
    except RecursionError:
        raise JsonRejected(f"nested more than {max_depth} levels deep") from None
    except ValueError as exc:  # json.JSONDecodeError included
        raise JsonRejected(f"not valid JSON: {_decode_error(exc)}") from None
    check(value, max_depth, max_items)
    return value


def _decode_error(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    return "a value cannot be read"


def check(value: Any, max_depth: int = MAX_DEPTH, max_items: int | None = None) -> None:
    """The depth, surrogate and array-size rules on an already parsed value."""
    path: list[str | int] = []

    def where() -> str:
        out = ""
        for part in path:
            name = shown(part, 40)
            out += f"[{part}]" if isinstance(part, int) else (f".{name}" if out else name)
        return out or "the body"

    def walk(node: Any, depth: int) -> None:
        if isinstance(node, str):
            if _SURROGATE.search(node):
                raise JsonRejected(f"{where()} holds a lone surrogate (not valid Unicode)", where())
            return
        if not isinstance(node, (dict, list)):
            return
        if depth >= max_depth:
            raise JsonRejected(f"nested more than {max_depth} levels deep at {where()}", where())
        if isinstance(node, dict):
            for key, item in node.items():
                if _SURROGATE.search(key):
                    raise JsonRejected(f"a member name in {where()} holds a lone surrogate (not valid Unicode)",
                                       where())
                path.append(key)
                walk(item, depth + 1)
                path.pop()
            return
        if max_items is not None and len(node) > max_items:
            raise JsonRejected(f"{where()} has {len(node)} items; at most {max_items} are accepted", where(),
                               too_large=True)
        for i, item in enumerate(node):
            path.append(i)
            walk(item, depth + 1)
            path.pop()

    walk(value, 0)
