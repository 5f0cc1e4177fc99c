"""Template expression renderer of the Notification Hubs emulator (pure logic)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from devstack.notificationhubs.templates import TemplateError, check_template_body, render_template


def render(template: dict[str, Any], props: dict[str, str]) -> Any:
    return json.loads(render_template(json.dumps(template), props))


def test_value_and_missing_property() -> None:
    out = render({"t": "$(title)", "m": "$(missing)"}, {"title": "Hello"})
    assert out == {"t": "Hello", "m": ""}


def test_property_names_are_case_insensitive() -> None:
    assert render({"t": "$(TITLE)"}, {"Title": "x"}) == {"t": "x"}


def test_clipping_and_ellipsis() -> None:
    props = {"body": "abcdefghij"}
    out = render({"a": "$(body, 4)", "b": ".(body, 8)", "c": ".(body, 20)"}, props)
    assert out == {"a": "abcd", "b": "abcde...", "c": "abcdefghij"}


def test_uri_encoding() -> None:
    assert render({"u": "https://x/?q=%(q)"}, {"q": "a b&c"}) == {"u": "https://x/?q=a%20b%26c"}


def test_hash_emits_numbers_only_for_numeric_bare_values() -> None:
    out = render(
        {"badge": "#(count)", "text": "#(name)", "inline": "n=#(count)"}, {"count": "40", "name": "x"}
    )
    assert out == {"badge": 40, "text": "x", "inline": "n=40"}


def test_concatenation_with_literals() -> None:
    out = render({"t": "{$(first) + ' ' + $(last) + \"!\"}"}, {"first": "Ada", "last": "Lovelace"})
    assert out == {"t": "Ada Lovelace!"}


def test_concatenation_with_clipping_term() -> None:
    assert render({"t": "{'> ' + .(msg, 6)}"}, {"msg": "long message"}) == {"t": "> lon..."}


def test_inline_expressions_inside_text_and_nested_objects() -> None:
    template = {
        "aps": {"alert": {"title": "Hi $(name)", "body": "$(body)"}, "badge": "#(n)"},
        "nid": "$(nid)",
    }
    out = render(template, {"name": "Bo", "body": "b", "n": "3", "nid": "N1"})
    assert out == {"aps": {"alert": {"title": "Hi Bo", "body": "b"}, "badge": 3}, "nid": "N1"}


def test_values_are_json_escaped() -> None:
    out = render({"t": "$(x)"}, {"x": 'quote " and \\ backslash'})
    assert out == {"t": 'quote " and \\ backslash'}


def test_invalid_concatenation_term_is_an_error() -> None:
    with pytest.raises(TemplateError):
        render_template(json.dumps({"t": "{$(a) + oops}"}), {})


def test_non_json_body_is_rejected_when_json_is_required() -> None:
    with pytest.raises(TemplateError, match="not valid JSON"):
        check_template_body("{not json", json_required=True)
