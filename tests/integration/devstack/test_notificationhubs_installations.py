"""Installations API of the Notification Hubs emulator (PUT/GET/PATCH/DELETE), over real HTTP."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import requests

from devstack.notificationhubs import RunningNotificationHubs
from tests.integration.devstack.nh_wire import NhClient, error_detail

pytestmark = pytest.mark.integration



@pytest.fixture
def client(notification_hubs_emulator: RunningNotificationHubs, nh_hub: str) -> NhClient:
    return NhClient(notification_hubs_emulator.connection_string, nh_hub)


def fcm_installation(installation_id: str = "dev-1", **extra: Any) -> dict[str, Any]:
    template = {
        "message": {"notification": {"title": "$(title)", "body": "$(body)"}, "data": {"nid": "$(nid)"}}
    }
    installation: dict[str, Any] = {
        "installationId": installation_id,
        "platform": "fcmV1",
        "pushChannel": "fcm-token-1",
        "tags": ["user:42", "lang:en"],
        "userId": "42",
        "templates": {"default": {"body": json.dumps(template), "tags": ["tpl"]}},
    }
    installation.update(extra)
    return installation


def test_put_then_get_round_trip(client: NhClient) -> None:
    sent = fcm_installation()
    assert client.put_installation(sent).status_code == 200
    response = client.get_installation("dev-1")
    assert response.status_code == 200
    got = response.json()
    assert got["installationId"] == "dev-1"
    assert got["platform"] == "fcmv1"
    assert got["pushChannel"] == "fcm-token-1"
    assert got["tags"] == ["user:42", "lang:en"]
    assert got["userId"] == "42"
    assert json.loads(got["templates"]["default"]["body"]) == json.loads(sent["templates"]["default"]["body"])
    assert got["templates"]["default"]["tags"] == ["tpl"]


def test_put_overwrites(client: NhClient) -> None:
    client.put_installation(fcm_installation(tags=["a"]))
    client.put_installation(fcm_installation(tags=["b"], pushChannel="fcm-token-2"))
    got = client.get_installation("dev-1").json()
    assert got["tags"] == ["b"]
    assert got["pushChannel"] == "fcm-token-2"


def test_get_missing_is_404(client: NhClient) -> None:
    response = client.get_installation("never-there")
    assert response.status_code == 404
    assert "never-there" in error_detail(response)


def test_delete_is_idempotent(
    client: NhClient, notification_hubs_emulator: RunningNotificationHubs, nh_hub: str
) -> None:
    client.put_installation(fcm_installation())
    assert client.delete_installation("dev-1").status_code == 204
    assert notification_hubs_emulator.installation(nh_hub, "dev-1") is None
    assert client.delete_installation("dev-1").status_code == 204
    assert client.get_installation("dev-1").status_code == 404


@pytest.mark.parametrize("content_type", ["application/json-patch+json", "application/json"])
def test_patch_operations(client: NhClient, content_type: str) -> None:
    client.put_installation(fcm_installation())
    new_template = {"body": json.dumps({"message": {"data": {"x": "$(x)"}}}), "tags": ["t2"]}
    response = client.patch_installation(
        "dev-1",
        [
            {"op": "add", "path": "/tags", "value": "vip"},
            {"op": "remove", "path": "/tags/lang:en"},
            {"op": "replace", "path": "/pushChannel", "value": "fcm-token-9"},
            {"op": "replace", "path": "/userId", "value": "43"},
            {"op": "add", "path": "/templates/second", "value": json.dumps(new_template)},
            {"op": "remove", "path": "/templates/default"},
        ],
        content_type=content_type,
    )
    assert response.status_code == 200, response.text
    got = client.get_installation("dev-1").json()
    assert got["tags"] == ["user:42", "vip"]
    assert got["pushChannel"] == "fcm-token-9"
    assert got["userId"] == "43"
    assert list(got["templates"]) == ["second"]
    assert got["templates"]["second"]["tags"] == ["t2"]


def test_patch_template_body(client: NhClient) -> None:
    client.put_installation(fcm_installation())
    body = json.dumps({"message": {"notification": {"title": "new $(title)"}}})
    assert client.patch_installation(
        "dev-1", [{"op": "replace", "path": "/templates/default/body", "value": body}]
    ).ok
    assert client.get_installation("dev-1").json()["templates"]["default"]["body"] == body


def test_patch_missing_installation_is_404(client: NhClient) -> None:
    response = client.patch_installation("ghost", [{"op": "add", "path": "/tags", "value": "x"}])
    assert response.status_code == 404


def test_invalid_patch_is_400_and_changes_nothing(client: NhClient) -> None:
    client.put_installation(fcm_installation())
    response = client.patch_installation(
        "dev-1",
        [{"op": "add", "path": "/tags", "value": "ok"}, {"op": "add", "path": "/tags", "value": "bad tag"}],
    )
    assert response.status_code == 400
    assert "Invalid tag" in error_detail(response)
    assert client.get_installation("dev-1").json()["tags"] == ["user:42", "lang:en"]


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"platform": "symbian"}, "Unknown platform"),
        ({"pushChannel": None}, "pushChannel"),
        ({"tags": [f"t{i}" for i in range(61)]}, "at most 60"),
        ({"tags": ["t" * 121]}, "Invalid tag"),
        ({"tags": ["with space"]}, "Invalid tag"),
        ({"templates": {"t": {"body": {"message": {}}}}}, "templates.t.body"),
        ({"installationId": "someone-else"}, "does not match"),
    ],
)
def test_invalid_installations_are_400(client: NhClient, overrides: dict[str, Any], fragment: str) -> None:
    response = client.session.put(
        client.url("installations/dev-1"),
        data=json.dumps({**fcm_installation(), **overrides}),
        headers=client.auth({"Content-Type": "application/json"}),
    )
    assert response.status_code == 400
    assert fragment in error_detail(response)


def test_wrong_content_type_is_400(client: NhClient) -> None:
    response = client.session.put(
        client.url("installations/dev-1"),
        data=json.dumps(fcm_installation()),
        headers=client.auth({"Content-Type": "text/plain"}),
    )
    assert response.status_code == 400
    assert "Content-Type" in error_detail(response)


def test_body_over_64_kb_is_413(client: NhClient) -> None:
    installation = fcm_installation(pushVariables={"pad": "x" * (64 * 1024)})
    response = client.put_installation(installation)
    assert response.status_code == 413


def test_unknown_hub_is_404(notification_hubs_emulator: RunningNotificationHubs) -> None:
    client = NhClient(notification_hubs_emulator.connection_string, "no-such-hub")
    response = client.put_installation(fcm_installation())
    assert response.status_code == 404
    assert "no-such-hub" in error_detail(response)


def test_gcm_installations_are_stored_as_data(client: NhClient) -> None:
    response = client.put_installation(fcm_installation(platform="gcm", templates=None))
    assert response.status_code == 200
    assert client.get_installation("dev-1").json()["platform"] == "gcm"


def test_hub_created_over_http(notification_hubs_emulator: RunningNotificationHubs) -> None:
    name = f"made-over-http-{uuid.uuid4().hex[:8]}"
    url = f"{notification_hubs_emulator.base_url}/_devstack/hubs/{name}"
    first = requests.put(url, timeout=10)
    again = requests.put(url, timeout=10)
    assert (first.status_code, again.status_code) == (201, 200)
    client = NhClient(notification_hubs_emulator.connection_string, name)
    assert client.put_installation(fcm_installation()).status_code == 200
