"""Small networking helpers shared by the emulators, the launchers and the tests."""

from __future__ import annotations

import random
import socket
import time
from pathlib import Path

#: Ports handed out by :func:`free_port` start here (above every fixed port of ``make dev``).
FREE_PORT_FLOOR = 15000
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on ``host`` right now, for a server that binds it a moment later.

    Why not simply the OS's pick: a port bound with 0 comes from the ephemeral range, which every other
    socket that binds 0 (Azurite and the emulators of a parallel test worker, each outgoing connection)
    draws from too, so it can be taken between this call and the server's bind ("address already in use").
    A random port below the ephemeral range is only ever taken by another explicit bind.
    """
    low, high = FREE_PORT_FLOOR, _ephemeral_low()
    if high - low >= 1000:
        for port in random.sample(range(low, high), 50):
            if _bindable(host, port):
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _ephemeral_low() -> int:
    """The first port of the OS's ephemeral range (Linux; the IANA range's start elsewhere)."""
    try:
        return int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 49152


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def port_is_open(host: str, port: int) -> bool:
    """Return True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, timeout: float = 30.0) -> None:
    """Block until ``host:port`` accepts connections; raise TimeoutError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_is_open(host, port):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing answered on {host}:{port} within {timeout:.0f} s")
