"""Pure logic of the local host's queue listener: body decoding and polling back-off."""

from __future__ import annotations

from datetime import timedelta

import pytest

from devstack.functions_host.queue_listener import PollingBackoff, decode_body
from devstack.functions_host.settings_loader import QueueConfigurationError, connection_string_for


def test_base64_bodies_are_decoded() -> None:
    assert decode_body("aGVsbG8=", "base64") == b"hello"


@pytest.mark.parametrize("raw", ["not base64!", "aGVsbG8", "héllo"])
def test_invalid_base64_is_reported_as_undecodable(raw: str) -> None:
    assert decode_body(raw, "base64") is None


def test_encoding_none_passes_text_through() -> None:
    assert decode_body("not base64!", "none") == b"not base64!"


def test_backoff_grows_to_the_maximum_and_resets_on_messages() -> None:
    backoff = PollingBackoff(timedelta(milliseconds=100), timedelta(seconds=1))
    delays = [backoff.next_delay(False) for _ in range(8)]
    assert delays[0] <= 0.12
    assert delays[-1] == pytest.approx(1.0, rel=0.2)
    assert all(0.1 <= d <= 1.0 for d in delays)
    assert backoff.next_delay(True) == pytest.approx(0.1)
    assert backoff.next_delay(False) <= 0.12


def test_connection_defaults_to_azurewebjobsstorage() -> None:
    assert connection_string_for({}, {"AzureWebJobsStorage": "cs"}) == "cs"
    assert connection_string_for({"connection": "Other"}, {"Other": "x"}) == "x"


def test_missing_or_identity_connection_is_explained() -> None:
    with pytest.raises(QueueConfigurationError, match="'Storage'"):
        connection_string_for({"connection": "Storage"}, {})
    with pytest.raises(QueueConfigurationError, match="identity-based"):
        connection_string_for({"connection": "Storage"}, {"Storage__queueServiceUri": "https://x"})
