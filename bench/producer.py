"""Enqueue benchmark notifications with ``notify.client.NotificationClient`` from several threads."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from notify.client import NotificationClient


@dataclass(frozen=True)
class Planned:
    """One notification to enqueue."""

    user_id: str
    notification_id: str


def plan(user_ids: Sequence[str], count: int, prefix: str) -> list[Planned]:
    """``count`` notifications spread round-robin over ``user_ids``, with unique ids."""
    tag = uuid.uuid4().hex[:8]
    return [Planned(user_ids[i % len(user_ids)], f"{prefix}-{tag}-{i}") for i in range(count)]


@dataclass(frozen=True)
class Enqueued:
    """When each notification was handed to the queue client (unix s) and the producer's rate."""

    sent_at: dict[str, float]
    per_second: float


def enqueue(
    connection_string: str,
    queue_name: str,
    items: Sequence[Planned],
    threads: int,
    rate_per_s: float | None = None,
) -> Enqueued:
    """Enqueue ``items`` from ``threads`` threads, as fast as possible or paced at ``rate_per_s`` in all.

    The time recorded for a notification is taken just before its enqueue call (the start of its latency).
    Raises the first enqueue error of any thread.
    """
    sent_at: dict[str, float] = {}
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = time.monotonic() + 0.05

    def work(index: int) -> None:
        client = NotificationClient.from_connection_string(connection_string, queue_name)
        try:
            for position in range(index, len(items), threads):
                if rate_per_s:
                    delay = start + position / rate_per_s - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                item = items[position]
                now = time.time()
                client.send(item.user_id, "Benchmark", "bench notification",
                            notification_id=item.notification_id)
                with lock:
                    sent_at[item.notification_id] = now
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(i,), name=f"bench-producer-{i}") for i in range(threads)]
    began = time.monotonic()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.monotonic() - began
    if errors:
        raise errors[0]
    return Enqueued(sent_at, len(items) / elapsed if elapsed > 0 else 0.0)
