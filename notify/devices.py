"""Device registration: who owns which Notification Hubs installation, and the installation itself.

Ownership lives in a Table Storage table, not in NH (a GET right after an NH PUT may 404 because NH
processes it in the background). The table holds two kinds of entity:

* the claim ``PartitionKey="installation:<id>"``, ``RowKey=""`` with ``owner=<user key>``, created with a
  conditional insert, so the first user to register an installation id owns it until they delete it;
* the per-user index ``PartitionKey="user:<user key>"``, ``RowKey=<id>``, so ``has_devices`` is a single
  partition query.

Installation ids are 1-128 characters of ``A-Z a-z 0-9 - _``, starting with a letter or digit: safe in a URL
path segment and a table key, and wide enough for GUIDs and platform identifiers.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.data.tables import TableClient, UpdateMode

from notify.push_templates import installation_templates
from shared.clients import get_table_client
from shared.errors import BadRequestError, ForbiddenError, TransientError, UpstreamError
from shared.notification_hubs import NotificationHubsClient, get_notification_hubs_client
from shared.settings import get_settings
from shared.user_keys import user_hash, user_key, user_tag

logger = logging.getLogger(__name__)

PLATFORM_ALIASES = {"fcmv1": "fcmv1", "fcm": "fcmv1", "apns": "apns"}
_INSTALLATION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
_APNS_TOKEN = re.compile(r"[0-9a-fA-F]{64,200}")
_FCM_TOKEN = re.compile(r"[A-Za-z0-9_:\-]{32,4096}")
_SERVICE = "table_storage"


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


def _claim_key(installation_id: str) -> str:
    return f"installation:{installation_id}"


def _user_partition(user_id: str) -> str:
    return f"user:{user_key(user_id)}"


@contextmanager
def _table_errors(what: str) -> Iterator[None]:
    """Translate Table Storage SDK errors: throttling, 5xx and network errors are transient."""
    try:
        yield
    except (ResourceExistsError, ResourceNotFoundError):
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


class DeviceRegistry:
    """Registers a user's devices as NH installations, enforcing that only the owner may change one."""

    def __init__(self, table: TableClient, nh_client: NotificationHubsClient) -> None:
        self._table = table
        self._nh = nh_client

    def register(self, user_id: str, installation_id: str, platform: object, push_channel: object) -> str:
        """Create or replace the user's installation; return the normalised platform.

        Raises BadRequestError (invalid input), ForbiddenError (another user's installation id),
        UpstreamError/TransientError (storage or NH failed).
        """
        registration = validate_registration(installation_id, platform, push_channel)
        self._claim(user_id, registration.installation_id)
        with _table_errors("write device index"):
            self._table.upsert_entity(
                {
                    "PartitionKey": _user_partition(user_id),
                    "RowKey": registration.installation_id,
                    "platform": registration.platform,
                },
                mode=UpdateMode.REPLACE,
            )
        installation: dict[str, Any] = {
            "installationId": registration.installation_id,
            "platform": registration.platform,
            "pushChannel": registration.push_channel,
            "tags": [user_tag(user_id)],  # server-set only; never taken from the client
            "userId": user_key(user_id),
            "templates": installation_templates(registration.platform),
        }
        self._nh.put_installation(installation)
        logger.info("device registered: user %s platform %s", user_hash(user_id), registration.platform)
        return registration.platform

    def unregister(self, user_id: str, installation_id: str) -> None:
        """Delete the user's installation (gone is success); ForbiddenError if another user owns it."""
        validate_installation_id(installation_id)
        owner = self._owner(installation_id)
        if owner is None:
            # Never claimed (or already deleted): the claim is removed last, so NH holds nothing of ours.
            self._delete_index(user_id, installation_id)
            return
        if owner != user_key(user_id):
            raise ForbiddenError("this installation belongs to another user")
        self._nh.delete_installation(installation_id)
        self._delete_index(user_id, installation_id)
        with _table_errors("delete device claim"), suppress(ResourceNotFoundError):
            self._table.delete_entity(_claim_key(installation_id), "")
        logger.info("device unregistered: user %s", user_hash(user_id))

    def has_devices(self, user_id: str) -> bool:
        """True when the user has at least one registered device (one partition query)."""
        with _table_errors("query device index"):
            entities = self._table.query_entities(
                "PartitionKey eq @pk",
                parameters={"pk": _user_partition(user_id)},
                select=["RowKey"],
                results_per_page=1,
            )
            return next(iter(entities), None) is not None

    def _claim(self, user_id: str, installation_id: str) -> None:
        """Claim the installation id for the user, or raise ForbiddenError if someone else holds it."""
        key = user_key(user_id)
        for _ in range(3):  # a concurrent unregister may delete the claim between insert and read
            with _table_errors("claim device"):
                try:
                    self._table.create_entity(
                        {"PartitionKey": _claim_key(installation_id), "RowKey": "", "owner": key}
                    )
                    return
                except ResourceExistsError:
                    pass
            owner = self._owner(installation_id)
            if owner == key:
                return
            if owner is not None:
                raise ForbiddenError("this installation id is registered to another user")
        raise TransientError(_SERVICE, "device claim kept changing; try again")

    def _owner(self, installation_id: str) -> str | None:
        with _table_errors("read device claim"):
            try:
                entity = self._table.get_entity(_claim_key(installation_id), "")
            except ResourceNotFoundError:
                return None
        owner = entity.get("owner")
        return owner if isinstance(owner, str) else None

    def _delete_index(self, user_id: str, installation_id: str) -> None:
        with _table_errors("delete device index"), suppress(ResourceNotFoundError):
            self._table.delete_entity(_user_partition(user_id), installation_id)


@lru_cache(maxsize=1)
def get_device_registry() -> DeviceRegistry:
    """The process-wide DeviceRegistry (creates DEVICES_TABLE if it does not exist)."""
    return DeviceRegistry(get_table_client(get_settings().devices_table), get_notification_hubs_client())
