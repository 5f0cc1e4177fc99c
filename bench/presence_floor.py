"""The presence floor: the design this project grew from (presence check, send, log), as a child process.

``python -m bench.presence_floor --queue Q`` (settings in the environment, see
:func:`bench.floor_base.floor_environment`) reads queue Q like the Functions host and, for each message:

* ``both``: ``send_to_user`` and a Notification Hubs send;
* otherwise: presence query; online → ``send_to_user``, offline → Notification Hubs send;

then upserts a record of what it did and deletes the message. No exactly-once claim, no ack deadline, no
ack: a message redelivered sends again, and an in-app message the app never shows is lost. It is the
yardstick of what delivery costs with none of the service's guarantees.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from azure.data.tables import UpdateMode

from bench.floor_base import QueueReader, Services, add_queue_arguments, serve
from shared.user_keys import user_key


class PresenceFloor:
    """Presence check, send, log."""

    def __init__(self, services: Services) -> None:
        self._services = services

    def handle(self, document: dict[str, Any]) -> None:
        """Deliver one notification and log it."""
        if document.get("delivery") == "both":
            self._services.send_in_app(document)
            self._services.push(document)
            status = "both"
        elif self._services.online(document["userId"]):
            self._services.send_in_app(document)
            status = "sent_realtime"
        else:
            self._services.push(document)
            status = "pushed"
        self._services.records.upsert_entity(
            {"PartitionKey": user_key(document["userId"]), "RowKey": document["notificationId"],
             "status": status, "at": time.time()},
            mode=UpdateMode.MERGE,
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the presence floor process."""
    parser = argparse.ArgumentParser(prog="python -m bench.presence_floor")
    parser.add_argument("--queue", required=True)
    add_queue_arguments(parser)
    args = parser.parse_args(argv)
    services = Services(os.environ)
    floor = PresenceFloor(services)
    pool = ThreadPoolExecutor(max_workers=args.concurrency, thread_name_prefix="floor-worker")
    reader = QueueReader(services.queue(args.queue), floor.handle, pool, args.batch_size,
                         args.new_batch_threshold, timedelta(milliseconds=args.max_polling_ms))
    return serve([reader])


if __name__ == "__main__":
    sys.exit(main())
