"""The poison queue's pure parts: envelopes, telling poison messages apart, and the CLI's filters."""

from __future__ import annotations

import argparse
import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from notify.poison import ENVELOPE_KEY, HOST_MOVED, MAX_QUEUE_MESSAGE_CHARS, envelope, read_entry
from notify.poison_cli import parse_since, selector

NOW = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)


def message(**extra: object) -> dict[str, object]:
    return {"userId": "ann", "title": "T", "body": "B", **extra}


def wrap(document: dict[str, object], reason: str = "gave up") -> bytes:
    return envelope(json.dumps(document), reason, notification_id=str(document.get("notificationId")),
                    user_id="ann", attempts=3, failing_since=1_700_000_000.0, poisoned_at=1_700_000_600.0)


def test_an_envelope_carries_the_reason_and_gives_back_the_message() -> None:
    document = message(notificationId="n-1")
    wrapped = json.loads(wrap(document, "retry horizon 3600 s; last error: 503"))
    assert wrapped[ENVELOPE_KEY] == 1 and wrapped["attempts"] == 3
    assert wrapped["failingSince"] == "2023-11-14T22:13:20Z"
    assert wrapped["poisonedAt"] == "2023-11-14T22:23:20Z"
    entry = read_entry("m1", NOW, wrap(document, "retry horizon 3600 s; last error: 503"))
    assert entry.enveloped and entry.replayable
    assert (entry.notification_id, entry.user_id) == ("n-1", "ann")
    assert entry.reason == "retry horizon 3600 s; last error: 503"
    assert json.loads(entry.body) == document


def test_an_envelope_too_big_for_a_queue_message_leaves_the_message_as_it_is() -> None:
    document = message(notificationId="n-2", delivery="realtime", data={"blob": "x" * 48_900})
    body = wrap(document)
    assert len(base64.b64encode(body)) <= MAX_QUEUE_MESSAGE_CHARS
    assert json.loads(body) == document
    entry = read_entry("m2", NOW, body)
    assert not entry.enveloped and entry.replayable and entry.reason == HOST_MOVED


@pytest.mark.parametrize("body", [b"not json", b"\xff\xfe", b"[]", json.dumps(message(userId="")).encode(),
                                  b"[" * 5000])
def test_an_invalid_message_is_never_replayable_and_says_why(body: bytes) -> None:
    entry = read_entry("m3", NOW, body)
    assert not entry.replayable and entry.reason.startswith("invalid message:")
    assert entry.notification_id is None


def test_a_message_the_host_moved_is_replayable_with_its_id() -> None:
    entry = read_entry("m4", NOW, json.dumps(message(notificationId="n-4")).encode())
    assert entry.replayable and not entry.enveloped and entry.notification_id == "n-4"
    assert entry.reason == HOST_MOVED


def test_a_valid_message_without_an_id_is_replayable_only_by_force() -> None:
    entry = read_entry("m5", NOW, json.dumps(message()).encode())
    assert entry.replayable and entry.notification_id is None and entry.user_id == "ann"
    assert entry.reason == HOST_MOVED


def test_since_takes_durations_and_iso_times() -> None:
    assert parse_since("30m", NOW) == NOW - timedelta(minutes=30)
    assert parse_since(" 2H ", NOW) == NOW - timedelta(hours=2)
    assert parse_since("7d", NOW) == NOW - timedelta(days=7)
    assert parse_since("2026-12-01T10:00:00Z", NOW) == datetime(2026, 12, 1, 10, tzinfo=UTC)
    assert parse_since("2026-12-01T10:00:00", NOW) == datetime(2026, 12, 1, 10, tzinfo=UTC)
    with pytest.raises(argparse.ArgumentTypeError, match="--since 'yesterday'"):
        parse_since("yesterday", NOW)


def test_the_selector_filters_by_time_and_by_either_id() -> None:
    old = read_entry("m-old", NOW - timedelta(hours=3), json.dumps(message(notificationId="n-a")).encode())
    new = read_entry("m-new", NOW, json.dumps(message(notificationId="n-b")).encode())
    undated = read_entry("m-undated", None, json.dumps(message(notificationId="n-c")).encode())
    since = selector(NOW - timedelta(hours=1), None)
    assert [e.message_id for e in (old, new, undated) if since(e)] == ["m-new"]
    by_id = selector(None, ["n-a", "m-undated"])
    assert [e.message_id for e in (old, new, undated) if by_id(e)] == ["m-old", "m-undated"]
    assert all(selector(None, None)(e) for e in (old, new, undated))
