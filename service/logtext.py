"""Values from outside (a request, another server) as they may appear in a log line.

Rules: a logged value is one line of printable text: control characters (CR, LF, TAB, ESC, the
C1 range, U+2028/U+2029 line separators) and lone surrogates are written as escapes (`\\n`,
`\\x1b`, `\\ud800`), so a value cannot start a forged log line or break the log's encoding; it
is cut to `limit` characters (default 200) with the number of characters left out, so a
1 MB value is never logged whole; a URL loses any `user:password@` before it is shown.
`OneLineFormatter` applies the same escaping to every formatted message, as a second line of
defence for the service's own log handler.

Kept at the top of service/: a leaf every layer logs through.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

LIMIT = 200
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def one_line(text: str) -> str:
    """`text` with every control character and lone surrogate escaped."""
    return _UNSAFE.sub(_escape, text)


def shown(value: Any, limit: int = LIMIT) -> str:
    """A value for a log line: a string as it is (escaped), anything else as its repr; at most `limit`
    characters of it, then `...(+N chars)`."""
    text = value if isinstance(value, str) else repr(value)
    cut = len(text) > limit
    out = one_line(text[:limit])
    return out + f"...(+{len(text) - limit} chars)" if cut else out


def url_shown(url: Any, limit: int = LIMIT) -> str:
    """A URL for a log line: without `user:password@`, escaped and bounded."""
    if isinstance(url, str) and "@" in url:
        try:
            parts = urlsplit(url)
            if "@" in parts.netloc:
                url = urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))
        except ValueError:
            url = "(a URL that cannot be parsed)"
    return shown(url, limit)


class OneLineFormatter(logging.Formatter):
    """A Formatter whose message part is always one line (tracebacks, added after it, keep theirs)."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging API)
        record.message = one_line(record.message)
        return super().formatMessage(record)
