"""The inbox's Table I/O: reads of one user's partition and entity-group transactions with the counter.

Every write of an item goes into one entity-group transaction with the user's counter row, each entity
conditioned on the ETag it was read at: the item's new columns, its sequence number and the counter's new
sums are committed together or not at all. A transaction that meets a changed ETag (412), a counter created
meanwhile (409) or an item swept meanwhile (404) is refused as a whole; :meth:`InboxStore.commit` answers
None and the caller reads again and decides again.

Limits (https://learn.microsoft.com/rest/api/storageservices/performing-entity-group-transactions): one
PartitionKey, each entity once, at most 100 entities and 4 MiB. Item writes carry only the inbox columns
(about 200 bytes), so :data:`MAX_ITEMS_PER_TRANSACTION` items and the counter stay far below 4 MiB.

Queries (https://learn.microsoft.com/rest/api/storageservices/query-timeout-and-pagination) answer at most
1,000 entities per page and may answer fewer, even none, with a continuation; :meth:`InboxStore.query`
follows continuations until it has what was asked for. Integers and booleans are written into filters as
literals: the SDK's parameter substitution turns the integers 0 and 1 into ``false`` and ``true``.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from notify.deliveries import translate_azure_error
from notify.inbox_model import (
    COUNTER_ROW_KEY,
    CREATED_SEQ,
    MAX_SEQUENCE,
    NEW_ITEM,
    PENDING,
    STATE_COLUMNS,
    Counter,
    Counts,
    ItemState,
    is_listed,
    is_pending,
    item_columns,
    item_state,
)
from shared.clients import CONDITIONAL_WRITE_RETRY
from shared.errors import UpstreamError

SERVICE = "table storage"
#: Items per transaction: 100 entities at most, one of which is the counter.
MAX_ITEMS_PER_TRANSACTION = 99
_CONFLICT_STATUSES = frozenset({404, 409, 412})


@dataclass(frozen=True)
class Row:
    """One entity as read, with its ETag."""

    entity: Mapping[str, Any]
    etag: str

    @property
    def key(self) -> str:
        """The RowKey (a notificationId)."""
        return str(self.entity["RowKey"])

    @property
    def pending(self) -> bool:
        """Inserted by the notifier, not yet in the counter."""
        return is_pending(self.entity)

    @property
    def state(self) -> ItemState:
        """The item's marks (new for a pending item)."""
        return NEW_ITEM if self.pending else item_state(self.entity)

    @property
    def contribution(self) -> Counts:
        """What the row adds to the counter's sums now (nothing unless listed and taken in)."""
        if self.pending or not is_listed(self.entity):
            return Counts()
        return self.state.counts()

    @property
    def created_seq(self) -> int:
        """The item's creation number (0 while pending)."""
        value = self.entity.get(CREATED_SEQ)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0


@dataclass(frozen=True)
class Snapshot:
    """The counter row (None before the user's first item was taken in) and the pending items."""

    counter: Counter | None
    counter_etag: str | None
    pending: tuple[Row, ...]
    targets: Mapping[str, Row]

    @property
    def counts(self) -> Counts:
        """The user's counts: the counter's sums plus the pending items (each new)."""
        stored = self.counter.counts if self.counter else Counts()
        return stored + NEW_ITEM.counts().times(len(self.pending))


@dataclass(frozen=True)
class ItemWrite:
    """One item in a transaction: its new marks; a pending item is taken in by the same write."""

    row: Row
    state: ItemState


@dataclass(frozen=True)
class Change:
    """An item change a transaction committed, with the sequence number it took."""

    notification_id: str
    state: ItemState
    seq: int
    new: bool


@dataclass(frozen=True)
class Committed:
    """What a transaction wrote: the counter before and after, and the item changes in sequence order."""

    before: Counter
    counter: Counter
    counter_etag: str
    changes: tuple[Change, ...]


def new_epoch() -> str:
    """A fresh counter epoch."""
    return secrets.token_hex(8)


class InboxStore:
    """Reads and transactions on the deliveries table for the inbox."""

    def __init__(self, table: TableClient) -> None:
        self._table = table

    def snapshot(self, partition: str, targets: Sequence[str] = (), pending: bool = True) -> Snapshot:
        """One query: the counter row, the pending items and the ``targets`` (their state columns).

        Raises TransientError / UpstreamError.
        """
        clauses = [f"RowKey eq '{COUNTER_ROW_KEY}'"]
        parameters: dict[str, Any] = {"pk": partition}
        for index, target in enumerate(targets):
            parameters[f"t{index}"] = target
            clauses.append(f"RowKey eq @t{index}")
        if pending:
            clauses.append(f"{PENDING} eq true")
        query = f"PartitionKey eq @pk and ( {' or '.join(clauses)} )"
        counter: Counter | None = None
        counter_etag: str | None = None
        pending_rows: list[Row] = []
        found: dict[str, Row] = {}
        for row in self._rows(query, parameters, select=[*STATE_COLUMNS, *Counter.COLUMNS]):
            if row.key == COUNTER_ROW_KEY:
                counter, counter_etag = Counter.from_entity(row.entity), row.etag
                continue
            if row.key in targets:
                found[row.key] = row
            if row.pending:
                pending_rows.append(row)
        pending_rows.sort(key=lambda r: (float(r.entity.get("acceptedAt") or 0.0), r.key))
        return Snapshot(counter, counter_etag, tuple(pending_rows), found)

    def query(
        self,
        partition: str,
        condition: str,
        parameters: Mapping[str, Any] | None = None,
        select: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> list[Row]:
        """The user's items matching ``condition`` (OData), up to ``limit``.

        Raises TransientError / UpstreamError.
        """
        query = f"PartitionKey eq @pk and RowKey ne '{COUNTER_ROW_KEY}' and {condition}"
        rows: list[Row] = []
        for row in self._rows(query, {"pk": partition, **(parameters or {})}, select, page_size=limit):
            rows.append(row)
            if limit is not None and len(rows) >= limit:
                break
        return rows

    def get(self, partition: str, notification_id: str) -> Row | None:
        """One whole row (content too), or None. Raises TransientError / UpstreamError."""
        try:
            entity = self._table.get_entity(partition, notification_id)
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            raise translate_azure_error(exc, SERVICE, "read inbox item") from exc
        return Row(dict(entity), str(entity.metadata["etag"]))

    def rows(self, partition: str, keys: Sequence[str]) -> list[Row]:
        """The state columns of the rows with these RowKeys (those that exist)."""
        if not keys:
            return []
        parameters = {f"k{index}": key for index, key in enumerate(keys)}
        condition = " or ".join(f"RowKey eq @k{index}" for index in range(len(keys)))
        return self.query(partition, f"( {condition} )", parameters, select=STATE_COLUMNS)

    def delete(self, partition: str, rows: Sequence[Row]) -> bool:
        """Remove rows the counter does not hold (pending, unlisted, deleted, archived) in one transaction.

        False when one of them changed meanwhile. Raises TransientError / UpstreamError.
        """
        if not rows:
            return True
        operations = [
            ("delete", {"PartitionKey": partition, "RowKey": row.key}, _if_match(row.etag)) for row in rows
        ]
        try:
            self._table.submit_transaction(operations, **CONDITIONAL_WRITE_RETRY)
        except HttpResponseError as exc:
            if exc.status_code in _CONFLICT_STATUSES:
                return False
            raise translate_azure_error(exc, SERVICE, "inbox sweep") from exc
        except AzureError as exc:
            raise translate_azure_error(exc, SERVICE, "inbox sweep") from exc
        return True

    def scan(self, condition: str, parameters: Mapping[str, Any] | None = None) -> Iterator[Row]:
        """Rows of every partition matching ``condition`` (state columns only), for the retention sweep."""
        query = f"RowKey ne '{COUNTER_ROW_KEY}' and {condition}"
        yield from self._rows(query, dict(parameters or {}), list(STATE_COLUMNS))

    def commit(
        self,
        partition: str,
        counter: Counter | None,
        counter_etag: str | None,
        writes: Sequence[ItemWrite] = (),
        deletes: Sequence[Row] = (),
        counts_override: Counts | None = None,
    ) -> Committed | None:
        """Write ``writes`` and remove ``deletes`` with the counter, in one transaction.

        Each written item takes the next sequence number (a pending one also the next creation number) and
        the counter's sums move by what the items add and no longer add. ``counts_override`` replaces the
        sums instead (the recount repair). Returns None when an ETag no longer matches (read again).
        Raises TransientError / UpstreamError.
        """
        if len(writes) + len(deletes) > MAX_ITEMS_PER_TRANSACTION:
            raise ValueError("too many items for one transaction")
        before = counter or Counter(epoch=new_epoch())
        seq, created, counts = before.seq, before.created_seq, before.counts
        operations: list[Any] = []
        changes: list[Change] = []
        for write in writes:
            row = write.row
            counts = counts - row.contribution + write.state.counts()
            seq += 1
            item_created = row.created_seq
            if row.pending:
                created += 1
                item_created = created
            columns = item_columns(write.state, seq, item_created)
            entity = {"PartitionKey": partition, "RowKey": row.key, **columns}
            operations.append(("update", entity, _if_match(row.etag, mode=UpdateMode.MERGE)))
            changes.append(Change(row.key, write.state, seq, row.pending))
        for row in deletes:
            counts = counts - row.contribution
            operations.append(("delete", {"PartitionKey": partition, "RowKey": row.key}, _if_match(row.etag)))
        if seq > MAX_SEQUENCE:
            raise UpstreamError(SERVICE, "the inbox's sequence numbers are exhausted for this user")
        after = Counter(before.epoch, seq, created, counts_override or counts)
        counter_entity = {"PartitionKey": partition, "RowKey": COUNTER_ROW_KEY, **after.columns()}
        # The counter goes last. Azure commits the transaction atomically anyway; a store that applies
        # the operations one by one (Azurite) then still never shows a counter ahead of its items.
        if counter_etag is None:
            operations.append(("create", counter_entity))
        else:
            operations.append(("update", counter_entity, _if_match(counter_etag, mode=UpdateMode.MERGE)))
        try:
            results = self._table.submit_transaction(operations, **CONDITIONAL_WRITE_RETRY)
        except HttpResponseError as exc:
            if exc.status_code in _CONFLICT_STATUSES:
                return None
            raise translate_azure_error(exc, SERVICE, "inbox transaction") from exc
        except AzureError as exc:
            raise translate_azure_error(exc, SERVICE, "inbox transaction") from exc
        return Committed(before, after, str(results[-1]["etag"]), tuple(changes))

    def _rows(
        self,
        query: str,
        parameters: dict[str, Any],
        select: Sequence[str] | None,
        page_size: int | None = None,
    ) -> Iterator[Row]:
        try:
            entities = self._table.query_entities(
                query,
                parameters=parameters,
                select=list(select) if select else None,
                results_per_page=min(page_size, 1000) if page_size else None,
            )
            for entity in entities:
                yield Row(dict(entity), str(entity.metadata["etag"]))
        except AzureError as exc:
            raise translate_azure_error(exc, SERVICE, "inbox query") from exc


def _if_match(etag: str, **options: Any) -> dict[str, Any]:
    return {"etag": etag, "match_condition": MatchConditions.IfNotModified, **options}
