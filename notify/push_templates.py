"""The push templates installed on every device and the property bag a template send fills them with.

Every platform renders the same standard payload: ``notificationId``, ``title``, ``body``, ``type`` and
``data`` (the notification's data as JSON text, because template properties are strings only), so the app
can drop a push whose ``notificationId`` it already showed in-app. Templates use only ``$(name)``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from notify.model import Notification
from shared.errors import InvalidMessageError

#: APNs and FCM v1 both reject payloads over 4 KB.
PNS_PAYLOAD_LIMIT_BYTES = 4096
TEMPLATE_NAME = "notify-v1"
PROPERTY_NAMES = ("notificationId", "title", "body", "type", "data")

_FCMV1_TEMPLATE: dict[str, object] = {
    "message": {
        "notification": {"title": "$(title)", "body": "$(body)"},
        "data": {
            "notificationId": "$(notificationId)",
            "title": "$(title)",
            "body": "$(body)",
            "type": "$(type)",
            "data": "$(data)",
        },
    }
}
_APNS_TEMPLATE: dict[str, object] = {
    "aps": {"alert": {"title": "$(title)", "body": "$(body)"}, "sound": "default"},
    "notificationId": "$(notificationId)",
    "type": "$(type)",
    "data": "$(data)",
}
_TEMPLATES: dict[str, dict[str, object]] = {"fcmv1": _FCMV1_TEMPLATE, "apns": _APNS_TEMPLATE}
SUPPORTED_PLATFORMS = tuple(_TEMPLATES)

_EXPRESSION = re.compile(r"\$\((\w+)\)")


def template_body(platform: str) -> str:
    """The template body (JSON text) for ``fcmv1`` or ``apns``; raise KeyError for another platform."""
    return json.dumps(_TEMPLATES[platform], separators=(",", ":"))


def installation_templates(platform: str) -> dict[str, dict[str, str]]:
    """The ``templates`` member of an installation for ``platform``."""
    return {TEMPLATE_NAME: {"body": template_body(platform)}}


def template_properties(notification: Notification) -> dict[str, str]:
    """The all-string property bag for a template send of ``notification``."""
    return {
        "notificationId": notification.notification_id,
        "title": notification.title,
        "body": notification.body,
        "type": notification.type,
        "data": json.dumps(notification.data, separators=(",", ":"), ensure_ascii=False),
    }


def render_payload(platform: str, properties: Mapping[str, str]) -> str:
    """What NH will hand the PNS for ``platform``: the template with each ``$(name)`` substituted."""
    bag = {name.lower(): value for name, value in properties.items()}

    def render(node: object) -> object:
        if isinstance(node, str):
            return _EXPRESSION.sub(lambda m: bag.get(m.group(1).lower(), ""), node)
        if isinstance(node, dict):
            return {key: render(value) for key, value in node.items()}
        return node

    return json.dumps(render(_TEMPLATES[platform]), separators=(",", ":"), ensure_ascii=False)


def check_payload_size(properties: Mapping[str, str]) -> None:
    """Raise InvalidMessageError when the rendered payload exceeds the 4 KB PNS limit on any platform."""
    for platform in SUPPORTED_PLATFORMS:
        size = len(render_payload(platform, properties).encode("utf-8"))
        if size > PNS_PAYLOAD_LIMIT_BYTES:
            raise InvalidMessageError(
                f"the {platform} push payload would be {size} bytes; the limit is {PNS_PAYLOAD_LIMIT_BYTES}",
                field="body",
            )
