"""Sends of the Notification Hubs emulator: template/native/direct/test sends, tags and the push sink."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import requests

from devstack.notificationhubs import RunningNotificationHubs
from tests.integration.devstack.nh_wire import NhClient, error_detail

pytestmark = pytest.mark.integration


APNS_TEMPLATE = json.dumps(
    {"aps": {"alert": {"title": "$(title)", "body": ".(body, 20)"}, "badge": "#(badge)"}, "nid": "$(nid)"}
)
FCM_TEMPLATE = json.dumps(
    {
        "message": {
            "notification": {"title": "{'[' + $(title) + ']'}", "body": "$(body)"},
            "data": {"nid": "$(nid)"},
        }
    }
)


@pytest.fixture
def client(notification_hubs_emulator: RunningNotificationHubs, nh_hub: str) -> NhClient:
    return NhClient(notification_hubs_emulator.connection_string, nh_hub)


def apns(installation_id: str, tags: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "installationId": installation_id,
        "platform": "apns",
        "pushChannel": f"apns-{installation_id}",
        "tags": tags,
        "templates": {"main": {"body": APNS_TEMPLATE, "headers": {"apns-push-type": "alert"}}},
        **extra,
    }


def fcm(installation_id: str, tags: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "installationId": installation_id,
        "platform": "fcmv1",
        "pushChannel": f"fcm-{installation_id}",
        "tags": tags,
        "templates": {"main": {"body": FCM_TEMPLATE}},
        **extra,
    }


def register(client: NhClient, *installations: dict[str, Any]) -> None:
    for installation in installations:
        assert client.put_installation(installation).status_code == 200


def notification_id(response: requests.Response) -> str:
    location = response.headers["Location"]
    return location.split("?")[0].rstrip("/").rsplit("/", 1)[-1]


def test_template_send_renders_per_platform(
    client: NhClient, notification_hubs_emulator: RunningNotificationHubs, nh_hub: str
) -> None:
    register(client, apns("ios-1", ["user:1"]), fcm("and-1", ["user:1"]), fcm("and-2", ["user:2"]))
    props = {
        "title": "Hello",
        "body": "A body that is longer than twenty characters",
        "badge": "3",
        "nid": "n-1",
    }
    response = client.send(props, "template", tags="user:1")
    assert response.status_code == 201, response.text
    assert response.headers["TrackingId"]
    location = response.headers["Location"]
    assert location.startswith(f"{notification_hubs_emulator.base_url}/{nh_hub}/messages/")
    assert "api-version=2020-06" in location
    pushes = notification_hubs_emulator.wait_for_pushes(2, timeout=5, hub=nh_hub)
    by_installation = {push["installationId"]: push for push in pushes}
    assert set(by_installation) == {"ios-1", "and-1"}
    ios = by_installation["ios-1"]
    assert ios["platform"] == "apns"
    assert ios["pushChannel"] == "apns-ios-1"
    assert ios["payload"] == {
        "aps": {"alert": {"title": "Hello", "body": "A body that is lo..."}, "badge": 3},
        "nid": "n-1",
    }
    assert ios["headers"]["apns-push-type"] == "alert"
    assert ios["notificationId"] == notification_id(response)
    android = by_installation["and-1"]
    assert android["payload"] == {
        "message": {"notification": {"title": "[Hello]", "body": props["body"]}, "data": {"nid": "n-1"}}
    }
    assert json.loads(android["payloadText"]) == android["payload"]
    assert all(push["outcome"] == "delivered" and push["format"] == "template" for push in pushes)


def test_template_send_skips_installations_without_templates(
    client: NhClient, notification_hubs_emulator: RunningNotificationHubs, nh_hub: str
) -> None:
    register(client, fcm("with", ["t"]), {**fcm("without", ["t"]), "templates": {}})
    assert client.send({"title": "x"}, "template", tags="t").status_code == 201
    assert [push["installationId"] for push in notification_hubs_emulator.pushes(hub=nh_hub)] == ["with"]


def test_one_push_per_matching_template_and_template_tags_filter(
    client: NhClient, notification_hubs_emulator: RunningNotificationHubs, nh_hub: str
) -> None:
    templates = {
        "a": {"body": FCM_TEMPLATE, "tags": ["alerts"]},
        "b": {"body": FCM_TEMPLATE, "tags": ["news"]},
        "c": {"body": FCM_TEMPLATE},
    }
    register(client, fcm("multi", ["user:7"], templates=templates))
    client.send({"title": "all"}, "template", tags="user:7")
    assert sorted(p["template"] for p in notification_hubs_emulator.pushes(hub=nh_hub)) == ["a", "b", "c"]
    notification_hubs_emulator.clear_pushes(nh_hub)
    client.send({"title": "news only"}, "template", tags="user:7 && news")
    assert [p["template"] for p in notification_hubs_emulator.pushes(hub=nh_hub)] == ["b"]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("user:1 || user:2", {"a", "b"}),
        ("vip && lang:en", {"a"}),
        ("(user:1 || user:3) && !vip", {"c"}),
        ("!vip", {"b", "c"}),
        ("$InstallationId:{c}", {"c"}),
        ("$UserId:{u-2}", {"b"}),
        ("nobody", set()),
    ],
)
def test_tag_expressions_select_installations(
    client: NhClient,
    notification_hubs_emulator: RunningNotificationHubs,
    nh_hub: str,
    expression: str,
    expected: set[str],
) -> None:
    register(
        client,
        fcm("a", ["user:1", "vip", "lang:en"], userId="u-1"),
        fcm("b", ["user:2", "lang:en"], userId="u-2"),
        fcm("c", ["user:3"]),
    )
    assert client.send({"title": "t"}, "template", tags=expression).status_code == 201
    assert {p["installationId"] for p in notification_hubs_emulator.pushes(hub=nh_hub)} == expected


def test_no_tags_header_is_a_broadcast(
    client: NhClient, notification_hubs_emulator: RunningNotificationHubs, nh_hub: str
) -> None:
    register(client, fcm("a", ["x"]), apns("b", []))
    assert client.send({"title": "t"}, "template").status_code == 201
    assert {p["installationId"] for p in notification_hubs_emulator.pushes(hub=nh_hub)} == {"a", "b"}


@pytest.mark.parametrize(
    "expression",
    [
        " || ".join(f"t{i}" for i in range(21)),
        " && ".join(f"t{i}" for i in range(7)),
        "(a || b",
        "a &&",
        "bad tag!",
    ],
)
def test_bad_tag_expressions_are_400(
    client: NhClient, notification_hubs_emulator: RunningNotificationHubs, nh_hub: str, expression: str
) -> None:
    register(client, fcm("a", ["t1"]))
    response = client.send({"title": "t"}, "template", tags=expression)
    assert response.status_code == 400
    assert "ServiceBusNotification-Tags" in error_detail(response)
    assert notification_hubs_emulator.pushes(hub=nh_hub) == []


def test_twenty_or_tags_are_accepted(client: NhClient) -> None:
    response = client.send({"title": "t"}, "template", tags=" || ".join(f"t{i}" for i in range(20)))
    assert response.status_code == 201


def test_native_fcmv1_send_reaches_only_fcm_installations(
    client: NhClient, notification_hubs_emulator: RunningNotificationHubs, nh_hub: str
) -> None:
    register(client, fcm("and", ["t"]), apns("ios", ["t"]))
    payload = {
        "message": {"notification": {"title": "native"}, "android": {"ttl": "3600s"}, "data": {"k": "v"}}
    }
    assert client.send(payload, "fcmv1", tags="t").status_code == 201
    pushes = notification_hubs_emulator.pushes(hub=nh_hub)
    assert [(p["installationId"], p["format"], p["payload"]) for p in pushes] == [("and", "fcmv1", payload)]


def test_native_apple_send_passes_apns_headers(
    client: NhClient, notification_hubs_emulator: RunningNotificationHubs, nh_hub: str
) -> None:
    register(client, fcm("and", ["t"]), apns("ios", ["t"]))
    payload = {"aps": {"alert": {"title": "native"}, "content-available": 1}}
    headers = {"apns-push-type": "background", "apns-priority": "5", "apns-expiration": "0"}
    assert client.send(payload, "apple", tags="t", headers=headers).status_code == 201
    [push] = notification_hubs_emulator.pushes(hub=nh_hub)
    assert push["installationId"] == "ios"
    assert push["payload"] == payload
    assert push["headers"] == headers


@pytest.mark.parametrize("header", [{"apns-priority": "high"}, {"apns-expiration": "tomorrow"}])
def test_invalid_apns_headers_are_400(client: NhClient, header: dict[str, str]) -> None:
    response = client.send({"aps": {"alert": "x"}}, "apple", headers=header)
    assert response.status_code == 400
    assert next(iter(header)) in error_detail(response)


def test_direct_send_uses_the_device_handle(
    client: NhClient, notification_hubs_emulator: RunningNotificationHubs, nh_hub: str
) -> None:
    handle = f"direct-token-{uuid.uuid4().hex[:8]}"
    payload = {"message": {"notification": {"title": "direct"}}}
    response = client.send(
        payload,
        "fcmv1",
        query="direct&api-version=2020-06",
        headers={"ServiceBusNotification-DeviceHandle": handle},
    )
    assert response.status_code == 201
    [push] = notification_hubs_emulator.pushes(hub=nh_hub)
    assert (push["pushChannel"], push["installationId"], push["direct"], push["payload"]) == (
        handle,
        None,
        True,
        payload,
    )


def test_direct_send_without_handle_is_400(client: NhClient) -> None:
    response = client.send({"message": {}}, "fcmv1", query="direct=true&api-version=2020-06")
    assert response.status_code == 400
    assert "DeviceHandle" in error_detail(response)


@pytest.mark.parametrize("query", ["api-version=2020-06&test", "test=true&api-version=2020-06"])
def test_test_send_returns_notification_outcome(
    client: NhClient, notification_hubs_emulator: RunningNotificationHubs, nh_hub: str, query: str
) -> None:
    register(client, fcm("a", ["t"]), apns("b", ["t"]))
    big = "x" * 5000
    register(
        client,
        fcm("huge", ["t"], templates={"main": {"body": json.dumps({"message": {"data": {"b": big}}})}}),
    )
    response = client.send({"title": "t"}, "template", tags="t", query=query)
    assert response.status_code == 201
    assert response.headers["Content-Type"].startswith("application/xml")
    body = response.text
    assert body.startswith("<NotificationOutcome")
    assert "<Success>2</Success>" in body
    assert "<Failure>1</Failure>" in body
    assert body.count("<RegistrationResult>") == 3
    assert "<RegistrationId>huge</RegistrationId>" in body
    assert "PayloadTooLarge" in body


def test_payload_over_4_kb_after_rendering_is_a_failed_push_not_a_4xx(
    client: NhClient, notification_hubs_emulator: RunningNotificationHubs, nh_hub: str
) -> None:
    register(client, apns("ios", ["t"]))
    response = client.send({"title": "y" * 5000}, "template", tags="t")
    assert response.status_code == 201
    [push] = notification_hubs_emulator.pushes(hub=nh_hub)
    assert push["outcome"] == "failed"
    assert "PayloadTooLarge" in push["reason"]


def test_gcm_format_is_refused(
    client: NhClient, notification_hubs_emulator: RunningNotificationHubs, nh_hub: str
) -> None:
    register(client, {**fcm("old", ["t"]), "platform": "gcm", "templates": {}})
    response = client.send({"data": {"k": "v"}}, "gcm", tags="t")
    assert response.status_code == 400
    assert "fcmv1" in error_detail(response)
    assert notification_hubs_emulator.pushes(hub=nh_hub) == []


def test_template_send_to_gcm_installation_is_recorded_as_failed(
    client: NhClient, notification_hubs_emulator: RunningNotificationHubs, nh_hub: str
) -> None:
    register(client, {**fcm("old", ["t"]), "platform": "gcm"})
    assert client.send({"title": "t"}, "template").status_code == 201
    [push] = notification_hubs_emulator.pushes(hub=nh_hub)
    assert push["outcome"] == "failed"
    assert "gcm" in push["reason"]


@pytest.mark.parametrize(
    ("body", "fmt", "fragment"),
    [
        ({"title": "t", "count": 3}, "template", "string values only"),
        ({"title": {"nested": "x"}}, "template", "string values only"),
        ("not json", "template", "not valid JSON"),
        (["a"], "apple", "JSON object"),
        ({"notification": {"title": "legacy shape"}}, "fcmv1", "message"),
        ({"title": "t"}, "nokia", "Unknown ServiceBusNotification-Format"),
    ],
)
def test_invalid_send_bodies_are_400(client: NhClient, body: Any, fmt: str, fragment: str) -> None:
    response = client.send(body, fmt)
    assert response.status_code == 400
    assert fragment in error_detail(response)


def test_missing_format_and_wrong_content_type_are_400(client: NhClient) -> None:
    no_format = client.session.post(
        client.url("messages"), data="{}", headers=client.auth({"Content-Type": "application/json"})
    )
    assert no_format.status_code == 400
    assert "ServiceBusNotification-Format" in error_detail(no_format)
    wrong_type = client.send({"title": "t"}, "template", headers={"Content-Type": "text/plain"})
    assert wrong_type.status_code == 400
    assert "Content-Type" in error_detail(wrong_type)


def test_send_body_over_64_kb_is_413(client: NhClient) -> None:
    response = client.send({"title": "x" * (64 * 1024)}, "template")
    assert response.status_code == 413


def test_send_to_messages_without_trailing_slash(
    client: NhClient, notification_hubs_emulator: RunningNotificationHubs, nh_hub: str
) -> None:
    register(client, fcm("a", []))
    response = client.session.post(
        client.url("messages"),
        data=json.dumps({"title": "t"}),
        headers=client.auth(
            {"Content-Type": "application/json", "ServiceBusNotification-Format": "template"}
        ),
    )
    assert response.status_code == 201
    assert len(notification_hubs_emulator.pushes(hub=nh_hub, installation_id="a")) == 1


def test_sink_over_http_filters_and_clears(
    client: NhClient, notification_hubs_emulator: RunningNotificationHubs, nh_hub: str
) -> None:
    register(client, fcm("a", ["red"]), fcm("b", ["blue"]))
    client.send({"title": "t"}, "template")
    base = f"{notification_hubs_emulator.base_url}/_devstack/pushes"
    by_tag = client.session.get(base, params={"hub": nh_hub, "tag": "red"}).json()
    assert [p["installationId"] for p in by_tag] == ["a"]
    by_installation = client.session.get(base, params={"hub": nh_hub, "installationId": "b"}).json()
    assert [p["installationId"] for p in by_installation] == ["b"]
    assert client.session.delete(base, params={"hub": nh_hub}).json() == {"removed": 2}
    assert client.session.get(base, params={"hub": nh_hub}).json() == []


@pytest.mark.parametrize(
    "path",
    [
        "registrations",
        "registrationIDs",
        "registrations/abc",
        "jobs",
        "feedbackcontainer",
        "tags/t/registrations",
    ],
)
def test_unemulated_service_apis_answer_501_not_404(client: NhClient, path: str) -> None:
    response = client.session.get(client.url(path), headers=client.auth(), **client.options)
    assert response.status_code == 501
    assert "not implemented by the devstack emulator" in error_detail(response)
