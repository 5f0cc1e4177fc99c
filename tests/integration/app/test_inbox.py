"""The inbox over Azurite: items are the delivery rows the notifier's store inserts; marks, read-all, the
changes feed, the counts, the recount and the sweep run against real entity-group transactions.

The concurrency tests check three properties against oracles computed independently from a raw scan of
the table: the counts equal what the rows add up to, every reader of the changes feed ends with every
item's last version, and no reader ever receives the same version of an item twice.
"""

from __future__ import annotations

import contextlib
import functools
import json
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from azure.data.tables import TableClient, UpdateMode

from devstack.azurite import RunningAzurite
from notify.deliveries import DeliveryStore
from notify.delivery_machine import Status, new_state
from notify.inbox import Inbox
from notify.inbox_model import COUNTER_ROW_KEY, Counts, Cursor, CursorKind, Mark, StatusFilter
from notify.inbox_store import InboxStore
from notify.model import Delivery, Notification
from shared.errors import BadRequestError, BusyError, NotFoundError
from shared.user_keys import user_key

T = TypeVar("T")

pytestmark = pytest.mark.integration

MARKS = [Mark.READ, Mark.UNREAD, Mark.SEEN, Mark.ARCHIVE, Mark.UNARCHIVE, Mark.DELETE]


@dataclass
class Setup:
    table: TableClient
    deliveries: DeliveryStore
    inbox: Inbox

    def arrive(
        self, user: str, notification_id: str | None = None, accepted_at: float | None = None, **fields: Any
    ) -> str:
        """Insert a delivery row exactly as the notifier does (a second insert of an id is a redelivery)."""
        nid = notification_id or "n-" + uuid.uuid4().hex[:12]
        notification = Notification(nid, user, f"title {nid}", "body", **fields)
        self.deliveries.insert(notification, new_state(notification.delivery, None),
                               accepted_at if accepted_at is not None else time.time())
        return nid

    def make_inbox(self, **options: Any) -> Inbox:
        return Inbox(InboxStore(self.table), **options)


@pytest.fixture
def setup(azurite: RunningAzurite, unique_name: Callable[[str], str]) -> Iterator[Setup]:
    table = TableClient.from_connection_string(azurite.connection_string, unique_name("inbox"))
    table.create_table()
    try:
        yield Setup(table, DeliveryStore(table), Inbox(InboxStore(table)))
    finally:
        table.delete_table()
        table.close()


def raw_counts(table: TableClient, user: str) -> Counts:
    """The oracle: counts computed from every row of the partition, without the inbox's code."""
    unread = unseen = total = 0
    for row in table.query_entities("PartitionKey eq @pk", parameters={"pk": user_key(user)}):
        if row["RowKey"] == COUNTER_ROW_KEY or row.get("inbox") is not True:
            continue
        pending = row.get("inboxPending") is True
        if not pending and (row.get("inboxDeleted") or row.get("inboxArchived")):
            continue
        total += 1
        unread += 1 if pending or not row.get("inboxRead") else 0
        unseen += 1 if pending or not row.get("inboxSeen") else 0
    return Counts(unread, unseen, total)


def drain_changes(
    inbox: Inbox, user: str, after: str | None, limit: int = 100
) -> tuple[list[dict[str, Any]], str]:
    changes: list[dict[str, Any]] = []
    while True:
        page = inbox.changes(user, after, limit)
        changes += page["changes"]
        after = page["cursor"]
        if not page["more"]:
            return changes, after


def all_items(inbox: Inbox, user: str, status: StatusFilter | None = None, limit: int = 100) -> list[str]:
    ids: list[str] = []
    before: str | None = None
    while True:
        page = inbox.page(user, limit=limit, before=before, status=status)
        ids += [item["notificationId"] for item in page["items"]]
        before = page["next"]
        if before is None:
            return ids


# ---- listing -----------------------------------------------------------------------------------------------


def test_list_pages_newest_first_without_gaps_or_repeats(setup: Setup) -> None:
    ids = [setup.arrive("alice", accepted_at=1_000_000 + i) for i in range(23)]
    setup.arrive("bob")
    pages = []
    before = None
    while True:
        page = setup.inbox.page("alice", limit=7, before=before)
        pages.append([item["notificationId"] for item in page["items"]])
        before = page["next"]
        if before is None:
            break
    assert [len(p) for p in pages] == [7, 7, 7, 2]
    assert [i for p in pages for i in p] == list(reversed(ids))
    first = setup.inbox.page("alice", limit=1)["items"][0]
    assert first["title"] == f"title {ids[-1]}" and first["read"] is False and first["seen"] is False
    assert first["createdAt"].endswith("Z") and first["version"] > 0


def test_items_arriving_between_pages_are_neither_skipped_nor_repeated(setup: Setup) -> None:
    old = [setup.arrive("alice") for _ in range(10)]
    page = setup.inbox.page("alice", limit=4)
    new = [setup.arrive("alice") for _ in range(3)]
    seen = [item["notificationId"] for item in page["items"]]
    before = page["next"]
    while before:
        page = setup.inbox.page("alice", limit=4, before=before)
        seen += [item["notificationId"] for item in page["items"]]
        before = page["next"]
    assert sorted(seen) == sorted(old)  # the older pages are exactly the items that existed
    assert set(all_items(setup.inbox, "alice")) == set(old + new)


def test_every_filter(setup: Setup) -> None:
    read, seen, archived, plain, deleted = (setup.arrive("alice", type=t) for t in
                                            ("chat", "chat", "news", "news", "chat"))
    setup.inbox.mark("alice", read, Mark.READ)
    setup.inbox.mark("alice", seen, Mark.SEEN)
    setup.inbox.mark("alice", archived, Mark.ARCHIVE)
    setup.inbox.mark("alice", deleted, Mark.DELETE)
    assert set(all_items(setup.inbox, "alice")) == {read, seen, plain}
    assert set(all_items(setup.inbox, "alice", StatusFilter.UNREAD)) == {seen, plain}
    assert set(all_items(setup.inbox, "alice", StatusFilter.UNSEEN)) == {plain}
    assert set(all_items(setup.inbox, "alice", StatusFilter.ARCHIVED)) == {archived}
    assert set(all_items(setup.inbox, "alice", StatusFilter.ALL)) == {read, seen, archived, plain}
    by_type = setup.inbox.page("alice", type="chat")["items"]
    assert {item["notificationId"] for item in by_type} == {read, seen}
    assert setup.inbox.page("alice", type="nothing-of-this-type")["items"] == []
    expected = Counts(unread=2, unseen=1, total=3)
    assert setup.inbox.counts("alice") == expected == raw_counts(setup.table, "alice")


def test_inbox_false_is_delivered_but_never_listed_or_counted(setup: Setup) -> None:
    listed = setup.arrive("alice")
    typing = setup.arrive("alice", inbox=False)
    record = setup.deliveries.get("alice", typing)
    assert record is not None and record.notification().inbox is False  # the delivery row exists
    assert all_items(setup.inbox, "alice", StatusFilter.ALL) == [listed]
    assert setup.inbox.counts("alice") == Counts(1, 1, 1)
    with pytest.raises(NotFoundError):
        setup.inbox.mark("alice", typing, Mark.READ)
    with pytest.raises(NotFoundError):
        setup.inbox.get("alice", typing)


def test_pending_items_are_counted_before_they_are_taken_in(setup: Setup) -> None:
    for _ in range(3):
        setup.arrive("alice")
    assert setup.inbox.counts("alice") == Counts(3, 3, 3)
    assert setup.table.get_entity(user_key("alice"), setup.arrive("alice"))["inboxPending"] is True
    setup.inbox.page("alice")
    assert setup.inbox.counts("alice") == Counts(4, 4, 4) == raw_counts(setup.table, "alice")
    assert setup.inbox.recount("alice").consistent


def test_a_redelivered_message_adds_nothing(setup: Setup) -> None:
    nid = setup.arrive("alice")
    setup.inbox.mark("alice", nid, Mark.READ)
    setup.arrive("alice", nid)  # the queue delivered the same message again
    assert setup.inbox.counts("alice") == Counts(0, 0, 1)
    assert all_items(setup.inbox, "alice") == [nid]


# ---- marks -------------------------------------------------------------------------------------------------


def test_marks_are_idempotent_and_move_the_counts(setup: Setup) -> None:
    nid = setup.arrive("alice")
    setup.arrive("alice")
    first = setup.inbox.mark("alice", nid, Mark.READ)
    again = setup.inbox.mark("alice", nid, Mark.READ)
    assert first["changed"] is True and again["changed"] is False
    assert first["item"]["read"] and first["item"]["seen"]  # reading implies seeing
    assert first["counts"] == again["counts"] == {"unread": 1, "unseen": 1, "total": 2}
    assert again["cursor"] == first["cursor"]
    read_at = setup.inbox.get("alice", nid)["readAt"]
    setup.inbox.mark("alice", nid, Mark.READ)
    assert setup.inbox.get("alice", nid)["readAt"] == read_at  # the first time is kept
    assert setup.inbox.mark("alice", nid, Mark.UNREAD)["counts"] == {"unread": 2, "unseen": 1, "total": 2}
    assert setup.inbox.mark("alice", nid, Mark.ARCHIVE)["counts"] == {"unread": 1, "unseen": 1, "total": 1}
    assert setup.inbox.mark("alice", nid, Mark.UNARCHIVE)["counts"] == {"unread": 2, "unseen": 1, "total": 2}
    setup.inbox.mark("alice", nid, Mark.DELETE)
    setup.inbox.mark("alice", nid, Mark.DELETE)  # deleting twice is fine
    for mark in (Mark.READ, Mark.UNREAD, Mark.SEEN, Mark.ARCHIVE, Mark.UNARCHIVE):
        with pytest.raises(NotFoundError):
            setup.inbox.mark("alice", nid, mark)
    with pytest.raises(NotFoundError):
        setup.inbox.get("alice", nid)
    assert setup.inbox.counts("alice") == Counts(1, 1, 1) == raw_counts(setup.table, "alice")


def test_unknown_and_malformed_ids_are_not_found(setup: Setup) -> None:
    setup.arrive("alice")
    for nid in ("missing", "~inbox", "x" * 129, "a/b", ""):
        with pytest.raises(NotFoundError):
            setup.inbox.mark("alice", nid, Mark.READ)
        with pytest.raises(NotFoundError):
            setup.inbox.get("alice", nid)


def test_another_users_item_is_indistinguishable_from_a_missing_one(setup: Setup) -> None:
    bobs = setup.arrive("bob")
    with pytest.raises(NotFoundError) as other:
        setup.inbox.mark("alice", bobs, Mark.READ)
    with pytest.raises(NotFoundError) as missing:
        setup.inbox.mark("alice", "never-sent", Mark.READ)
    assert other.value.message == missing.value.message
    assert setup.inbox.counts("bob") == Counts(1, 1, 1)
    assert all_items(setup.inbox, "alice", StatusFilter.ALL) == []


# ---- the changes feed --------------------------------------------------------------------------------------


def test_changes_from_any_cursor_answer_exactly_the_later_versions(setup: Setup) -> None:
    """From every position of the feed, changes answer exactly the items whose last version is later."""
    rng = random.Random(12)
    ids: list[str] = []
    for step in range(24):
        if step % 3 == 0 or not ids:
            ids.append(setup.arrive("alice"))
        else:
            with contextlib.suppress(NotFoundError):  # marked after its deletion
                setup.inbox.mark("alice", rng.choice(ids), rng.choice(MARKS))
        if step % 4 == 0:
            setup.inbox.changes("alice", limit=1)  # takes pending items in between the marks
    final, end = drain_changes(setup.inbox, "alice", None, limit=3)
    truth = {change["notificationId"]: change["version"] for change in final}
    assert set(truth) == set(ids)
    epoch, high = _epoch(end), _position(end)
    assert high >= len(ids)
    for position in range(high + 1):
        start = Cursor(CursorKind.CHANGES, epoch if position else "", position).encode()
        later, last = drain_changes(setup.inbox, "alice", start, limit=6)
        assert [c["version"] for c in later] == sorted(c["version"] for c in later)
        assert {c["notificationId"]: c["version"] for c in later} == {
            nid: version for nid, version in truth.items() if version > position
        }, f"from position {position}"
        assert len(later) == len({c["notificationId"] for c in later})
        assert last == end


def _position(cursor: str) -> int:
    from notify.inbox_model import decode_cursor

    return decode_cursor(cursor, CursorKind.CHANGES).position


def test_changes_never_skip_under_concurrent_writers_and_clock_skew(setup: Setup) -> None:
    """Inserters on clocks an hour apart, a notifier writing delivery state, two devices marking, and
    three readers following the feed: every reader ends with every item's last version, receives each
    version once, and sees each item's versions in increasing order."""
    user = "carol"
    ids: list[str] = []
    ids_lock = threading.Lock()
    stop = threading.Event()
    errors: list[BaseException] = []

    def guarded(body: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                body()
            except BaseException as exc:  # noqa: BLE001 - surfaced by the assertion below
                errors.append(exc)
        return run

    busy_answers: list[BusyError] = []

    def patient(call: Callable[[], T]) -> T:
        """Call as a client does: a 503 (the inbox kept changing in a tight race) is retried after a pause."""
        for _ in range(5):
            try:
                return call()
            except BusyError as exc:
                busy_answers.append(exc)
                time.sleep(0.2)
        return call()

    def inserter(skew: float) -> Callable[[], None]:
        def body() -> None:
            for _ in range(10):
                nid = setup.arrive(user, accepted_at=time.time() + skew)
                with ids_lock:
                    ids.append(nid)
        return body

    def device(seed: int) -> Callable[[], None]:
        inbox = setup.make_inbox()
        rng = random.Random(seed)

        def body() -> None:
            for _ in range(20):
                with ids_lock:  # recent items: their last change falls while the readers follow along
                    choice = rng.choice(ids[-6:]) if ids else None
                if choice is None:
                    time.sleep(0.001)
                    continue
                mark = rng.choice(MARKS)
                with contextlib.suppress(NotFoundError):
                    patient(functools.partial(inbox.mark, user, choice, mark))
        return body

    def notifier() -> None:
        rng = random.Random(7)
        while not stop.is_set():
            with ids_lock:
                choice = rng.choice(ids) if ids else None
            record = setup.deliveries.get(user, choice) if choice else None
            if record is not None:
                setup.deliveries.write(record, record.state.__class__(
                    delivery=record.state.delivery, status=Status.SENT_REALTIME, acked_at=time.time()))
            time.sleep(0.005)

    received: dict[int, list[tuple[str, int]]] = {0: [], 1: [], 2: []}
    last: dict[int, dict[str, int]] = {0: {}, 1: {}, 2: {}}

    def reader(index: int) -> Callable[[], None]:
        inbox = setup.make_inbox()

        def body() -> None:
            cursor = None
            while True:
                finishing = stop.is_set()
                page = patient(functools.partial(inbox.changes, user, cursor, limit=(5, 50, 100)[index]))
                for change in page["changes"]:
                    received[index].append((change["notificationId"], change["version"]))
                    last[index][change["notificationId"]] = change["version"]
                cursor = page["cursor"]
                if finishing and not page["more"]:
                    return
        return body

    writers = [threading.Thread(target=guarded(inserter(skew))) for skew in (-3600.0, 0.0, 3600.0)]
    writers += [threading.Thread(target=guarded(device(seed))) for seed in (1, 2)]
    background = [threading.Thread(target=guarded(notifier))]
    background += [threading.Thread(target=guarded(reader(i))) for i in received]
    for thread in writers + background:
        thread.start()
    for thread in writers:
        thread.join(60)
    stop.set()
    for thread in background:
        thread.join(60)
    assert errors == []
    final, _ = drain_changes(setup.inbox, user, None)
    truth = {change["notificationId"]: change["version"] for change in final}
    assert set(truth) == set(ids) and len(ids) == 30
    for index in received:
        assert last[index] == truth, f"reader {index} missed a change"
        assert len(received[index]) == len(set(received[index])), f"reader {index} got a version twice"
        versions: dict[str, int] = {}
        for nid, version in received[index]:
            assert version > versions.get(nid, 0)
            versions[nid] = version
    assert setup.inbox.counts(user) == raw_counts(setup.table, user)
    assert setup.inbox.recount(user).consistent


class DeliveringStore(InboxStore):
    """The inbox store, with the notifier writing delivery state to one fresh item (newest first, each
    once) just before every inbox transaction: a burst of arrivals that is still being delivered."""

    def __init__(self, setup: Setup, user: str, ids: list[str]) -> None:
        super().__init__(setup.table)
        self._setup, self._user, self._queue = setup, user, list(reversed(ids))
        self.transactions = 0

    def commit(self, *args: Any, **kwargs: Any) -> Any:
        if self._queue:
            record = self._setup.deliveries.get(self._user, self._queue.pop(0))
            assert record is not None
            written = self._setup.deliveries.write(record, record.state.__class__(
                delivery=record.state.delivery, status=Status.SENT_REALTIME, acked_at=time.time()))
            assert written is not None
        self.transactions += 1
        return super().commit(*args, **kwargs)


def test_a_burst_still_being_delivered_is_taken_in(setup: Setup) -> None:
    """Every fresh item changing under the take-in once must not make the feed answer 503: after a lost
    transaction fewer items are taken in at a time, so the rows the notifier is not writing get in."""
    ids = [setup.arrive("erin", accepted_at=1000.0 + i) for i in range(30)]
    store = DeliveringStore(setup, "erin", ids)
    changes, _ = drain_changes(Inbox(store), "erin", None)
    assert sorted(c["notificationId"] for c in changes) == sorted(ids)
    assert store.transactions < 30
    assert setup.inbox.counts("erin") == raw_counts(setup.table, "erin")


def test_a_mark_during_a_burst_still_being_delivered_commits(setup: Setup) -> None:
    """A mark takes pending items in with it; when they keep changing it takes fewer, then none."""
    ids = [setup.arrive("fred", accepted_at=1000.0 + i) for i in range(30)]
    store = DeliveringStore(setup, "fred", ids[1:])
    answer = Inbox(store).mark("fred", ids[0], Mark.READ)
    assert answer["changed"] is True
    assert setup.inbox.get("fred", ids[0])["read"] is True
    assert setup.inbox.counts("fred") == raw_counts(setup.table, "fred")
    assert setup.inbox.recount("fred").consistent


def test_a_cursor_from_a_removed_inbox_restarts_the_feed(setup: Setup) -> None:
    setup.arrive("dave")
    old = drain_changes(setup.inbox, "dave", None)[1]
    for row in list(setup.table.query_entities("PartitionKey eq 'dave'")):
        setup.table.delete_entity(row["PartitionKey"], row["RowKey"])
    fresh = setup.arrive("dave")
    page = setup.inbox.changes("dave", old)
    assert page["reset"] is True
    assert [c["notificationId"] for c in page["changes"]] == [fresh]


def test_cursors_are_checked(setup: Setup) -> None:
    setup.arrive("alice")
    setup.arrive("alice")
    page_cursor = setup.inbox.page("alice", limit=1)["next"]
    assert page_cursor is not None
    changes_cursor = setup.inbox.changes("alice")["cursor"]
    ahead = Cursor(CursorKind.CHANGES, _epoch(changes_cursor), 999).encode()
    cases = [
        (lambda: setup.inbox.changes("alice", "not-a-cursor"), "after"),
        (lambda: setup.inbox.changes("alice", page_cursor), "after"),
        (lambda: setup.inbox.changes("alice", ahead), "after"),
        (lambda: setup.inbox.page("alice", before=changes_cursor), "before"),
        (lambda: setup.inbox.page("alice", before="%%%"), "before"),
        (lambda: setup.inbox.mark_all("alice", Mark.READ, resume=changes_cursor), "resume"),
    ]
    for call, field in cases:
        with pytest.raises(BadRequestError) as error:
            call()
        assert error.value.field == field


def _epoch(cursor: str) -> str:
    from notify.inbox_model import decode_cursor

    return decode_cursor(cursor, CursorKind.CHANGES).epoch


# ---- counts under parallel marks, read-all -----------------------------------------------------------------


def run_together(*bodies: Callable[[], None]) -> list[BaseException]:
    """Run each body in its own thread; return what they raised."""
    errors: list[BaseException] = []

    def guarded(body: Callable[[], None]) -> None:
        try:
            body()
        except BaseException as exc:  # noqa: BLE001 - returned to the test
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(body,)) for body in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return errors


def test_counts_match_a_recount_every_round_of_parallel_marks_and_arrivals(setup: Setup) -> None:
    user = "erin"
    ids = [setup.arrive(user) for _ in range(10)]
    rng = random.Random(3)

    def arrivals(fresh: list[str], known: list[str]) -> None:
        for _ in range(4):
            fresh.append(setup.arrive(user))
        setup.arrive(user, rng.choice(known))  # a redelivered message

    def marks(seed: int, known: list[str]) -> None:
        inbox = setup.make_inbox(batch_size=3)
        local = random.Random(seed)
        for step in range(6):
            with contextlib.suppress(NotFoundError):
                if step == 3 and seed % 2 == 0:
                    inbox.mark_all(user, local.choice([Mark.READ, Mark.SEEN]))
                else:
                    inbox.mark(user, local.choice(known), local.choice(MARKS))

    for round_number in range(5):
        fresh: list[str] = []
        known = list(ids)
        bodies = [functools.partial(arrivals, fresh, known)]
        bodies += [functools.partial(marks, seed + 10 * round_number, known) for seed in range(3)]
        assert run_together(*bodies) == []
        ids += fresh
        counts = setup.inbox.counts(user)
        recount = setup.inbox.recount(user)
        assert recount.consistent, f"round {round_number}: {recount}"
        assert counts == raw_counts(setup.table, user), f"round {round_number}"
        assert counts == recount.computed + Counts(1, 1, 1).times(recount.pending)


def test_read_all_is_bounded_resumable_and_leaves_new_arrivals_unread(setup: Setup) -> None:
    inbox = setup.make_inbox(batch_size=4)  # 5 transactions of 4 items per call
    before = [setup.arrive("frank", type="chat" if i % 5 else "news") for i in range(46)]
    answer = inbox.mark_all("frank", Mark.READ)
    assert answer["marked"] == 20 and answer["done"] is False and answer["resume"]
    calls = 1
    late: list[str] = []
    while not answer["done"]:
        late.append(setup.arrive("frank"))  # arrives while read-all is under way
        answer = inbox.mark_all("frank", Mark.READ, resume=answer["resume"])
        calls += 1
    assert calls == 3
    unread = set(all_items(inbox, "frank", StatusFilter.UNREAD))
    assert unread == set(late)
    assert inbox.counts("frank").unread == len(late) == answer["counts"]["unread"]
    assert inbox.counts("frank") == raw_counts(setup.table, "frank")
    assert inbox.recount("frank").consistent
    with pytest.raises(BadRequestError) as wrong:
        inbox.mark_all("frank", Mark.SEEN, resume=Cursor(CursorKind.MARK_ALL, "", 5, "read").encode())
    assert wrong.value.field == "resume"
    assert set(before) & unread == set()


def test_seen_all_with_a_type_filter(setup: Setup) -> None:
    chat = [setup.arrive("gina", type="chat") for _ in range(3)]
    news = [setup.arrive("gina", type="news") for _ in range(2)]
    answer = setup.inbox.mark_all("gina", Mark.SEEN, type="chat")
    assert answer == {**answer, "marked": 3, "done": True, "resume": None}
    assert set(all_items(setup.inbox, "gina", StatusFilter.UNSEEN)) == set(news)
    assert setup.inbox.counts("gina") == Counts(unread=5, unseen=2, total=5)
    assert chat


# ---- repair and retention ----------------------------------------------------------------------------------


def test_recount_repairs_a_counter_that_drifted(setup: Setup) -> None:
    for _ in range(3):
        setup.arrive("hank")
    setup.inbox.page("hank")
    setup.table.update_entity(
        {"PartitionKey": "hank", "RowKey": COUNTER_ROW_KEY, "unread": 17}, mode=UpdateMode.MERGE
    )
    found = setup.inbox.recount("hank")
    assert not found.consistent and found.stored.unread == 17 and found.repaired is False
    repaired = setup.inbox.recount("hank", repair=True)
    assert repaired.repaired and repaired.computed == Counts(3, 3, 3)
    assert setup.inbox.counts("hank") == Counts(3, 3, 3) and setup.inbox.recount("hank").consistent


def test_sweep_removes_what_is_older_than_the_retention(setup: Setup) -> None:
    now = time.time()
    day = 86400.0
    old = [setup.arrive("ivy", accepted_at=now - 100 * day) for _ in range(3)]
    old_pending = setup.arrive("ivy", accepted_at=now - 95 * day)
    old_typing = setup.arrive("ivy", accepted_at=now - 95 * day, inbox=False)
    setup.inbox.page("ivy")  # takes the first ones in
    setup.inbox.mark("ivy", old[0], Mark.READ)
    setup.inbox.mark("ivy", old[1], Mark.DELETE)
    old_pending2 = setup.arrive("ivy", accepted_at=now - 91 * day)  # still pending at the sweep
    young = [setup.arrive("ivy", accepted_at=now - 10 * day) for _ in range(2)]
    other_user = setup.arrive("jack", accepted_at=now - 120 * day)
    inbox = setup.make_inbox(retention_days=90, batch_size=2)
    result = inbox.sweep()
    assert result.removed == 7 and result.partitions == 2 and result.skipped == 0
    keys = {row["RowKey"] for row in setup.table.query_entities("PartitionKey eq 'ivy'")}
    assert keys == {*young, COUNTER_ROW_KEY}
    assert list(setup.table.query_entities("PartitionKey eq 'jack'")) == []  # never counted: no counter
    assert inbox.counts("ivy") == Counts(2, 2, 2) == raw_counts(setup.table, "ivy")
    assert inbox.recount("ivy").consistent
    assert set(all_items(inbox, "ivy", StatusFilter.ALL)) == set(young)
    assert inbox.page("ivy")["retentionDays"] == 90
    assert {old_pending, old_typing, old_pending2, other_user}.isdisjoint(keys)


def test_delivery_rows_are_still_found_by_the_notifier_after_inbox_writes(setup: Setup) -> None:
    nid = setup.arrive("kim", delivery=Delivery.REALTIME)
    setup.inbox.mark("kim", nid, Mark.READ)
    record = setup.deliveries.get("kim", nid)
    assert record is not None and record.status is Status.ACCEPTED
    assert setup.deliveries.write(record, record.state.__class__(delivery=Delivery.REALTIME,
                                                                  status=Status.SENT_REALTIME)) is not None
    assert setup.inbox.get("kim", nid)["read"] is True  # the notifier's merge kept the inbox columns
    assert setup.deliveries.get("kim", COUNTER_ROW_KEY) is None


def test_the_cli_lists_counts_and_recounts(
    setup: Setup, azurite: RunningAzurite, capsys: pytest.CaptureFixture[str]
) -> None:
    from notify.__main__ import main

    first = setup.arrive("lena", type="chat")
    setup.arrive("lena", inbox=False)
    setup.arrive("lena")
    setup.inbox.mark("lena", first, Mark.READ)
    where = ["--connection-string", azurite.connection_string, "--table", setup.table.table_name]
    assert main(["inbox", "--user", "lena", *where]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "inbox of lena: 1 unread, 1 unseen, 2 total"
    assert len(out) == 3 and "read" in out[2] and first in out[2] and "chat" in out[2]
    assert main(["inbox", "--user", "lena", "--status", "unread", "--json", *where]) == 0
    assert len(json.loads(capsys.readouterr().out)["items"]) == 1
    assert main(["inbox", "--user", "lena", "--counts", *where]) == 0
    assert capsys.readouterr().out.strip() == "1 unread, 1 unseen, 2 total"
    setup.table.update_entity({"PartitionKey": "lena", "RowKey": COUNTER_ROW_KEY, "total": 9},
                              mode=UpdateMode.MERGE)
    assert main(["inbox", "--user", "lena", "--recount", *where]) == 1
    assert "DRIFTED" in capsys.readouterr().out
    assert main(["inbox", "--user", "lena", "--recount", "--repair", *where]) == 0
    assert "repaired" in capsys.readouterr().out
    assert main(["inbox", "--user", "lena", "--recount", *where]) == 0
    assert "consistent" in capsys.readouterr().out
