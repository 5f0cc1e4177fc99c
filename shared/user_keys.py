"""Map user ids to keys that are safe in Notification Hubs tags and Table Storage keys.

A user id that is short and made only of ``[a-z0-9_.:@-]`` is its own key; anything else (upper case,
``/``, ``#``, unicode, control characters, over 64 characters, or anything starting with the reserved
prefix) becomes ``sha256:<64 hex digits>``. The two forms never overlap, so the mapping is injective.
Keys are lower case, so they stay distinct even where a store compares case-insensitively.

Limits honoured: NH tags are at most 120 characters of alphanumerics and ``_ @ # . : -``; Table
PartitionKey/RowKey must not contain ``/ \\ # ?`` or control characters. ``#`` is never produced.
"""

from __future__ import annotations

import hashlib
import re

HASHED_PREFIX = "sha256:"
MAX_PLAIN_LENGTH = 64
TAG_PREFIX = "user:"

_PLAIN = re.compile(r"[a-z0-9_.:@-]+")


def _digest(user_id: str) -> str:
    # surrogatepass keeps the mapping total for ids carrying lone surrogates.
    return hashlib.sha256(user_id.encode("utf-8", "surrogatepass")).hexdigest()


def user_key(user_id: str) -> str:
    """The user's key for tags and table keys; raise ValueError for an empty id."""
    if not user_id:
        raise ValueError("user id must not be empty")
    plain = (
        len(user_id) <= MAX_PLAIN_LENGTH
        and _PLAIN.fullmatch(user_id) is not None
        and not user_id.startswith(HASHED_PREFIX)
    )
    return user_id if plain else HASHED_PREFIX + _digest(user_id)


def user_tag(user_id: str) -> str:
    """The Notification Hubs tag ``user:<key>`` for the user; raise ValueError for an empty id."""
    return TAG_PREFIX + user_key(user_id)


def user_hash(user_id: str) -> str:
    """A short stable hash of the user id (12 hex digits) for logs, so ids never appear in them."""
    return _digest(user_id)[:12]
