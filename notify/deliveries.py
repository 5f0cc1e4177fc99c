"""The delivery record of each notification: one Table row per (user, notificationId).

Row: PartitionKey = ``user_key(userId)``, RowKey = notificationId. It keeps what is needed to push later
(``content``: title, body, type and data as UTF-8 JSON in one binary property, because a string property
holds at most 32K UTF-16 characters while a message may carry 48 KB), the delivery mode, the TTL,
``enqueuedAt`` / ``acceptedAt``, the ``status`` and per-channel flags (unix seconds, 0 = not yet).

Status: ``accepted`` → ``sent_realtime`` → ``acked`` | ``pushed`` | ``no_devices`` | ``failed``;
``expired`` when the TTL ran out before sending.

Exactly once per channel (realtime, push), although queue messages are delivered at least once and may be
handled concurrently:

1. ``accept`` inserts the row with a conditional insert; a redelivery finds the row and reuses it.
   ``accept_and_claim`` inserts it with the first channel already claimed (step 2 in the same request).
2. Before sending on a channel the notifier **claims** it: a merge conditioned on the row's ETag
   (``MatchConditions.IfNotModified``) that sets ``<channel>ClaimedAt`` and a random ``<channel>ClaimId``.
   Only one writer can win a given ETag; a loser re-reads the row and re-decides. A channel that is already
   sent, or claimed less than ``claim_lease_seconds`` ago, is not claimed again, so concurrent handlers and
   redeliveries never send twice.
3. After a successful send, ``mark_sent`` sets ``<channel>SentAt`` (and the status) — sent channels are never
   claimed again.
4. If the send fails transiently, ``release`` clears the claim (only while it is still ours) so that the
   retried message can send. If the process dies between claim and send, the claim expires after the lease
   and a later redelivery takes over. The one unavoidable window is a crash *after* the send but *before*
   ``mark_sent``: after the lease the channel is sent again (at-least-once; clients dedupe by notificationId).

Every change goes through one optimistic loop (read, decide, merge with the ETag, re-read on 412), so
decisions are always made on the row as it is. Azure SDK errors are translated here and only here:
412 drives the loop, 429/408/5xx/timeouts become TransientError, anything else UpstreamError.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
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

from notify.model import Delivery, Notification
from shared.clients import CONDITIONAL_WRITE_RETRY
from shared.errors import TransientError, UpstreamError
from shared.user_keys import user_key

SERVICE = "table storage"
_MAX_CONFLICTS = 10


class Status(StrEnum):
    """Where a notification's delivery stands."""

    ACCEPTED = "accepted"
    SENT_REALTIME = "sent_realtime"
    ACKED = "acked"
    PUSHED = "pushed"
    NO_DEVICES = "no_devices"
    FAILED = "failed"
    EXPIRED = "expired"


#: Statuses after which nothing more is sent (except the push of a ``both`` notification).
FINAL_STATUSES = frozenset({Status.ACKED, Status.PUSHED, Status.NO_DEVICES, Status.FAILED, Status.EXPIRED})


class Channel(StrEnum):
    """A way of reaching the user."""

    REALTIME = "realtime"
    PUSH = "push"


@dataclass(frozen=True)
class DeliveryRecord:
    """A snapshot of one delivery row, with the ETag it was read at."""

    entity: Mapping[str, Any]
    etag: str

    @property
    def notification_id(self) -> str:
        """The notification's id (RowKey)."""
        return str(self.entity["RowKey"])

    @property
    def user_id(self) -> str:
        """The recipient's user id."""
        return str(self.entity["userId"])

    @property
    def status(self) -> Status:
        """The delivery status."""
        return Status(self.entity["status"])

    @property
    def acked(self) -> bool:
        """True once the user's client acknowledged the in-app message."""
        return float(self.entity.get("ackedAt", 0.0)) > 0

    def sent(self, channel: Channel) -> bool:
        """True once the channel's send succeeded."""
        return float(self.entity.get(f"{channel}SentAt", 0.0)) > 0

    def claimed_at(self, channel: Channel) -> float:
        """When the channel was last claimed (0 if not claimed)."""
        return float(self.entity.get(f"{channel}ClaimedAt", 0.0))

    def claim_id(self, channel: Channel) -> str:
        """The id of the current claim on the channel ('' if none)."""
        return str(self.entity.get(f"{channel}ClaimId", ""))

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
        )


@dataclass(frozen=True)
class Claim:
    """A won claim on one channel of one delivery."""

    record: DeliveryRecord
    channel: Channel
    claim_id: str


class DeliveryStore:
    """Delivery rows in a Table; all writes are conditional (see the module docstring)."""

    def __init__(
        self,
        table: TableClient,
        claim_lease_seconds: float = 120.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._table = table
        self._lease = claim_lease_seconds
        self._read_clock = clock

    def _clock(self) -> float:
        # Floats always: an int beyond 2**31 would not fit the Int32 the SDK picks for ints.
        return float(self._read_clock())

    def accept(self, notification: Notification) -> tuple[DeliveryRecord, bool]:
        """Insert the row if absent; return (record, created). Raises TransientError / UpstreamError."""
        record, created, _ = self._insert(notification, None)
        return record, created

    def accept_and_claim(
        self, notification: Notification, channel: Channel
    ) -> tuple[DeliveryRecord, Claim | None]:
        """Insert the row already claimed on ``channel`` (one request instead of two).

        Returns (new record, the claim), or (existing record, None) when the row was there: the caller then
        claims through :meth:`claim` as for any redelivery.
        """
        record, created, claim_id = self._insert(notification, channel)
        if not created or claim_id is None:
            return record, None
        return record, Claim(record, channel, claim_id)

    def _insert(
        self, notification: Notification, channel: Channel | None
    ) -> tuple[DeliveryRecord, bool, str | None]:
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
        now = self._clock()
        entity: dict[str, Any] = {
            "PartitionKey": user_key(notification.user_id),
            "RowKey": notification.notification_id,
            "userId": notification.user_id,
            "content": content,
            "delivery": notification.delivery.value,
            "ttlSeconds": notification.ttl_seconds or 0,
            "enqueuedAt": float(notification.enqueued_at or 0.0),
            "acceptedAt": now,
            "status": Status.ACCEPTED.value,
        }
        for each in Channel:
            entity[f"{each}ClaimedAt"] = 0.0
            entity[f"{each}ClaimId"] = ""
            entity[f"{each}SentAt"] = 0.0
        entity["ackedAt"] = 0.0
        claim_id = uuid.uuid4().hex if channel is not None else None
        if channel is not None:
            entity[f"{channel}ClaimedAt"] = now
            entity[f"{channel}ClaimId"] = claim_id
        try:
            metadata = self._table.create_entity(entity, **CONDITIONAL_WRITE_RETRY)
        except ResourceExistsError:
            existing = self.get(notification.user_id, notification.notification_id)
            if existing is None:  # deleted in between; let the retry start over
                raise TransientError(SERVICE, "delivery row vanished after a conflict") from None
            if channel is not None and existing.claim_id(channel) == claim_id:
                # Our own insert: its answer was lost and the SDK's repeat met the row it had created.
                return existing, True, claim_id
            return existing, False, None
        except AzureError as exc:
            _raise_translated(exc, "insert delivery")
        return DeliveryRecord(entity, str(metadata["etag"])), True, claim_id

    def get(self, user_id: str, notification_id: str) -> DeliveryRecord | None:
        """The current row, or None if there is none."""
        try:
            entity = self._table.get_entity(user_key(user_id), notification_id)
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            _raise_translated(exc, "read delivery")
        return DeliveryRecord(dict(entity), str(entity.metadata["etag"]))

    def claim(
        self,
        record: DeliveryRecord,
        channel: Channel,
        allowed: Callable[[DeliveryRecord], bool] = lambda _: True,
    ) -> Claim | None:
        """Claim ``channel`` before sending; None if sent, claimed by another, or not ``allowed``."""
        claim_id = uuid.uuid4().hex

        def change(current: DeliveryRecord) -> dict[str, Any] | None:
            now = self._clock()
            if current.sent(channel) or self.claim_is_live(current, channel) or not allowed(current):
                return None
            return {f"{channel}ClaimedAt": now, f"{channel}ClaimId": claim_id}

        updated = self._update(record, change)
        if updated is None or updated.claim_id(channel) != claim_id:
            return None
        return Claim(updated, channel, claim_id)

    def claim_is_live(self, record: DeliveryRecord, channel: Channel) -> bool:
        """True while someone holds an unexpired claim on the channel."""
        claimed = record.claimed_at(channel)
        return claimed > 0 and self._clock() - claimed < self._lease

    def lease_remaining(self, record: DeliveryRecord, channel: Channel) -> float:
        """Seconds until the current claim on ``channel`` expires (0 if there is no live claim)."""
        claimed = record.claimed_at(channel)
        return max(0.0, claimed + self._lease - self._clock()) if claimed > 0 else 0.0

    def release(self, claim: Claim) -> None:
        """Give a claim back after a failed send, so a retry may send (no-op if no longer ours)."""

        def change(current: DeliveryRecord) -> dict[str, Any] | None:
            if current.claim_id(claim.channel) != claim.claim_id or current.sent(claim.channel):
                return None
            return {f"{claim.channel}ClaimedAt": 0.0, f"{claim.channel}ClaimId": ""}

        self._update(claim.record, change)

    def mark_sent(self, claim: Claim, status: Status, **fields: Any) -> DeliveryRecord:
        """Record a successful send on the claimed channel with the new status (kept if already final)."""

        def change(current: DeliveryRecord) -> dict[str, Any] | None:
            new_status = status
            # A late ack stays acked; a push after an ack (``both``) keeps the ack visible.
            if current.status == Status.ACKED or (
                status == Status.SENT_REALTIME and current.status in FINAL_STATUSES
            ):
                new_status = current.status
            return {f"{claim.channel}SentAt": self._clock(), "status": new_status.value, **fields}

        updated = self._update(claim.record, change)
        assert updated is not None  # change() always returns a change
        return updated

    def set_status(self, record: DeliveryRecord, status: Status, **fields: Any) -> DeliveryRecord | None:
        """Set a final status (failed, expired, no_devices) unless the row is already acked."""

        def change(current: DeliveryRecord) -> dict[str, Any] | None:
            if current.status == Status.ACKED:
                return None
            return {"status": status.value, **fields}

        return self._update(record, change)

    def mark_acked(self, user_id: str, notification_id: str) -> DeliveryRecord | None:
        """Record the user's ack; returns the row, or None when the user has no such notification."""
        record = self.get(user_id, notification_id)
        if record is None:
            return None

        def change(current: DeliveryRecord) -> dict[str, Any] | None:
            if current.acked:
                return None
            fields: dict[str, Any] = {"ackedAt": self._clock()}
            if current.status in (Status.ACCEPTED, Status.SENT_REALTIME):
                fields["status"] = Status.ACKED.value
            return fields

        return self._update(record, change)

    def _update(
        self, record: DeliveryRecord, change: Callable[[DeliveryRecord], dict[str, Any] | None]
    ) -> DeliveryRecord | None:
        """Apply ``change`` to the row with an ETag condition, re-reading on conflict.

        Returns the updated record, or the current one when ``change`` returns None.
        """
        current = record
        for _ in range(_MAX_CONFLICTS):
            fields = change(current)
            if fields is None:
                return current
            keys = {"PartitionKey": current.entity["PartitionKey"], "RowKey": current.entity["RowKey"]}
            entity = {**keys, **fields}
            try:
                metadata = self._table.update_entity(  # a repeat after a lost answer meets 412: re-read
                    entity,
                    mode=UpdateMode.MERGE,
                    etag=current.etag,
                    match_condition=MatchConditions.IfNotModified,
                    **CONDITIONAL_WRITE_RETRY,
                )
            except ResourceModifiedError:
                reread = self.get(current.user_id, current.notification_id)
                if reread is None:
                    return None
                current = reread
                continue
            except ResourceNotFoundError:
                return None
            except AzureError as exc:
                _raise_translated(exc, "update delivery")
            return DeliveryRecord({**current.entity, **fields}, str(metadata["etag"]))
        raise TransientError(SERVICE, "delivery row kept changing; giving up for now")


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
