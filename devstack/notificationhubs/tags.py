"""Tag expressions (``ServiceBusNotification-Tags``): ``||``, ``&&``, ``!`` and parentheses.

Precedence: ``!`` binds tightest, then ``&&``, then ``||``. Limits as the service documents them:
at most 20 tags when the expression uses only ``||``, otherwise at most 6.
Built-in tags ``$InstallationId:{id}`` and ``$UserId:{uid}`` match an installation's id and userId.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

MAX_TAGS_OR_ONLY = 20
MAX_TAGS_OTHERWISE = 6

TAG_PATTERN = re.compile(r"^[A-Za-z0-9_@#.:\-]{1,120}$")
_TAG_CHARS = re.compile(r"[A-Za-z0-9_@#.:\-]+")
_BUILTIN = re.compile(r"\$(InstallationId|UserId):\{([^}]*)\}", re.IGNORECASE)


class TagExpressionError(ValueError):
    """The tag expression is malformed or over the service limits (HTTP 400)."""


@dataclass(frozen=True)
class Tag:
    """A tag leaf; built-in tags are normalised to ``$installationid:{id}`` / ``$userid:{uid}``."""

    name: str


@dataclass(frozen=True)
class Not:
    """Negation of an operand."""

    operand: Node


@dataclass(frozen=True)
class And:
    """Both operands must hold."""

    left: Node
    right: Node


@dataclass(frozen=True)
class Or:
    """Either operand must hold."""

    left: Node
    right: Node


Node = Tag | Not | And | Or


def builtin_tag(kind: str, value: str) -> str:
    """Return the normalised form of a built-in tag (kind is ``installationid`` or ``userid``)."""
    return f"${kind.lower()}:{{{value}}}"


def _tokenize(text: str) -> list[str]:
    tokens: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
        elif text.startswith("&&", i) or text.startswith("||", i):
            tokens.append(text[i : i + 2])
            i += 2
        elif ch in "()!":
            tokens.append(ch)
            i += 1
        elif ch == "$":
            match = _BUILTIN.match(text, i)
            if match is None:
                raise TagExpressionError(
                    f"Invalid built-in tag at position {i}: "
                    "expected $InstallationId:{id} or $UserId:{id}."
                )
            tokens.append("\0" + builtin_tag(match.group(1), match.group(2)))
            i = match.end()
        else:
            match = _TAG_CHARS.match(text, i)
            if match is None:
                raise TagExpressionError(f"Invalid character {ch!r} at position {i} in the tag expression.")
            tag = match.group(0)
            if len(tag) > 120:
                raise TagExpressionError(f"Tag '{tag[:20]}...' is longer than 120 characters.")
            tokens.append("\0" + tag)
            i = match.end()
    return tokens


class _Parser:
    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def parse_or(self) -> Node:
        node = self.parse_and()
        while self.peek() == "||":
            self.take()
            node = Or(node, self.parse_and())
        return node

    def parse_and(self) -> Node:
        node = self.parse_not()
        while self.peek() == "&&":
            self.take()
            node = And(node, self.parse_not())
        return node

    def parse_not(self) -> Node:
        token = self.peek()
        if token is None:
            raise TagExpressionError("The tag expression ends where a tag was expected.")
        if token == "!":
            self.take()
            return Not(self.parse_not())
        if token == "(":
            self.take()
            node = self.parse_or()
            if self.peek() != ")":
                raise TagExpressionError("Unbalanced parentheses in the tag expression.")
            self.take()
            return node
        if token.startswith("\0"):
            self.take()
            return Tag(token[1:])
        raise TagExpressionError(f"Unexpected {token!r} in the tag expression.")


def parse_tag_expression(text: str) -> Node:
    """Parse ``text`` into an expression tree; raises :class:`TagExpressionError` (400)."""
    tokens = _tokenize(text)
    if not tokens:
        raise TagExpressionError("The tag expression is empty.")
    tag_count = sum(1 for token in tokens if token.startswith("\0"))
    only_or = all(token in ("||", "(", ")") or token.startswith("\0") for token in tokens)
    limit = MAX_TAGS_OR_ONLY if only_or else MAX_TAGS_OTHERWISE
    if tag_count > limit:
        kind = "only ||" if only_or else "&&, ! or mixed operators"
        raise TagExpressionError(
            f"The tag expression has {tag_count} tags; at most {limit} are allowed "
            f"in an expression using {kind}."
        )
    parser = _Parser(tokens)
    node = parser.parse_or()
    if parser.peek() is not None:
        raise TagExpressionError(f"Unexpected {parser.peek()!r} in the tag expression.")
    return node


def evaluate(node: Node, tags: Iterable[str] | set[str]) -> bool:
    """True when the tag set satisfies the expression (built-ins must already be in normalised form)."""
    tag_set = tags if isinstance(tags, set) else set(tags)
    if isinstance(node, Tag):
        return node.name in tag_set
    if isinstance(node, Not):
        return not evaluate(node.operand, tag_set)
    if isinstance(node, And):
        return evaluate(node.left, tag_set) and evaluate(node.right, tag_set)
    return evaluate(node.left, tag_set) or evaluate(node.right, tag_set)
