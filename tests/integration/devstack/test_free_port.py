"""``free_port`` hands out ports a server can bind a moment later, outside the OS's ephemeral range."""

import socket

import pytest

from devstack import net

pytestmark = pytest.mark.integration


def test_free_ports_are_bindable_and_below_the_ephemeral_range() -> None:
    low = net._ephemeral_low()
    for _ in range(20):
        port = net.free_port()
        assert net.FREE_PORT_FLOOR <= port < low
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", port))


def test_a_port_in_use_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", net.free_port()))
        held.listen()
        taken = held.getsockname()[1]
        other = net.free_port()
        monkeypatch.setattr(net.random, "sample", lambda population, k: [taken, other])
        assert net.free_port() == other
