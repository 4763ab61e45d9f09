"""JSON from outside parsed within limits (service.jsonlimits): each breach is a JsonRejected that
says which rule, never an unexpected RecursionError or ValueError."""

from __future__ import annotations

import pytest

from service.jsonlimits import MAX_DEPTH, JsonRejected, check, parse, parse_strict


def test_ordinary_json_is_parsed():
    assert parse(b'{"a": [1, 2.5, "x", null, true], "b": {"c": -3}}') == {"a": [1, 2.5, "x", None, True],
                                                                          "b": {"c": -3}}


@pytest.mark.parametrize("raw, rule", [
    (b"[" * 100_000 + b"]" * 100_000, "nested more than"),  # past the parser's own recursion limit
    (b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), "nested more than 64 levels deep"),
    (b'{"n": ' + b"9" * 5000 + b"}", "5000 digits"),
    (b'{"n": -' + b"9" * 4301 + b"}", "4301 digits"),
    (b'{"n": NaN}', "NaN is not a JSON number"),
    (b'{"n": -Infinity}', "-Infinity is not a JSON number"),
    (b'{"n": 1e999}', "beyond the range"),
    (b'{"card": "\\ud800"}', "card holds a lone surrogate"),
    (b'{"\\udfff": 1}', "member name in the body holds a lone surrogate"),
    (b'{"a": [{"b": "x\\udc00y"}]}', "a[0].b holds a lone surrogate"),
    (b"\xef\xbb\xbf{}", "byte order mark"),
    (b'{"a": "\xff"}', "not UTF-8"),
    (b'{"a": }', "not valid JSON: Expecting value at line 1 column 7"),
])
def test_each_rule_broken_is_named(raw, rule):
    with pytest.raises(JsonRejected) as info:
        parse(raw)
    assert rule in info.value.message
    assert not info.value.too_large


def test_nesting_up_to_the_limit_is_accepted():
    depth = MAX_DEPTH
    assert parse(b"[" * depth + b"]" * depth) is not None
    assert parse(b'{"n": ' + b"9" * 4300 + b"}")["n"] > 0


def test_arrays_past_max_items_are_too_large_and_named_by_path():
    with pytest.raises(JsonRejected) as info:
        parse(b'{"prefetch": {"obs": {"entry": [' + b",".join([b"{}"] * 11) + b"]}}}", max_items=10)
    assert info.value.too_large and info.value.path == "prefetch.obs.entry"
    assert parse(b"[" + b",".join([b"1"] * 10) + b"]", max_items=10) == [1] * 10


def test_a_path_shown_in_a_message_is_one_bounded_line():
    with pytest.raises(JsonRejected) as info:
        check({"k\n" + "x" * 500: "\ud800"})
    assert "\n" not in info.value.message and len(info.value.message) < 200


# ---- the fast path (orjson + structure by bytes) and the reference path agree -------------------

@pytest.mark.parametrize("raw", [
    b'{"text": "[[[[{{{{ ,,,, \\" ]]]] \\\\", "n": [1, -2.5e-3, 0, 12345678901234567]}',
    b'{"k\\\\": "\\\\\\"[", "a": ["]", "}", "{\\"x\\": [1,2]}"], "b": {"c": [[], {}, [{}]]}}',
    b'{"big": 123456789012345678901234567890, "neg": -9223372036854775809, "s": "12345678901234567890123"}',
    b'[' + b'{"a": 1, "b": 2, "c": 3},' * 9 + b'{}]',
    b'"just a string"',
    b'42',
])
def test_both_paths_read_the_same_value(raw):
    assert parse(raw, max_items=10) == parse_strict(raw, max_items=10)
    assert type(parse(raw)) is type(parse_strict(raw))


def test_integers_past_64_bits_stay_exact():
    assert parse(b'{"n": 123456789012345678901234567890}')["n"] == 123456789012345678901234567890


@pytest.mark.parametrize("raw", [
    b'{"a": "' + b"[" * 100 + b'", "b": [' + b"[" * 62 + b"]" * 62 + b"]}",  # brackets in strings do not count
    b'{"entry": [' + b",".join([b'{"a": 1, "b": 2, "c": 3}'] * 10) + b"]}",  # object members are no items
])
def test_brackets_in_strings_and_object_commas_are_not_structure(raw):
    assert parse(raw, max_items=10) == parse_strict(raw, max_items=10)


def test_depth_counts_mixed_containers_and_strings_between():
    deep = b'{"a": ' * (MAX_DEPTH - 1) + b'["x", "]"]' + b"}" * (MAX_DEPTH - 1)
    assert parse(deep) is not None
    with pytest.raises(JsonRejected, match="nested more than 64 levels deep"):
        parse(b'{"a": ' * MAX_DEPTH + b'["x", "]"]' + b"}" * MAX_DEPTH)
