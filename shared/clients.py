"""SDK clients' shared plumbing, and the storage clients (queues, tables) built once per process.

Each call is retried in exactly one layer. The Storage SDKs retry throttling, 5xx and timeouts themselves,
but their defaults can keep a function busy for minutes (tables: 10 tries up to 120 s apart; queues: 3 tries
from 15 s), longer than the queue's visibility timeout; here they are capped to a few seconds, after which
the error reaches the host and the queue message is retried. A connection lost after a request was sent
is repeated too: the queue SDK's policy does it for every method; for table writes the delivery store asks
for it per call (:data:`CONDITIONAL_WRITE_RETRY`). Web PubSub (``retry_total=0`` in the SDK) and
Notification Hubs calls are retried by :func:`shared.retry.call_with_retry` instead.
"""

from __future__ import annotations

import logging
from typing import Any

import requests
import requests.auth
from azure.core.exceptions import AzureError
from azure.core.pipeline.transport import RequestsTransport
from azure.data.tables import TableClient, TableServiceClient
from azure.storage.queue import (
    BinaryBase64EncodePolicy,
    LinearRetry,
    QueueClient,
    TextBase64EncodePolicy,
)
from requests.adapters import HTTPAdapter

from shared.log import quiet_url_loggers
from shared.once import process_wide
from shared.settings import StorageSettings, get_settings

logger = logging.getLogger(__name__)
quiet_url_loggers()  # every SDK client of the app is built here or beside it: no user id in URL logs

# Connections kept per client: at least the invocations that can run at once (the Python worker's default
# thread pool is 32 at most; host.json allows batchSize + newBatchThreshold = 24 queue messages in flight).
# requests' default of 10 makes busy instances drop and reopen connections.
POOL_SIZE = 32


class _NoNetrc(requests.auth.AuthBase):
    """A session-wide auth that adds nothing.

    With no auth set, requests looks for ``~/.netrc`` on every request (two file checks each time), and an
    entry there for a storage or Web PubSub host would replace the Authorization header the SDK signed.
    """

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        return request


def pooled_session(pool_size: int = POOL_SIZE) -> requests.Session:
    """A requests Session that keeps up to ``pool_size`` connections per host and never reads ~/.netrc
    (proxy settings from the environment still apply)."""
    session = requests.Session()
    session.auth = _NoNetrc()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


#: Per-request timeouts of every SDK client (connect, read), as for Notification Hubs: azure-core's
#: default of 300 s each would let a hung connection hold a delivery claim far beyond its lease
#: (CLAIM_LEASE_SECONDS), after which the recovery pass would rightly send again.
SDK_TIMEOUTS = (5.0, 15.0)


def sdk_transport(pool_size: int = POOL_SIZE) -> RequestsTransport:
    """An azure-core transport over :func:`pooled_session`, for one SDK client."""
    connect, read = SDK_TIMEOUTS
    return RequestsTransport(
        session=pooled_session(pool_size), session_owner=True, connection_timeout=connect, read_timeout=read
    )


# At most 3 calls per operation, a few seconds in all.
STORAGE_RETRY_TOTAL = 2
TABLE_RETRY: dict[str, Any] = {
    "retry_total": STORAGE_RETRY_TOTAL,
    "retry_backoff_factor": 0.5,
    "retry_backoff_max": 3,
}


# Per-call option for table writes: azure-core retries a connection lost after sending only for idempotent
# methods, not for inserts (POST) and merges (PATCH/MERGE). Ours are conditional (insert-if-absent, merge
# if the ETag matches), so a repeat is safe: the caller handles the 409/412 it may answer.
CONDITIONAL_WRITE_RETRY: dict[str, Any] = {
    "retry_on_methods": frozenset(
        ["HEAD", "GET", "PUT", "DELETE", "OPTIONS", "TRACE", "POST", "PATCH", "MERGE"]
    )
}


def queue_retry_policy() -> LinearRetry:
    """The capped retry policy every QueueClient uses."""
    # Waits 0-2 s before each retry; the SDK default (ExponentialRetry) starts at 15 s.
    return LinearRetry(backoff=1, retry_total=STORAGE_RETRY_TOTAL, random_jitter_range=1)


def azure_credential(client_id: str | None) -> Any:
    """The managed identity ``client_id`` when given, else DefaultAzureCredential (system identity, dev)."""
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

    if client_id:
        return ManagedIdentityCredential(client_id=client_id)
    return DefaultAzureCredential()


def make_queue_client(storage: StorageSettings, queue_name: str, binary: bool = False) -> QueueClient:
    """A base64-encoding QueueClient (Text policy, or Binary to re-enqueue raw bodies) with capped retries."""
    policy = BinaryBase64EncodePolicy() if binary else TextBase64EncodePolicy()
    if storage.connection_string:
        return QueueClient.from_connection_string(
            storage.connection_string,
            queue_name,
            message_encode_policy=policy,
            retry_policy=queue_retry_policy(),
            transport=sdk_transport(),
        )
    assert storage.queue_service_uri is not None  # the settings guarantee it without a connection string
    return QueueClient(
        storage.queue_service_uri,
        queue_name,
        credential=azure_credential(storage.client_id),
        message_encode_policy=policy,
        retry_policy=queue_retry_policy(),
        transport=sdk_transport(),
    )


def make_table_client(storage: StorageSettings, table_name: str, create: bool = True) -> TableClient:
    """A TableClient with capped retries; ``create`` makes the table when it is missing (best effort)."""
    if storage.connection_string:
        service = TableServiceClient.from_connection_string(
            storage.connection_string, transport=sdk_transport(), **TABLE_RETRY
        )
    else:
        assert storage.table_service_uri is not None
        service = TableServiceClient(
            storage.table_service_uri,
            credential=azure_credential(storage.client_id),
            transport=sdk_transport(),
            **TABLE_RETRY,
        )
    if create:
        try:
            service.create_table_if_not_exists(table_name)
        except AzureError as exc:  # not fatal: the table may exist and creating it may simply not be allowed
            logger.warning("could not ensure table %s exists: %s", table_name, type(exc).__name__)
    return service.get_table_client(table_name)


@process_wide
def get_queue_client(queue_name: str, binary: bool = False) -> QueueClient:
    """The process-wide QueueClient for ``queue_name``, from :func:`get_settings`."""
    return make_queue_client(get_settings().storage, queue_name, binary)


@process_wide
def get_table_client(table_name: str) -> TableClient:
    """The process-wide TableClient for ``table_name``, creating the table on first use if it is missing."""
    return make_table_client(get_settings().storage, table_name)

