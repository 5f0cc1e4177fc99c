"""Pytest fixture for the Web PubSub emulator (``pytest_plugins = ["devstack.webpubsub.testing"]``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.webpubsub.running import RunningWebPubSub, start_webpubsub_emulator


@pytest.fixture(scope="session")
def webpubsub_emulator() -> Iterator[RunningWebPubSub]:
    """One emulator for the session on a free port with a random key; use a uuid hub name per test."""
    emulator = start_webpubsub_emulator()
    try:
        yield emulator
    finally:
        emulator.stop()
