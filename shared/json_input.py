"""JSON that arrives from outside (HTTP bodies, queue messages, Web PubSub events, token segments).

``json.loads`` recurses once per nesting level, so a few kilobytes of ``[[[[…`` end in a RecursionError
(a 500, or a queue message retried five times). :func:`parse_json` counts the nesting first, outside
strings, and refuses anything deeper than :data:`MAX_DEPTH` before the parser sees it. The count never
undercounts, so nothing that passes it can recurse deeper.

:func:`unstorable` finds strings that cannot be encoded as UTF-8 (lone surrogates, which JSON's ``\\ud800``
escapes produce): storage and every SDK would fail on them later, after the retries.
"""

from __future__ import annotations

import json
import re
from typing import Any

#: The deepest nesting of objects and arrays accepted anywhere (the top-level object counts as 1).
MAX_DEPTH = 32

_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)
# A \uD800-\uDFFF escape: the only way a lone surrogate gets into text decoded as strict UTF-8.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE_ESCAPE_BYTES = re.compile(rb"\\u[dD][89a-fA-F]")


class JsonInputError(ValueError):
    """The input is not JSON the app accepts; the message says why (without repeating the input)."""


def nesting_depth(text: str) -> int:
    """The deepest nesting of ``[`` / ``{`` in ``text`` outside JSON strings (an upper bound when invalid)."""
    depth = deepest = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif token in "]}":
            depth = max(0, depth - 1)
    return deepest


def parse_json(raw: str | bytes, max_depth: int = MAX_DEPTH) -> Any:
    """Decode UTF-8 JSON nested at most ``max_depth`` levels; raise JsonInputError saying what is wrong."""
    if isinstance(raw, bytes | bytearray):
        try:
            text = bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise JsonInputError("is not UTF-8") from None
    else:
        text = raw
    # Fewer brackets than the limit cannot nest deeper than it: the scan is needed only beyond that.
    if text.count("[") + text.count("{") > max_depth and nesting_depth(text) > max_depth:
        raise JsonInputError(f"nests objects and arrays deeper than {max_depth} levels")
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise JsonInputError("is not valid JSON") from None


def may_hold_surrogates(raw: str | bytes) -> bool:
    """False when JSON text (valid UTF-8) cannot decode to a lone surrogate: it has no such escape."""
    if isinstance(raw, bytes | bytearray):
        return _SURROGATE_ESCAPE_BYTES.search(raw) is not None
    return _SURROGATE_ESCAPE.search(raw) is not None


def unstorable(value: Any) -> bool:
    """True when ``value`` (a parsed JSON value) holds a string that cannot be encoded as UTF-8."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (UnicodeEncodeError, ValueError, RecursionError):
        return True
    return False
