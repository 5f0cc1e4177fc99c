"""The floor: a bare loop doing only the calls the notifier cannot avoid, run as a child process.

``python -m bench.floor --path realtime|push --queue Q --count N`` (connection strings in the environment,
see :func:`floor_environment`) receives N messages from queue Q the way the local Functions host does
(pages of ``batch_size`` with a 10 minute visibility, a new page once no more than ``new_batch_threshold``
are in flight, the host's randomised 100 ms → ``maxPollingInterval`` back-off on empty polls), and for each
one, on ``concurrency`` worker threads, through the same SDKs as the app (with the app's storage retry caps):

* realtime: presence query (azure-data-tables) → ``send_to_user`` (azure-messaging-webpubsubservice) →
  delivery-record upsert → delete the queue message;
* push: presence query → Notification Hubs template send (requests, SAS header) → record upsert → delete.

It prints ``floor ready`` once connected, then one JSON line ``{"processed", "errors", "cpu_s"}`` with the
process CPU time from ready to the last message.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import requests
from azure.data.tables import TableServiceClient, UpdateMode
from azure.messaging.webpubsubservice import WebPubSubServiceClient
from azure.storage.queue import QueueClient, QueueMessage

from devstack.functions_host.queue_listener import MIN_POLLING_INTERVAL, PollingBackoff
from shared.clients import TABLE_RETRY, queue_retry_policy
from shared.notification_hubs import parse_connection_string, sas_token
from shared.user_keys import user_key, user_tag

READY_LINE = "floor ready"
RECEIVE_VISIBILITY_SECONDS = 600


def floor_environment(
    storage: str, webpubsub: str, notification_hubs: str, hub: str, presence_table: str, records_table: str
) -> dict[str, str]:
    """The environment variables the floor process reads."""
    return {
        "BENCH_STORAGE": storage,
        "BENCH_WEBPUBSUB": webpubsub,
        "BENCH_NOTIFICATION_HUBS": notification_hubs,
        "BENCH_HUB": hub,
        "BENCH_PRESENCE_TABLE": presence_table,
        "BENCH_RECORDS_TABLE": records_table,
    }


class FloorCalls:
    """The unavoidable calls for one message, on clients built once."""

    def __init__(self, environ: Mapping[str, str], path: str) -> None:
        storage = environ["BENCH_STORAGE"]
        tables = TableServiceClient.from_connection_string(storage, **TABLE_RETRY)  # the app's retry caps
        self._presence = tables.get_table_client(environ["BENCH_PRESENCE_TABLE"])
        tables.create_table_if_not_exists(environ["BENCH_RECORDS_TABLE"])
        self._records = tables.get_table_client(environ["BENCH_RECORDS_TABLE"])
        self._webpubsub = WebPubSubServiceClient.from_connection_string(
            environ["BENCH_WEBPUBSUB"], hub=environ["BENCH_HUB"], retry_total=0
        )
        info = parse_connection_string(environ["BENCH_NOTIFICATION_HUBS"], environ["BENCH_HUB"])
        self._nh_url = f"{info.base_url}{info.hub}/messages/"
        self._nh_auth = sas_token(info.base_url, info.key_name, info.key, int(time.time()) + 3600)
        self._http = requests.Session()
        self.handle: Callable[[dict[str, Any]], None] = (
            self._realtime if path == "realtime" else self._push
        )

    def _online(self, user_id: str) -> bool:
        rows = self._presence.query_entities(
            "PartitionKey eq @pk", parameters={"pk": user_key(user_id)}, select=["RowKey"], results_per_page=1
        )
        return next(iter(rows), None) is not None

    def _record(self, document: dict[str, Any], status: str) -> None:
        self._records.upsert_entity(
            {"PartitionKey": user_key(document["userId"]), "RowKey": document["notificationId"],
             "status": status, "at": time.time()},
            mode=UpdateMode.MERGE,
        )

    def _realtime(self, document: dict[str, Any]) -> None:
        if self._online(document["userId"]):
            envelope = {"kind": "notification", "notificationId": document["notificationId"],
                        "title": document["title"], "body": document["body"],
                        "type": document.get("type", "default"), "data": document.get("data", {})}
            self._webpubsub.send_to_user(document["userId"], envelope, content_type="application/json")
        self._record(document, "sent_realtime")

    def _push(self, document: dict[str, Any]) -> None:
        if not self._online(document["userId"]):
            properties = {"notificationId": document["notificationId"], "title": document["title"],
                          "body": document["body"], "type": document.get("type", "default"),
                          "data": json.dumps(document.get("data", {}), separators=(",", ":"))}
            response = self._http.post(
                self._nh_url,
                params={"api-version": "2020-06"},
                data=json.dumps(properties, separators=(",", ":")).encode("utf-8"),
                headers={"Authorization": self._nh_auth, "x-ms-version": "2020-06",
                         "Content-Type": "application/json;charset=utf-8",
                         "ServiceBusNotification-Format": "template",
                         "ServiceBusNotification-Tags": user_tag(document["userId"])},
                timeout=(5, 15),
            )
            response.raise_for_status()
        self._record(document, "pushed")


def run_floor(
    queue: QueueClient,
    calls: FloorCalls,
    count: int,
    concurrency: int,
    batch_size: int,
    new_batch_threshold: int,
    max_polling: timedelta,
) -> tuple[int, int]:
    """Process ``count`` messages like the host's queue listener; return (processed, errors)."""
    state = {"in_flight": 0, "done": 0, "errors": 0}
    changed = threading.Condition()

    def process(message: QueueMessage) -> None:
        failed = False
        try:
            calls.handle(json.loads(base64.b64decode(message.content)))
            queue.delete_message(message)
        except Exception:  # noqa: BLE001 - counted and reported; the benchmark flags a short delivery
            failed = True
        with changed:
            state["in_flight"] -= 1
            state["done"] += 1
            state["errors"] += int(failed)
            changed.notify_all()

    backoff = PollingBackoff(MIN_POLLING_INTERVAL, max_polling)
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="floor-worker") as pool:
        received = 0
        while received < count:
            with changed:
                changed.wait_for(lambda: state["in_flight"] <= new_batch_threshold)
            pages = queue.receive_messages(messages_per_page=batch_size,
                                           visibility_timeout=RECEIVE_VISIBILITY_SECONDS).by_page()
            messages: list[QueueMessage] = list(next(iter(pages), []))
            for message in messages:
                with changed:
                    state["in_flight"] += 1
                pool.submit(process, message)
            received += len(messages)
            if not messages:
                time.sleep(backoff.next_delay(False))
            else:
                backoff.next_delay(True)
        with changed:
            changed.wait_for(lambda: state["done"] >= received)
    return state["done"], state["errors"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the floor child process."""
    parser = argparse.ArgumentParser(prog="python -m bench.floor")
    parser.add_argument("--path", choices=("realtime", "push"), required=True)
    parser.add_argument("--queue", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=24)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--new-batch-threshold", type=int, default=8)
    parser.add_argument("--max-polling-ms", type=float, default=2000.0)
    args = parser.parse_args(argv)
    calls = FloorCalls(os.environ, args.path)
    queue = QueueClient.from_connection_string(
        os.environ["BENCH_STORAGE"], args.queue, retry_policy=queue_retry_policy()
    )
    print(READY_LINE, flush=True)
    before = os.times()
    processed, errors = run_floor(
        queue, calls, args.count, args.concurrency, args.batch_size, args.new_batch_threshold,
        timedelta(milliseconds=args.max_polling_ms),
    )
    after = os.times()
    cpu = (after.user - before.user) + (after.system - before.system)
    print(json.dumps({"processed": processed, "errors": errors, "cpu_s": cpu}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
