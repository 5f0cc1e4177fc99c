"""A private local stack for the JS app checks: Azurite, both emulators and the Functions host on free ports.

Started by ``app-flow.test.mjs`` as ``python tests/js/support/private_stack.py``. It prints one JSON line when
ready (the URLs), then answers one JSON command per stdin line with one JSON line, using the same helpers as
the demo (``devstack.demo``): what a backend does (enqueue with the producer CLI, read the delivery record,
read the push sink). The device side (negotiate, WebSocket, ack) is the JS test's own. EOF or SIGTERM stops
the stack.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from devstack.demo import (
    SLACK_SECONDS,
    DemoTarget,
    delivery_row,
    enqueue_with_cli,
    pushes_of,
    queue_length,
    register_device,
    target_for_stack,
    wait_until,
)
from devstack.stack import StackPorts, running_stack

#: A short ack timeout keeps the "no push after the deadline" check quick; queues are polled every 200 ms.
APP_ENV = {
    "ACK_TIMEOUT_SECONDS": "2",
    "AzureFunctionsJobHost__extensions__queues__maxPollingInterval": "00:00:00.200",
}


def settle(target: DemoTarget, user_id: str, installation_id: str, notification_id: str) -> dict[str, Any]:
    """Wait until the notification's ack deadline has been handled; return its delivery row and pushes."""
    row = wait_until(
        lambda: (r := delivery_row(target, user_id, notification_id)) and r.get("realtimeSentAt") and r,
        15,
        "the in-app send was not recorded",
    )
    time.sleep(max(0.0, float(row["realtimeSentAt"]) + target.ack_timeout_seconds - time.time()))
    wait_until(
        lambda: queue_length(target, "DEADLINES_QUEUE") == 0,
        target.ack_timeout_seconds + SLACK_SECONDS,
        "the ack deadline was never handled",
        interval=0.25,
    )
    return {
        "delivery": delivery_row(target, user_id, notification_id),
        "pushes": pushes_of(target, installation_id, notification_id),
    }


def answer(target: DemoTarget, command: dict[str, Any]) -> Any:
    """Run one command from the JS test."""
    name = command.get("cmd")
    if name == "token":
        return {"token": target.token(command["user"])}
    if name == "registerDevice":
        return register_device(target, command["user"], command["installationId"])
    if name == "enqueue":
        return {"notificationId": enqueue_with_cli(target, command["user"], command["title"])}
    if name == "settle":
        return settle(target, command["user"], command["installationId"], command["notificationId"])
    if name == "pushes":
        return {"pushes": pushes_of(target, command["installationId"], command["notificationId"])}
    raise ValueError(f"unknown command {name!r}")


def main() -> int:
    """Start the stack, serve commands until stdin closes, stop the stack."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with running_stack(ports=StackPorts.free(), persist=False, app_env=APP_ENV) as stack:
        target = target_for_stack(stack, APP_ENV)
        ready = {
            "ready": True,
            "functionsUrl": target.functions_url,
            "notificationHubsUrl": target.notification_hubs_url,
            "ackTimeoutSeconds": target.ack_timeout_seconds,
        }
        print(json.dumps(ready), flush=True)
        for line in sys.stdin:
            if not line.strip():
                continue
            try:
                reply = {"ok": True, "result": answer(target, json.loads(line))}
            except Exception as exc:  # noqa: BLE001 - every failure goes back to the test as its answer
                reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            print(json.dumps(reply, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
