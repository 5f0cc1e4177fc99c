"""Who is connected: one Table row per Web PubSub connection.

Row: PartitionKey = ``user_key(userId)``, RowKey = connectionId, ``userId``, ``connectedAt`` (unix seconds).
A user is online while any row exists. ``disconnected`` events can be lost (instance crash, service
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
from shared.user_keys import user_key

logger = logging.getLogger(__name__)
SERVICE = "table storage"


class PresenceStore:
    """Presence rows in a Table."""

    def __init__(self, table: TableClient, clock: Callable[[], float] = time.time) -> None:
        self._table = table
        self._clock = clock

    def connected(self, user_id: str, connection_id: str) -> None:
        """Record a new connection (idempotent). Raises TransientError / UpstreamError."""
        entity = {
            "PartitionKey": user_key(user_id),
            "RowKey": connection_id,
            "userId": user_id,
            "connectedAt": self._clock(),
        }
        try:
            self._table.upsert_entity(entity, mode=UpdateMode.REPLACE)
        except AzureError as exc:
            _raise_translated(exc, "record connection")

    def disconnected(self, user_id: str, connection_id: str) -> None:
        """Remove a connection's row; a row that is already gone is success."""
        try:
            self._table.delete_entity(user_key(user_id), connection_id)
        except ResourceNotFoundError:
            return
        except AzureError as exc:
            _raise_translated(exc, "remove connection")

    def is_online(self, user_id: str) -> bool:
        """True when the user has at least one recorded connection."""
        try:
            rows = self._table.query_entities(
                "PartitionKey eq @pk",
                parameters={"pk": user_key(user_id)},
                select=["RowKey"],
                results_per_page=1,
            )
            return next(iter(rows), None) is not None
        except AzureError as exc:
            _raise_translated(exc, "query presence")

    def connections(self, user_id: str) -> list[str]:
        """The user's recorded connection ids."""
        try:
            rows = self._table.query_entities(
                "PartitionKey eq @pk", parameters={"pk": user_key(user_id)}, select=["RowKey"]
            )
            return [str(row["RowKey"]) for row in rows]
        except AzureError as exc:
            _raise_translated(exc, "query presence")

    def sweep(self, older_than_seconds: float, connection_exists: Callable[[str], bool]) -> int:
        """Delete rows older than the age whose connection no longer exists; return how many."""
        cutoff = self._clock() - older_than_seconds
        try:
            rows = list(
                self._table.query_entities(
                    "connectedAt lt @cutoff",
                    parameters={"cutoff": float(cutoff)},
                    select=["PartitionKey", "RowKey", "connectedAt"],
                )
            )
        except AzureError as exc:
            _raise_translated(exc, "list presence")
        removed = 0
        for row in rows:
            connection_id = str(row["RowKey"])
            if connection_exists(connection_id):
                continue
            try:
                self._table.delete_entity(str(row["PartitionKey"]), connection_id)
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
