"""CPU per notification spent in the project's own code, measured in a child process.

``python -m bench.own_cpu --path realtime|push --queue Q --count N`` (app settings in the environment, as the
host gets them) handles N messages of queue Q one after another on one thread with the app's real
``process_notification_message`` and ``get_notifier()`` against the same stack; on the realtime path each
message is followed by what the host later runs for it: ``handle_ack`` (the client's ack) and
``handle_deadline`` (the ack deadline coming back).

* first half, no profiler: the thread's CPU time (``time.thread_time``) per notification, i.e. all code
  (SDKs, HTTP, JSON, ours) without the time blocked on the network;
* second half, under ``cProfile`` (one thread, so self time is CPU plus the waits of built-ins, and on a
  loaded machine preemption): the self time of functions defined in ``notify/``, ``shared/`` and
  ``function_app.py`` is the project's own CPU; the rest is split into Azure SDK, HTTP stack, network waits
  and other, and HTTP requests are counted.

Receiving and deleting the queue message (the host's work) is outside the measurement. Prints one JSON line.

``--floor-deadlines Q`` also builds the guarantee floor (settings from
:func:`bench.floor_base.floor_environment`) and, in the unprofiled half, hands each message to both, in
alternating order, measuring each one's thread CPU (``GuaranteeFloor.notification``, then on the realtime
path ``ack`` and ``deadline``: what its hosted app's triggers call). Paired message by message in one
process, with no GIL contention and no host, the ratio does not drift with the machine's load between two
measurements, as the drains' process CPU does.
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import json
import os
import pstats
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import azure.functions as func
from azure.storage.queue import QueueClient, QueueMessage

REPO_ROOT = Path(__file__).resolve().parent.parent
OWN_PREFIXES = (str(REPO_ROOT / "notify") + os.sep, str(REPO_ROOT / "shared") + os.sep)
OWN_FILES = (str(REPO_ROOT / "function_app.py"),)
WARMUP = 5


def is_own(filename: str) -> bool:
    """True for a source file of the project's own code (notify/, shared/, function_app.py)."""
    return filename.startswith(OWN_PREFIXES) or filename in OWN_FILES


NETWORK_WAIT_NAMES = ("recv", "send", "connect", "select", "poll", "getaddrinfo", "readinto", "acquire")


def category(filename: str, name: str) -> str:
    """Where a profiled function belongs: own, azure_sdk, http_stack, network_wait or other."""
    if is_own(filename):
        return "own"
    if filename == "~":
        return "network_wait" if any(word in name for word in NETWORK_WAIT_NAMES) else "other"
    normalised = filename.replace(os.sep, "/")
    if "/azure/" in normalised:
        return "azure_sdk"
    if any(part in normalised for part in ("/urllib3/", "/requests/", "/http/client.py", "/email/")):
        return "http_stack"
    return "other"


@dataclass
class ProfileSummary:
    """Self time by category, own functions by self time, and HTTP requests made (totals, seconds)."""

    by_category: dict[str, float] = field(default_factory=dict)
    own_functions: list[tuple[str, float]] = field(default_factory=list)
    http_requests: int = 0


def summarize_profile(stats: dict[Any, Any]) -> ProfileSummary:
    """Summarize ``pstats.Stats.stats``: {(file, line, name): (cc, nc, tottime, cumtime, callers)}."""
    summary = ProfileSummary()
    for (filename, line, name), (_cc, calls, tottime, _ct, _callers) in stats.items():
        kind = category(filename, name)
        summary.by_category[kind] = summary.by_category.get(kind, 0.0) + tottime
        if kind == "own":
            summary.own_functions.append((f"{Path(filename).relative_to(REPO_ROOT)}:{line}({name})", tottime))
        if name == "getresponse" and filename.replace(os.sep, "/").endswith("http/client.py"):
            summary.http_requests += calls
    summary.own_functions.sort(key=lambda item: item[1], reverse=True)
    return summary


def _take(queue: QueueClient, count: int) -> list[QueueMessage]:
    messages: list[QueueMessage] = []
    deadline = time.monotonic() + 60
    while len(messages) < count and time.monotonic() < deadline:
        batch = list(queue.receive_messages(max_messages=min(32, count - len(messages)),
                                            visibility_timeout=600))
        messages += batch
        if not batch:
            time.sleep(0.1)
    return messages


def _notifier_handler(path: str) -> Callable[[str, bytes], None]:
    """The app's handling of one message (and on ``realtime`` its ack and deadline), as the host runs it."""
    from notify.blueprints.notifier import get_notifier, process_notification_message
    from shared.clients import get_queue_client
    from shared.settings import get_settings

    notifier = get_notifier()
    poison = get_queue_client(get_settings().notifications_queue + "-poison", binary=True)

    def handle(message_id: str, body: bytes) -> None:
        process_notification_message(func.QueueMessage(id=message_id, body=body), notifier, poison)
        if path == "realtime":
            document = json.loads(body)
            notifier.handle_ack(document["userId"], document["notificationId"])
            notifier.handle_deadline(document["userId"], document["notificationId"])

    return handle


def _floor_handler(path: str, deadlines: str, ack_timeout: int) -> Callable[[str, bytes], None]:
    """The guarantee floor's handling of the same (its hosted app's triggers call exactly these)."""
    from bench.floor_base import Services
    from bench.guarantee_floor import GuaranteeFloor

    services = Services(os.environ)
    floor = GuaranteeFloor(services, services.queue(deadlines), ack_timeout)

    def handle(_message_id: str, body: bytes) -> None:
        document = json.loads(body)
        floor.notification(document)
        if path == "realtime":
            floor.ack(document["userId"], document["notificationId"])
            floor.deadline(document)

    return handle


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the profiling child process."""
    parser = argparse.ArgumentParser(prog="python -m bench.own_cpu")
    parser.add_argument("--path", choices=("realtime", "push"), required=True)
    parser.add_argument("--queue", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--floor-deadlines", help="measure the guarantee floor too (its deadlines queue)")
    parser.add_argument("--ack-timeout", type=int, default=5, help="the floor's ack timeout")
    args = parser.parse_args(argv)

    storage = os.environ["AzureWebJobsStorage"]  # noqa: SIM112 - the app setting's own name
    queue = QueueClient.from_connection_string(storage, args.queue)
    notifier = _notifier_handler(args.path)
    floor = None
    if args.floor_deadlines:
        floor = _floor_handler(args.path, args.floor_deadlines, args.ack_timeout)
    messages = _take(queue, args.count + WARMUP)

    failures: list[str] = []

    def handle(message: QueueMessage, handler: Callable[[str, bytes], None] = notifier) -> float:
        """Thread CPU seconds of ``handler`` on ``message``."""
        started = time.thread_time()
        try:
            handler(message.id, base64.b64decode(message.content))
        except Exception as exc:  # noqa: BLE001 - the host would retry the message; reported, not fatal
            failures.append(type(exc).__name__ + (f" ({exc.__cause__!r})" if exc.__cause__ else ""))
        return time.thread_time() - started

    for message in messages[:WARMUP]:
        handle(message)
        if floor is not None:
            handle(message, floor)
    measured = messages[WARMUP:]
    half = len(measured) // 2
    unprofiled = floor_cpu = 0.0
    for index, message in enumerate(measured[:half]):
        if floor is not None and index % 2:
            floor_cpu += handle(message, floor)
        unprofiled += handle(message)
        if floor is not None and not index % 2:
            floor_cpu += handle(message, floor)
    # The default (wall) clock: a CPU-clock timer is a system call per profiler event and inflates self
    # times several-fold; on a loaded machine the wall clock inflates them too (preemption), so compare runs
    # made while the machine is quiet.
    profile = cProfile.Profile()
    for message in measured[half:]:
        profile.enable()
        handle(message)
        profile.disable()
    for message in messages:
        queue.delete_message(message)
    profiled = max(len(measured) - half, 1)
    summary = summarize_profile(pstats.Stats(profile).stats)  # type: ignore[attr-defined]
    print(json.dumps({
        "samples": len(measured),
        "failures": failures,
        "own_ms": summary.by_category.get("own", 0.0) * 1000 / profiled,
        "profiled_ms_by_category": {k: v * 1000 / profiled for k, v in sorted(summary.by_category.items())},
        "http_requests_per_notification": summary.http_requests / profiled,
        "unprofiled_total_ms": unprofiled * 1000 / max(half, 1),
        "floor_total_ms": floor_cpu * 1000 / max(half, 1) if floor is not None else None,
        "top": [{"function": name, "ms": t * 1000 / profiled} for name, t in summary.own_functions[:8]],
    }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
