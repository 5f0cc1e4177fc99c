"""What the notifier needs to know about a user, in one request: presence, devices and preferences.

They share the user's partition of ``DEVICES_TABLE`` (layout: :mod:`notify.user_rows`): the device-index
rows (:mod:`notify.devices`), the connection rows (:mod:`notify.presence`) and the preferences row, whose
``document`` is the canonical preferences JSON. :meth:`UserDirectory.read` is one partition query.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, UpdateMode

from notify.deliveries import translate_azure_error
from notify.preferences import Preferences, parse_preferences, preferences_document
from notify.user_rows import PREFERENCES_ROW, connection_id_of, is_device_row, user_partition
from shared.clients import get_table_client
from shared.errors import BadRequestError, TransientError
from shared.once import process_wide
from shared.settings import get_settings
from shared.user_keys import user_hash

logger = logging.getLogger(__name__)
SERVICE = "table storage"
_MAX_CONFLICTS = 5


@dataclass(frozen=True)
class UserState:
    """A user as the notifier sees them, from one read."""

    device_count: int
    preferences: Preferences
    online: bool = False
    connections: int = 0  # how many connection rows the read found (the in-app send reaches these)

    @property
    def has_devices(self) -> bool:
        """True when at least one device is registered."""
        return self.device_count > 0


def _stored_preferences(user_id: str, row: dict[str, Any] | None) -> Preferences:
    """The preferences of a row; a row that no longer validates counts as none (logged, never fatal)."""
    if row is None or not row.get("document"):
        return Preferences()
    try:
        return parse_preferences(json.loads(str(row["document"])))
    except (ValueError, BadRequestError) as exc:
        logger.warning("stored preferences of userHash=%s are unusable (%s); using the defaults",
                       user_hash(user_id), exc)
        return Preferences()


class UserDirectory:
    """Reads a user's state in one request; reads and writes their preferences."""

    def __init__(self, table: TableClient) -> None:
        self._table = table

    def read(self, user_id: str) -> UserState:
        """Presence, devices and preferences of the user in one partition query.

        Raises TransientError/UpstreamError.
        """
        online = False
        connections = 0
        devices = 0
        preferences_row: dict[str, Any] | None = None
        try:
            rows = self._table.query_entities(
                "PartitionKey eq @pk",
                parameters={"pk": user_partition(user_id)},
                select=["RowKey", "document"],
            )
            for row in rows:
                key = str(row["RowKey"])
                if key == PREFERENCES_ROW:
                    preferences_row = dict(row)
                elif is_device_row(key):
                    devices += 1
                elif connection_id_of(key) is not None:
                    online = True
                    connections += 1
        except AzureError as exc:
            _raise_translated(exc, "read user state")
        return UserState(devices, _stored_preferences(user_id, preferences_row), online, connections)

    def preferences(self, user_id: str) -> Preferences:
        """The user's stored preferences (none stored: the empty document)."""
        return _stored_preferences(user_id, self._get_row(user_id))

    def replace_preferences(self, user_id: str, preferences: Preferences) -> Preferences:
        """Store ``preferences`` as the user's whole document."""
        entity = self._entity(user_id, preferences)
        try:
            self._table.upsert_entity(entity, mode=UpdateMode.REPLACE)
        except AzureError as exc:
            _raise_translated(exc, "write preferences")
        return preferences

    def update_preferences(
        self, user_id: str, change: Callable[[dict[str, Any]], Preferences]
    ) -> Preferences:
        """Read, change and write back the document, conditioned on the ETag read (re-read on conflict).

        ``change`` gets the stored document and returns the new preferences (it may raise BadRequestError).
        """
        for _ in range(_MAX_CONFLICTS):
            row = self._get_row(user_id)
            updated = change(preferences_document(_stored_preferences(user_id, row)))
            entity = self._entity(user_id, updated)
            try:
                if row is None:
                    self._table.create_entity(entity)
                else:
                    self._table.update_entity(
                        entity, mode=UpdateMode.REPLACE, etag=row["__etag"],
                        match_condition=MatchConditions.IfNotModified,
                    )
            except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
                continue  # changed meanwhile: decide again on what is there now
            except AzureError as exc:
                _raise_translated(exc, "write preferences")
            return updated
        raise TransientError(SERVICE, "the preferences kept changing; try again")

    def _get_row(self, user_id: str) -> dict[str, Any] | None:
        try:
            entity = self._table.get_entity(user_partition(user_id), PREFERENCES_ROW)
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            _raise_translated(exc, "read preferences")
        return {**entity, "__etag": entity.metadata["etag"]}

    @staticmethod
    def _entity(user_id: str, preferences: Preferences) -> dict[str, Any]:
        document = json.dumps(preferences_document(preferences), separators=(",", ":"), ensure_ascii=False)
        return {"PartitionKey": user_partition(user_id), "RowKey": PREFERENCES_ROW, "document": document}


def _raise_translated(exc: AzureError, what: str) -> NoReturn:
    raise translate_azure_error(exc, SERVICE, what) from exc


@process_wide
def get_user_directory() -> UserDirectory:
    """The process-wide UserDirectory over DEVICES_TABLE."""
    return UserDirectory(get_table_client(get_settings().devices_table))
