"""What both floors share: the host's way of reading a queue, the child-process protocol, the SDK calls.

A floor is a child process (like the Functions host) that reads its own queues and delivers through the
same SDKs as the app, with the app's retry caps:

* :class:`QueueReader` receives pages of ``batch_size`` messages with a 10 minute visibility, fetches the
  next page once no more than ``new_batch_threshold`` are in flight, backs off from 100 ms to
  ``maxPollingInterval`` on empty polls (the host's randomised back-off), runs each message on a worker
  thread shared by every queue of the process, deletes it when handled, and otherwise makes it visible
  again after 5 s (host.json ``visibilityTimeout``), as the host does with a failed invocation;
* :func:`serve` prints ``floor ready <webhook port or 0>``, runs until its stdin is closed, then prints one
  JSON line ``{"processed": {queue: n}, "errors": n, "error_types": {exception name: n}}``;
* :class:`Services` holds the clients: the presence query (azure-data-tables), ``send_to_user``
  (azure-messaging-webpubsubservice) and the Notification Hubs template send (requests with a SAS header),
  each over the app's own HTTP plumbing (:func:`shared.clients.sdk_transport`: a pool as large as the worker
  threads, no ``~/.netrc`` lookup per request), so that a floor pays no connection churn the app does not.

Connection strings and names come from the environment (:func:`floor_environment`).
"""

from __future__ import annotations

import base64
import contextlib
import json
import sys
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from azure.core.exceptions import ResourceExistsError
from azure.data.tables import TableClient, TableServiceClient
from azure.messaging.webpubsubservice import WebPubSubServiceClient
from azure.storage.queue import QueueClient, QueueMessage, TextBase64EncodePolicy

from devstack.functions_host.queue_listener import MIN_POLLING_INTERVAL, PollingBackoff
from notify.push_templates import notification_tags
from notify.user_rows import user_connections_query
from shared.clients import TABLE_RETRY, pooled_session, queue_retry_policy, sdk_transport
from shared.notification_hubs import parse_connection_string, sas_token
from shared.user_keys import user_tag

READY_PREFIX = "floor ready"
RECEIVE_VISIBILITY_SECONDS = 600
RETRY_VISIBILITY_SECONDS = 5  # host.json visibilityTimeout: a failed message comes back this much later

Handler = Callable[[dict[str, Any]], None]


def floor_environment(
    storage: str, webpubsub: str, notification_hubs: str, hub: str, presence_table: str, records_table: str
) -> dict[str, str]:
    """The environment variables a floor process reads."""
    return {
        "BENCH_STORAGE": storage,
        "BENCH_WEBPUBSUB": webpubsub,
        "BENCH_NOTIFICATION_HUBS": notification_hubs,
        "BENCH_HUB": hub,
        "BENCH_PRESENCE_TABLE": presence_table,
        "BENCH_RECORDS_TABLE": records_table,
    }


def envelope(document: Mapping[str, Any]) -> dict[str, Any]:
    """The in-app message, as the app sends it (the benchmark's clients ack ``kind == notification``)."""
    return {
        "kind": "notification",
        "notificationId": document["notificationId"],
        "title": document["title"],
        "body": document["body"],
        "type": document.get("type", "default"),
        "data": document.get("data", {}),
    }


class Services:
    """The clients a floor delivers through, built once per process."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.storage = environ["BENCH_STORAGE"]
        tables = TableServiceClient.from_connection_string(
            self.storage, transport=sdk_transport(), **TABLE_RETRY
        )  # the app's retry caps
        self._presence = tables.get_table_client(environ["BENCH_PRESENCE_TABLE"])
        tables.create_table_if_not_exists(environ["BENCH_RECORDS_TABLE"])
        self.records: TableClient = tables.get_table_client(environ["BENCH_RECORDS_TABLE"])
        self._webpubsub = WebPubSubServiceClient.from_connection_string(
            environ["BENCH_WEBPUBSUB"], hub=environ["BENCH_HUB"], retry_total=0, transport=sdk_transport()
        )
        info = parse_connection_string(environ["BENCH_NOTIFICATION_HUBS"], environ["BENCH_HUB"])
        self._nh_url = f"{info.base_url}{info.hub}/messages/"
        self._nh_auth = sas_token(info.base_url, info.key_name, info.key, int(time.time()) + 3600)
        self._http = pooled_session()

    def queue(self, name: str) -> QueueClient:
        """A base64-encoding client for queue ``name`` (created if missing) with the app's retry caps."""
        client = QueueClient.from_connection_string(
            self.storage,
            name,
            retry_policy=queue_retry_policy(),
            message_encode_policy=TextBase64EncodePolicy(),
            transport=sdk_transport(),
        )
        with contextlib.suppress(ResourceExistsError):
            client.create_queue()
        return client

    def online(self, user_id: str) -> bool:
        """True when the app holds a connection row for the user (one query, DEVICES_TABLE)."""
        query, parameters = user_connections_query(user_id)
        rows = self._presence.query_entities(
            query, parameters=parameters, select=["RowKey"], results_per_page=1
        )
        return next(iter(rows), None) is not None

    def send_in_app(self, document: Mapping[str, Any]) -> None:
        """``send_to_user`` of the envelope (one Web PubSub REST call)."""
        self._webpubsub.send_to_user(document["userId"], envelope(document), content_type="application/json")

    def push(self, document: Mapping[str, Any]) -> None:
        """A template send to the user's tag (one Notification Hubs call); raises on a non-2xx answer."""
        properties = {
            "notificationId": document["notificationId"],
            "title": document["title"],
            "body": document["body"],
            "type": document.get("type", "default"),
            "data": json.dumps(document.get("data", {}), separators=(",", ":")),
        }
        response = self._http.post(
            self._nh_url,
            params={"api-version": "2020-06"},
            data=json.dumps(properties, separators=(",", ":")).encode("utf-8"),
            headers={
                "Authorization": self._nh_auth,
                "x-ms-version": "2020-06",
                "Content-Type": "application/json;charset=utf-8",
                "ServiceBusNotification-Format": "template",
                # The notification template only, as the app sends (not the retract template).
                "ServiceBusNotification-Tags": notification_tags(user_tag(document["userId"])),
            },
            timeout=(5, 15),
        )
        response.raise_for_status()


class QueueReader:
    """Reads one queue like the host's queue listener until :meth:`stop` (see the module docstring)."""

    def __init__(
        self,
        queue: QueueClient,
        handle: Handler,
        pool: ThreadPoolExecutor,
        batch_size: int,
        new_batch_threshold: int,
        max_polling: timedelta,
    ) -> None:
        self.queue = queue
        self._handle = handle
        self._pool = pool
        self._batch_size = batch_size
        self._threshold = new_batch_threshold
        self._backoff = PollingBackoff(MIN_POLLING_INTERVAL, max_polling)
        self._changed = threading.Condition()
        self._in_flight = 0
        self.processed = 0
        self.errors = 0
        self.error_types: dict[str, int] = {}
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"floor-{queue.queue_name}", daemon=True)

    def start(self) -> QueueReader:
        """Start polling in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop polling and wait for the messages in flight."""
        self._stopping.set()
        self._thread.join(30)
        with self._changed:
            self._changed.wait_for(lambda: self._in_flight == 0, timeout=30)

    def _run(self) -> None:
        while not self._stopping.is_set():
            with self._changed:
                self._changed.wait_for(lambda: self._in_flight <= self._threshold or self._stopping.is_set())
            try:
                pages = self.queue.receive_messages(
                    messages_per_page=self._batch_size, visibility_timeout=RECEIVE_VISIBILITY_SECONDS
                ).by_page()
                messages: list[QueueMessage] = list(next(iter(pages), []))
            except Exception:  # noqa: BLE001 - a failed poll is retried after the back-off, as by the host
                messages = []
            for message in messages:
                with self._changed:
                    self._in_flight += 1
                self._pool.submit(self._process, message)
            delay = self._backoff.next_delay(bool(messages))
            if not messages:
                self._stopping.wait(delay)

    def _process(self, message: QueueMessage) -> None:
        failed = ""
        try:
            self._handle(json.loads(base64.b64decode(message.content)))
            self.queue.delete_message(message)
        except Exception as exc:  # noqa: BLE001 - like a failed invocation: the message comes back later
            failed = type(exc).__name__
            # If this fails too, the message comes back after the receive visibility instead.
            with contextlib.suppress(Exception):
                self.queue.update_message(message, visibility_timeout=RETRY_VISIBILITY_SECONDS)
        with self._changed:
            self._in_flight -= 1
            self.processed += int(not failed)
            self.errors += int(bool(failed))
            if failed:
                self.error_types[failed] = self.error_types.get(failed, 0) + 1
            self._changed.notify_all()


def serve(readers: list[QueueReader], webhook_port: int = 0) -> int:
    """Print the ready line, poll until stdin closes, stop, print the JSON result line; exit code 0."""
    print(f"{READY_PREFIX} {webhook_port}", flush=True)
    for reader in readers:
        reader.start()
    sys.stdin.read()  # the benchmark closes our stdin when the phase is over
    for reader in readers:
        reader.stop()
    error_types: dict[str, int] = {}
    for reader in readers:
        for name, count in reader.error_types.items():
            error_types[name] = error_types.get(name, 0) + count
    print(
        json.dumps(
            {
                "processed": {r.queue.queue_name: r.processed for r in readers},
                "errors": sum(r.errors for r in readers),
                "error_types": error_types,
            }
        ),
        flush=True,
    )
    return 0


def add_queue_arguments(parser: Any) -> None:
    """The host's queue settings as command-line options."""
    parser.add_argument("--concurrency", type=int, default=32, help="worker threads (the host's pool)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--new-batch-threshold", type=int, default=8)
    parser.add_argument("--max-polling-ms", type=float, default=2000.0)
