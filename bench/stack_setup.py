"""Preparing users on the benchmark's stack: devices through the app, presence rows, work in threads."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient

from devstack.demo import register_device, target_for_stack
from devstack.stack import RunningStack
from notify.user_rows import user_connections_query


def in_threads(work: Callable[[str], None], items: Sequence[str], threads: int) -> None:
    """Run ``work`` on every item from ``threads`` threads; raise the first error."""
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            for item in items[index::threads]:
                work(item)
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if errors:
        raise errors[0]


def register_devices(stack: RunningStack, app_env: Mapping[str, str], user_ids: Sequence[str]) -> None:
    """One ``apns`` device per user through the app's ``PUT /api/devices/{id}``.

    APNs: the push sink's record of an APNs push carries notificationId at the payload's top level.
    """
    target = target_for_stack(stack, app_env)

    def register(user_id: str) -> None:
        register_device(target, user_id, f"dev-{uuid.uuid4().hex[:16]}", platform="apns")

    in_threads(register, user_ids, 8)


def has_presence(presence: TableClient, user_id: str) -> bool:
    """True when the app holds a connection row for the user (``presence``: the DEVICES_TABLE)."""
    query, parameters = user_connections_query(user_id)
    rows = presence.query_entities(query, parameters=parameters, select=["RowKey"])
    return next(iter(rows), None) is not None


def wait_for_presence(storage: str, table: str, user_ids: Sequence[str], timeout: float = 60.0) -> None:
    """Wait until every user has a presence row; RuntimeError naming how many do not."""
    presence = TableClient.from_connection_string(storage, table)
    deadline = time.monotonic() + timeout
    waiting = set(user_ids)
    while waiting and time.monotonic() < deadline:
        with contextlib.suppress(ResourceNotFoundError):  # the host creates the table on first use
            waiting = {user for user in waiting if not has_presence(presence, user)}
        if waiting:
            time.sleep(0.2)
    if waiting:
        raise RuntimeError(f"{len(waiting)} users have no presence row after {timeout:.0f} s")
