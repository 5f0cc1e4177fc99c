"""SAS parsing, signing and resource matching of the Notification Hubs emulator (pure logic)."""

from __future__ import annotations

import pytest

from devstack.notificationhubs.sas import (
    LISTEN,
    SEND,
    AccessRule,
    SasError,
    authorize,
    generate_sas_token,
    parse_sas_token,
    resource_covers,
)

KEY = "ZmFrZWtleWZha2VrZXlmYWtla2V5ZmFrZWtleTA="
RULES = {
    "Full": AccessRule("Full", KEY, frozenset({LISTEN, SEND})),
    "Listen": AccessRule("Listen", "listen-key", frozenset({LISTEN})),
}


def test_contract_test_vector() -> None:
    token = generate_sas_token(
        "https://contoso-ns.servicebus.windows.net/", "DefaultFullSharedAccessSignature", KEY, 1900000000
    )
    assert token == (
        "SharedAccessSignature sr=https%3A%2F%2Fcontoso-ns.servicebus.windows.net%2F"
        "&sig=KUIbFYIVXz6P%2FhHKu9hekIhFIV94uNiVBdKRAKPHYoM%3D&se=1900000000&skn=DefaultFullSharedAccessSignature"
    )


def test_parse_accepts_any_field_order() -> None:
    token = parse_sas_token("SharedAccessSignature skn=R&se=5&sig=a%2Fb&sr=http%3A%2F%2Fh%2F")
    assert (token.key_name, token.expiry, token.signature, token.resource) == ("R", 5, "a/b", "http://h/")
    assert token.resource_as_sent == "http%3A%2F%2Fh%2F"


@pytest.mark.parametrize(
    ("resource", "url", "covered"),
    [
        ("https://ns/", "http://ns:8080/hub/messages", True),
        ("http://ns/hub/messages/", "https://ns/hub/messages?api-version=2020-06", True),
        ("https://NS/Hub", "http://ns:1/hub/installations/x", True),
        ("https://ns/hub", "http://ns/hub2/messages", False),
        ("https://ns/hub/installations/a", "http://ns/hub/installations/b", False),
        ("https://other/", "http://ns/hub", False),
    ],
)
def test_resource_prefix_ignores_scheme_port_case(resource: str, url: str, covered: bool) -> None:
    assert resource_covers(resource, url) is covered


def test_authorize_checks_signature_expiry_audience_and_rights() -> None:
    url = "http://127.0.0.1:9/hub/messages"
    good = generate_sas_token("http://127.0.0.1/", "Full", KEY, 2000)
    assert authorize(good, url, RULES, SEND, now=1000).name == "Full"
    with pytest.raises(SasError, match="ExpiredToken"):
        authorize(good, url, RULES, SEND, now=3000)
    with pytest.raises(SasError, match="InvalidSignature"):
        authorize(generate_sas_token("http://127.0.0.1/", "Full", "wrong", 2000), url, RULES, SEND, now=1000)
    with pytest.raises(SasError, match="InvalidAudience"):
        authorize(generate_sas_token("http://127.0.0.1/other", "Full", KEY, 2000), url, RULES, SEND, now=1000)
    listen = generate_sas_token("http://127.0.0.1/", "Listen", "listen-key", 2000)
    assert authorize(listen, url, RULES, LISTEN, now=1000).name == "Listen"
    with pytest.raises(SasError, match="Send claim is required"):
        authorize(listen, url, RULES, SEND, now=1000)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer x",
        "SharedAccessSignature sr=a&sig=b&se=1",
        "SharedAccessSignature sr=a&sig=b&se=x&skn=c",
    ],
)
def test_malformed_headers(header: str | None) -> None:
    with pytest.raises(SasError):
        parse_sas_token(header)
