"""The storage clients: capped SDK retries (counted over the wire) and working defaults against Azurite."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from aiohttp import web
from azure.core.exceptions import HttpResponseError
from azure.data.tables import TableClient
from azure.storage.queue import QueueClient

from devstack.azurite import RunningAzurite
from devstack.server_thread import ServerThread
from shared.clients import STORAGE_RETRY_TOTAL, make_queue_client, make_table_client
from shared.settings import StorageSettings

ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


class AlwaysBusy:
    """A storage endpoint that answers every request with ``status`` (after ``delay``), counting requests and
    the client ports they came from."""

    def __init__(self, status: int = 503, delay: float = 0.0) -> None:
        self.requests = 0
        self.client_ports: set[int] = set()
        self.status = status
        self.delay = delay
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.server = ServerThread(app)

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        peer = request.transport.get_extra_info("peername") if request.transport else None
        if peer:
            self.client_ports.add(peer[1])
        await asyncio.sleep(self.delay)
        return web.Response(status=self.status, text="busy")

    def storage(self) -> StorageSettings:
        port = self.server.start()
        endpoint = f"http://127.0.0.1:{port}/devstoreaccount1"
        return StorageSettings(
            connection_string=(
                f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={ACCOUNT_KEY};"
                f"QueueEndpoint={endpoint};TableEndpoint={endpoint};"
            )
        )


@pytest.fixture
def busy() -> Iterator[AlwaysBusy]:
    server = AlwaysBusy()
    yield server
    server.server.stop()


def test_table_calls_are_retried_a_bounded_number_of_times(busy: AlwaysBusy) -> None:
    table = make_table_client(busy.storage(), "t", create=False)
    with pytest.raises(HttpResponseError):
        table.upsert_entity({"PartitionKey": "p", "RowKey": "r"})
    assert busy.requests == 1 + STORAGE_RETRY_TOTAL


def test_queue_calls_are_retried_a_bounded_number_of_times(busy: AlwaysBusy) -> None:
    queue = make_queue_client(busy.storage(), "q")
    with pytest.raises(HttpResponseError):
        queue.send_message("x")
    assert busy.requests == 1 + STORAGE_RETRY_TOTAL


def test_clients_create_the_table_and_base64_encode_messages(
    azurite: RunningAzurite, unique_name: Callable[[str], str]
) -> None:
    storage = StorageSettings(connection_string=azurite.connection_string)
    name = unique_name("tbl")
    table = make_table_client(storage, name)
    table.upsert_entity({"PartitionKey": "p", "RowKey": "r", "v": 1})
    assert table.get_entity("p", "r")["v"] == 1

    queue = make_queue_client(storage, unique_name("q"))
    queue.create_queue()
    queue.send_message('{"a": 1}')
    raw = make_queue_client(storage, queue.queue_name, binary=True)
    raw.send_message(b"\xff\x00")
    plain = QueueClient.from_connection_string(azurite.connection_string, queue.queue_name)
    bodies = [base64.b64decode(m.content) for m in plain.receive_messages(max_messages=2)]
    assert sorted(bodies) == sorted([b'{"a": 1}', b"\xff\x00"])


def test_a_client_keeps_a_connection_for_each_concurrent_invocation() -> None:
    server = AlwaysBusy(status=404, delay=0.3)
    try:
        table = make_table_client(server.storage(), "t", create=False)
        in_flight = 24  # host.json batchSize + newBatchThreshold

        def read(_: int) -> None:
            with pytest.raises(HttpResponseError):
                table.get_entity("p", "r")

        with ThreadPoolExecutor(in_flight) as pool:
            for _ in range(2):  # the second round reuses the first round's connections
                list(pool.map(read, range(in_flight)))
        assert server.requests == 2 * in_flight
        # requests' default pool (10) would discard 14 connections after the first round and open new ones.
        assert len(server.client_ports) <= in_flight
    finally:
        server.server.stop()


def test_a_netrc_entry_for_the_storage_host_does_not_replace_the_signed_header(
    azurite: RunningAzurite,
    unique_name: Callable[[str], str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """requests applies ~/.netrc credentials when a session has no auth of its own, over the Authorization
    header the SDK signed; the app's clients carry a session auth, so they neither read the file nor lose
    the signature (and skip the file checks on every request)."""
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine 127.0.0.1 login mallory password guessed\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("NETRC", raising=False)
    name = unique_name("netrc")
    plain = TableClient.from_connection_string(azurite.connection_string, name)
    with pytest.raises(HttpResponseError) as refused:  # the SDK's default session sends mallory's Basic auth
        plain.create_table()
    assert refused.value.status_code == 403
    table = make_table_client(StorageSettings(connection_string=azurite.connection_string), name)
    table.create_entity({"PartitionKey": "p", "RowKey": "r"})
    assert table.get_entity("p", "r")["RowKey"] == "r"
