"""Push through Notification Hubs template sends: a notification to all of a user's devices, or its retract.

Whether the user has a device at all is known before (``notify.user_state``): this module only sends.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from notify.model import Notification
from notify.push_templates import (
    PushOptions,
    check_payload_size,
    notification_headers,
    notification_tags,
    retract_headers,
    retract_properties,
    retract_tags,
    template_properties,
)
from shared.clients import get_table_client
from shared.notification_hubs import NotificationHubsClient, get_notification_hubs_client
from shared.once import process_wide
from shared.settings import get_settings
from shared.user_keys import user_hash, user_tag

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PushResult:
    """What a push did: ``pushed``, with NH's notification id if it gave one (Standard tier)."""

    outcome: Literal["pushed", "no_devices"]
    nh_notification_id: str | None = None


class PushSender:
    """Sends notifications and retracts as template pushes to the user's tag."""

    def __init__(
        self,
        nh_client: NotificationHubsClient,
        clock: Callable[[], float] = time.time,
        unread_count: Callable[[str], int] | None = None,
    ) -> None:
        self._nh = nh_client
        self._clock = clock
        # INBOX_PUSH_BADGE: the user's unread count, read once per push (one table query).
        self._unread_count = unread_count

    def send(self, notification: Notification, options: PushOptions) -> PushResult:
        """Push ``notification`` to the user's devices with its collapse id, expiry and priority.

        Raises InvalidMessageError when the payload would exceed the PNS limit, TransientError when NH
        stays unavailable through the retry budget, UpstreamError for other NH failures.
        """
        badge = self._unread_count(notification.user_id) if self._unread_count else None
        properties = template_properties(notification, options, self._clock(), badge)
        check_payload_size(properties)
        result = self._nh.send_template(
            properties,
            notification_tags(user_tag(notification.user_id)),
            headers=notification_headers(notification.notification_id, options),
        )
        logger.debug(  # the delivery outcome line that follows says the same at INFO, with nhNotificationId
            "push sent: notificationId %s userHash=%s priority %s nhNotificationId %s",
            notification.notification_id,
            user_hash(notification.user_id),
            options.priority,
            result.notification_id,
        )
        return PushResult("pushed", result.notification_id)

    def retract(self, user_id: str, notification_id: str, expires_at: float | None) -> PushResult:
        """Send the silent retract of ``notification_id`` to the user's devices (errors as :meth:`send`)."""
        result = self._nh.send_template(
            retract_properties(notification_id, expires_at, self._clock()),
            retract_tags(user_tag(user_id)),
            headers=retract_headers(expires_at),
        )
        logger.info("retract sent: notificationId %s userHash=%s", notification_id, user_hash(user_id))
        return PushResult("pushed", result.notification_id)


@process_wide
def get_push_sender() -> PushSender:
    """The process-wide PushSender built from the settings (with the badge when INBOX_PUSH_BADGE is set)."""
    settings = get_settings()
    unread = None
    if settings.inbox_push_badge:
        from notify.inbox import Inbox
        from notify.inbox_store import InboxStore

        unread = Inbox(InboxStore(get_table_client(settings.deliveries_table))).unread_count
    return PushSender(get_notification_hubs_client(), unread_count=unread)
