"""OData ``filter`` subset for sends: userId, connectionId, groups; eq, ne, in; and, or, not; parentheses."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

_TOKEN = re.compile(r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<punct>[(),])|(?P<word>[A-Za-z_][A-Za-z0-9_]*))")


class FilterError(ValueError):
    """A filter expression outside the supported subset; the message says where."""


Predicate = Callable[[dict[str, Any]], bool]


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None:
            raise FilterError(f"unexpected character at position {pos} in filter {text!r}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise FilterError(f"unexpected end of filter {self.text!r}")
        self.i += 1
        return tok

    def keyword(self, word: str) -> bool:
        tok = self.peek()
        if tok is not None and tok[0] == "word" and tok[1].lower() == word:
            self.i += 1
            return True
        return False

    def parse(self) -> Predicate:
        pred = self.or_expr()
        if self.peek() is not None:
            raise FilterError(f"unexpected {self.peek()[1]!r} in filter {self.text!r}")  # type: ignore[index]
        return pred

    def or_expr(self) -> Predicate:
        left = self.and_expr()
        while self.keyword("or"):
            right = self.and_expr()
            left = (lambda a, b: lambda c: a(c) or b(c))(left, right)
        return left

    def and_expr(self) -> Predicate:
        left = self.unary()
        while self.keyword("and"):
            right = self.unary()
            left = (lambda a, b: lambda c: a(c) and b(c))(left, right)
        return left

    def unary(self) -> Predicate:
        if self.keyword("not"):
            inner = self.unary()
            return lambda c: not inner(c)
        tok = self.peek()
        if tok == ("punct", "("):
            self.take()
            inner = self.or_expr()
            if self.take() != ("punct", ")"):
                raise FilterError(f"missing ')' in filter {self.text!r}")
            return inner
        return self.comparison()

    def operand(self) -> Callable[[dict[str, Any]], Any]:
        kind, value = self.take()
        if kind == "str":
            literal = value[1:-1].replace("''", "'")
            return lambda c: literal
        if kind == "word" and value.lower() == "null":
            return lambda c: None
        if kind == "word" and value in ("userId", "connectionId", "groups"):
            return lambda c: c.get(value)
        raise FilterError(
            f"unsupported operand {value!r} in filter {self.text!r} (use userId, connectionId, groups)"
        )

    def comparison(self) -> Predicate:
        left = self.operand()
        _, op = self.take()
        right = self.operand()
        op = op.lower()
        if op == "eq":
            return lambda c: bool(left(c) == right(c))
        if op == "ne":
            return lambda c: bool(left(c) != right(c))
        if op == "in":
            return lambda c: left(c) in (right(c) or [])
        raise FilterError(f"unsupported operator {op!r} in filter {self.text!r} (use eq, ne, in)")


def compile_filter(text: str | None) -> Predicate | None:
    """Compile a filter to a predicate over ``{"userId", "connectionId", "groups"}``; None if empty."""
    if text is None or not text.strip():
        return None
    return _Parser(text).parse()
