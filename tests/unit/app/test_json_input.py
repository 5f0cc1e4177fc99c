"""Bounded JSON parsing of outside input: depth counted before the parser recurses, strings respected."""

from __future__ import annotations

import json

import pytest

from shared.json_input import (
    MAX_DEPTH,
    JsonInputError,
    may_hold_surrogates,
    nesting_depth,
    parse_json,
    unstorable,
)


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("1", 0),
        ("{}", 1),
        ('{"a": [1, {"b": []}]}', 4),
        ('["[[[[", "{{{{", "\\"[["]', 1),  # brackets inside strings, escaped quotes
        ('"unterminated [[[[', 4),  # invalid input may be over-counted, never under-counted
        ("]]]][[", 2),
    ],
)
def test_nesting_depth(text: str, depth: int) -> None:
    assert nesting_depth(text) == depth


def test_the_limit_itself_passes_and_one_more_fails() -> None:
    assert parse_json("[" * MAX_DEPTH + "]" * MAX_DEPTH) == json.loads("[" * MAX_DEPTH + "]" * MAX_DEPTH)
    with pytest.raises(JsonInputError, match="deeper than 32"):
        parse_json("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))


@pytest.mark.parametrize("raw", [b"[" * 100_000, "{" * 100_000, '{"a":' * 50_000 + "1" + "}" * 50_000])
def test_very_deep_input_is_refused_not_a_recursion_error(raw: str | bytes) -> None:
    with pytest.raises(JsonInputError):
        parse_json(raw)


@pytest.mark.parametrize(
    ("raw", "reason"), [(b"\xff{}", "UTF-8"), (b"{", "valid JSON"), ("nan?", "valid JSON")]
)
def test_reasons(raw: str | bytes, reason: str) -> None:
    with pytest.raises(JsonInputError, match=reason):
        parse_json(raw)


def test_unstorable_finds_lone_surrogates_anywhere() -> None:
    assert not unstorable({"k": ["fine", "é", "😀"]})
    assert unstorable("\ud800")
    assert unstorable({"k": ["x", {"y": "a\udfffb"}]})
    assert unstorable({"\udc00": 1})
    assert unstorable(parse_json('{"k": "\\ud83d"}'))  # half of an escaped surrogate pair
    assert not unstorable(parse_json('{"k": "\\ud83d\\ude00"}'))  # the whole pair is one character


@pytest.mark.parametrize(
    ("raw", "possible"),
    [('"plain é 😀"', False), ('"\\ud800"', True), ('"\\uDFFF"', True), ('"\\ud7ff \\ue000"', False),
     (b'"\\udc00"', True), (b'"\\u00e9"', False)],
)
def test_may_hold_surrogates_only_when_an_escape_could_make_one(raw: str | bytes, possible: bool) -> None:
    assert may_hold_surrogates(raw) is possible
