"""Pytest fixtures: one emulator per test session and a fresh uuid hub per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from devstack.notificationhubs.emulator import RunningNotificationHubs, start_notification_hubs_emulator


@pytest.fixture(scope="session")
def notification_hubs_emulator() -> Iterator[RunningNotificationHubs]:
    """A plain-HTTP emulator on a free 127.0.0.1 port for the whole session (default hub ``notify``)."""
    emulator = start_notification_hubs_emulator()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def nh_hub(notification_hubs_emulator: RunningNotificationHubs) -> Iterator[str]:
    """A new hub with a unique name; faults are cleared and its pushes forgotten after the test."""
    name = f"hub-{uuid.uuid4().hex[:12]}"
    notification_hubs_emulator.create_hub(name)
    try:
        yield name
    finally:
        notification_hubs_emulator.clear_faults()
        notification_hubs_emulator.clear_pushes(name)
