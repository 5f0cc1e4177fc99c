"""Unit tests of the Notification Hubs client's pure parts: connection strings and SAS tokens."""

from __future__ import annotations

import pytest

from shared.errors import ConfigurationError
from shared.notification_hubs import NotificationHubsClient, parse_connection_string, sas_token

KEY = "ZmFrZWtleWZha2VrZXlmYWtla2V5ZmFrZWtleTA="


def test_sas_token_matches_contracts_test_vector() -> None:
    expected = (
        "SharedAccessSignature sr=https%3A%2F%2Fcontoso-ns.servicebus.windows.net%2F"
        "&sig=KUIbFYIVXz6P%2FhHKu9hekIhFIV94uNiVBdKRAKPHYoM%3D&se=1900000000&skn=DefaultFullSharedAccessSignature"
    )
    token = sas_token(
        "https://contoso-ns.servicebus.windows.net/", "DefaultFullSharedAccessSignature", KEY, 1900000000
    )
    assert token == expected


def test_sb_endpoint_becomes_https_and_entity_path_is_the_hub() -> None:
    info = parse_connection_string(
        f"Endpoint=sb://contoso-ns.servicebus.windows.net/;SharedAccessKeyName=Full;"
        f"SharedAccessKey={KEY};EntityPath=myhub"
    )
    assert info.base_url == "https://contoso-ns.servicebus.windows.net/"
    assert info.key == KEY  # the trailing '=' survives: split on the first '=' only
    assert info.key_name == "Full"
    assert info.hub == "myhub"


def test_key_names_match_exactly_and_case_insensitively() -> None:
    # SharedAccessKey is a prefix of SharedAccessKeyName; order must not matter.
    info = parse_connection_string(
        f"sharedaccesskey={KEY};ENDPOINT=http://127.0.0.1:1234;SHAREDACCESSKEYNAME=Listen", hub_name="h"
    )
    assert (info.base_url, info.key_name, info.key, info.hub) == (
        "http://127.0.0.1:1234/",
        "Listen",
        KEY,
        "h",
    )


def test_entity_path_wins_over_hub_name() -> None:
    info = parse_connection_string(
        f"Endpoint=https://ns/;SharedAccessKeyName=r;SharedAccessKey={KEY};EntityPath=fromstring",
        "fromconfig",
    )
    assert info.hub == "fromstring"


@pytest.mark.parametrize(
    ("connection_string", "setting"),
    [
        (f"Endpoint=sb://ns/;SharedAccessKeyName=r;SharedAccessKey={KEY}", "NOTIFICATION_HUB_NAME"),
        ("Endpoint=sb://ns/;SharedAccessKeyName=r", "NOTIFICATION_HUBS_CONNECTION_STRING"),
        (
            f"Endpoint=ftp://ns/;SharedAccessKeyName=r;SharedAccessKey={KEY};EntityPath=h",
            "NOTIFICATION_HUBS_CONNECTION_STRING",
        ),
        ("garbage", "NOTIFICATION_HUBS_CONNECTION_STRING"),
    ],
)
def test_bad_connection_strings_name_the_setting(connection_string: str, setting: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_connection_string(connection_string)
    assert info.value.setting == setting


def test_token_is_cached_until_five_minutes_before_expiry() -> None:
    now = [1_000_000.0]
    client = NotificationHubsClient(
        f"Endpoint=sb://ns.example/;SharedAccessKeyName=r;SharedAccessKey={KEY};EntityPath=h",
        clock=lambda: now[0],
    )
    first = client._tokens.get()
    assert "se=1003600" in first
    now[0] += 3600 - 301
    assert client._tokens.get() == first
    now[0] += 2
    renewed = client._tokens.get()
    assert renewed != first
    assert f"se={int(now[0]) + 3600}" in renewed
    client.close()
