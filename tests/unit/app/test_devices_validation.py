"""Unit tests of device registration input validation."""

from __future__ import annotations

import pytest

from notify.devices import validate_installation_id, validate_registration
from shared.errors import BadRequestError

APNS = "ab" * 32
FCM = "fGx1:APA91b" + "Z" * 140


@pytest.mark.parametrize(("platform", "expected"), [("fcmv1", "fcmv1"), ("FCM", "fcmv1"), ("apns", "apns")])
def test_platforms_are_normalised(platform: str, expected: str) -> None:
    channel = APNS if expected == "apns" else FCM
    assert validate_registration("dev-1", platform, channel).platform == expected


@pytest.mark.parametrize(
    ("installation_id", "platform", "channel", "field"),
    [
        ("", "apns", APNS, "installationId"),
        ("-leading", "apns", APNS, "installationId"),
        ("has/slash", "apns", APNS, "installationId"),
        ("x" * 129, "apns", APNS, "installationId"),
        ("dev", "gcm", FCM, "platform"),
        ("dev", None, FCM, "platform"),
        ("dev", "apns", "", "pushChannel"),
        ("dev", "apns", "ab" * 31, "pushChannel"),
        ("dev", "apns", "abc" * 23, "pushChannel"),  # odd length
        ("dev", "apns", "zz" * 32, "pushChannel"),
        ("dev", "fcmv1", "short", "pushChannel"),
        ("dev", "fcmv1", "bad token with spaces" * 3, "pushChannel"),
        ("dev", "fcmv1", 42, "pushChannel"),
    ],
)
def test_invalid_input_names_the_field(
    installation_id: str, platform: object, channel: object, field: str
) -> None:
    with pytest.raises(BadRequestError) as info:
        validate_registration(installation_id, platform, channel)
    assert info.value.field == field


def test_unsupported_platform_message_lists_supported_ones() -> None:
    with pytest.raises(BadRequestError) as info:
        validate_registration("dev", "wns", FCM)
    assert "fcmv1" in info.value.message and "apns" in info.value.message


def test_guid_installation_id_is_accepted() -> None:
    assert (
        validate_installation_id("3f2504e0-4f89-11d3-9a0c-0305e82c3301")
        == "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
    )
