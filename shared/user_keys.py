"""The user id rule, and the mapping of user ids to keys safe in Notification Hubs tags and Table keys.

**Accepted user ids** (:func:`user_id_problem`; the same rule at negotiate, device registration and
enqueue): a string of 1-256 characters (Unicode code points) with no control characters (U+0000-001F,
U+007F-009F), no line or paragraph separator (U+2028, U+2029), no lone surrogate, and no white space at
either end. Why: the user id reaches the app again in the ``ce-userId`` header of Web PubSub events, and
HTTP trims white space from header values and cannot carry control characters, so ``"victim "`` would come
back as ``"victim"`` and ``"a\\nb"`` not at all. Ids are compared code point for code point: no case
folding, no Unicode normalisation, so ``Zoë`` written as NFC and as NFD are two users.

**Keys.** A user id that is short and made only of ``[a-z0-9_.:@-]`` is its own key; anything else (upper
case, ``/``, ``#``, unicode, spaces, over 64 characters, or anything starting with the reserved prefix)
becomes ``sha256:<64 hex digits>`` of its UTF-8 bytes. The two forms never overlap, so the mapping is
injective. Keys are lower case, so they stay distinct even where a store compares case-insensitively.

Limits honoured: NH tags are at most 120 characters of alphanumerics and ``_ @ # . : -``; Table
PartitionKey/RowKey must not contain ``/ \\ # ?`` or control characters. ``#`` is never produced.
"""

from __future__ import annotations

import hashlib
import re

HASHED_PREFIX = "sha256:"
MAX_PLAIN_LENGTH = 64
MAX_USER_ID_LENGTH = 256
TAG_PREFIX = "user:"

_PLAIN = re.compile(r"[a-z0-9_.:@-]+")
_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
#: White space not allowed at either end (controls such as tab and newline are refused everywhere).
_EDGE_SPACE = "[ \u00a0\u1680\u2000-\u200a\u202f\u205f\u3000\ufeff]"
_AT_AN_END = re.compile(f"\\A{_EDGE_SPACE}|{_EDGE_SPACE}\\Z")


def user_id_problem(user_id: object) -> str | None:
    """Why ``user_id`` is not an accepted user id (a phrase such as ``"is empty"``), or None if it is."""
    if not isinstance(user_id, str):
        return "is not a string"
    if not user_id:
        return "is empty"
    if len(user_id) > MAX_USER_ID_LENGTH:
        return f"is longer than {MAX_USER_ID_LENGTH} characters"
    if _FORBIDDEN.search(user_id):
        return "contains a control character, a line separator or a lone surrogate"
    if _AT_AN_END.search(user_id):
        return "starts or ends with white space"
    return None


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


def key_hash(key: str) -> str:
    """The :func:`user_hash` of the user a key (:func:`user_key`) belongs to, for logs."""
    if key.startswith(HASHED_PREFIX):
        return key[len(HASHED_PREFIX):][:12]
    return user_hash(key)


def redact_user(text: str, user_id: str) -> str:
    """``text`` (e.g. a service's error message) with the user id and its key replaced by the user hash."""
    if not user_id:
        return text
    hashed = f"<user {user_hash(user_id)}>"
    for value in sorted({user_id, user_key(user_id)}, key=len, reverse=True):
        text = text.replace(value, hashed)
    return text
