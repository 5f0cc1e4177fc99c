"""Which origins the local host's CORS settings allow (the ``:*`` port wildcard of ``make dev``)."""

from __future__ import annotations

import pytest

from devstack.functions_host.cors import CorsSettings
from devstack.stack import DEV_CORS


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("http://localhost:5173", True),
        ("http://localhost:8082/", True),
        ("http://localhost", True),
        ("http://127.0.0.1:3000", True),
        ("http://[::1]:8080", True),
        ("https://localhost:5173", False),  # another scheme
        ("http://localhost.evil.example:80", False),
        ("http://localhost:80.evil.example", False),
        ("http://localhost:", False),
        ("http://127.0.0.2:3000", False),
        ("https://app.example", False),
        ("null", False),
    ],
)
def test_make_dev_allows_any_port_of_the_loopback_hosts_only(origin: str, allowed: bool) -> None:
    assert CorsSettings.parse(DEV_CORS).allows(origin) is allowed


def test_exact_origins_and_the_any_origin_wildcard_keep_working() -> None:
    exact = CorsSettings.parse("https://app.example, https://admin.example/")
    assert exact.allows("https://admin.example")
    assert not exact.allows("https://app.example:8443")
    assert CorsSettings.parse("*").allows("https://anything.example")
    assert not CorsSettings.parse("").allows("http://localhost:1")
