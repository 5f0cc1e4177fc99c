"""Unit tests of the push templates and the property bag."""

from __future__ import annotations

import json

import pytest

from notify.model import Notification
from notify.push_templates import (
    PNS_PAYLOAD_LIMIT_BYTES,
    SUPPORTED_PLATFORMS,
    check_payload_size,
    installation_templates,
    render_payload,
    template_body,
    template_properties,
)
from shared.errors import InvalidMessageError


def _notification(body: str = 'Hello "there"\n', data: dict[str, object] | None = None) -> Notification:
    return Notification(
        notification_id="n-123",
        user_id="alice",
        title="Tïtle",
        body=body,
        type="chat",
        data=data if data is not None else {"threadId": "t1", "count": 3},
    )


def test_properties_are_all_strings_with_data_as_json_text() -> None:
    props = template_properties(_notification())
    assert set(props) == {"notificationId", "title", "body", "type", "data"}
    assert all(isinstance(v, str) for v in props.values())
    assert json.loads(props["data"]) == {"threadId": "t1", "count": 3}


@pytest.mark.parametrize("platform", SUPPORTED_PLATFORMS)
def test_template_bodies_are_json_strings_under_the_pns_limit(platform: str) -> None:
    body = template_body(platform)
    assert isinstance(json.loads(body), dict)
    assert installation_templates(platform)["notify-v1"]["body"] == body
    rendered = render_payload(platform, template_properties(_notification()))
    assert len(rendered.encode()) < PNS_PAYLOAD_LIMIT_BYTES


def test_rendered_fcm_payload_carries_the_standard_fields() -> None:
    payload = json.loads(render_payload("fcmv1", template_properties(_notification())))
    data = payload["message"]["data"]
    assert data["notificationId"] == "n-123"
    assert data["type"] == "chat"
    assert data["body"] == 'Hello "there"\n'
    assert json.loads(data["data"]) == {"threadId": "t1", "count": 3}
    assert payload["message"]["notification"] == {"title": "Tïtle", "body": 'Hello "there"\n'}


def test_rendered_apns_payload_carries_the_standard_fields() -> None:
    payload = json.loads(render_payload("apns", template_properties(_notification())))
    assert payload["aps"]["alert"] == {"title": "Tïtle", "body": 'Hello "there"\n'}
    assert payload["notificationId"] == "n-123"
    assert json.loads(payload["data"]) == {"threadId": "t1", "count": 3}


def test_oversize_payload_is_an_invalid_message() -> None:
    check_payload_size(template_properties(_notification(body="x" * 1000)))
    with pytest.raises(InvalidMessageError):
        check_payload_size(template_properties(_notification(body="x" * 3000)))
