"""User keys: safe in Notification Hubs tags and Table keys, and never shared by two user ids."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable

import pytest

from shared.user_keys import HASHED_PREFIX, MAX_USER_ID_LENGTH, user_hash, user_id_problem, user_key, user_tag

TAG = re.compile(r"[A-Za-z0-9_@#.:-]{1,120}")
TABLE_FORBIDDEN = re.compile(r"[/\\#?\x00-\x1f\x7f-\x9f]")

AWKWARD_IDS = [
    "alice",
    "Alice",
    "ALICE",
    "alice@example.com",
    "Alice@Example.com",
    "tenant/user",
    "tenant\\user",
    "a#b",
    "a?b",
    "zoë",
    "用户",
    "tab\there",
    "new\nline",
    "space here",
    "x" * 64,
    "x" * 65,
    "y" * 5000,
    "sha256:" + "0" * 64,
    HASHED_PREFIX + hashlib.sha256(b"alice").hexdigest(),
    "\ud800",
    "00000000-0000-0000-0000-000000000000",
    "auth0|5f7c8ec7c33c6c004bbafe82",
]


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@pytest.mark.parametrize("user_id", ["alice", "bob-1", "a.b_c:d@e", "x" * 64, "0"])
def test_short_lowercase_ids_are_their_own_key(user_id: str) -> None:
    assert user_key(user_id) == user_id
    assert user_tag(user_id) == "user:" + user_id


@pytest.mark.parametrize("user_id", ["Alice", "a/b", "a#b", "zoë", "x" * 65, "a b", "sha256:abc"])
def test_other_ids_become_the_prefixed_sha256_of_the_id(user_id: str) -> None:
    assert user_key(user_id) == HASHED_PREFIX + _sha(user_id)


@pytest.mark.parametrize("user_id", AWKWARD_IDS)
def test_every_tag_is_a_valid_notification_hubs_tag(user_id: str) -> None:
    assert TAG.fullmatch(user_tag(user_id)), user_tag(user_id)


@pytest.mark.parametrize("user_id", AWKWARD_IDS)
def test_every_key_is_a_valid_table_key(user_id: str) -> None:
    key = user_key(user_id)
    assert key and TABLE_FORBIDDEN.search(key) is None, key
    assert len(key.encode("utf-8")) <= 1024


def test_keys_are_distinct_for_distinct_ids_even_ignoring_case() -> None:
    keys = [user_key(u) for u in AWKWARD_IDS]
    assert len(set(keys)) == len(AWKWARD_IDS)
    assert len({k.lower() for k in keys}) == len(AWKWARD_IDS)


def test_an_id_that_looks_hashed_does_not_collide_with_the_id_it_mimics() -> None:
    mimic = user_key("Alice")  # "sha256:<hex>" passed in as a user id of its own
    assert user_key(mimic) != mimic
    assert user_key(mimic) == HASHED_PREFIX + _sha(mimic)


def test_keys_are_stable() -> None:
    assert user_key("Tenant/User") == user_key("Tenant/User")
    assert user_hash("Tenant/User") == user_hash("Tenant/User")


@pytest.mark.parametrize("fn", [user_key, user_tag])
def test_empty_id_is_rejected(fn: Callable[[str], str]) -> None:
    with pytest.raises(ValueError, match="empty"):
        fn("")


def test_user_hash_is_short_and_does_not_reveal_the_id() -> None:
    digest = user_hash("alice@example.com")
    assert re.fullmatch(r"[0-9a-f]{12}", digest)
    assert digest == _sha("alice@example.com")[:12]
    assert user_hash("alice") != user_hash("Alice")


# --- the user id rule -------------------------------------------------------------------------------------

ACCEPTED = [
    "alice",
    "Alice",
    "a b",
    "zoë",
    unicodedata.normalize("NFD", "zoë"),
    "tenant/user",
    "tenant\\user",
    "a#b",
    "a?b",
    "用户",
    "😀",
    "x" * MAX_USER_ID_LENGTH,
    "auth0|5f7c8ec7c33c6c004bbafe82",
    "sha256:" + "0" * 64,
]
REFUSED = [
    ("", "empty"),
    ("x" * (MAX_USER_ID_LENGTH + 1), "longer than 256"),
    ("victim ", "white space"),
    (" victim", "white space"),
    ("victim\u00a0", "white space"),
    ("\u3000victim", "white space"),
    ("victim\ufeff", "white space"),
    ("new\nline", "control"),
    ("tab\there", "control"),
    ("nul\u0000", "control"),
    ("del\u007f", "control"),
    ("c1\u0085", "control"),
    ("line\u2028sep", "line separator"),
    ("\ud800", "surrogate"),
    (5, "not a string"),
    (None, "not a string"),
]


@pytest.mark.parametrize("user_id", ACCEPTED)
def test_accepted_user_ids(user_id: str) -> None:
    assert user_id_problem(user_id) is None


@pytest.mark.parametrize(("user_id", "problem"), REFUSED)
def test_refused_user_ids_say_why(user_id: object, problem: str) -> None:
    found = user_id_problem(user_id)
    assert found is not None and problem in found


def test_accepted_ids_that_look_alike_keep_distinct_keys_and_tags() -> None:
    """Case, normalisation forms, separators and length: every accepted id gets a key of its own."""
    keys = [user_key(u) for u in ACCEPTED] + [user_key("x" * (MAX_USER_ID_LENGTH - 1) + "y")]
    assert len(set(keys)) == len(keys)
    assert len({user_tag(u).lower() for u in ACCEPTED}) == len(ACCEPTED)
    for user_id in ACCEPTED:
        assert TAG.fullmatch(user_tag(user_id)) and TABLE_FORBIDDEN.search(user_key(user_id)) is None


def test_the_user_partition_is_the_one_the_device_index_uses() -> None:
    from notify.devices import _index_partition
    from notify.user_rows import user_partition

    for user_id in ("alice", "Alice/Ü", "x" * MAX_USER_ID_LENGTH):
        assert user_partition(user_id) == _index_partition(user_key(user_id))


def test_key_hash_is_the_users_hash_for_both_key_forms() -> None:
    from shared.user_keys import key_hash, user_hash, user_key

    for user_id in ("alice", "Alice With Spaces/ü", "x" * 300):
        assert key_hash(user_key(user_id)) == user_hash(user_id)


def test_redact_user_replaces_the_id_and_its_key() -> None:
    from shared.user_keys import redact_user, user_hash

    text = redact_user("tag user:Bob/1 and sha256 id Bob/1 refused", "Bob/1")
    assert "Bob/1" not in text and user_hash("Bob/1") in text
    assert redact_user("nothing to hide", "carol") == "nothing to hide"
