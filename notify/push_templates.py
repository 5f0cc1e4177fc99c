"""The push templates installed on every device, the property bags and the APNs headers of each send.

Two templates per installation, both filled by Notification Hubs template sends (``$(name)`` only):

* ``notify-v1``, the visible notification: ``kind`` ``notification``, ``notificationId``, ``collapseId``,
  ``title``, ``body``, ``type`` and ``data`` (the notification's data as JSON text, because template
  properties are strings only), so the app can drop a push whose ``notificationId`` it already showed;
* ``notify-retract-v1``, tagged ``notify:retract``: the silent retract (``kind`` ``retract``,
  ``notificationId``, ``collapseId``) that tells the app to remove a notification the user has seen since.
  APNs: a background notification (``content-available``); FCM: a data-only message.

A notification's send targets ``user:<key> && !notify:retract`` and a retract ``user:<key> &&
notify:retract``, so each reaches exactly one template per device (installations registered before the
retract template existed get notifications and no retracts until they register again).

Every visible push carries its collapse id (APNs ``apns-collapse-id``, FCM ``android.notification.tag``),
its expiry (APNs ``apns-expiration``, FCM ``android.ttl``) and its priority (APNs ``apns-priority`` 10 or 5,
FCM ``android.priority`` HIGH or NORMAL). FCM's ``collapse_key`` is left out on purpose: FCM keeps at most
four collapse keys per device, so one per notification would drop notifications for an offline device.

**The badge** (``INBOX_PUSH_BADGE``): the badge variant of ``notify-v1`` also sets APNs ``aps.badge`` and
FCM ``android.notification.notification_count`` (both numbers, ``#(badge)``) and ``data.badge`` (text) from
the ``badge`` property, the user's unread count (:mod:`notify.inbox`). Templates are installed at
registration, so a device gets or loses the badge at its next registration after the setting changed.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from notify.model import Notification
from shared.errors import InvalidMessageError

#: APNs and FCM v1 both reject payloads over 4 KB.
PNS_PAYLOAD_LIMIT_BYTES = 4096
TEMPLATE_NAME = "notify-v1"
RETRACT_TEMPLATE_NAME = "notify-retract-v1"
RETRACT_TAG = "notify:retract"
#: FCM's longest (and default) time to live; APNs stores without ``apns-expiration`` by its own policy.
FCM_MAX_TTL_SECONDS = 28 * 24 * 3600
APNS_COLLAPSE_ID_MAX_BYTES = 64
PROPERTY_NAMES = ("notificationId", "collapseId", "title", "body", "type", "data", "ttl", "androidPriority")
BADGE_PROPERTY = "badge"
Priority = Literal["high", "normal"]

_FCMV1_TEMPLATE: dict[str, object] = {
    "message": {
        "notification": {"title": "$(title)", "body": "$(body)"},
        "android": {
            "ttl": "$(ttl)",
            "priority": "$(androidPriority)",
            "notification": {"tag": "$(collapseId)"},
        },
        "data": {
            "kind": "notification",
            "notificationId": "$(notificationId)",
            "collapseId": "$(collapseId)",
            "title": "$(title)",
            "body": "$(body)",
            "type": "$(type)",
            "data": "$(data)",
        },
    }
}
_APNS_TEMPLATE: dict[str, object] = {
    "aps": {"alert": {"title": "$(title)", "body": "$(body)"}, "sound": "default"},
    "kind": "notification",
    "notificationId": "$(notificationId)",
    "collapseId": "$(collapseId)",
    "type": "$(type)",
    "data": "$(data)",
}
_FCMV1_RETRACT: dict[str, object] = {
    "message": {
        "android": {"ttl": "$(ttl)", "priority": "NORMAL"},
        "data": {"kind": "retract", "notificationId": "$(notificationId)", "collapseId": "$(collapseId)"},
    }
}
_APNS_RETRACT: dict[str, object] = {
    "aps": {"content-available": 1},
    "kind": "retract",
    "notificationId": "$(notificationId)",
    "collapseId": "$(collapseId)",
}
_TEMPLATES: dict[str, dict[str, object]] = {"fcmv1": _FCMV1_TEMPLATE, "apns": _APNS_TEMPLATE}
_RETRACTS: dict[str, dict[str, object]] = {"fcmv1": _FCMV1_RETRACT, "apns": _APNS_RETRACT}
SUPPORTED_PLATFORMS = tuple(_TEMPLATES)



def _with_badge(template: Mapping[str, object]) -> dict[str, object]:
    copy: dict[str, Any] = json.loads(json.dumps(template))
    if "aps" in copy:
        copy["aps"]["badge"] = "#(badge)"
    else:
        copy["message"]["android"]["notification"]["notification_count"] = "#(badge)"
        copy["message"]["data"]["badge"] = "$(badge)"
    return copy


_BADGE_TEMPLATES: dict[str, dict[str, object]] = {p: _with_badge(t) for p, t in _TEMPLATES.items()}
_EXPRESSION = re.compile(r"\$\((\w+)\)")
_NUMBER_EXPRESSION = re.compile(r"#\((\w+)\)")


def _text(template: Mapping[str, object]) -> str:
    return json.dumps(template, separators=(",", ":"))


def template_body(platform: str, badge: bool = False) -> str:
    """The notification template body (JSON text) for ``fcmv1`` or ``apns``; KeyError for another."""
    return _text((_BADGE_TEMPLATES if badge else _TEMPLATES)[platform])


def retract_template_body(platform: str) -> str:
    """The retract template body (JSON text) for ``fcmv1`` or ``apns``; KeyError for another."""
    return _text(_RETRACTS[platform])


def installation_templates(platform: str, badge: bool = False) -> dict[str, dict[str, object]]:
    """The ``templates`` member of an installation for ``platform`` (with the badge variant, or not)."""
    return {
        TEMPLATE_NAME: {"body": template_body(platform, badge)},
        RETRACT_TEMPLATE_NAME: {"body": retract_template_body(platform), "tags": [RETRACT_TAG]},
    }


def notification_tags(user_tag: str) -> str:
    """The tag expression of a notification's send: the user's devices, the notification template."""
    return f"{user_tag} && !{RETRACT_TAG}"


def retract_tags(user_tag: str) -> str:
    """The tag expression of a retract: the user's devices, the retract template."""
    return f"{user_tag} && {RETRACT_TAG}"


def collapse_id(notification_id: str) -> str:
    """The collapse id of a notification: its id, or a digest when it exceeds APNs' 64 bytes."""
    if len(notification_id.encode("utf-8")) <= APNS_COLLAPSE_ID_MAX_BYTES:
        return notification_id
    return "h-" + hashlib.sha256(notification_id.encode("utf-8")).hexdigest()[:62]


def ttl_seconds(expires_at: float | None, now: float) -> int:
    """Seconds a push may still be delivered: until ``expires_at``, else FCM's maximum."""
    if expires_at is None:
        return FCM_MAX_TTL_SECONDS
    return max(0, min(FCM_MAX_TTL_SECONDS, math.floor(expires_at - now)))


@dataclass(frozen=True)
class PushOptions:
    """How one push is sent: its priority and until when it may be delivered."""

    priority: Priority = "high"
    expires_at: float | None = None


def template_properties(
    notification: Notification, options: PushOptions, now: float, badge: int | None = None
) -> dict[str, str]:
    """The all-string property bag for the template send of ``notification`` (and the badge, if given)."""
    properties = {
        "notificationId": notification.notification_id,
        "collapseId": collapse_id(notification.notification_id),
        "title": notification.title,
        "body": notification.body,
        "type": notification.type,
        "data": json.dumps(notification.data, separators=(",", ":"), ensure_ascii=False),
        "ttl": f"{ttl_seconds(options.expires_at, now)}s",
        "androidPriority": "HIGH" if options.priority == "high" else "NORMAL",
    }
    if badge is not None:
        properties[BADGE_PROPERTY] = str(max(0, badge))
    return properties


def retract_properties(notification_id: str, expires_at: float | None, now: float) -> dict[str, str]:
    """The property bag of the retract of ``notification_id``."""
    return {
        "notificationId": notification_id,
        "collapseId": collapse_id(notification_id),
        "ttl": f"{ttl_seconds(expires_at, now)}s",
    }


def notification_headers(notification_id: str, options: PushOptions) -> dict[str, str]:
    """The APNs headers of a notification's send (NH passes ``apns-*`` headers to APNs)."""
    headers = {
        "apns-push-type": "alert",
        "apns-priority": "10" if options.priority == "high" else "5",
        "apns-collapse-id": collapse_id(notification_id),
    }
    if options.expires_at is not None:
        headers["apns-expiration"] = str(max(0, math.floor(options.expires_at)))
    return headers


def retract_headers(expires_at: float | None) -> dict[str, str]:
    """The APNs headers of a retract: a background push, which APNs requires to be priority 5."""
    headers = {"apns-push-type": "background", "apns-priority": "5"}
    if expires_at is not None:
        headers["apns-expiration"] = str(max(0, math.floor(expires_at)))
    return headers


def render_payload(platform: str, properties: Mapping[str, str], retract: bool = False) -> str:
    """What NH will hand the PNS for ``platform``: the template with each expression substituted.

    A bag with a ``badge`` renders the badge variant; a bare ``#(name)`` with a numeric value becomes a JSON
    number, as Notification Hubs renders it.
    """
    bag = {name.lower(): value for name, value in properties.items()}

    def render(node: object) -> object:
        if isinstance(node, str):
            whole = _NUMBER_EXPRESSION.fullmatch(node)
            if whole is not None and bag.get(whole.group(1).lower(), "").isdigit():
                return int(bag[whole.group(1).lower()])
            return _EXPRESSION.sub(lambda m: bag.get(m.group(1).lower(), ""), node)
        if isinstance(node, dict):
            return {key: render(value) for key, value in node.items()}
        return node

    notifications = _BADGE_TEMPLATES if BADGE_PROPERTY in bag else _TEMPLATES
    template = (_RETRACTS if retract else notifications)[platform]
    return json.dumps(render(template), separators=(",", ":"), ensure_ascii=False)


@lru_cache(maxsize=1)
def _template_shapes() -> tuple[tuple[int, dict[str, int]], ...]:
    """Per platform: the template's length and how often it uses each property."""
    shapes = []
    for platform in SUPPORTED_PLATFORMS:
        body = template_body(platform)
        uses = {name: body.count(f"$({name})") for name in PROPERTY_NAMES}
        shapes.append((len(body.encode("utf-8")), uses))
    return tuple(shapes)


def payload_may_exceed_limit(properties: Mapping[str, str]) -> bool:
    """False when no rendering can reach the push limit, so the exact check can be skipped (a bag with a
    badge always needs it).

    A rendered payload is the template with each ``$(name)`` replaced by the property as a JSON string body,
    which is at most 6 bytes per UTF-8 byte (a ``\\u00XX`` escape).
    """
    if BADGE_PROPERTY in properties:
        return True
    sizes = {name: len(value.encode("utf-8")) for name, value in properties.items()}
    return any(
        length + sum(6 * sizes.get(name, 0) * count for name, count in uses.items()) > PNS_PAYLOAD_LIMIT_BYTES
        for length, uses in _template_shapes()
    )


def check_payload_size(properties: Mapping[str, str]) -> None:
    """Raise InvalidMessageError when the rendered payload exceeds the 4 KB PNS limit on any platform.

    Renders only when :func:`payload_may_exceed_limit` says a rendering could reach the limit.
    """
    if not payload_may_exceed_limit(properties):
        return
    for platform in SUPPORTED_PLATFORMS:
        size = len(render_payload(platform, properties).encode("utf-8"))
        if size > PNS_PAYLOAD_LIMIT_BYTES:
            raise InvalidMessageError(
                f"the {platform} push payload would be {size} bytes; the limit is {PNS_PAYLOAD_LIMIT_BYTES}",
                field="body",
            )
