"""The delivery record of each notification: one Table row per (user, notificationId), read and written
conditionally. Decisions are not made here but in :mod:`notify.delivery_machine`; this module maps its
:class:`~notify.delivery_machine.DeliveryState` to the row and back and offers three operations:

* :meth:`DeliveryStore.insert` — insert the row if absent (a redelivery gets the existing row back);
* :meth:`DeliveryStore.get` — read the row with its ETag;
* :meth:`DeliveryStore.write` — merge the columns a new state changes, only if the row still has the ETag
  it was read at (``MatchConditions.IfNotModified``); None when it changed meanwhile or is gone, and the
  caller reads again and decides again (:func:`notify.notifier.advance`).

Row: PartitionKey = ``user_key(userId)``, RowKey = notificationId. It keeps what is needed to push later
(``content``: title, body, type and data as UTF-8 JSON in one binary property, because a string property
holds at most 32K UTF-16 characters while a message may carry 48 KB), the delivery mode, the TTL,
``enqueuedAt`` / ``acceptedAt``, ``critical``, and the state: ``status``, per channel (realtime, push,
retract) ``<channel>ClaimId``, ``<channel>ClaimedAt``, ``<channel>SentAt`` (unix seconds, 0 = not yet),
``pushOutcome``, ``ackedAt``, ``readAt``, ``archivedAt``, ``nhNotificationId``, ``suppressedRule``,
``deferredUntil``, ``deferredBy`` and ``timeline`` (the delivery timeline as JSON text, bounded to
:data:`MAX_TIMELINE_CHARS`; it changes together with the state, so it costs no request of its own), plus
``traceparent`` (the trace later events of the notification join); while retrying ``retryAt`` (the next
attempt), ``attempts``, ``failingSince``, ``lastError`` and ``retryClaimId``; ``reason`` (why it failed or
went to the poison queue) and ``poisonedAt``; ``recoverAt``, when the recovery pass should look at the row
(0 or absent = never; :meth:`DeliveryStore.due_for_recovery` queries it). A new state field is a new column
here (with its default for older rows, which read as if the field had never been set); the retry and
recovery columns still at their default are left out of the insert.

The row is also the notification's **inbox item** (:mod:`notify.inbox`): the insert carries ``type``,
``inbox`` (false for a message that must not be listed) and ``inboxPending`` (true: not yet in the user's
counts), so adding an item to the inbox costs no request. The inbox's own columns and its counter row
(RowKey ``~inbox``, which no notificationId can equal) are written by the inbox only; the merges here
touch the delivery columns only, and an inbox write in between just makes the next merge meet a new ETag.

Writes whose answer is lost are repeated by the SDK (:data:`shared.clients.CONDITIONAL_WRITE_RETRY`): an
insert that meets its own row answers 409 and the row read back carries the caller's claim; a merge that
was applied answers 412 on the repeat and the caller's re-read shows it applied. Azure SDK errors are
translated here and only here: 409/412 drive the callers' loops, 429/408/5xx/timeouts become
TransientError, anything else UpstreamError.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.data.tables import TableClient, UpdateMode

from notify.delivery_machine import Channel, ChannelState, DeliveryState, PushOutcome, Status, TimelineEntry
from notify.inbox_model import LISTED, PENDING, TYPE, is_reserved_row_key
from notify.model import Delivery, Notification
from shared.clients import CONDITIONAL_WRITE_RETRY
from shared.errors import BadRequestError, TransientError, UpstreamError
from shared.user_keys import user_key

logger = logging.getLogger(__name__)
SERVICE = "table storage"
#: Rows a store remembers (:meth:`DeliveryStore.recent`): a few thousand notifications in flight.
REMEMBERED_ROWS = 4096
#: Pages one recovery scan reads at most (one request each); the next pass resumes where it stopped.
RECOVERY_SCAN_PAGES = 20
#: Longest timeline column: a string property holds at most 32K UTF-16 characters (64 KiB).
MAX_TIMELINE_CHARS = 30_000
#: Columns a listing reads: everything but the content and the claims.
SUMMARY_COLUMNS = (
    "PartitionKey", "RowKey", "userId", "delivery", "status", "enqueuedAt", "acceptedAt", "ttlSeconds",
    "realtimeSentAt", "pushSentAt", "ackedAt", "readAt", "archivedAt", "pushOutcome", "nhNotificationId",
    "timeline",
)


@dataclass(frozen=True)
class DeliveryRecord:
    """A snapshot of one delivery row, with the ETag it was read at.

    A row this process has just written carries the state it wrote and that state's columns
    (:func:`written_state`), so that its next write compares against columns already built and deciding on
    it again decodes nothing (unless the columns could not hold the state whole); a row read from the table
    decodes its columns on first use.
    """

    entity: Mapping[str, Any]
    etag: str
    written: WrittenState | None = field(default=None, compare=False, repr=False)

    @property
    def notification_id(self) -> str:
        """The notification's id (RowKey)."""
        return str(self.entity["RowKey"])

    @property
    def user_id(self) -> str:
        """The recipient's user id."""
        return str(self.entity["userId"])

    @functools.cached_property
    def state(self) -> DeliveryState:
        """The decision-relevant state of the row (decoded once: a handling consults it several times)."""
        if self.written is not None and self.written.exact:
            return self.written.state
        return state_from_entity(self.entity)

    @functools.cached_property
    def columns(self) -> Mapping[str, Any]:
        """The row's state columns as :func:`state_columns` builds them (for a merge's comparison)."""
        if self.written is not None:
            return self.written.columns
        return state_columns(self.state)

    @property
    def status(self) -> Status:
        """The delivery status."""
        return Status(self.entity["status"])

    def notification(self) -> Notification:
        """Rebuild the notification from the stored row."""
        content = json.loads(bytes(self.entity["content"]).decode("utf-8"))
        ttl = int(self.entity.get("ttlSeconds", 0)) or None
        enqueued = float(self.entity.get("enqueuedAt", 0.0)) or None
        return Notification(
            notification_id=self.notification_id,
            user_id=self.user_id,
            title=content["title"],
            body=content["body"],
            type=content["type"],
            data=content["data"],
            delivery=Delivery(self.entity["delivery"]),
            ttl_seconds=ttl,
            enqueued_at=enqueued,
            critical=bool(self.entity.get("critical", False)),
            inbox=self.entity.get(LISTED) is not False,
            traceparent=str(self.entity.get("traceparent") or "") or None,
        )


def expiry_of(notification: Notification, accepted_at: float) -> float | None:
    """When the notification's TTL runs out (from its enqueue time, else acceptance), or None."""
    if notification.ttl_seconds is None:
        return None
    return (notification.enqueued_at or accepted_at) + notification.ttl_seconds


def state_from_entity(entity: Mapping[str, Any]) -> DeliveryState:
    """Read the state columns of a row (columns a row predates read as their defaults)."""

    def number(name: str) -> float:
        return float(entity.get(name) or 0.0)

    def channel(prefix: str) -> ChannelState:
        return ChannelState(
            str(entity.get(f"{prefix}ClaimId") or ""), number(f"{prefix}ClaimedAt"), number(f"{prefix}SentAt")
        )

    def text(name: str) -> str:
        return str(entity.get(name) or "")

    ttl = int(entity.get("ttlSeconds") or 0)
    start = number("enqueuedAt") or number("acceptedAt")
    status = Status(entity["status"])
    push = channel(Channel.PUSH.value)
    outcome = entity.get("pushOutcome")
    if not outcome and push.sent:  # rows from before pushOutcome: the status told it
        outcome = PushOutcome.NO_DEVICES.value if status is Status.NO_DEVICES else PushOutcome.PUSHED.value
    return DeliveryState(
        delivery=Delivery(entity["delivery"]),
        status=status,
        realtime=channel(Channel.REALTIME.value),
        push=push,
        retract=channel(Channel.RETRACT.value),
        push_outcome=PushOutcome(outcome) if outcome else None,
        acked_at=number("ackedAt"),
        read_at=number("readAt"),
        archived_at=number("archivedAt"),
        expires_at=start + ttl if ttl else None,
        nh_notification_id=text("nhNotificationId"),
        suppressed_rule=text("suppressedRule"),
        deferred_until=number("deferredUntil"),
        deferred_by=text("deferredBy"),
        retry_at=number("retryAt"),
        attempts=int(entity.get("attempts") or 0),
        failing_since=number("failingSince"),
        last_error=text("lastError"),
        retry_claim_id=text("retryClaimId"),
        reason=text("reason"),
        poisoned_at=number("poisonedAt"),
        recover_at=number("recoverAt"),
        timeline=timeline_from_column(entity.get("timeline")),
    )


#: The state column every row has (queries filter on it); every other state column reads as 0 or "" when a
#: row lacks it, so an insert leaves out those still at that default. The SDK serialises each property it
#: is given (the insert of a row with every column cost about 1 ms more CPU than this one's).
REQUIRED_STATE_COLUMNS = frozenset({"status"})
#: Insert Entity's ``Prefer`` header: answer 204 with the ETag instead of echoing the row back (the echo
#: is read and deserialised by the SDK for nothing: the store keeps the row it wrote).
NO_ECHO = "return-no-content"
MAX_ERROR_CHARS = 1024  # error texts are for operators; a Table string property could hold 32K characters


def timeline_from_column(raw: object) -> tuple[TimelineEntry, ...]:
    """The timeline stored in a row's ``timeline`` column (entries that do not parse are skipped)."""
    if not isinstance(raw, str) or not raw:
        return ()
    try:
        document = json.loads(raw)
    except ValueError:
        logger.warning("a delivery timeline column is not JSON; shown as empty")
        return ()
    items = document if isinstance(document, list) else []
    return tuple(entry for entry in map(TimelineEntry.from_dict, items) if entry is not None)


def timeline_column(timeline: Iterable[TimelineEntry]) -> str:
    """The ``timeline`` column for ``timeline``; the oldest entries after the first go when it is too long."""
    return _timeline_text(timeline)[0]


def _timeline_text(timeline: Iterable[TimelineEntry]) -> tuple[str, bool]:
    """The ``timeline`` column and whether entries had to go."""
    entries = [entry.to_dict() for entry in timeline]
    text = _json(entries)
    trimmed = False
    while len(text) > MAX_TIMELINE_CHARS and len(entries) > 2:
        del entries[1]
        text = _json(entries)
        trimmed = True
    return text, trimmed


@dataclass(frozen=True)
class WrittenState:
    """A state as this process writes it: the state, its columns (:func:`state_columns`), and whether the
    row reads back as that state (``exact``: the columns shorten a long error text and drop old timeline
    entries beyond :data:`MAX_TIMELINE_CHARS`; a row written so decodes to something else)."""

    state: DeliveryState
    columns: Mapping[str, Any]
    exact: bool


def written_state(state: DeliveryState) -> WrittenState:
    """``state`` with its columns, built once for the write and for the record it leaves."""
    columns, exact = _state_columns(state)
    return WrittenState(state, columns, exact)


def _insert_columns(columns: Mapping[str, Any]) -> dict[str, Any]:
    """The state columns an insert writes: the required ones and those not at their default."""
    return {
        name: value for name, value in columns.items()
        if name in REQUIRED_STATE_COLUMNS or not _is_default(value)
    }


def _is_default(value: object) -> bool:
    return value == "" or (isinstance(value, (int, float)) and value == 0)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def state_columns(state: DeliveryState) -> dict[str, Any]:
    """The columns holding ``state`` (times always as floats: an int beyond 2**31 would not fit Int32)."""
    return _state_columns(state)[0]


def _state_columns(state: DeliveryState) -> tuple[dict[str, Any], bool]:
    """The columns of ``state``, and whether they hold all of it (no text shortened, no entry dropped)."""
    columns: dict[str, Any] = {
        "status": state.status.value,
        "ackedAt": float(state.acked_at),
        "readAt": float(state.read_at),
        "archivedAt": float(state.archived_at),
        "deferredUntil": float(state.deferred_until),
    }
    for channel in Channel:
        current = state.channel(channel)
        columns[f"{channel}ClaimId"] = current.claim_id
        columns[f"{channel}ClaimedAt"] = float(current.claimed_at)
        columns[f"{channel}SentAt"] = float(current.sent_at)
    columns["pushOutcome"] = state.push_outcome.value if state.push_outcome else ""
    columns["nhNotificationId"] = state.nh_notification_id
    columns["suppressedRule"] = state.suppressed_rule
    columns["deferredBy"] = state.deferred_by
    columns.update(
        retryAt=float(state.retry_at),
        attempts=int(state.attempts),
        failingSince=float(state.failing_since),
        lastError=state.last_error[:MAX_ERROR_CHARS],
        retryClaimId=state.retry_claim_id,
        reason=state.reason[:MAX_ERROR_CHARS],
        poisonedAt=float(state.poisoned_at),
        recoverAt=float(state.recover_at),
    )
    trimmed = False
    if state.timeline:
        columns["timeline"], trimmed = _timeline_text(state.timeline)
    exact = not trimmed and len(state.last_error) <= MAX_ERROR_CHARS and len(state.reason) <= MAX_ERROR_CHARS
    return columns, exact


class DeliveryStore:
    """Delivery rows in a Table; every write is conditional (see the module docstring).

    The store remembers the rows it last inserted, read or wrote (:meth:`recent`, at most ``remembered``):
    a client's ack follows the in-app send by milliseconds, usually on the same instance, and a write
    decided on the remembered row is as safe as one decided on a fresh read, since it only lands if the
    row still has that ETag.
    """

    def __init__(self, table: TableClient, remembered: int = REMEMBERED_ROWS) -> None:
        self._table = table
        self._recent: OrderedDict[tuple[str, str], DeliveryRecord] = OrderedDict()
        self._recent_lock = threading.Lock()
        self._remembered = remembered

    def recent(self, user_id: str, notification_id: str) -> DeliveryRecord | None:
        """The row as this store last saw it, or None; it may be stale (decide on it, write conditionally)."""
        with self._recent_lock:
            return self._recent.get((user_key(user_id), notification_id))

    def _remember(self, record: DeliveryRecord) -> DeliveryRecord:
        key = (str(record.entity["PartitionKey"]), record.notification_id)
        with self._recent_lock:
            self._recent[key] = record
            self._recent.move_to_end(key)
            while len(self._recent) > self._remembered:
                self._recent.popitem(last=False)
        return record

    def _forget(self, user_id: str, notification_id: str) -> None:
        with self._recent_lock:
            self._recent.pop((user_key(user_id), notification_id), None)

    def insert(
        self, notification: Notification, state: DeliveryState, accepted_at: float
    ) -> tuple[DeliveryRecord, bool]:
        """Insert the row with ``state`` unless it exists; return (the row, True if this call created it).

        Raises TransientError / UpstreamError.
        """
        content = json.dumps(
            {
                "title": notification.title,
                "body": notification.body,
                "type": notification.type,
                "data": notification.data,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode("utf-8")
        entity: dict[str, Any] = {
            "PartitionKey": user_key(notification.user_id),
            "RowKey": notification.notification_id,
            "userId": notification.user_id,
            "content": content,
            "delivery": notification.delivery.value,
            "ttlSeconds": notification.ttl_seconds or 0,
            "enqueuedAt": float(notification.enqueued_at or 0.0),
            "acceptedAt": float(accepted_at),
            "critical": notification.critical,
            TYPE: notification.type,
            LISTED: notification.inbox,
            PENDING: notification.inbox,
        }
        written = written_state(state)
        entity.update(_insert_columns(written.columns))
        if notification.traceparent:
            entity["traceparent"] = notification.traceparent
        try:
            metadata = self._table.create_entity(
                entity, response_preference=NO_ECHO, **CONDITIONAL_WRITE_RETRY
            )
        except ResourceExistsError:
            existing = self.get(notification.user_id, notification.notification_id)
            if existing is None:  # deleted in between; let the retry start over
                raise TransientError(SERVICE, "delivery row vanished after a conflict") from None
            return existing, False
        except AzureError as exc:
            _raise_translated(exc, "insert delivery")
        return self._remember(DeliveryRecord(entity, str(metadata["etag"]), written)), True

    def get(self, user_id: str, notification_id: str) -> DeliveryRecord | None:
        """The current row, or None if there is none (the inbox's own rows are not deliveries)."""
        if is_reserved_row_key(notification_id):
            return None
        try:
            entity = self._table.get_entity(user_key(user_id), notification_id)
        except ResourceNotFoundError:
            self._forget(user_id, notification_id)
            return None
        except AzureError as exc:
            _raise_translated(exc, "read delivery")
        return self._remember(DeliveryRecord(dict(entity), str(entity.metadata["etag"])))

    def write(self, record: DeliveryRecord, state: DeliveryState) -> DeliveryRecord | None:
        """Merge the columns ``state`` changes if the row still has ``record``'s ETag.

        Returns the written record, or None when the row changed meanwhile (412) or is gone (404): read it
        again and decide again. Raises TransientError / UpstreamError.
        """
        before = record.columns
        written = written_state(state)
        fields = {k: v for k, v in written.columns.items() if before.get(k) != v}
        if not fields:
            return record
        entity = {"PartitionKey": record.entity["PartitionKey"], "RowKey": record.entity["RowKey"], **fields}
        try:
            metadata = self._table.update_entity(  # a repeat after a lost answer meets 412: re-read
                entity,
                mode=UpdateMode.MERGE,
                etag=record.etag,
                match_condition=MatchConditions.IfNotModified,
                **CONDITIONAL_WRITE_RETRY,
            )
        except (ResourceModifiedError, ResourceNotFoundError):
            return None
        except AzureError as exc:
            _raise_translated(exc, "update delivery")
        return self._remember(DeliveryRecord({**record.entity, **fields}, str(metadata["etag"]), written))


    def due_for_recovery(
        self, now: float, limit: int, resume: Any = None, max_pages: int = RECOVERY_SCAN_PAGES
    ) -> tuple[list[DeliveryRecord], Any]:
        """Rows whose ``recoverAt`` moment has come, from a filtered scan of the table (``recoverAt`` is
        not a key), and where to resume it.

        The scan reads whole pages (of ``limit`` rows at most) until it has found ``limit`` rows or read
        ``max_pages`` pages, so one call costs at most ``max_pages`` requests however large the table is.
        Returns the rows and the continuation to pass as ``resume`` next time (None once the scan reached
        the end: the next call starts over). Raises TransientError / UpstreamError.
        """
        found: list[DeliveryRecord] = []
        try:
            pages: Any = self._table.query_entities(  # by_page() is typed as an iterator; it is a pager
                "recoverAt gt 0.0 and recoverAt le @now",
                parameters={"now": float(now)},
                results_per_page=max(1, min(limit, 1000)),
            ).by_page(continuation_token=resume)
            for read, page in enumerate(pages, start=1):
                found.extend(DeliveryRecord(dict(entity), str(entity.metadata["etag"])) for entity in page)
                if len(found) >= limit or read >= max_pages:
                    return found, pages.continuation_token
        except AzureError as exc:
            _raise_translated(exc, "query deliveries due for recovery")
        return found, None

    def list_for_user(
        self,
        user_id: str,
        statuses: Iterable[Status] = (),
        limit: int = 25,
        continuation: str | None = None,
    ) -> tuple[list[DeliveryRecord], str | None]:
        """One page of the user's delivery rows (in notificationId order), optionally of some statuses only.

        Returns the rows and the continuation token of the next page (None on the last). Raises
        BadRequestError for a continuation token this method did not hand out, TransientError /
        UpstreamError when the table fails.
        """
        wanted = sorted({Status(s) for s in statuses})
        parameters: dict[str, Any] = {"pk": user_key(user_id)}
        query = "PartitionKey eq @pk"
        if wanted:
            parameters.update({f"s{i}": status.value for i, status in enumerate(wanted)})
            # Spaces around the parentheses: the SDK finds @names by splitting the filter on spaces.
            query += " and ( " + " or ".join(f"status eq @s{i}" for i in range(len(wanted))) + " )"
        token = _decode_continuation(continuation) if continuation else None
        try:
            # The tables SDK's continuation token is a dict (next PartitionKey/RowKey), not the str it types.
            pages: Any = self._table.query_entities(
                query, parameters=parameters, select=list(SUMMARY_COLUMNS), results_per_page=limit
            ).by_page(continuation_token=token)  # type: ignore[arg-type]
            page = list(next(pages, []))
            next_token = pages.continuation_token
        except AzureError as exc:
            _raise_translated(exc, "list deliveries")
        # Rows of other kinds may share the user's partition (e.g. an inbox): only delivery rows count.
        rows = [DeliveryRecord(dict(e), str(e.metadata.get("etag", ""))) for e in page if _is_delivery(e)]
        return rows, _encode_continuation(next_token) if next_token else None


def _is_delivery(entity: Mapping[str, Any]) -> bool:
    return isinstance(entity.get("delivery"), str) and isinstance(entity.get("status"), str)


def _encode_continuation(token: Any) -> str:
    return base64.urlsafe_b64encode(_json(token).encode("utf-8")).decode("ascii").rstrip("=")


def _decode_continuation(text: str) -> dict[str, str]:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        token = json.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        token = None
    if not (isinstance(token, dict) and token and all(isinstance(v, str) for v in token.values())):
        raise BadRequestError("continuationToken is not one this API handed out", field="continuationToken")
    return {str(k): v for k, v in token.items()}


def _raise_translated(exc: AzureError, what: str) -> NoReturn:
    """Re-raise an Azure SDK error as TransientError (429, 408, 5xx, network) or UpstreamError."""
    raise translate_azure_error(exc, SERVICE, what) from exc


def translate_azure_error(exc: AzureError, service: str, what: str) -> UpstreamError:
    """Map an azure-core error to TransientError (429/408/5xx/timeouts/network) or UpstreamError."""
    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        return TransientError(service, f"{what}: {type(exc).__name__}")
    if not isinstance(exc, HttpResponseError):
        # Timeouts and connection errors from the pipeline that are neither request nor response errors.
        return TransientError(service, f"{what}: {type(exc).__name__}")
    status = exc.status_code
    if status is not None and (status in (408, 429) or status >= 500):
        return TransientError(service, f"{what} answered {status}", status, _retry_after(exc))
    return UpstreamError(service, f"{what} answered {status}", status)


def _retry_after(exc: HttpResponseError) -> float | None:
    headers = getattr(exc.response, "headers", None) or {}
    raw = headers.get("Retry-After") or headers.get("retry-after")
    try:
        return float(raw) if raw else None
    except ValueError:
        return None
