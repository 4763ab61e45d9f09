"""Values from outside as log lines show them (service.logtext): one line, bounded, no credentials."""

from __future__ import annotations

import logging

from service.logtext import OneLineFormatter, shown, url_shown


def test_control_characters_and_lone_surrogates_are_escaped():
    forged = "abc\n2026-03-01 INFO service.calls hookInstance=forged\r\x1b[31m\x00\u2028\ud800"
    text = shown(forged)
    assert "\n" not in text and "\r" not in text and "\x1b" not in text and "\x00" not in text
    assert "\u2028" not in text and "\ud800" not in text
    assert text.startswith("abc\\n2026-03-01 INFO") and text.endswith("\\r\\x1b[31m\\x00\\u2028\\ud800")
    text.encode("utf-8")  # always encodable


def test_long_values_are_cut_and_say_by_how_much():
    text = shown("x" * 1_000_000)
    assert text == "x" * 200 + "...(+999800 chars)"
    assert shown("y" * 50, limit=10) == "y" * 10 + "...(+40 chars)"
    assert shown(["a\nb"]) == "['a\\nb']"


def test_urls_lose_their_credentials():
    assert url_shown("https://user:pw@ehr.example.org/fhir?x=1") == "https://***@ehr.example.org/fhir?x=1"
    assert url_shown("https://ehr.example.org/fhir") == "https://ehr.example.org/fhir"
    assert "pw" not in url_shown("http://a:pw@[::1/x")


def test_the_formatter_keeps_every_message_on_one_line():
    record = logging.LogRecord("service.calls", logging.INFO, __file__, 1, "hookInstance=%s", ("a\nFORGED",), None)
    line = OneLineFormatter("%(levelname)s %(message)s").format(record)
    assert line == "INFO hookInstance=a\\nFORGED"
