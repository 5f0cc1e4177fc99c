"""The management API's answers: a delivery's status and timeline, and a user's deliveries by status.

Times are RFC 3339 UTC strings (``2026-12-01T12:00:01.123Z``), or null for what has not happened. The
notification's content (title, body, data) is not shown: support needs what happened, not what it said.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from notify.deliveries import DeliveryRecord, DeliveryStore
from notify.delivery_machine import Status, TimelineEntry
from notify.inbox_model import ARCHIVED_AT, READ_AT
from notify.message import MAX_NOTIFICATION_ID_LENGTH
from notify.webhooks import rfc3339
from shared.errors import BadRequestError, NotFoundError

MAX_USER_ID_LENGTH = 256
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 25
_NOTIFICATION_ID = re.compile(r"[A-Za-z0-9._:-]+")


def check_user_id(user_id: str) -> str:
    """The user id from the route; BadRequestError when it cannot be one."""
    if not user_id or len(user_id) > MAX_USER_ID_LENGTH:
        raise BadRequestError(f"userId must be 1 to {MAX_USER_ID_LENGTH} characters", field="userId")
    return user_id


def check_notification_id(notification_id: str) -> str:
    """The notificationId from the route; BadRequestError when it cannot be one."""
    length_ok = 0 < len(notification_id) <= MAX_NOTIFICATION_ID_LENGTH
    if not (length_ok and _NOTIFICATION_ID.fullmatch(notification_id)):
        raise BadRequestError(
            "notificationId must be 1 to 128 letters, digits, '.', '_', ':' or '-'", field="notificationId"
        )
    return notification_id


def parse_statuses(raw: str | None) -> list[Status]:
    """``status=pushed,no_devices`` → the statuses; BadRequestError naming the allowed ones."""
    if not raw:
        return []
    statuses: list[Status] = []
    for item in (part.strip() for part in raw.split(",")):
        try:
            statuses.append(Status(item))
        except ValueError:
            allowed = ", ".join(s.value for s in Status)
            message = f"unknown status {item[:40]!r}; one or more of {allowed}"
            raise BadRequestError(message, field="status") from None
    return statuses


def parse_limit(raw: str | None) -> int:
    """``limit`` (1 to 100, default 25); BadRequestError otherwise."""
    if raw is None or raw == "":
        return DEFAULT_PAGE_SIZE
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE_SIZE:
        raise BadRequestError(f"limit must be a whole number from 1 to {MAX_PAGE_SIZE}", field="limit")
    return int(raw)


def delivery_status(store: DeliveryStore, user_id: str, notification_id: str) -> dict[str, Any]:
    """The status and timeline of one delivery; NotFoundError when the user has no such notification."""
    record = store.get(check_user_id(user_id), check_notification_id(notification_id))
    if record is None:
        raise NotFoundError(f"user has no notification {notification_id!r}")
    timeline = [*record.state.timeline, *inbox_marks(record)]
    return {**delivery_summary(record), "timeline": [entry_view(e) for e in timeline]}


def inbox_marks(record: DeliveryRecord) -> list[TimelineEntry]:
    """Reads and archives of the inbox that the delivery itself did not record, as timeline entries.

    The inbox tells the delivery of a mark only while the delivery can still change (a push due or one to
    retract: ``notify.inbox.DELIVERY_STILL_OPEN``); the delivery then records it like any transition (and a
    webhook event goes out). A mark on a settled delivery (acked, no devices, ...) changes nothing there and
    costs no request: it is shown from the inbox's own columns of the row, after the delivery's entries.
    """
    state = record.state
    entity = record.entity
    recorded = {entry.name for entry in state.timeline}
    seq = state.timeline[-1].seq + 1 if state.timeline else 0
    marks: list[tuple[float, str]] = []
    for name, column, delivery_time in (("read", READ_AT, state.read_at),
                                        ("archived", ARCHIVED_AT, state.archived_at)):
        at = entity.get(column)
        if isinstance(at, int | float) and at > 0 and not delivery_time and name not in recorded:
            marks.append((float(at), name))
    entries = []
    for at, name in sorted(marks):
        reason = f"the user {name} it in the inbox (the delivery had ended as {state.status.value})"
        entries.append(TimelineEntry(seq, at, name, state.status.value, reason, {"source": "inbox"}))
        seq += 1
    return entries


def list_deliveries(
    store: DeliveryStore, user_id: str, statuses: list[Status], limit: int, continuation: str | None
) -> dict[str, Any]:
    """One page of the user's deliveries (summaries, no timeline) and the token of the next page."""
    records, token = store.list_for_user(check_user_id(user_id), statuses, limit, continuation or None)
    return {"items": [delivery_summary(r) for r in records], "continuationToken": token}


def delivery_summary(record: DeliveryRecord) -> dict[str, Any]:
    """The headline of a delivery row."""
    entity = record.entity
    state = record.state
    last = state.timeline[-1] if state.timeline else None
    return {
        "userId": record.user_id,
        "notificationId": record.notification_id,
        "status": state.status.value,
        "delivery": state.delivery.value,
        "enqueuedAt": _time(entity.get("enqueuedAt")),
        "acceptedAt": _time(entity.get("acceptedAt")),
        "expiresAt": _time(state.expires_at),
        "realtime": {"sentAt": _time(state.realtime.sent_at)},
        "push": {"sentAt": _time(state.push.sent_at), "nhNotificationId": state.nh_notification_id or None},
        "ackedAt": _time(state.acked_at),
        "readAt": _time(state.read_at),
        "archivedAt": _time(state.archived_at),
        "lastChange": entry_view(last) if last else None,
    }


def entry_view(entry: TimelineEntry) -> dict[str, Any]:
    """A timeline entry as the API, the CLI and the webhooks show it."""
    view: dict[str, Any] = {
        "seq": entry.seq,
        "at": rfc3339(entry.at),
        "name": entry.name,
        "status": entry.status,
        "reason": entry.reason,
    }
    if entry.details:
        view["details"] = dict(entry.details)
    return view


def _time(value: object) -> str | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return rfc3339(float(value))
    return None


def query_value(params: Mapping[str, str], name: str) -> str | None:
    """A query parameter's value (None when absent)."""
    value = params.get(name)
    return value if isinstance(value, str) else None
