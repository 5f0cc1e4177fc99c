"""Device registration: who owns which Notification Hubs installation, and the installation itself.

**The ownership record is the single source of truth.** One Table Storage row per installation,
``PartitionKey="installation:<id>"``, ``RowKey=""``, says what Notification Hubs (NH) and the per-user
index must hold: ``owner`` (a user key), ``state`` (``registered`` or ``deleted``), ``platform`` and
``pushChannel`` (what to register), and the operation in progress: ``opId`` and ``leaseUntil`` (unix
seconds; 0 = settled, NH and the index agree with the record). No row means nobody owns the installation
and NH holds nothing for it. Derived from it, and written only by whoever holds the record's lease:

* the per-user index ``PartitionKey="user:<user key>"``, ``RowKey=<id>`` (``has_devices`` is one partition
  query);
* the NH installation, tagged ``user:<user key>`` (server-set; never taken from the client).

**Every change is linearized by a conditional write to the record** (create-if-absent, or a merge/delete
conditioned on the ETag the decision was made on), and NH calls for one installation are serialized by a
lease taken in that same write:

1. read the record. Settled and owned by another user: ``ForbiddenError`` (no write). A live lease
   (another change in progress): wait for it (a few seconds at most, then ``BusyError``). An expired lease
   (a crashed or failed change): *repair* it first (below). No record and a delete: nothing to do.
2. take the lease: insert the record (new registration) or merge the new intent with ``opId`` and
   ``leaseUntil = now + lease`` on the ETag just read. A conflict means someone else won: start over.
3. apply the intent, checking the lease is still ours before each call. Register: index row, then NH
   PUT; delete: NH DELETE, then the index row. So while NH has the installation the index row exists, and
   ``has_devices`` never skips a push that NH would have delivered.
4. settle: merge ``leaseUntil=0`` (register) or delete the record (delete), both on the lease's ETag.

So a DELETE that answered 204 left no NH call of an earlier change in flight, and nothing later can
re-register the device except a newer PUT. Same-user PUT/DELETE races end in the state of whichever took
the lease last; a second user's PUT during the owner's change waits and then decides on the settled record
(403 while the owner still has it, 200 once the owner deleted it).

**Failures and crashes.** A change that fails (NH or storage error) marks its lease expired
(``leaseUntil = now``), and a change that dies keeps its lease until it runs out; the record then still
says what was meant. The next change of the installation completes it before deciding (lazy repair), and
the ``repair_devices`` timer completes the rest: before taking a lease each change upserts a marker row
``PartitionKey="repair"``, ``RowKey=<id>``; the timer walks the markers (a small partition, not the whole
table), repairs records whose lease expired and removes markers whose record is settled. So a PUT or
DELETE that answered 5xx may still take effect (both are idempotent: retry them), and a device whose
DELETE crashed stops receiving pushes within a timer period plus the lease.

**The one residual window.** NH has no conditional writes, so a request that NH processes long after it was
sent cannot be fenced. A change that finds its lease gone when it settles (it was slower than the lease) makes
NH and the index match the current record again (*reconcile*, under a fresh lease) before it answers.
A request that NH executes only after that, more than the lease after it was sent, is not covered.

Installation ids are 1-128 characters of ``A-Z a-z 0-9 - _``, starting with a letter or digit: safe in a URL
path segment and a table key, and wide enough for GUIDs and platform identifiers.
"""

from __future__ import annotations

import logging
import random
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

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

from notify.push_templates import installation_templates
from shared.clients import CONDITIONAL_WRITE_RETRY, get_table_client
from shared.errors import (
    BadRequestError,
    BusyError,
    ForbiddenError,
    NotifyError,
    TransientError,
    UpstreamError,
)
from shared.notification_hubs import NotificationHubsClient, get_notification_hubs_client
from shared.once import process_wide
from shared.settings import get_settings
from shared.user_keys import TAG_PREFIX, key_hash, user_hash, user_key

logger = logging.getLogger(__name__)

PLATFORM_ALIASES = {"fcmv1": "fcmv1", "fcm": "fcmv1", "apns": "apns"}
_INSTALLATION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
_APNS_TOKEN = re.compile(r"[0-9a-fA-F]{64,200}")
_FCM_TOKEN = re.compile(r"[A-Za-z0-9_:\-]{32,4096}")
_SERVICE = "table_storage"

#: How long a change may hold an installation: longer than its slowest NH call (the NH client's retry
#: budget, 20 s by default, plus one read timeout) so that a live change is never overtaken.
LEASE_SECONDS = 60.0
#: How long a change waits for another change of the same installation before answering BusyError.
WAIT_SECONDS = 10.0
REGISTERED = "registered"
DELETED = "deleted"
REPAIR_PARTITION = "repair"
#: NCRONTAB of the ``repair_devices`` timer: every minute (one small partition query when nothing is stuck).
REPAIR_SCHEDULE = "0 * * * * *"


@dataclass(frozen=True)
class DeviceRegistration:
    """A validated registration request."""

    installation_id: str
    platform: str
    push_channel: str


def validate_installation_id(installation_id: str) -> str:
    """Return the id, or raise BadRequestError naming ``installationId``."""
    if not isinstance(installation_id, str) or not _INSTALLATION_ID.fullmatch(installation_id):
        raise BadRequestError(
            "installationId must be 1-128 characters of letters, digits, '-' and '_', "
            "starting with a letter or digit",
            field="installationId",
        )
    return installation_id


def validate_registration(installation_id: str, platform: object, push_channel: object) -> DeviceRegistration:
    """Validate and normalise a registration; raise BadRequestError naming the offending field."""
    validate_installation_id(installation_id)
    normalised = PLATFORM_ALIASES.get(platform.lower()) if isinstance(platform, str) else None
    if normalised is None:
        raise BadRequestError("platform must be one of: fcmv1 (alias fcm), apns", field="platform")
    if not isinstance(push_channel, str) or not push_channel.strip():
        raise BadRequestError("pushChannel must be a non-empty string", field="pushChannel")
    if normalised == "apns":
        if not _APNS_TOKEN.fullmatch(push_channel) or len(push_channel) % 2:
            raise BadRequestError(
                "pushChannel for apns must be a hex device token of even length, 64-200 characters",
                field="pushChannel",
            )
    elif not _FCM_TOKEN.fullmatch(push_channel):
        raise BadRequestError(
            "pushChannel for fcmv1 must be an FCM registration token (32-4096 characters of "
            "letters, digits, '-', '_' and ':')",
            field="pushChannel",
        )
    return DeviceRegistration(installation_id, normalised, push_channel)


def _record_key(installation_id: str) -> str:
    return f"installation:{installation_id}"


def _index_partition(key: str) -> str:
    return f"user:{key}"


@contextmanager
def _table_errors(what: str) -> Iterator[None]:
    """Translate Table Storage SDK errors: throttling, 5xx and network errors are transient."""
    try:
        yield
    except (ResourceExistsError, ResourceNotFoundError, ResourceModifiedError):
        raise
    except (ServiceRequestError, ServiceResponseError) as exc:
        raise TransientError(_SERVICE, f"{what}: {type(exc).__name__}") from exc
    except HttpResponseError as exc:
        status = exc.status_code
        if status is not None and (status in (408, 429) or status >= 500):
            raise TransientError(_SERVICE, f"{what} answered {status}", status) from exc
        raise UpstreamError(_SERVICE, f"{what} answered {status}", status) from exc
    except AzureError as exc:
        raise UpstreamError(_SERVICE, f"{what}: {type(exc).__name__}") from exc


@dataclass(frozen=True)
class _Record:
    """The ownership record as read, with its ETag."""

    installation_id: str
    owner: str
    state: str
    platform: str
    push_channel: str
    op_id: str
    lease_until: float
    cleanup: str  # a user key whose index row must go (left by a change that was overtaken)
    etag: str

    @classmethod
    def from_entity(cls, installation_id: str, entity: Mapping[str, Any], etag: str) -> _Record:
        return cls(
            installation_id=installation_id,
            owner=str(entity.get("owner") or ""),
            state=str(entity.get("state") or REGISTERED),
            platform=str(entity.get("platform") or ""),
            push_channel=str(entity.get("pushChannel") or ""),
            op_id=str(entity.get("opId") or ""),
            lease_until=float(entity.get("leaseUntil") or 0.0),
            cleanup=str(entity.get("cleanup") or ""),
            etag=etag,
        )

    def settled(self) -> bool:
        return self.lease_until <= 0


@dataclass
class _Lease:
    """A change holding an installation: what it applies and the ETag of its last write."""

    installation_id: str
    op_id: str
    owner: str
    state: str
    platform: str
    push_channel: str
    cleanup: str
    until: float
    etag: str


class _LostLease(Exception):
    """The lease ran out and another change took the installation over."""


class DeviceRegistry:
    """Registers a user's devices as NH installations; only the owner may change or delete one."""

    def __init__(
        self,
        table: TableClient,
        nh_client: NotificationHubsClient,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        lease_seconds: float = LEASE_SECONDS,
        wait_seconds: float = WAIT_SECONDS,
        badge: bool = False,
    ) -> None:
        self._table = table
        self._badge = badge  # install the badge templates (INBOX_PUSH_BADGE)
        self._nh = nh_client
        self._clock = clock
        self._sleep = sleep
        self._lease_seconds = lease_seconds
        self._wait_seconds = wait_seconds

    # ---- the API ---------------------------------------------------------------------------------------

    def register(self, user_id: str, installation_id: str, platform: object, push_channel: object) -> str:
        """Create or replace the user's installation; return the normalised platform.

        Raises BadRequestError (invalid input), ForbiddenError (another user's installation id), BusyError
        (another change of it did not finish in time), UpstreamError/TransientError (storage or NH failed;
        the registration may still complete: retry).
        """
        registration = validate_registration(installation_id, platform, push_channel)
        key = user_key(user_id)
        intent = {"owner": key, "state": REGISTERED, "platform": registration.platform,
                  "pushChannel": registration.push_channel}
        lease = self._take(registration.installation_id, key, intent)
        assert lease is not None  # only a delete finds nothing to do
        try:
            self._apply_and_settle(lease)
        except _LostLease:
            current = self._reconcile(registration.installation_id, key)
            if current is None or (current.owner, current.push_channel) != (key, registration.push_channel):
                raise TransientError(
                    "devices", "this registration was overtaken by a newer change of the device; retry"
                ) from None
        logger.info("device registered: userHash=%s platform %s", user_hash(user_id), registration.platform)
        return registration.platform

    def unregister(self, user_id: str, installation_id: str) -> None:
        """Delete the user's installation (gone is success); ForbiddenError if another user owns it."""
        validate_installation_id(installation_id)
        key = user_key(user_id)
        lease = self._take(installation_id, key, {"owner": key, "state": DELETED})
        if lease is None:
            return
        try:
            self._apply_and_settle(lease)
        except _LostLease:
            # Whatever overtook us ran after our delete began; our delete is ordered before it.
            self._reconcile(installation_id, key)
        logger.info("device unregistered: userHash=%s", user_hash(user_id))

    def has_devices(self, user_id: str) -> bool:
        """True when the user has at least one registered device (one partition query)."""
        with _table_errors("query device index"):
            entities = self._table.query_entities(  # rows from "~" on are the user's other rows
                "PartitionKey eq @pk and RowKey lt '~'",
                parameters={"pk": _index_partition(user_key(user_id))},
                select=["RowKey"],
                results_per_page=1,
            )
            return next(iter(entities), None) is not None

    def repair(self) -> int:
        """Complete the changes that crashed or failed (expired leases); return how many were repaired."""
        with _table_errors("list repair markers"):
            markers = list(
                self._table.query_entities(
                    "PartitionKey eq @pk", parameters={"pk": REPAIR_PARTITION}, select=["RowKey"]
                )
            )
        repaired = 0
        for marker in markers:
            installation_id = str(marker["RowKey"])
            record = self._read(installation_id)
            if record is not None and not record.settled():
                if record.lease_until > self._clock():
                    continue  # a change is still running; look again next time
                try:
                    self._repair(record)
                except _LostLease:
                    pass
                except NotifyError as exc:
                    logger.warning("device repair failed, retried next time: %s", exc.message)
                    continue
                repaired += 1
                record = self._read(installation_id)
                if record is not None and not record.settled():
                    continue
            gone = (ResourceNotFoundError, ResourceModifiedError)  # removed, or marked again meanwhile
            with _table_errors("remove repair marker"), suppress(*gone):
                self._table.delete_entity(
                    REPAIR_PARTITION,
                    installation_id,
                    etag=marker.metadata["etag"],
                    match_condition=MatchConditions.IfNotModified,
                )
        if repaired:
            logger.warning("device repair completed %d interrupted change(s)", repaired)
        return repaired

    # ---- taking, applying and settling a lease ---------------------------------------------------------

    def _take(self, installation_id: str, key: str, intent: Mapping[str, str]) -> _Lease | None:
        """Take the installation's lease with ``intent``; None for a delete of an installation nobody has."""
        give_up = time.monotonic() + self._wait_seconds
        pause = 0.02
        while True:
            record = self._read(installation_id)
            now = self._clock()
            if record is not None and not record.settled():
                if record.lease_until > now:
                    remaining = give_up - time.monotonic()
                    if remaining <= 0:
                        raise BusyError("devices", "another change of this device is still in progress",
                                        retry_after=1)
                    self._sleep(min(remaining, pause * (0.5 + random.random())))
                    pause = min(pause * 2, 0.25)
                    continue
                with suppress(_LostLease):
                    self._repair(record)
                continue
            if record is None and intent["state"] == DELETED:
                return None
            if record is not None and record.owner != key:
                message = "this installation id is registered to another user"
                if intent["state"] == DELETED:
                    message = "this installation belongs to another user"
                raise ForbiddenError(message)
            lease = self._lock(installation_id, record, dict(intent), now)
            if lease is not None:
                return lease

    def _lock(
        self, installation_id: str, record: _Record | None, intent: dict[str, str], now: float
    ) -> _Lease | None:
        """The conditional write that takes the lease; None when someone else wrote first."""
        self._mark_for_repair(installation_id)
        op_id = uuid.uuid4().hex
        until = now + self._lease_seconds
        intent.setdefault("platform", record.platform if record else "")
        intent.setdefault("pushChannel", record.push_channel if record else "")
        intent.setdefault("cleanup", record.cleanup if record else "")
        fields = {**intent, "opId": op_id, "leaseUntil": float(until)}
        keys = {"PartitionKey": _record_key(installation_id), "RowKey": ""}
        try:
            with _table_errors("take device lease"):
                if record is None:
                    metadata = self._table.create_entity({**keys, **fields}, **CONDITIONAL_WRITE_RETRY)
                else:
                    metadata = self._table.update_entity(
                        {**keys, **fields},
                        mode=UpdateMode.MERGE,
                        etag=record.etag,
                        match_condition=MatchConditions.IfNotModified,
                        **CONDITIONAL_WRITE_RETRY,
                    )
        except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
            # Someone else wrote first, unless the SDK repeated our own write after a lost answer.
            current = self._read(installation_id)
            if current is None or current.op_id != op_id:
                return None
            etag = current.etag
        else:
            etag = str(metadata["etag"])
        return _Lease(
            installation_id=installation_id,
            op_id=op_id,
            owner=intent["owner"],
            state=intent["state"],
            platform=intent["platform"],
            push_channel=intent["pushChannel"],
            cleanup=intent["cleanup"],
            until=until,
            etag=etag,
        )

    def _apply_and_settle(self, lease: _Lease) -> None:
        """Make the index and NH match the lease's intent, then settle the record (raises _LostLease)."""
        try:
            self._apply(lease)
        except _LostLease:
            raise
        except TransientError:
            self._expire(lease)  # the next change or the repair timer completes it
            raise
        except NotifyError:
            # NH refused the installation for good (a 4xx): retrying cannot help, so drop the registration
            # rather than leave a record that every later change would try to repair first.
            if lease.state == REGISTERED:
                self._abandon(lease)
            else:
                self._expire(lease)
            raise
        except Exception:
            self._expire(lease)
            raise
        self._settle(lease)

    def _abandon(self, lease: _Lease) -> None:
        """Turn a registration that cannot succeed into a delete under the same lease (best effort)."""
        try:
            with _table_errors("abandon device registration"):
                metadata = self._table.update_entity(
                    {"PartitionKey": _record_key(lease.installation_id), "RowKey": "", "state": DELETED},
                    mode=UpdateMode.MERGE,
                    etag=lease.etag,
                    match_condition=MatchConditions.IfNotModified,
                )
            lease.etag, lease.state = str(metadata["etag"]), DELETED
            self._apply(lease)
            self._settle(lease)
        except (_LostLease, ResourceModifiedError, ResourceNotFoundError):
            return
        except NotifyError:
            self._expire(lease)

    def _apply(self, lease: _Lease) -> None:
        if lease.state == REGISTERED:
            if lease.cleanup and lease.cleanup != lease.owner:
                self._check(lease)
                self._delete_index(lease.cleanup, lease.installation_id)
            self._check(lease)
            with _table_errors("write device index"):
                self._table.upsert_entity(
                    {
                        "PartitionKey": _index_partition(lease.owner),
                        "RowKey": lease.installation_id,
                        "platform": lease.platform,
                    },
                    mode=UpdateMode.REPLACE,
                )
            self._check(lease)
            self._nh.put_installation(
                {
                    "installationId": lease.installation_id,
                    "platform": lease.platform,
                    "pushChannel": lease.push_channel,
                    "tags": [TAG_PREFIX + lease.owner],  # server-set only; never taken from the client
                    "userId": lease.owner,
                    "templates": installation_templates(lease.platform, self._badge),
                }
            )
        else:
            self._check(lease)
            self._nh.delete_installation(lease.installation_id)
            for key in {lease.owner, lease.cleanup} - {""}:
                self._check(lease)
                self._delete_index(key, lease.installation_id)

    def _check(self, lease: _Lease) -> None:
        """Refuse to call out once the lease has run out: someone may have taken the installation over."""
        if self._clock() >= lease.until:
            raise _LostLease()

    def _settle(self, lease: _Lease) -> None:
        keys = (_record_key(lease.installation_id), "")
        try:
            with _table_errors("settle device record"):
                if lease.state == REGISTERED:
                    self._table.update_entity(
                        {"PartitionKey": keys[0], "RowKey": keys[1], "opId": "", "leaseUntil": 0.0,
                         "cleanup": ""},
                        mode=UpdateMode.MERGE,
                        etag=lease.etag,
                        match_condition=MatchConditions.IfNotModified,
                        **CONDITIONAL_WRITE_RETRY,  # a repeat after a lost answer meets 412: reconcile
                    )
                else:
                    self._table.delete_entity(
                        *keys, etag=lease.etag, match_condition=MatchConditions.IfNotModified
                    )
        except (ResourceModifiedError, ResourceNotFoundError):
            raise _LostLease() from None

    def _expire(self, lease: _Lease) -> None:
        """After a failed change: end the lease now, keeping the intent for the repair (best effort)."""
        with suppress(AzureError, TransientError, UpstreamError):
            self._table.update_entity(
                {"PartitionKey": _record_key(lease.installation_id), "RowKey": "",
                 "leaseUntil": float(self._clock())},
                mode=UpdateMode.MERGE,
                etag=lease.etag,
                match_condition=MatchConditions.IfNotModified,
            )

    # ---- repair and reconcile --------------------------------------------------------------------------

    def _repair(self, record: _Record) -> None:
        """Take over an expired lease and complete what the record says (raises _LostLease if overtaken)."""
        intent = {"owner": record.owner, "state": record.state, "platform": record.platform,
                  "pushChannel": record.push_channel, "cleanup": record.cleanup}
        lease = self._lock(record.installation_id, record, intent, self._clock())
        if lease is None:
            raise _LostLease()
        logger.warning("device record of userHash=%s: completing an interrupted %s", key_hash(record.owner),
                       record.state)
        self._apply_and_settle(lease)

    def _reconcile(self, installation_id: str, key: str) -> _Record | None:
        """After a lost lease: make NH and the index match the current record, undoing our own effects."""
        give_up = time.monotonic() + self._wait_seconds
        while time.monotonic() < give_up:
            record = self._read(installation_id)
            now = self._clock()
            if record is not None and record.lease_until > now:
                self._sleep(0.05)
                continue
            if record is None:
                intent = {"owner": "", "state": DELETED, "cleanup": key}
            else:
                intent = {"owner": record.owner, "state": record.state, "platform": record.platform,
                          "pushChannel": record.push_channel,
                          "cleanup": key if key != record.owner else record.cleanup}
            lease = self._lock(installation_id, record, intent, now)
            if lease is None:
                continue
            try:
                self._apply_and_settle(lease)
            except _LostLease:
                continue
            return self._read(installation_id)
        raise BusyError("devices", "another change of this device is still in progress", retry_after=1)

    # ---- rows ------------------------------------------------------------------------------------------

    def _read(self, installation_id: str) -> _Record | None:
        with _table_errors("read device record"):
            try:
                entity = self._table.get_entity(_record_key(installation_id), "")
            except ResourceNotFoundError:
                return None
        return _Record.from_entity(installation_id, entity, str(entity.metadata["etag"]))

    def _mark_for_repair(self, installation_id: str) -> None:
        with _table_errors("write repair marker"):
            self._table.upsert_entity(
                {"PartitionKey": REPAIR_PARTITION, "RowKey": installation_id}, mode=UpdateMode.REPLACE
            )

    def _delete_index(self, key: str, installation_id: str) -> None:
        with _table_errors("delete device index"), suppress(ResourceNotFoundError):
            self._table.delete_entity(_index_partition(key), installation_id)


@process_wide
def get_device_registry() -> DeviceRegistry:
    """The process-wide DeviceRegistry (creates DEVICES_TABLE if it does not exist)."""
    settings = get_settings()
    return DeviceRegistry(
        get_table_client(settings.devices_table),
        get_notification_hubs_client(),
        badge=settings.inbox_push_badge,
    )
