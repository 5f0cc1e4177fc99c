"""The Azurite launcher: starts on free ports, serves queues and tables, stops without leftovers."""

from __future__ import annotations

import pytest
from azure.data.tables import TableServiceClient
from azure.storage.queue import QueueServiceClient

from devstack.azurite import start_azurite
from devstack.net import port_is_open

pytestmark = pytest.mark.integration


def test_session_azurite_serves_queues_and_tables(azurite, unique_name) -> None:
    queue = QueueServiceClient.from_connection_string(azurite.connection_string).get_queue_client(
        unique_name("q")
    )
    queue.create_queue()
    queue.send_message("hello")
    assert [m.content for m in queue.receive_messages()] == ["hello"]

    table = TableServiceClient.from_connection_string(azurite.connection_string).create_table(
        unique_name("t")
    )
    table.create_entity({"PartitionKey": "p", "RowKey": "r", "n": 3})
    assert table.get_entity("p", "r")["n"] == 3


def test_persistent_azurite_keeps_data_across_restarts_and_stops_cleanly(tmp_path, unique_name) -> None:
    name = unique_name("t")
    first = start_azurite(location=tmp_path, in_memory=False)
    try:
        TableServiceClient.from_connection_string(first.connection_string).create_table(name).create_entity(
            {"PartitionKey": "p", "RowKey": "r"}
        )
    finally:
        first.stop()
    assert not port_is_open(first.host, first.table_port)
    assert first.process.returncode is not None

    second = start_azurite(location=tmp_path, in_memory=False)
    try:
        table = TableServiceClient.from_connection_string(second.connection_string).get_table_client(name)
        assert table.get_entity("p", "r")["RowKey"] == "r"
    finally:
        second.stop()
    assert tmp_path.exists()  # a caller's data folder is never removed


def test_a_busy_port_is_reported(azurite) -> None:
    with pytest.raises(RuntimeError, match="Azurite exited"):
        start_azurite(queue_port=azurite.queue_port, timeout=20)
