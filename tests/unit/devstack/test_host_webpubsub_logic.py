"""Pure logic of the local host's Web PubSub trigger: signatures, connection strings, validation."""

from __future__ import annotations

import pytest

from devstack.functions_host.indexing import IndexedFunction, IndexingError
from devstack.functions_host.webpubsub_trigger import (
    ValidationOptions,
    build_listeners,
    compute_signature,
    listener_key,
    parse_connection_string,
)


def test_signature_matches_the_contract_test_vector() -> None:
    assert (
        compute_signature("fakeAccessKey123", "0f9c97a2f0bf4706afe87a14e0797b11")
        == "sha256=b10a9cc89ec16336043e1f0ad93c17e895ef17df694131ad1ceb4198a28b73bc"
    )


def test_connection_string_gives_host_and_key() -> None:
    assert parse_connection_string("Endpoint=https://Demo.webpubsub.azure.com;AccessKey=k1;Version=1.0;") == (
        "demo.webpubsub.azure.com",
        "k1",
    )
    assert parse_connection_string("Endpoint=http://localhost;Port=8080;AccessKey=k") == ("localhost", "k")
    with pytest.raises(ValueError):
        parse_connection_string("AccessKey=k")


def test_validation_accepts_any_listed_signature_case_insensitively() -> None:
    options = ValidationOptions.from_connection_strings(["Endpoint=https://a.example;AccessKey=key"])
    good = compute_signature("key", "cid").upper().replace("SHA256=", "sha256=")
    assert options.signature_is_valid(["a.example"], "cid", f"sha256=00,{good}")
    assert not options.signature_is_valid(["a.example"], "cid", "sha256=00")
    assert not options.signature_is_valid(["a.example"], "cid", None)
    assert not options.signature_is_valid(["other.example"], "cid", good)


def test_validation_is_skipped_without_connection_or_without_key() -> None:
    assert ValidationOptions.from_connection_strings([""]).signature_is_valid(["x"], "cid", None)
    keyless = ValidationOptions.from_connection_strings(["Endpoint=https://a.example"])
    assert keyless.signature_is_valid(["a.example"], "cid", None)


def test_listener_key_is_case_insensitive() -> None:
    assert listener_key("Notify", "System", "Connect") == listener_key("notify", "system", "connect")


def _wps_function(name: str, **trigger: object) -> IndexedFunction:
    binding = {"direction": "IN", "type": "webPubSubTrigger", "name": "request", **trigger}
    return IndexedFunction(name=name, function_id=f"id-{name}", trigger=binding, bindings=[binding])


@pytest.mark.parametrize(
    ("entry", "settings", "expected"),
    [
        ("Endpoint=https://lit.example;AccessKey=k", {}, {"lit.example": "k"}),
        ("MY_WPS", {"MY_WPS": "Endpoint=https://named.example;AccessKey=n"}, {"named.example": "n"}),
        ("MY_WPS", {"MY_WPS__serviceUri": "https://mi.example"}, {"mi.example": None}),
        ("MISSING", {}, {}),
    ],
)
def test_connections_entries_are_connection_strings_or_setting_names(
    entry: str, settings: dict[str, str], expected: dict[str, str | None]
) -> None:
    listeners, _ = build_listeners(
        [_wps_function("f", hub="h", eventType="system", eventName="connect", connections=[entry])], settings
    )
    assert dict(listeners[listener_key("h", "system", "connect")].validation.keys_by_host) == expected


def test_hub_falls_back_to_the_webpubsubhub_setting_and_duplicates_fail() -> None:
    function = _wps_function("f", eventType="user", eventName="message")
    listeners, _ = build_listeners([function], {"WebPubSubHub": "Global"})
    assert list(listeners) == [listener_key("global", "user", "message")]
    with pytest.raises(IndexingError, match="Duplicated"):
        build_listeners(
            [function, _wps_function("g", eventType="user", eventName="MESSAGE")], {"WebPubSubHub": "g"}
        )
