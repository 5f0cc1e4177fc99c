"""What the notifier needs to know about a user, kept in one table partition so one request answers it.

Partition ``user:<user key>`` of ``DEVICES_TABLE`` holds:

* the device-index rows, RowKey = installationId (written only by :mod:`notify.devices`, under its lease);
* the preferences row, RowKey ``~preferences``: ``document``, the canonical preferences JSON.

Row keys this module owns start with ``~``, which sorts after every character an installation id may
contain (letters, digits, ``-``, ``_``), so device rows are exactly the rows below ``~``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
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
from notify.presence import PresenceStore
from shared.clients import get_table_client
from shared.errors import BadRequestError, TransientError
from shared.settings import get_settings
from shared.user_keys import user_hash, user_key

logger = logging.getLogger(__name__)
SERVICE = "table storage"
OWN_ROW_PREFIX = "~"
PREFERENCES_ROW = "~preferences"
_MAX_CONFLICTS = 5


def user_partition(user_id: str) -> str:
    """The user's partition in DEVICES_TABLE (the same one ``notify.devices`` keeps its index in)."""
    return f"user:{user_key(user_id)}"


@dataclass(frozen=True)
class UserState:
    """A user as the notifier sees them, from one read."""

    device_count: int
    preferences: Preferences
    online: bool = False  # read only when asked for

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
        logger.warning("stored preferences of user %s are unusable (%s); using the defaults",
                       user_hash(user_id), exc)
        return Preferences()


class UserDirectory:
    """Reads a user's state in one request; reads and writes their preferences."""

    def __init__(self, table: TableClient, presence: PresenceStore | None = None) -> None:
        self._table = table
        self._presence = presence

    def read(self, user_id: str, presence: bool = False) -> UserState:
        """Devices and preferences of the user in one partition query (and presence when asked).

        Raises TransientError/UpstreamError.
        """
        online = bool(presence and self._presence is not None and self._presence.is_online(user_id))
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
                elif not key.startswith(OWN_ROW_PREFIX):
                    devices += 1
        except AzureError as exc:
            _raise_translated(exc, "read user state")
        return UserState(devices, _stored_preferences(user_id, preferences_row), online)

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


@lru_cache(maxsize=1)
def get_user_directory() -> UserDirectory:
    """The process-wide UserDirectory over DEVICES_TABLE (and, for presence, PRESENCE_TABLE)."""
    settings = get_settings()
    presence = PresenceStore(get_table_client(settings.presence_table))
    return UserDirectory(get_table_client(settings.devices_table), presence)
