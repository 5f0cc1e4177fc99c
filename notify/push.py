"""Push fallback: send a notification to all of a user's devices through a Notification Hubs template send."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from notify.devices import DeviceRegistry, get_device_registry
from notify.model import Notification
from notify.push_templates import check_payload_size, template_properties
from shared.notification_hubs import NotificationHubsClient, get_notification_hubs_client
from shared.user_keys import user_hash, user_tag

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PushResult:
    """What a push attempt did: ``pushed`` (with NH's notification id if it gave one) or ``no_devices``."""

    outcome: Literal["pushed", "no_devices"]
    nh_notification_id: str | None = None


class PushSender:
    """Sends notifications as template pushes to the user's tag."""

    def __init__(self, nh_client: NotificationHubsClient, devices: DeviceRegistry) -> None:
        self._nh = nh_client
        self._devices = devices

    def send(self, notification: Notification) -> PushResult:
        """Push ``notification`` to the user's devices.

        Raises InvalidMessageError when the payload would exceed the PNS limit, TransientError when NH or
        storage stays unavailable through the retry budget, UpstreamError for other NH failures.
        """
        properties = template_properties(notification)
        check_payload_size(properties)
        if not self._devices.has_devices(notification.user_id):
            logger.info(
                "push skipped: notificationId %s user %s outcome no_devices",
                notification.notification_id,
                user_hash(notification.user_id),
            )
            return PushResult("no_devices")
        result = self._nh.send_template(properties, user_tag(notification.user_id))
        logger.info(
            "push sent: notificationId %s user %s outcome pushed nhNotificationId %s",
            notification.notification_id,
            user_hash(notification.user_id),
            result.notification_id,
        )
        return PushResult("pushed", result.notification_id)


@lru_cache(maxsize=1)
def get_push_sender() -> PushSender:
    """The process-wide PushSender built from the settings."""
    return PushSender(get_notification_hubs_client(), get_device_registry())
