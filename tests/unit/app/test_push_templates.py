"""Unit tests of the push templates, the property bags, collapse ids, expiry and the APNs headers."""

from __future__ import annotations

import json

import pytest

from notify.model import Notification
from notify.push_templates import (
    APNS_COLLAPSE_ID_MAX_BYTES,
    FCM_MAX_TTL_SECONDS,
    PNS_PAYLOAD_LIMIT_BYTES,
    PROPERTY_NAMES,
    RETRACT_TAG,
    SUPPORTED_PLATFORMS,
    PushOptions,
    check_payload_size,
    collapse_id,
    installation_templates,
    notification_headers,
    notification_tags,
    payload_may_exceed_limit,
    render_payload,
    retract_headers,
    retract_properties,
    retract_tags,
    template_body,
    template_properties,
    ttl_seconds,
)
from shared.errors import InvalidMessageError

NOW = 1_900_000_000.0


def _notification(body: str = 'Hello "there"\n', data: dict[str, object] | None = None) -> Notification:
    return Notification(
        notification_id="n-123",
        user_id="alice",
        title="Tïtle",
        body=body,
        type="chat",
        data=data if data is not None else {"threadId": "t1", "count": 3},
    )


def _props(options: PushOptions | None = None, body: str = 'Hello "there"\n') -> dict[str, str]:
    return template_properties(_notification(body), options or PushOptions(), NOW)


def test_properties_are_all_strings_with_data_as_json_text() -> None:
    props = _props()
    assert set(props) == set(PROPERTY_NAMES)
    assert all(isinstance(v, str) for v in props.values())
    assert json.loads(props["data"]) == {"threadId": "t1", "count": 3}
    assert props["collapseId"] == "n-123" and props["androidPriority"] == "HIGH"


@pytest.mark.parametrize("platform", SUPPORTED_PLATFORMS)
def test_installations_get_the_notification_and_the_tagged_retract_template(platform: str) -> None:
    body = template_body(platform)
    assert isinstance(json.loads(body), dict)
    templates = installation_templates(platform)
    assert templates["notify-v1"] == {"body": body}
    assert templates["notify-retract-v1"]["tags"] == [RETRACT_TAG]
    assert isinstance(json.loads(str(templates["notify-retract-v1"]["body"])), dict)
    assert len(render_payload(platform, _props()).encode()) < PNS_PAYLOAD_LIMIT_BYTES


def test_the_two_sends_target_disjoint_templates() -> None:
    assert notification_tags("user:alice") == "user:alice && !notify:retract"
    assert retract_tags("user:alice") == "user:alice && notify:retract"


def test_rendered_fcm_payload_carries_the_standard_fields_tag_ttl_and_priority() -> None:
    payload = json.loads(render_payload("fcmv1", _props(PushOptions("normal", NOW + 90.9))))
    data = payload["message"]["data"]
    assert data["notificationId"] == "n-123" and data["kind"] == "notification"
    assert data["type"] == "chat"
    assert data["body"] == 'Hello "there"\n'
    assert json.loads(data["data"]) == {"threadId": "t1", "count": 3}
    assert payload["message"]["notification"] == {"title": "Tïtle", "body": 'Hello "there"\n'}
    android = payload["message"]["android"]
    assert android == {"ttl": "90s", "priority": "NORMAL", "notification": {"tag": "n-123"}}


def test_rendered_apns_payload_carries_the_standard_fields() -> None:
    payload = json.loads(render_payload("apns", _props()))
    assert payload["aps"]["alert"] == {"title": "Tïtle", "body": 'Hello "there"\n'}
    assert payload["notificationId"] == "n-123" and payload["collapseId"] == "n-123"
    assert json.loads(payload["data"]) == {"threadId": "t1", "count": 3}


def test_rendered_retracts_are_silent() -> None:
    props = retract_properties("n-123", None, NOW)
    apns = json.loads(render_payload("apns", props, retract=True))
    assert apns == {"aps": {"content-available": 1}, "kind": "retract", "notificationId": "n-123",
                    "collapseId": "n-123"}
    fcm = json.loads(render_payload("fcmv1", props, retract=True))["message"]
    assert "notification" not in fcm and fcm["data"]["kind"] == "retract"
    assert fcm["android"] == {"ttl": f"{FCM_MAX_TTL_SECONDS}s", "priority": "NORMAL"}


def test_apns_headers_per_priority_and_expiry() -> None:
    assert notification_headers("n-1", PushOptions("high", NOW + 10.7)) == {
        "apns-push-type": "alert", "apns-priority": "10", "apns-collapse-id": "n-1",
        "apns-expiration": str(int(NOW) + 10),
    }
    assert notification_headers("n-1", PushOptions("normal"))["apns-priority"] == "5"
    assert "apns-expiration" not in notification_headers("n-1", PushOptions())
    assert retract_headers(None) == {"apns-push-type": "background", "apns-priority": "5"}


def test_collapse_ids_fit_apns() -> None:
    assert collapse_id("short") == "short"
    long_id = "n" * 128
    derived = collapse_id(long_id)
    assert len(derived.encode()) <= APNS_COLLAPSE_ID_MAX_BYTES and derived == collapse_id(long_id)
    assert derived != collapse_id("m" * 128)


def test_ttl_counts_down_to_the_expiry_and_never_below_zero() -> None:
    assert ttl_seconds(None, NOW) == FCM_MAX_TTL_SECONDS
    assert ttl_seconds(NOW + 59.9, NOW) == 59
    assert ttl_seconds(NOW - 5, NOW) == 0
    assert ttl_seconds(NOW + 10 * FCM_MAX_TTL_SECONDS, NOW) == FCM_MAX_TTL_SECONDS


def test_oversize_payload_is_an_invalid_message() -> None:
    check_payload_size(_props(body="x" * 1000))
    with pytest.raises(InvalidMessageError):
        check_payload_size(_props(body="x" * 3000))


@pytest.mark.parametrize("platform", SUPPORTED_PLATFORMS)
def test_badge_templates_render_the_unread_count_as_a_number(platform: str) -> None:
    assert installation_templates(platform, badge=True)["notify-v1"]["body"] == template_body(platform, True)
    assert "badge" not in template_body(platform)  # the default templates carry no badge
    properties = template_properties(_notification(), PushOptions(), NOW, badge=7)
    payload = json.loads(render_payload(platform, properties))
    if platform == "apns":
        assert payload["aps"]["badge"] == 7 and payload["aps"]["alert"]["title"] == "Tïtle"
    else:
        android = payload["message"]["android"]
        assert android["notification"] == {"tag": "n-123", "notification_count": 7}
        assert payload["message"]["data"]["badge"] == "7"  # FCM data values are strings
    assert template_properties(_notification(), PushOptions(), NOW, badge=-3)["badge"] == "0"
    retract = json.loads(render_payload(platform, properties, retract=True))
    assert "badge" not in json.dumps(retract)  # retracts stay as they are


def test_badge_templates_render_the_same_in_the_emulator() -> None:
    """Our renderer and the Notification Hubs emulator's agree on the badge expressions."""
    from devstack.notificationhubs.templates import render_template

    properties = template_properties(_notification(), PushOptions("normal", NOW + 60), NOW, badge=12)
    for platform in SUPPORTED_PLATFORMS:
        ours = json.loads(render_payload(platform, properties))
        theirs = json.loads(render_template(template_body(platform, badge=True), properties))
        assert ours == theirs


def _fits(properties: dict[str, str]) -> bool:
    """Every platform's rendered payload is within the limit (rendered here, not through the bound)."""
    return all(len(render_payload(platform, properties).encode("utf-8")) <= PNS_PAYLOAD_LIMIT_BYTES
               for platform in SUPPORTED_PLATFORMS)


@pytest.mark.parametrize("piece", ["x", "\u00e9", "\u20ac", "\U0001f600", '"', "\\", "\n", "\x01"])
def test_the_cheap_bound_skips_the_exact_check_only_when_every_payload_fits(piece: str) -> None:
    # Bodies from small to far over the limit, of characters JSON escapes or UTF-8 widens to different
    # degrees: whenever the bound says no rendering can reach the limit, the exact check must agree.
    skipped = 0
    for length in range(0, 4200, 37):
        properties = _props(body=piece * length)
        if not payload_may_exceed_limit(properties):
            skipped += 1
            assert _fits(properties), (piece, length)
    assert skipped > 0  # a short notification never pays for rendering


def test_a_typical_push_skips_the_exact_check_and_a_badge_never_does() -> None:
    assert not payload_may_exceed_limit(_props())
    assert payload_may_exceed_limit({**_props(), "badge": "3"})
    assert payload_may_exceed_limit(_props(body="x" * 3000)) and not _fits(_props(body="x" * 3000))
    with pytest.raises(InvalidMessageError):  # the check itself renders when the bound says it may
        check_payload_size(_props(body="x" * 3000))
