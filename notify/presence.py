"""Who is connected: one Table row per Web PubSub connection, in the user's partition of DEVICES_TABLE.

Row: PartitionKey = ``user:<user key>``, RowKey = ``~connection:<connectionId>``, ``userId``,
``connectionId``, ``connectedAt`` (unix seconds); the partition's layout is :mod:`notify.user_rows`, so
one query answers presence together with devices and preferences (:mod:`notify.user_state`). A user is
online while any connection row exists. ``disconnected`` events can be lost (instance crash, service
hiccup), so a timer sweeps rows older than a threshold whose connection the service no longer knows.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import NoReturn

from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from notify.deliveries import translate_azure_error
from notify.user_rows import (
    CONNECTION_RANGE,
    CONNECTION_ROWS,
    connection_id_of,
    connection_row_key,
    user_connections_query,
    user_partition,
)

logger = logging.getLogger(__name__)
SERVICE = "table storage"


class PresenceStore:
    """Connection rows in the users' partitions of a Table (DEVICES_TABLE)."""

    def __init__(self, table: TableClient, clock: Callable[[], float] = time.time) -> None:
        self._table = table
        self._clock = clock

    def connected(self, user_id: str, connection_id: str) -> None:
        """Record a new connection (idempotent). Raises TransientError / UpstreamError."""
        entity = {
            "PartitionKey": user_partition(user_id),
            "RowKey": connection_row_key(connection_id),
            "userId": user_id,
            "connectionId": connection_id,
            "connectedAt": float(self._clock()),
        }
        try:
            self._table.upsert_entity(entity, mode=UpdateMode.REPLACE)
        except AzureError as exc:
            _raise_translated(exc, "record connection")

    def disconnected(self, user_id: str, connection_id: str) -> None:
        """Remove a connection's row; a row that is already gone is success."""
        try:
            self._table.delete_entity(user_partition(user_id), connection_row_key(connection_id))
        except ResourceNotFoundError:
            return
        except AzureError as exc:
            _raise_translated(exc, "remove connection")

    def is_online(self, user_id: str) -> bool:
        """True when the user has at least one recorded connection."""
        query, parameters = user_connections_query(user_id)
        try:
            rows = self._table.query_entities(
                query, parameters=parameters, select=["RowKey"], results_per_page=1
            )
            return next(iter(rows), None) is not None
        except AzureError as exc:
            _raise_translated(exc, "query presence")

    def connections(self, user_id: str) -> list[str]:
        """The user's recorded connection ids."""
        query, parameters = user_connections_query(user_id)
        try:
            rows = self._table.query_entities(query, parameters=parameters, select=["RowKey"])
            return [c for row in rows if (c := connection_id_of(str(row["RowKey"]))) is not None]
        except AzureError as exc:
            _raise_translated(exc, "query presence")

    def sweep(self, older_than_seconds: float, connection_exists: Callable[[str], bool]) -> int:
        """Delete rows older than the age whose connection no longer exists; return how many."""
        cutoff = self._clock() - older_than_seconds
        try:
            rows = list(
                self._table.query_entities(
                    f"{CONNECTION_ROWS} and connectedAt lt @cutoff",
                    parameters={**CONNECTION_RANGE, "cutoff": float(cutoff)},
                    select=["PartitionKey", "RowKey", "connectedAt"],
                )
            )
        except AzureError as exc:
            _raise_translated(exc, "list presence")
        removed = 0
        for row in rows:
            connection_id = connection_id_of(str(row["RowKey"]))
            if connection_id is None or connection_exists(connection_id):
                continue
            try:
                self._table.delete_entity(str(row["PartitionKey"]), str(row["RowKey"]))
            except ResourceNotFoundError:
                continue
            except AzureError as exc:
                _raise_translated(exc, "remove stale connection")
            removed += 1
        if removed:
            logger.info("presence sweep removed %d stale connection(s) of %d old ones", removed, len(rows))
        return removed


def _raise_translated(exc: AzureError, what: str) -> NoReturn:
    raise translate_azure_error(exc, SERVICE, what) from exc
