"""The guarantee floor: the simplest code that gives the service's guarantees, as a child process.

Never lost, never sent twice on a channel (but for a crash between a send and its sent mark), in-app when
the user is online with a push if the app does not ack in time, push at once when offline. Per message:

1. ``auto``: presence query (online → in-app, offline → push); ``both``: both channels;
2. **claimed insert**: one row per (user, notificationId) created with its channels already claimed (and a
   claim id, so an insert the SDK repeated after a lost answer is recognised as its own); a redelivered or
   re-sent message meets 409 and reads the row to finish only what is unfinished (a claim that is not sent
   after its lease is taken over; a live one makes the message come back later);
3. **the send**, then **the sent mark** (a blind merge of ``<channel>SentAt``: only the claim holder writes
   it, so no ETag is needed);
4. ``auto`` in-app: **an ack deadline**, a message on the deadlines queue visible after the ack timeout.

An ack event is **one ack write**: a blind merge of ``ackedAt`` (404, an unknown notification, is ignored).
**The deadline check** reads the row: acked or pushed → done; else claim the push with the ETag it read (two
deadline handlers cannot both win), push, mark it sent. Nothing else: no validation, status strings, logs
or device index.

``python -m bench.guarantee_floor --queue Q --deadlines D --ack-timeout S`` (settings in the environment,
see :func:`bench.floor_base.floor_environment`) serves acks on a webhook (its port in the ready line).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode
from azure.storage.queue import QueueClient

from bench.floor_base import QueueReader, Services, add_queue_arguments, serve
from shared.clients import CONDITIONAL_WRITE_RETRY
from shared.user_keys import user_key

LEASE_SECONDS = 60.0  # as the notifier's claims (CLAIM_LEASE_SECONDS)


class Busy(Exception):
    """Another handler holds a live claim: the message comes back and looks again."""


class GuaranteeFloor:
    """Claimed insert, send, sent mark, ack deadline, one ack write, deadline check."""

    def __init__(self, services: Services, deadlines: QueueClient, ack_timeout: int) -> None:
        self._services = services
        self._rows = services.records
        self._deadlines = deadlines
        self._ack_timeout = ack_timeout

    def notification(self, document: dict[str, Any]) -> None:
        """A message of the notifications queue."""
        mode = document.get("delivery", "auto")
        if mode == "auto":
            channels = ["realtime" if self._services.online(document["userId"]) else "push"]
        else:
            channels = ["realtime", "push"] if mode == "both" else [mode]
        now, claim = time.time(), uuid.uuid4().hex
        row = {
            **_keys(document),
            "document": json.dumps(document),
            "claim": claim,
            **{f"{c}ClaimedAt": now for c in channels},
        }
        try:
            self._rows.create_entity(row, **CONDITIONAL_WRITE_RETRY)
        except ResourceExistsError:
            entity = self._rows.get_entity(**_key_args(document))
            if entity.get("claim") != claim:  # else our own insert, repeated by the SDK after a lost answer
                self._finish(document, dict(entity), str(entity.metadata["etag"]))
                return
        for channel in channels:
            self._send(document, channel)
        if mode == "auto" and channels == ["realtime"]:
            self._deadline(document)

    def _finish(self, document: dict[str, Any], row: dict[str, Any], etag: str) -> None:
        """A message seen again: send what was claimed and not sent (after the lease), renew the deadline."""
        for channel in ("realtime", "push"):
            claimed = float(row.get(f"{channel}ClaimedAt", 0))
            if not claimed or row.get(f"{channel}SentAt"):
                continue
            if time.time() - claimed < LEASE_SECONDS:
                raise Busy(channel)
            row, etag = self._claim(row, etag, channel)
            self._send(document, channel)
        waiting = not row.get("ackedAt") and not row.get("pushSentAt")
        if document.get("delivery", "auto") == "auto" and row.get("realtimeSentAt") and waiting:
            self._deadline(document)  # the first handler may have died before enqueueing it

    def deadline(self, document: dict[str, Any]) -> None:
        """A message of the deadlines queue: push unless acked or pushed."""
        try:
            row = self._rows.get_entity(**_key_args(document))
        except ResourceNotFoundError:
            return
        if row.get("ackedAt") or row.get("pushSentAt"):
            return
        if time.time() - float(row.get("pushClaimedAt", 0)) < LEASE_SECONDS:
            raise Busy("push")
        self._claim(row, str(row.metadata["etag"]), "push")
        self._send(json.loads(row["document"]), "push")

    def ack(self, user_id: str, notification_id: str) -> None:
        """The client's ack: one blind merge."""
        with contextlib.suppress(ResourceNotFoundError):  # not ours, or unknown: nothing to ack
            self._rows.update_entity(
                {"PartitionKey": user_key(user_id), "RowKey": notification_id, "ackedAt": time.time()},
                mode=UpdateMode.MERGE,
                match_condition=MatchConditions.Unconditionally,
                **CONDITIONAL_WRITE_RETRY,
            )

    def _send(self, document: dict[str, Any], channel: str) -> None:
        if channel == "realtime":
            self._services.send_in_app(document)
        else:
            self._services.push(document)
        self._rows.update_entity(
            {**_keys(document), f"{channel}SentAt": time.time()},
            mode=UpdateMode.MERGE,
            match_condition=MatchConditions.Unconditionally,
            **CONDITIONAL_WRITE_RETRY,
        )

    def _claim(self, row: Mapping[str, Any], etag: str, channel: str) -> tuple[dict[str, Any], str]:
        """Claim ``channel`` if the row is still as read (ETag); returns the row and its new ETag."""
        claim = {
            "PartitionKey": row["PartitionKey"],
            "RowKey": row["RowKey"],
            "claim": uuid.uuid4().hex,
            f"{channel}ClaimedAt": time.time(),
        }
        try:
            metadata = self._rows.update_entity(
                claim,
                mode=UpdateMode.MERGE,
                etag=etag,
                match_condition=MatchConditions.IfNotModified,
                **CONDITIONAL_WRITE_RETRY,
            )
        except ResourceModifiedError:
            current = self._rows.get_entity(row["PartitionKey"], row["RowKey"])
            if current.get("claim") != claim["claim"]:  # else ours: the SDK repeated it after a lost answer
                raise Busy(channel) from None
            return {**row, **claim}, str(current.metadata["etag"])
        return {**row, **claim}, str(metadata["etag"])

    def _deadline(self, document: dict[str, Any]) -> None:
        self._deadlines.send_message(
            json.dumps({"userId": document["userId"], "notificationId": document["notificationId"]}),
            visibility_timeout=self._ack_timeout,
        )


def _keys(document: dict[str, Any]) -> dict[str, str]:
    return {"PartitionKey": user_key(document["userId"]), "RowKey": document["notificationId"]}


def _key_args(document: dict[str, Any]) -> dict[str, str]:
    return {"partition_key": user_key(document["userId"]), "row_key": document["notificationId"]}


def ack_webhook(floor: GuaranteeFloor) -> ThreadingHTTPServer:
    """A webhook for Web PubSub ``ack`` user events (the ack write), on a free port."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            user, notification_id = (
                self.headers.get("ce-userId"),
                json.loads(body or b"{}").get("notificationId"),
            )
            if self.headers.get("ce-type") == "azure.webpubsub.user.ack" and user and notification_id:
                floor.ack(user, str(notification_id))
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="floor-webhook", daemon=True).start()
    return server


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the guarantee floor process."""
    parser = argparse.ArgumentParser(prog="python -m bench.guarantee_floor")
    parser.add_argument("--queue", required=True)
    parser.add_argument("--deadlines", required=True)
    parser.add_argument("--ack-timeout", type=int, required=True)
    add_queue_arguments(parser)
    args = parser.parse_args(argv)
    services = Services(os.environ)
    deadlines = services.queue(args.deadlines)
    floor = GuaranteeFloor(services, deadlines, args.ack_timeout)
    webhook = ack_webhook(floor)
    pool = ThreadPoolExecutor(max_workers=args.concurrency, thread_name_prefix="floor-worker")
    polling = timedelta(milliseconds=args.max_polling_ms)
    readers = [
        QueueReader(
            services.queue(args.queue),
            floor.notification,
            pool,
            args.batch_size,
            args.new_batch_threshold,
            polling,
        ),
        QueueReader(deadlines, floor.deadline, pool, args.batch_size, args.new_batch_threshold, polling),
    ]
    return serve(readers, int(webhook.server_address[1]))


if __name__ == "__main__":
    sys.exit(main())
