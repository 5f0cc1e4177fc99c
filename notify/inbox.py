"""The inbox: every notification a user received, with read state, counts that never drift, and a changes
feed that never skips an item or a change.

**Where items live.** An item is the notification's delivery row (PartitionKey = the user's key, RowKey =
notificationId, :mod:`notify.deliveries`). The notifier inserts it with ``inboxPending=true`` and writes
nothing else for the inbox, so the inbox adds no request to the delivery path. Next to the items, in the same
partition, is the user's **counter row** (RowKey ``~inbox``): the sums ``unread``/``unseen``/``total`` of the
items it holds, ``seq`` (the number of the last change) and ``createdSeq`` (the number of the last item
taken in), and an ``epoch``.

**One rule makes it exact.** Every write of an item — taking a pending item in, a mark, a delete, read-all,
the retention sweep — is one entity-group transaction of the item rows *and* the counter row, each
conditioned on the ETag it was read at (:mod:`notify.inbox_store`). Each written item takes the next
``seq``, a pending item also the next ``createdSeq``, and the counter's sums move by exactly what the items
stop and start adding (:meth:`~notify.inbox_model.ItemState.counts`). Either all of it is committed or
none; a transaction that lost a race is refused (412/409/404) and is decided again on fresh reads. So, under
any concurrency (the notifier inserting, marks from several devices, read-all, redelivered messages):

* the counter's sums always equal the sum over the items it holds (the invariant the recount checks), and
  the user's counts are those sums plus one unread, unseen item per pending row — read in one query;
* a redelivered message finds its row (the insert is conditional) and adds nothing; a pending item is taken
  in exactly once (the winner's transaction flips ``inboxPending``; the loser's ETag no longer matches).

**The changes feed never skips.** ``seq`` numbers are dense and assigned in commit order: change *n+1* can
only be committed by a transaction that read the counter at *n*, i.e. after change *n* was committed.
``changes?after=c`` first takes pending items in, reads the counter's ``seq`` = *H*, and answers the items
whose current ``seq`` lies in ``(c, min(H, c + limit)]``, with that upper bound as the next cursor. Every
change numbered up to *H* was committed before *H* was read, so the query sees it, or a later version of the
same item, which has a higher number and is answered by a later call. Numbers only grow, so nothing moves
into a window already answered. Each version of each item is answered once; no clock is involved anywhere,
so clock skew between instances cannot reorder or hide anything. Pending items are invisible to the feed
until taken in, and every call takes them in first (one more transaction when there are any). A cursor
carries the counter's epoch: one from an earlier counter (the partition was removed) restarts the feed with
``reset: true`` instead of silently skipping.

**Lists and read-all** page by ``createdSeq`` (newest first), which never changes once given, so a page
cursor never skips or repeats an item however the items change meanwhile. Read-all and seen-all mark the
items whose ``createdSeq`` is at most the one of the newest item when they began (items arriving meanwhile
stay unread), at most :data:`MARK_ALL_TRANSACTIONS` transactions of up to 99 items per call; a call that
has more to do answers a ``resume`` token that pins the same bound.

**Every device in step.** Each committed transaction is announced to all of the user's connections as an
``inbox`` envelope (the changes, the new counts, and the feed cursors before and after it); a client whose
cursor equals the envelope's ``previousCursor`` applies it, any other calls ``changes``. Announcing is
best effort: a lost envelope costs the client one ``changes`` call, never a change.

**Retention and TTL.** The sweep removes rows older than ``INBOX_RETENTION_DAYS`` (default 90), taking
what they added off the counter in the same transactions; clients drop cached items older than that
(``retentionDays`` in every answer) without a change entry. ``ttlSeconds`` limits *delivery* only: an item
stays listed until retention, with its ``expiresAt`` for the app to show it as stale. A message sent with
``inbox: false`` is delivered but never listed or counted.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import groupby
from typing import Any, Protocol

from notify.inbox_model import (
    ARCHIVED,
    CREATED_SEQ,
    DELETED,
    DELIVERY_STATUS,
    NEW_ITEM,
    READ,
    SEEN,
    SEQ,
    STATE_COLUMNS,
    Counts,
    Cursor,
    CursorKind,
    ItemState,
    Mark,
    StatusFilter,
    change_json,
    decode_cursor,
    is_listed,
    is_notification_id,
    item_json,
    status_filter_clause,
)
from notify.inbox_store import (
    MAX_ITEMS_PER_TRANSACTION,
    Committed,
    InboxStore,
    ItemWrite,
    Row,
    Snapshot,
)
from shared.errors import BadRequestError, BusyError, NotFoundError, NotifyError
from shared.retry import RetryPolicy, call_with_retry
from shared.user_keys import user_hash, user_key

logger = logging.getLogger(__name__)

INBOX_PROTOCOL_VERSION = 1
DEFAULT_PAGE_LIMIT = 20
DEFAULT_CHANGES_LIMIT = 100
MAX_LIMIT = 100
#: Transactions of pending items one call takes in at most (the rest stays pending and counted).
ABSORB_TRANSACTIONS = 10
#: Read-all/seen-all first takes in what is pending (so that it covers every item that existed): up to
#: this many transactions (9,900 items); beyond that the rest counts as arriving after it began.
MARK_ALL_ABSORB_TRANSACTIONS = 100
#: Transactions one read-all/seen-all call commits at most before answering a resume token.
MARK_ALL_TRANSACTIONS = 5
#: Windows of creation numbers one list call scans at most (sparse filters may answer short pages).
LIST_WINDOWS = 8
#: Transactions lost to a concurrent writer of the same inbox before answering BusyError (503), with a
#: jittered exponential backoff between them (a few seconds in all at most).
_MAX_CONFLICTS = 16
_BACKOFF_CAP_SECONDS = 0.25
#: Announcing is best effort and runs inside an HTTP request: one quick retry at most.
ANNOUNCE_RETRY = RetryPolicy(attempts=2, base_delay=0.1, budget_seconds=2.0)


class EnvelopeSender(Protocol):
    """Sends a JSON envelope to every connection of a user (``notify.realtime.RealtimeSender``)."""

    def send_envelope(self, user_id: str, envelope: dict[str, Any]) -> None:
        """Send; raise NotifyError when the service fails."""
        ...


#: Called with (user id, notification ids, mark) after items became read, archived or deleted, for the
#: items whose delivery it can still change: the notifier then drops a push that is still due and retracts
#: one that went out (``Notifier.handle_read`` / ``handle_archived``; see :func:`tell`). None: nothing.
ReadOrArchivedHook = Callable[[str, Sequence[str], Mark], None]
#: Delivery statuses a read or an archive still changes (notify.delivery_machine): a push may still be due,
#: or one went out and is not retracted yet. In any other status the delivery is settled for good.
DELIVERY_STILL_OPEN = frozenset({"accepted", "sent_realtime", "deferred", "pushed"})


class DeliveryReads(Protocol):
    """What the delivery side is told of reads (``notify.notifier.Notifier``)."""

    def handle_read(self, user_id: str, notification_id: str) -> bool:
        """The user read the notification."""
        ...

    def handle_archived(self, user_id: str, notification_id: str, deleted: bool = False) -> bool:
        """The user archived (or, with ``deleted``, deleted) the notification."""
        ...


def tell(deliveries: DeliveryReads) -> ReadOrArchivedHook:
    """The hook that tells the delivery of every item read, archived or deleted (a deletion as archived,
    with its own reason in the timeline)."""

    def hook(user_id: str, notification_ids: Sequence[str], mark: Mark) -> None:
        for notification_id in notification_ids:
            if mark in (Mark.ARCHIVE, Mark.DELETE):
                deliveries.handle_archived(user_id, notification_id, deleted=mark is Mark.DELETE)
            else:
                deliveries.handle_read(user_id, notification_id)

    return hook


@dataclass(frozen=True)
class RecountResult:
    """What the counter held, what the items add up to, and whether the counter was corrected."""

    stored: Counts
    computed: Counts
    pending: int
    repaired: bool

    @property
    def consistent(self) -> bool:
        """True when the counter matched its items."""
        return self.stored == self.computed


@dataclass(frozen=True)
class SweepResult:
    """What a retention sweep removed."""

    removed: int
    partitions: int
    skipped: int


def changes_cursor(epoch: str, seq: int) -> str:
    """The feed cursor after change ``seq`` (the start of the feed has one spelling for every epoch)."""
    return Cursor(CursorKind.CHANGES, epoch if seq else "", seq).encode()


def inbox_envelope(
    reason: str, changes: Sequence[dict[str, Any]], counts: Counts, previous_cursor: str, cursor: str
) -> dict[str, Any]:
    """The ``inbox`` message sent to every connection of the user after a change."""
    return {
        "kind": "inbox",
        "protocolVersion": INBOX_PROTOCOL_VERSION,
        "reason": reason,
        "changes": list(changes),
        "counts": counts.to_json(),
        "previousCursor": previous_cursor,
        "cursor": cursor,
    }


class Inbox:
    """The user-facing inbox operations over one deliveries table."""

    def __init__(
        self,
        store: InboxStore,
        envelopes: EnvelopeSender | None = None,
        retention_days: int = 90,
        on_read_or_archived: ReadOrArchivedHook | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        batch_size: int = MAX_ITEMS_PER_TRANSACTION,
    ) -> None:
        self._store = store
        self._envelopes = envelopes
        self._retention_days = retention_days
        self._on_read_or_archived = on_read_or_archived
        self._clock = clock
        self._sleep = sleep
        self._batch = max(1, min(batch_size, MAX_ITEMS_PER_TRANSACTION))

    @property
    def retention_days(self) -> int:
        """How long items are kept."""
        return self._retention_days

    # ---- reading -----------------------------------------------------------------------------------------

    def page(
        self,
        user_id: str,
        limit: int = DEFAULT_PAGE_LIMIT,
        before: str | None = None,
        type: str | None = None,
        status: StatusFilter | None = None,
    ) -> dict[str, Any]:
        """Newest first, one page; ``next`` continues it. Raises BadRequestError naming ``before``."""
        partition = user_key(user_id)
        snapshot = self._take_in_pending(user_id, partition)
        counter = snapshot.counter
        epoch = counter.epoch if counter else ""
        if before is not None:
            cursor = _decode(before, CursorKind.PAGE, "before")
            if cursor.position and cursor.epoch != epoch:
                raise BadRequestError("before is from an inbox that no longer exists; list from the start",
                                      field="before")
            upper = cursor.position
        else:
            upper = (counter.created_seq if counter else 0) + 1
        condition = status_filter_clause(status)
        parameters: dict[str, Any] = {}
        if type is not None:
            condition += " and type eq @type"
            parameters["type"] = type
        found: list[Row] = []
        window = max(limit, 10)
        for _ in range(LIST_WINDOWS):
            if upper <= 1 or len(found) >= limit:
                break
            lower = max(1, upper - window)
            window_condition = f"{CREATED_SEQ} ge {lower} and {CREATED_SEQ} lt {upper} and {condition}"
            found += self._store.query(partition, window_condition, parameters)
            upper = lower
            window = min(window * 2, 4 * max(limit, 10))
        found.sort(key=lambda row: row.created_seq, reverse=True)
        page = found[:limit]
        if len(found) > limit:
            next_cursor: str | None = Cursor(CursorKind.PAGE, epoch, page[-1].created_seq).encode()
        elif upper > 1:
            next_cursor = Cursor(CursorKind.PAGE, epoch, upper).encode()
        else:
            next_cursor = None
        return {
            "items": [item_json(row.entity) for row in page],
            "next": next_cursor,
            "cursor": changes_cursor(epoch, counter.seq if counter else 0),
            "counts": snapshot.counts.to_json(),
            "retentionDays": self._retention_days,
        }

    def changes(
        self, user_id: str, after: str | None = None, limit: int = DEFAULT_CHANGES_LIMIT
    ) -> dict[str, Any]:
        """Every item created or changed after the cursor, oldest change first, and the next cursor.

        Raises BadRequestError naming ``after`` for a cursor this service did not issue or one ahead of
        the inbox.
        """
        cursor = _decode(after, CursorKind.CHANGES, "after") if after else Cursor(CursorKind.CHANGES, "", 0)
        partition = user_key(user_id)
        snapshot = self._take_in_pending(user_id, partition)
        counter = snapshot.counter
        position, reset = cursor.position, False
        if position and (counter is None or cursor.epoch != counter.epoch):
            position, reset = 0, True
        high = counter.seq if counter else 0
        if position > high:
            raise BadRequestError("after is ahead of this inbox", field="after")
        end = min(high, position + limit)
        rows = []
        if end > position:
            rows = self._store.query(partition, f"{SEQ} gt {position} and {SEQ} le {end}")
        rows.sort(key=lambda row: int(row.entity.get(SEQ) or 0))
        return {
            "changes": [item_json(row.entity) for row in rows],
            "cursor": changes_cursor(counter.epoch if counter else "", end),
            "more": end < high,
            "reset": reset,
            "counts": snapshot.counts.to_json(),
            "retentionDays": self._retention_days,
        }

    def counts(self, user_id: str) -> Counts:
        """The user's counts (one query). Raises TransientError / UpstreamError."""
        return self._store.snapshot(user_key(user_id)).counts

    def unread_count(self, user_id: str) -> int:
        """The user's unread count (the push badge)."""
        return self.counts(user_id).unread

    def get(self, user_id: str, notification_id: str) -> dict[str, Any]:
        """One item. Raises NotFoundError when the user has no such item (never another user's)."""
        row = None
        if is_notification_id(notification_id):
            row = self._store.get(user_key(user_id), notification_id)
        if row is None or not is_listed(row.entity) or row.state.deleted:
            raise NotFoundError("no such notification in the inbox")
        return item_json(row.entity)

    # ---- marks -------------------------------------------------------------------------------------------

    def mark(self, user_id: str, notification_id: str, mark: Mark) -> dict[str, Any]:
        """Mark one item (idempotent); answer its marks, the counts and the feed cursors.

        Raises NotFoundError when the user has no such item (a deleted item is gone for every mark but
        delete, which stays idempotent).
        """
        if not is_notification_id(notification_id):
            raise NotFoundError("no such notification in the inbox")
        partition = user_key(user_id)
        carried = self._batch - 1  # pending items taken in along with the mark
        for attempt in range(_MAX_CONFLICTS):
            snapshot = self._store.snapshot(partition, targets=[notification_id])
            row = snapshot.targets.get(notification_id)
            if row is None or not is_listed(row.entity) or (row.state.deleted and mark is not Mark.DELETE):
                raise NotFoundError("no such notification in the inbox")
            state = row.state
            marked = state.marked(mark, self._clock())
            cursor = changes_cursor(snapshot.counter.epoch if snapshot.counter else "",
                                    snapshot.counter.seq if snapshot.counter else 0)
            if marked == state and not row.pending:
                version = int(row.entity.get(SEQ) or 0)
                return _mark_answer(
                    notification_id, state, version, snapshot.counts, cursor, cursor, changed=False
                )
            others = [p for p in snapshot.pending if p.key != notification_id][:carried]
            # Pending items are taken in in arrival order, the target among them if it is pending too.
            writes = sorted(
                [ItemWrite(p, NEW_ITEM) for p in others] + [ItemWrite(row, marked)],
                key=lambda w: (not w.row.pending, float(w.row.entity.get("acceptedAt") or 0.0), w.row.key),
            )
            committed = self._store.commit(partition, snapshot.counter, snapshot.counter_etag, writes)
            if committed is None:
                carried = _shrunk(carried, floor=0)
                self._backoff(attempt)
                continue
            left = len(snapshot.pending) - len(others) - (1 if row.pending else 0)
            counts = committed.counter.counts + NEW_ITEM.counts().times(left)
            self._announce(user_id, mark.value, committed, counts)
            if marked != state and _delivery_open(row):
                self._notify_read_or_archived(user_id, [notification_id], mark, state, marked)
            before, after = _cursors(committed)
            version = next(c.seq for c in committed.changes if c.notification_id == notification_id)
            changed = marked != state
            return _mark_answer(notification_id, marked, version, counts, before, after, changed)
        raise BusyError("table storage", "the inbox kept changing; retry", retry_after=1.0)

    def mark_all(
        self, user_id: str, mark: Mark, type: str | None = None, resume: str | None = None
    ) -> dict[str, Any]:
        """Read-all or seen-all in bounded transactions; answer a ``resume`` token while items remain.

        Only items that existed when the first call began are marked. Raises BadRequestError naming
        ``resume`` for a token of another inbox, mark or type filter.
        """
        if mark not in (Mark.READ, Mark.SEEN):
            raise ValueError("only read and seen apply to every item")
        partition = user_key(user_id)
        if resume is not None:
            pinned = _decode(resume, CursorKind.MARK_ALL, "resume")
            if pinned.mark != mark.value or pinned.type != (type or ""):
                raise BadRequestError(f"resume belongs to another {pinned.mark or 'mark'}-all or type filter",
                                      field="resume")
            snapshot = self._store.snapshot(partition)
            epoch = snapshot.counter.epoch if snapshot.counter else ""
            if pinned.position and pinned.epoch != epoch:
                raise BadRequestError("resume is from an inbox that no longer exists", field="resume")
            bound = pinned.position
        else:
            snapshot = self._take_in_pending(user_id, partition, MARK_ALL_ABSORB_TRANSACTIONS)
            epoch = snapshot.counter.epoch if snapshot.counter else ""
            bound = snapshot.counter.created_seq if snapshot.counter else 0
        flag = READ if mark is Mark.READ else SEEN
        condition = (f"{CREATED_SEQ} gt 0 and {CREATED_SEQ} le {bound} and {flag} eq false"
                     f" and {ARCHIVED} eq false and {DELETED} eq false")
        parameters: dict[str, Any] = {}
        if type is not None:
            condition += " and type eq @type"
            parameters["type"] = type
        marked_count, transactions, conflicts, done = 0, 0, 0, bound == 0
        size = self._batch
        while not done and transactions < MARK_ALL_TRANSACTIONS:
            rows = self._store.query(partition, condition, parameters, select=STATE_COLUMNS, limit=size)
            if not rows:
                done = True
                break
            now = self._clock()
            writes = [ItemWrite(row, row.state.marked(mark, now)) for row in rows]
            committed = self._store.commit(partition, snapshot.counter, snapshot.counter_etag, writes)
            if committed is None:
                conflicts = self._lost_race(conflicts)
                size = _shrunk(size)
                snapshot = self._store.snapshot(partition)
                continue
            snapshot = Snapshot(committed.counter, committed.counter_etag, snapshot.pending, {})
            size = _grown(size, self._batch)
            transactions += 1
            marked_count += len(rows)
            self._announce(user_id, f"{mark.value}-all", committed, snapshot.counts)
            if mark is Mark.READ:
                self._notify_many(user_id, [row.key for row in rows if _delivery_open(row)], mark)
        if not done:
            done = not self._store.query(partition, condition, parameters, select=["RowKey"], limit=1)
        counter = snapshot.counter
        return {
            "marked": marked_count,
            "done": done,
            "resume": None if done else Cursor(
                CursorKind.MARK_ALL, epoch, bound, mark.value, type or ""
            ).encode(),
            "counts": snapshot.counts.to_json(),
            "cursor": changes_cursor(counter.epoch if counter else "", counter.seq if counter else 0),
        }

    # ---- upkeep ------------------------------------------------------------------------------------------

    def recount(self, user_id: str, repair: bool = False) -> RecountResult:
        """Add up the items the counter holds and compare; with ``repair`` correct a counter that differs.

        The sum is taken between two reads of the counter with the same ETag: every change of an item the
        counter holds also writes the counter, so an unchanged ETag means no item changed during the sum.
        """
        partition = user_key(user_id)
        for attempt in range(_MAX_CONFLICTS):
            first = self._store.snapshot(partition)
            rows = self._store.query(partition, f"{CREATED_SEQ} gt 0", select=STATE_COLUMNS)
            second = self._store.snapshot(partition)
            if first.counter_etag != second.counter_etag:
                self._backoff(attempt)
                continue
            computed = Counts()
            for row in rows:
                computed = computed + row.contribution
            stored = first.counter.counts if first.counter else Counts()
            if stored == computed or not repair or first.counter is None:
                return RecountResult(stored, computed, len(second.pending), False)
            committed = self._store.commit(
                partition, first.counter, first.counter_etag, counts_override=computed
            )
            if committed is None:
                self._backoff(attempt)
                continue
            logger.warning(
                "inbox counter of user %s repaired: %s -> %s", user_hash(user_id), stored, computed
            )
            counts = computed + NEW_ITEM.counts().times(len(second.pending))
            self._announce(user_id, "repair", committed, counts)
            return RecountResult(stored, computed, len(second.pending), True)
        raise BusyError("table storage", "the inbox kept changing; retry", retry_after=1.0)

    def sweep(self) -> SweepResult:
        """Remove rows older than the retention, taking what they added off the counters."""
        cutoff = self._clock() - self._retention_days * 86400.0
        rows = sorted(
            self._store.scan(f"acceptedAt lt {cutoff:.3f}"), key=lambda r: str(r.entity["PartitionKey"])
        )
        removed = skipped = partitions = 0
        for partition, group in groupby(rows, key=lambda r: str(r.entity["PartitionKey"])):
            partitions += 1
            batch: list[Row] = list(group)
            for start in range(0, len(batch), self._batch):
                chunk = batch[start:start + self._batch]
                if self._sweep_chunk(partition, chunk):
                    removed += len(chunk)
                else:
                    skipped += len(chunk)
        if removed or skipped:
            logger.info("inbox sweep removed %d rows in %d partitions (%d left for the next run)",
                        removed, partitions, skipped)
        return SweepResult(removed, partitions, skipped)

    # ---- internals ---------------------------------------------------------------------------------------

    def _sweep_chunk(self, partition: str, chunk: list[Row]) -> bool:
        counted = any(row.contribution != Counts() for row in chunk)
        for attempt in range(3):
            if counted:
                snapshot = self._store.snapshot(partition, pending=False)
                if snapshot.counter is None:
                    return False  # held items without a counter: left to the recount
                if self._store.commit(partition, snapshot.counter, snapshot.counter_etag, deletes=chunk):
                    return True
            elif self._store.delete(partition, chunk):
                return True
            self._backoff(attempt)
            fresh = self._store.rows(partition, [row.key for row in chunk])
            if not fresh:
                return True  # removed meanwhile
            chunk[:] = fresh
            counted = any(row.contribution != Counts() for row in chunk)
        return False

    def _take_in_pending(
        self, user_id: str, partition: str, budget: int = ABSORB_TRANSACTIONS
    ) -> Snapshot:
        """Take pending items into the counter (at most ``budget`` transactions); answer the new snapshot."""
        snapshot = self._store.snapshot(partition)
        transactions = conflicts = 0
        size = self._batch
        while snapshot.pending and transactions < budget:
            chunk = snapshot.pending[:size]
            writes = [ItemWrite(row, NEW_ITEM) for row in chunk]
            committed = self._store.commit(partition, snapshot.counter, snapshot.counter_etag, writes)
            if committed is None:
                conflicts = self._lost_race(conflicts)
                size = _shrunk(size)
                snapshot = self._store.snapshot(partition)
                continue
            snapshot = Snapshot(committed.counter, committed.counter_etag, snapshot.pending[len(chunk):], {})
            size = _grown(size, self._batch)
            transactions += 1
            self._announce(user_id, "new", committed, snapshot.counts)
        return snapshot

    def _announce(self, user_id: str, reason: str, committed: Committed, counts: Counts) -> None:
        if self._envelopes is None:
            return
        before, after = _cursors(committed)
        changes = [change_json(c.notification_id, c.state, c.seq, new=c.new) for c in committed.changes]
        envelope = inbox_envelope(reason, changes, counts, before, after)
        sender = self._envelopes
        try:
            call_with_retry(lambda: sender.send_envelope(user_id, envelope), ANNOUNCE_RETRY, "inbox envelope")
        except NotifyError as exc:  # committed already; clients catch up with changes
            logger.warning("inbox envelope to user %s not sent: %s", user_hash(user_id), exc.message)

    def _notify_read_or_archived(
        self, user_id: str, ids: list[str], mark: Mark, before: ItemState, after: ItemState
    ) -> None:
        became = (
            (after.read and not before.read)
            or (after.archived and not before.archived)
            or (after.deleted and not before.deleted)
        )
        if became:
            self._notify_many(user_id, ids, mark)

    def _notify_many(self, user_id: str, ids: list[str], mark: Mark) -> None:
        if self._on_read_or_archived is None or not ids:
            return
        try:
            self._on_read_or_archived(user_id, ids, mark)
        except NotifyError as exc:  # the mark is committed; a missed retract leaves a stale banner only
            logger.warning("read/archived hook failed for user %s: %s", user_hash(user_id), exc.message)

    def _lost_race(self, conflicts: int) -> int:
        """Count a transaction lost to a concurrent writer: back off, or BusyError after too many."""
        conflicts += 1
        if conflicts >= _MAX_CONFLICTS:
            raise BusyError("table storage", "the inbox kept changing; retry", retry_after=1.0)
        self._backoff(conflicts)
        return conflicts

    def _backoff(self, attempt: int) -> None:
        self._sleep(random.uniform(0, min(_BACKOFF_CAP_SECONDS, 0.005 * 2 ** min(attempt, 8))))


def _shrunk(size: int, floor: int = 1) -> int:
    """The next transaction's item count after one lost to a concurrent writer.

    Fresh items are the ones the notifier is still writing delivery state to, and any one of them changing
    fails the whole transaction: halving the count lets a burst of arrivals be taken in while it is still
    being delivered, instead of every attempt losing to one of its rows.
    """
    return max(floor, size // 2)


def _grown(size: int, ceiling: int) -> int:
    """The next transaction's item count after one that committed."""
    return min(ceiling, size * 2)


def _delivery_open(row: Row) -> bool:
    return str(row.entity.get(DELIVERY_STATUS) or "") in DELIVERY_STILL_OPEN


def _decode(text: str, kind: CursorKind, field: str) -> Cursor:
    try:
        return decode_cursor(text, kind)
    except ValueError as exc:
        raise BadRequestError(f"{field} {exc}", field=field) from None


def _cursors(committed: Committed) -> tuple[str, str]:
    epoch = committed.counter.epoch
    return changes_cursor(epoch, committed.before.seq), changes_cursor(epoch, committed.counter.seq)


def _mark_answer(
    notification_id: str,
    state: ItemState,
    version: int,
    counts: Counts,
    previous: str,
    cursor: str,
    changed: bool,
) -> dict[str, Any]:
    return {
        "item": change_json(notification_id, state, version),
        "changed": changed,
        "counts": counts.to_json(),
        "previousCursor": previous,
        "cursor": cursor,
    }
