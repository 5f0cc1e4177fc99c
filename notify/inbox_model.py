"""The inbox's pure rules: item states and marks, what each item adds to the counts, rows, cursors, JSON.

No I/O here; :mod:`notify.inbox` explains the design and does the storage. An inbox item *is* the
notification's delivery row (:mod:`notify.deliveries`): the notifier inserts it with ``inboxPending=true``
and nothing else, so the inbox costs the delivery path no request. The inbox columns below are written
later, by the inbox, in entity-group transactions together with the user's counter row.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar

#: RowKey of the user's counter row in the deliveries partition. ``~`` never occurs in a notificationId
#: (``[A-Za-z0-9._:-]``), so no delivery row can take it, and it sorts after every one of them.
COUNTER_ROW_KEY = "~inbox"
RESERVED_ROW_PREFIX = "~"
#: Table Storage stores Python ints as Int32; sequence numbers stay below it (2**31 changes per user).
MAX_SEQUENCE = 2**31 - 1
_NOTIFICATION_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_EPOCH = re.compile(r"[0-9a-f]{0,32}")
MAX_CURSOR_LENGTH = 512

# Columns of an item (on the delivery row). Booleans for what queries filter on, times for clients.
LISTED = "inbox"
PENDING = "inboxPending"
SEQ = "inboxSeq"
CREATED_SEQ = "inboxCreatedSeq"
READ, READ_AT = "inboxRead", "inboxReadAt"
SEEN, SEEN_AT = "inboxSeen", "inboxSeenAt"
ARCHIVED, ARCHIVED_AT = "inboxArchived", "inboxArchivedAt"
DELETED = "inboxDeleted"
TYPE = "type"
#: The delivery's status (notify.delivery_machine.Status), read to know whether a read still matters to it.
DELIVERY_STATUS = "status"
#: What the inbox reads of a row when it needs the state only (not the content).
STATE_COLUMNS = (
    "PartitionKey", "RowKey", LISTED, PENDING, SEQ, CREATED_SEQ, READ, READ_AT, SEEN, SEEN_AT,
    ARCHIVED, ARCHIVED_AT, DELETED, "acceptedAt", DELIVERY_STATUS,
)


def is_reserved_row_key(row_key: str) -> bool:
    """True for RowKeys of the inbox's own rows (never a delivery)."""
    return row_key.startswith(RESERVED_ROW_PREFIX)


def is_notification_id(value: str) -> bool:
    """True when ``value`` has the shape of a notificationId (anything else cannot exist)."""
    return _NOTIFICATION_ID.fullmatch(value) is not None


class Mark(StrEnum):
    """What a client can do to one item."""

    READ = "read"
    UNREAD = "unread"
    SEEN = "seen"
    ARCHIVE = "archive"
    UNARCHIVE = "unarchive"
    DELETE = "delete"


class StatusFilter(StrEnum):
    """The ``status`` filter of the list. No filter lists what is not archived."""

    UNREAD = "unread"
    UNSEEN = "unseen"
    ARCHIVED = "archived"
    ALL = "all"


@dataclass(frozen=True)
class Counts:
    """The user's badge numbers: unread, unseen and total, all of non-archived, non-deleted items."""

    unread: int = 0
    unseen: int = 0
    total: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.unread + other.unread, self.unseen + other.unseen, self.total + other.total)

    def __sub__(self, other: Counts) -> Counts:
        return Counts(self.unread - other.unread, self.unseen - other.unseen, self.total - other.total)

    def times(self, factor: int) -> Counts:
        """These counts ``factor`` times over."""
        return Counts(self.unread * factor, self.unseen * factor, self.total * factor)

    def to_json(self) -> dict[str, int]:
        """The ``counts`` member of every answer and envelope."""
        return {"unread": self.unread, "unseen": self.unseen, "total": self.total}


@dataclass(frozen=True)
class ItemState:
    """The user's marks on one item (unix seconds; 0 = not)."""

    read_at: float = 0.0
    seen_at: float = 0.0
    archived_at: float = 0.0
    deleted: bool = False

    @property
    def read(self) -> bool:
        """Opened by the user."""
        return self.read_at > 0

    @property
    def seen(self) -> bool:
        """Shown to the user in a list (reading implies it)."""
        return self.seen_at > 0

    @property
    def archived(self) -> bool:
        """Moved out of the feed by the user."""
        return self.archived_at > 0

    def marked(self, mark: Mark, now: float) -> ItemState:
        """The state after ``mark`` at ``now``; marking twice is the same as once (times are kept)."""
        if mark is Mark.READ:
            return dataclasses.replace(self, read_at=self.read_at or now, seen_at=self.seen_at or now)
        if mark is Mark.UNREAD:
            return dataclasses.replace(self, read_at=0.0)
        if mark is Mark.SEEN:
            return dataclasses.replace(self, seen_at=self.seen_at or now)
        if mark is Mark.ARCHIVE:
            return dataclasses.replace(self, archived_at=self.archived_at or now)
        if mark is Mark.UNARCHIVE:
            return dataclasses.replace(self, archived_at=0.0)
        return dataclasses.replace(self, deleted=True)

    def counts(self) -> Counts:
        """What this item adds to the user's counts."""
        if self.deleted or self.archived:
            return Counts()
        return Counts(unread=0 if self.read else 1, unseen=0 if self.seen else 1, total=1)

    def matches(self, status: StatusFilter | None) -> bool:
        """True when the list with ``status`` shows the item."""
        if self.deleted:
            return False
        if status is StatusFilter.ALL:
            return True
        if status is StatusFilter.ARCHIVED:
            return self.archived
        if self.archived:
            return False
        if status is StatusFilter.UNREAD:
            return not self.read
        if status is StatusFilter.UNSEEN:
            return not self.seen
        return True


#: A pending item (inserted by the notifier, not yet taken into the counter) is new: unread, unseen.
NEW_ITEM = ItemState()


def status_filter_clause(status: StatusFilter | None) -> str:
    """The OData filter selecting what :meth:`ItemState.matches` accepts (on items taken in)."""
    active = f"{ARCHIVED} eq false and {DELETED} eq false"
    if status is StatusFilter.ALL:
        return f"{DELETED} eq false"
    if status is StatusFilter.ARCHIVED:
        return f"{ARCHIVED} eq true and {DELETED} eq false"
    if status is StatusFilter.UNREAD:
        return f"{READ} eq false and {active}"
    if status is StatusFilter.UNSEEN:
        return f"{SEEN} eq false and {active}"
    return active


# Rows ------------------------------------------------------------------------------------------------


def _number(entity: Mapping[str, Any], name: str) -> float:
    value = entity.get(name)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _integer(entity: Mapping[str, Any], name: str) -> int:
    value = entity.get(name)
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else 0


def is_listed(entity: Mapping[str, Any]) -> bool:
    """True for a delivery row that belongs in the inbox (``inbox`` true; older rows predate the inbox)."""
    return entity.get(LISTED) is True


def is_pending(entity: Mapping[str, Any]) -> bool:
    """True for an item the notifier inserted that the counter does not hold yet."""
    return entity.get(PENDING) is True


def item_state(entity: Mapping[str, Any]) -> ItemState:
    """The marks on a row (a pending row is :data:`NEW_ITEM`)."""
    return ItemState(
        read_at=_number(entity, READ_AT),
        seen_at=_number(entity, SEEN_AT),
        archived_at=_number(entity, ARCHIVED_AT),
        deleted=entity.get(DELETED) is True,
    )


def item_columns(state: ItemState, seq: int, created_seq: int) -> dict[str, Any]:
    """Every inbox column of an item taken into the counter (so that queries can filter on each)."""
    return {
        PENDING: False,
        SEQ: seq,
        CREATED_SEQ: created_seq,
        READ: state.read,
        READ_AT: float(state.read_at),
        SEEN: state.seen,
        SEEN_AT: float(state.seen_at),
        ARCHIVED: state.archived,
        ARCHIVED_AT: float(state.archived_at),
        DELETED: state.deleted,
    }


@dataclass(frozen=True)
class Counter:
    """The user's counter row: the sums of every item taken in, and the two sequences.

    ``seq`` is the number of the last change (every write of an item takes the next one); ``created_seq``
    the number of the last item taken in. ``epoch`` names this counter's lifetime, so that a cursor from
    an earlier one (a deleted partition) is recognised.
    """

    epoch: str
    seq: int = 0
    created_seq: int = 0
    counts: Counts = Counts()

    COLUMNS: ClassVar[tuple[str, ...]] = ("epoch", "seq", "createdSeq", "unread", "unseen", "total")

    @classmethod
    def from_entity(cls, entity: Mapping[str, Any]) -> Counter:
        """Read a counter row."""
        return cls(
            epoch=str(entity.get("epoch") or ""),
            seq=_integer(entity, "seq"),
            created_seq=_integer(entity, "createdSeq"),
            counts=Counts(_integer(entity, "unread"), _integer(entity, "unseen"), _integer(entity, "total")),
        )

    def columns(self) -> dict[str, Any]:
        """The row's columns (without the keys)."""
        return {
            "epoch": self.epoch,
            "seq": self.seq,
            "createdSeq": self.created_seq,
            "unread": self.counts.unread,
            "unseen": self.counts.unseen,
            "total": self.counts.total,
        }


# Cursors -----------------------------------------------------------------------------------------------


class CursorKind(StrEnum):
    """What a cursor continues: the changes feed, a list, or a read-all/seen-all."""

    CHANGES = "c"
    PAGE = "p"
    MARK_ALL = "m"


@dataclass(frozen=True)
class Cursor:
    """A position in one user's inbox. Opaque to clients (base64url of compact JSON)."""

    kind: CursorKind
    epoch: str
    position: int
    mark: str = ""  # MARK_ALL: read or seen
    type: str = ""  # MARK_ALL: the type filter

    def encode(self) -> str:
        """The cursor as clients see it."""
        document: dict[str, Any] = {"k": self.kind.value, "e": self.epoch, "n": self.position}
        if self.mark:
            document["m"] = self.mark
        if self.type:
            document["t"] = self.type
        raw = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(text: str, kind: CursorKind) -> Cursor:
    """Parse a cursor of ``kind``; raise ValueError saying what is wrong with it."""
    if not text or len(text) > MAX_CURSOR_LENGTH or not re.fullmatch(r"[A-Za-z0-9_-]+", text):
        raise ValueError("is not a cursor this service issued")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        document = json.loads(raw.decode("utf-8"))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValueError("is not a cursor this service issued") from None
    if not isinstance(document, dict) or not set(document) <= {"k", "e", "n", "m", "t"}:
        raise ValueError("is not a cursor this service issued")
    position, epoch = document.get("n"), document.get("e")
    ok = (
        isinstance(position, int) and not isinstance(position, bool) and 0 <= position <= MAX_SEQUENCE
        and isinstance(epoch, str) and _EPOCH.fullmatch(epoch) is not None
        and isinstance(document.get("m", ""), str) and isinstance(document.get("t", ""), str)
    )
    if not ok:
        raise ValueError("is not a cursor this service issued")
    if document.get("k") != kind.value:
        raise ValueError(f"is not a {_KIND_NAMES[kind]} cursor")
    assert isinstance(position, int) and isinstance(epoch, str)
    return Cursor(kind, epoch, position, str(document.get("m", "")), str(document.get("t", "")))


_KIND_NAMES = {
    CursorKind.CHANGES: "changes", CursorKind.PAGE: "list", CursorKind.MARK_ALL: "read-all/seen-all"
}


# JSON for clients ----------------------------------------------------------------------------------------


def iso_time(seconds: float) -> str | None:
    """Unix seconds as an ISO 8601 UTC time with milliseconds, or None for 0."""
    if seconds <= 0:
        return None
    text = datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def item_json(entity: Mapping[str, Any]) -> dict[str, Any]:
    """An item as the API answers it (a deleted one is a tombstone: its id and ``deleted``)."""
    state = item_state(entity) if not is_pending(entity) else NEW_ITEM
    notification_id = str(entity["RowKey"])
    version = 0 if is_pending(entity) else _integer(entity, SEQ)
    if state.deleted:
        return {"notificationId": notification_id, "version": version, "deleted": True}
    content = json.loads(bytes(entity["content"]).decode("utf-8"))
    accepted = _number(entity, "acceptedAt")
    ttl = _integer(entity, "ttlSeconds")
    start = _number(entity, "enqueuedAt") or accepted
    return {
        "notificationId": notification_id,
        "title": content["title"],
        "body": content["body"],
        "type": content["type"],
        "data": content["data"],
        "createdAt": iso_time(accepted),
        "expiresAt": iso_time(start + ttl) if ttl else None,
        "read": state.read,
        "readAt": iso_time(state.read_at),
        "seen": state.seen,
        "seenAt": iso_time(state.seen_at),
        "archived": state.archived,
        "archivedAt": iso_time(state.archived_at),
        "deleted": False,
        "version": version,
    }


def change_json(notification_id: str, state: ItemState, version: int, new: bool = False) -> dict[str, Any]:
    """One change as an ``inbox`` envelope carries it: the item's marks, without its content.

    ``version`` is the change's sequence number: a client keeps, per item, the highest it applied and
    ignores anything older (an envelope may arrive after a ``changes`` answer that already had it).
    """
    change: dict[str, Any] = {
        "notificationId": notification_id,
        "read": state.read,
        "seen": state.seen,
        "archived": state.archived,
        "deleted": state.deleted,
        "version": version,
    }
    if new:
        change["new"] = True
    return change
