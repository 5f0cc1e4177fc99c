"""SAS authentication and rights of the Notification Hubs emulator, over real HTTP."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
import requests

from devstack.notificationhubs import RunningNotificationHubs
from tests.integration.devstack.nh_wire import NhClient, error_detail, parse_connection_string, sas_token

pytestmark = pytest.mark.integration


CONTRACT_VECTOR = (
    "SharedAccessSignature sr=https%3A%2F%2Fcontoso-ns.servicebus.windows.net%2F"
    "&sig=KUIbFYIVXz6P%2FhHKu9hekIhFIV94uNiVBdKRAKPHYoM%3D&se=1900000000&skn=DefaultFullSharedAccessSignature"
)


def installation(installation_id: str) -> dict[str, Any]:
    return {"installationId": installation_id, "platform": "apns", "pushChannel": "00aa11bb", "tags": ["t"]}


def put_with_token(emulator: RunningNotificationHubs, hub: str, token: str) -> requests.Response:
    installation_id = uuid.uuid4().hex
    url = f"{emulator.base_url}/{hub}/installations/{installation_id}?api-version=2020-06"
    return requests.put(url, json=installation(installation_id), headers={"Authorization": token}, timeout=10)


def full_key(emulator: RunningNotificationHubs) -> str:
    return parse_connection_string(emulator.connection_string)["sharedaccesskey"]


def test_independent_sas_implementation_matches_the_contract_vector() -> None:
    token = sas_token(
        "https://contoso-ns.servicebus.windows.net/",
        "DefaultFullSharedAccessSignature",
        "ZmFrZWtleWZha2VrZXlmYWtla2V5ZmFrZWtleTA=",
        expiry=1900000000,
    )
    assert token == CONTRACT_VECTOR


def test_emulator_token_helper_matches_the_independent_one() -> None:
    from devstack.notificationhubs import generate_sas_token

    key = "ZmFrZWtleWZha2VrZXlmYWtla2V5ZmFrZWtleTA="
    uri = "https://contoso-ns.servicebus.windows.net/"
    assert generate_sas_token(uri, "DefaultFullSharedAccessSignature", key, 1900000000) == CONTRACT_VECTOR


@pytest.mark.parametrize(
    "style",
    ["namespace-root", "dotnet-http-no-port-request-url", "sample-https-hub", "hub-uppercase-as-sent"],
)
def test_tokens_signed_the_ways_the_sdks_sign_are_accepted(
    notification_hubs_emulator: RunningNotificationHubs, nh_hub: str, style: str
) -> None:
    emulator = notification_hubs_emulator
    installation_id = uuid.uuid4().hex
    host, port = emulator.host, emulator.port
    resource = {
        "namespace-root": f"http://{host}:{port}/",
        "dotnet-http-no-port-request-url": f"http://{host}/{nh_hub}/installations/{installation_id}/",
        "sample-https-hub": f"https://{host}:{port}/{nh_hub}",
        "hub-uppercase-as-sent": f"HTTP://{host}:{port}/{nh_hub.upper()}",
    }[style]
    token = sas_token(
        resource,
        "DefaultFullSharedAccessSignature",
        full_key(emulator),
        lower=style != "hub-uppercase-as-sent",
    )
    url = f"{emulator.base_url}/{nh_hub}/installations/{installation_id}?api-version=2020-06"
    response = requests.put(
        url, json=installation(installation_id), headers={"Authorization": token}, timeout=10
    )
    assert response.status_code == 200, response.text
    assert emulator.installation(nh_hub, installation_id) is not None


def test_token_fields_in_any_order_are_accepted(
    notification_hubs_emulator: RunningNotificationHubs, nh_hub: str
) -> None:
    token = sas_token(
        notification_hubs_emulator.base_url + "/",
        "DefaultFullSharedAccessSignature",
        full_key(notification_hubs_emulator),
    )
    fields = token.removeprefix("SharedAccessSignature ").split("&")
    reordered = "SharedAccessSignature " + "&".join(reversed(fields))
    assert put_with_token(notification_hubs_emulator, nh_hub, reordered).status_code == 200


def test_expired_token_is_refused(notification_hubs_emulator: RunningNotificationHubs, nh_hub: str) -> None:
    token = sas_token(
        notification_hubs_emulator.base_url + "/",
        "DefaultFullSharedAccessSignature",
        full_key(notification_hubs_emulator),
        expiry=int(time.time()) - 5,
    )
    response = put_with_token(notification_hubs_emulator, nh_hub, token)
    assert response.status_code == 401
    assert "ExpiredToken" in error_detail(response)


def test_wrong_key_is_refused(notification_hubs_emulator: RunningNotificationHubs, nh_hub: str) -> None:
    token = sas_token(
        notification_hubs_emulator.base_url + "/", "DefaultFullSharedAccessSignature", "not-the-key"
    )
    response = put_with_token(notification_hubs_emulator, nh_hub, token)
    assert response.status_code == 401
    assert "InvalidSignature" in error_detail(response)


def test_tampered_expiry_is_refused(notification_hubs_emulator: RunningNotificationHubs, nh_hub: str) -> None:
    token = sas_token(
        notification_hubs_emulator.base_url + "/",
        "DefaultFullSharedAccessSignature",
        full_key(notification_hubs_emulator),
    )
    se = token.split("se=")[1].split("&")[0]
    forged = token.replace(f"se={se}", f"se={int(se) + 3600}")
    response = put_with_token(notification_hubs_emulator, nh_hub, forged)
    assert response.status_code == 401
    assert "InvalidSignature" in error_detail(response)


def test_unknown_key_name_is_refused(
    notification_hubs_emulator: RunningNotificationHubs, nh_hub: str
) -> None:
    token = sas_token(
        notification_hubs_emulator.base_url + "/", "SomeOtherRule", full_key(notification_hubs_emulator)
    )
    response = put_with_token(notification_hubs_emulator, nh_hub, token)
    assert response.status_code == 401
    assert "SomeOtherRule" in error_detail(response)


@pytest.mark.parametrize("which", ["other-hub", "hub-name-prefix", "other-host"])
def test_token_for_another_resource_is_refused(
    notification_hubs_emulator: RunningNotificationHubs, nh_hub: str, which: str
) -> None:
    emulator = notification_hubs_emulator
    resource = {
        "other-hub": f"{emulator.base_url}/other-{nh_hub}",
        "hub-name-prefix": f"{emulator.base_url}/{nh_hub[:-1]}",
        "other-host": f"http://localhost:{emulator.port}/",
    }[which]
    token = sas_token(resource, "DefaultFullSharedAccessSignature", full_key(emulator))
    response = put_with_token(emulator, nh_hub, token)
    assert response.status_code == 401
    assert "InvalidAudience" in error_detail(response)


@pytest.mark.parametrize("header", [None, "Bearer abc", "SharedAccessSignature sr=x&sig=y"])
def test_missing_or_malformed_authorization_is_refused(
    notification_hubs_emulator: RunningNotificationHubs, nh_hub: str, header: str | None
) -> None:
    url = f"{notification_hubs_emulator.base_url}/{nh_hub}/installations/x?api-version=2020-06"
    headers = {"Authorization": header} if header else {}
    response = requests.get(url, headers=headers, timeout=10)
    assert response.status_code == 401
    assert error_detail(response)


def test_listen_only_rule_manages_installations_but_cannot_send(
    notification_hubs_emulator: RunningNotificationHubs, nh_hub: str
) -> None:
    client = NhClient(notification_hubs_emulator.listen_connection_string, nh_hub)
    assert parse_connection_string(notification_hubs_emulator.listen_connection_string)[
        "sharedaccesskeyname"
    ] == ("DefaultListenSharedAccessSignature")
    assert client.put_installation(installation("dev-1")).status_code == 200
    assert client.get_installation("dev-1").status_code == 200
    assert (
        client.patch_installation("dev-1", [{"op": "add", "path": "/tags", "value": "x"}]).status_code == 200
    )
    response = client.send({"title": "hi"}, "template")
    assert response.status_code == 401
    assert "Send claim is required" in error_detail(response)
    assert notification_hubs_emulator.pushes(hub=nh_hub) == []
    assert client.delete_installation("dev-1").status_code == 204


def test_hub_level_connection_string_targets_its_entity_path(
    notification_hubs_emulator: RunningNotificationHubs, nh_hub: str
) -> None:
    connection_string = notification_hubs_emulator.hub_connection_string(nh_hub)
    assert connection_string.endswith(f";EntityPath={nh_hub}")
    client = NhClient(connection_string, hub="ignored")
    assert client.put_installation(installation("dev-2")).status_code == 200
    assert notification_hubs_emulator.installation(nh_hub, "dev-2") is not None


@pytest.mark.parametrize(("query", "fragment"), [("", "api-version"), ("api-version=2099-01", "2099-01")])
def test_api_version_is_required_and_checked(
    notification_hubs_emulator: RunningNotificationHubs, nh_hub: str, query: str, fragment: str
) -> None:
    client = NhClient(notification_hubs_emulator.connection_string, nh_hub)
    response = client.session.get(client.url("installations/x", query), headers=client.auth())
    assert response.status_code == 400
    assert fragment in error_detail(response)


def test_connection_string_forms(notification_hubs_emulator: RunningNotificationHubs) -> None:
    emulator = notification_hubs_emulator
    assert emulator.connection_string.startswith(f"Endpoint=http://127.0.0.1:{emulator.port}/;")
    assert emulator.sb_connection_string.startswith(f"Endpoint=sb://127.0.0.1:{emulator.port}/;")
    fields = parse_connection_string(emulator.sb_connection_string)
    assert fields["sharedaccesskeyname"] == "DefaultFullSharedAccessSignature"
    assert fields["sharedaccesskey"] == full_key(emulator)
