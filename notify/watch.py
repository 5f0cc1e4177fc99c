"""``python -m notify watch``: follow delivery outcomes as they happen, from the deliveries table.

Every delivery row carries its timeline; the watcher asks the table for the rows written since its last look
(``Timestamp``, the row's last write, with a few seconds of margin) and prints each timeline entry it has
not printed yet, oldest first. It reads the table directly (a connection string locally, or a token with
**Storage Table Data Reader** in Azure), so it sees every user; lines carry the user id, which is fine on
an operator's terminal and is why this is not a log.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

from azure.data.tables import TableClient

from notify.deliveries import timeline_from_column
from notify.delivery_machine import TimelineEntry
from notify.webhooks import rfc3339
from shared.user_keys import user_key

#: Rows written this many seconds before the newest one seen are read again (clock skew, slow writes).
MARGIN_SECONDS = 5.0
#: Rows remembered (what was printed); the oldest are forgotten first.
MAX_REMEMBERED = 10_000


@dataclass(frozen=True)
class WatchedEntry:
    """A timeline entry of one user's notification."""

    user_id: str
    notification_id: str
    entry: TimelineEntry

    def line(self) -> str:
        """``<time>  <user>  <notificationId>  <name>  <status>  <reason>``."""
        e = self.entry
        where = f"{self.user_id}  {self.notification_id}"
        return f"{rfc3339(e.at)}  {where}  {e.name:<15} {e.status:<13} {e.reason}"


class DeliveryWatcher:
    """Yields the timeline entries written to the deliveries table since it started (or ``since``)."""

    def __init__(
        self,
        table: TableClient,
        user_id: str | None = None,
        since_seconds: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._table = table
        self._user_id = user_id
        self._start = clock() - since_seconds
        self._cursor = self._start - MARGIN_SECONDS
        self._printed: OrderedDict[tuple[str, str], int] = OrderedDict()

    def poll(self) -> list[WatchedEntry]:
        """The entries not returned before, oldest first."""
        found: list[WatchedEntry] = []
        newest = self._cursor
        for row in self._rows():
            key = (str(row["PartitionKey"]), str(row["RowKey"]))
            last = self._printed.get(key, -1)
            timeline = timeline_from_column(row.get("timeline"))
            fresh = [e for e in timeline if e.seq > last and e.at >= self._start]
            if timeline:
                self._remember(key, timeline[-1].seq)
            user_id = str(row.get("userId") or key[0])
            found.extend(WatchedEntry(user_id, key[1], e) for e in fresh)
            stamp = row.metadata.get("timestamp")
            if isinstance(stamp, datetime):
                newest = max(newest, stamp.timestamp())
        self._cursor = max(self._cursor, newest - MARGIN_SECONDS)
        return sorted(found, key=lambda w: (w.entry.at, w.entry.seq))

    def _rows(self) -> Iterator[Any]:
        since = datetime.fromtimestamp(self._cursor, UTC)
        query = "Timestamp ge @since"
        parameters: dict[str, Any] = {"since": since}
        if self._user_id is not None:
            query += " and PartitionKey eq @pk"
            parameters["pk"] = user_key(self._user_id)
        yield from self._table.query_entities(
            query, parameters=parameters, select=["PartitionKey", "RowKey", "userId", "timeline", "Timestamp"]
        )

    def _remember(self, key: tuple[str, str], seq: int) -> None:
        self._printed[key] = seq
        self._printed.move_to_end(key)
        while len(self._printed) > MAX_REMEMBERED:
            self._printed.popitem(last=False)


def follow(
    watcher: DeliveryWatcher,
    out: TextIO,
    interval: float = 1.0,
    keep_going: Callable[[], bool] = lambda: True,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Print new entries every ``interval`` seconds while ``keep_going()``; return how many were printed."""
    printed = 0
    while True:
        for watched in watcher.poll():
            print(watched.line(), file=out, flush=True)
            printed += 1
        if not keep_going():
            return printed
        sleep(interval)
