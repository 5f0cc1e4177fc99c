"""pytest fixtures for the local stack: Azurite once per session, unique names per test.

The emulators' fixtures live beside them (``devstack.webpubsub.testing``,
``devstack.notificationhubs.testing``); tests/conftest.py loads all three modules.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
from azure.data.tables import TableClient, TableServiceClient

from devstack.azurite import RunningAzurite, start_azurite


@pytest.fixture(scope="session")
def azurite() -> Iterator[RunningAzurite]:
    """An in-memory Azurite on free ports for the whole test session."""
    running = start_azurite(in_memory=True)
    try:
        yield running
    finally:
        running.stop()


def make_unique_name(prefix: str = "t") -> str:
    """A lowercase alphanumeric name (valid for queues, tables and hubs) unique to this call."""
    cleaned = "".join(c for c in prefix.lower() if c.isalnum()) or "t"
    if not cleaned[0].isalpha():
        cleaned = "t" + cleaned
    return f"{cleaned[:20]}{uuid.uuid4().hex[:16]}"


@pytest.fixture
def unique_name() -> Callable[[str], str]:
    """A factory of names unique to this test: ``unique_name("presence") -> "presence3f2a..."``."""
    return make_unique_name


@pytest.fixture
def azurite_table(azurite: RunningAzurite) -> Iterator[TableClient]:
    """A fresh Azurite table for this test, deleted afterwards."""
    service = TableServiceClient.from_connection_string(azurite.connection_string)
    name = make_unique_name("table")
    client = service.create_table(name)
    try:
        yield client
    finally:
        service.delete_table(name)
