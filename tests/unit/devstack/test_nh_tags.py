"""Tag expression parser and evaluator of the Notification Hubs emulator (pure logic)."""

from __future__ import annotations

import pytest

from devstack.notificationhubs.tags import TagExpressionError, evaluate, parse_tag_expression


@pytest.mark.parametrize(
    ("expression", "tags", "expected"),
    [
        ("a", {"a"}, True),
        ("a", {"b"}, False),
        ("a || b", {"b"}, True),
        ("a && b", {"a"}, False),
        ("a && b", {"a", "b"}, True),
        ("!a", {"b"}, True),
        ("!a", {"a"}, False),
        ("a || b && c", {"a"}, True),  # && binds tighter than ||
        ("(a || b) && c", {"a"}, False),
        ("(a || b) && c", {"b", "c"}, True),
        ("a && !(b || c)", {"a", "c"}, False),
        ("!!a", {"a"}, True),
        ("user:42 && lang_en-GB", {"user:42", "lang_en-GB"}, True),
        ("a||b", {"b"}, True),
    ],
)
def test_expressions_evaluate_with_precedence(expression: str, tags: set[str], expected: bool) -> None:
    assert evaluate(parse_tag_expression(expression), tags) is expected


def test_builtin_tags_are_case_insensitive_in_the_name_only() -> None:
    node = parse_tag_expression("$installationid:{Dev-1} || $UserId:{u@x}")
    assert evaluate(node, {"$installationid:{Dev-1}"})
    assert evaluate(node, {"$userid:{u@x}"})
    assert not evaluate(node, {"$installationid:{dev-1}"})


def test_or_only_allows_twenty_tags() -> None:
    parse_tag_expression(" || ".join(f"t{i}" for i in range(20)))
    with pytest.raises(TagExpressionError, match="at most 20"):
        parse_tag_expression(" || ".join(f"t{i}" for i in range(21)))


def test_other_operators_allow_six_tags() -> None:
    parse_tag_expression("a && b && c && d && e && f")
    with pytest.raises(TagExpressionError, match="at most 6"):
        parse_tag_expression("a && b && c && d && e && f && g")
    with pytest.raises(TagExpressionError, match="at most 6"):
        parse_tag_expression("(a || b || c || d || e || f) && g")


@pytest.mark.parametrize("expression", ["", "a &&", "(a || b", "a b", "a & b", "a || )", "$Foo:{x}", "a ^ b"])
def test_malformed_expressions_are_rejected(expression: str) -> None:
    with pytest.raises(TagExpressionError):
        parse_tag_expression(expression)


def test_tag_longer_than_120_characters_is_rejected() -> None:
    with pytest.raises(TagExpressionError, match="120"):
        parse_tag_expression("x" * 121)
