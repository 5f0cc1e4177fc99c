"""``python -m devstack demo``: the notification flow end to end, one checked step at a time.

The demo talks to the stack only over the wire, as a real backend and a real device would: the producer CLI
(``python -m notify send``) enqueues, the official ``azure-messaging-webpubsubclient`` connects with a URL
from ``POST /api/negotiate`` and acks with the ``ack`` user event, devices register through
``PUT /api/devices/{id}``, and pushes are read from the Notification Hubs emulator's sink
(``GET /_devstack/pushes``). To decide *when* to look it reads the app's tables and queues in Azurite
(presence rows, delivery rows, queue lengths) rather than sleeping for a guessed time.

Each step is a small function ``step(run) -> detail`` that raises :class:`StepFailed`; :data:`STEPS` lists
them in order and :func:`run_scenario` runs them, printing ``[ok] <title> (<seconds> s) - <detail>`` or
``[FAIL] ...``. The end-to-end tests call the same functions.
"""

from __future__ import annotations

import contextlib
import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import requests
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient
from azure.messaging.webpubsubclient import WebPubSubClient, WebPubSubClientCredential
from azure.messaging.webpubsubclient.models import CallbackType, WebPubSubDataType
from azure.storage.queue import QueueClient

from devstack import azurite
from devstack.functions_host.settings_loader import load_local_settings
from devstack.net import port_is_open
from devstack.stack import (
    AZURITE_PORTS,
    BROWSER_DEMO_PORT,
    FUNCTIONS_PORT,
    HOST,
    NOTIFICATION_HUBS_PORT,
    WEBPUBSUB_PORT,
    RunningStack,
    StackPorts,
    default_settings_file,
    running_stack,
)
from notify.user_rows import user_connections_query
from shared.auth import make_dev_token
from shared.user_keys import user_key

#: Ports that must all answer for ``make dev`` to count as running.
DEV_STACK_PORTS = (FUNCTIONS_PORT, WEBPUBSUB_PORT, NOTIFICATION_HUBS_PORT, *AZURITE_PORTS, BROWSER_DEMO_PORT)
#: The ack timeout of the private stack the demo starts when ``make dev`` is not running.
PRIVATE_ACK_TIMEOUT = "2"
#: Slack on top of the ack timeout for queue polling (host.json maxPollingInterval is 2 s) and the push.
SLACK_SECONDS = 20.0
HTTP_TIMEOUT = 10.0


class StepFailed(AssertionError):
    """A demo step did not hold; the message says what was expected and what was seen."""


# ---- where the demo runs --------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoTarget:
    """The stack the demo drives: the host's URL, Azurite, the push sink and the app settings in effect."""

    functions_url: str
    storage_connection_string: str
    notification_hubs_url: str
    settings: Mapping[str, str]

    def setting(self, name: str) -> str:
        """An app setting the host runs with; StepFailed when it is missing."""
        value = self.settings.get(name)
        if not value:
            raise StepFailed(f"app setting {name} is not set")
        return value

    @property
    def ack_timeout_seconds(self) -> float:
        """How long the notifier waits for an in-app ack before pushing."""
        return float(self.setting("ACK_TIMEOUT_SECONDS"))

    def token(self, user_id: str) -> str:
        """A dev bearer token for ``user_id`` signed with the host's AUTH_DEV_SECRET."""
        return make_dev_token(
            self.setting("AUTH_DEV_SECRET"),
            user_id,
            issuer=self.settings.get("AUTH_DEV_ISSUER") or "notify-dev",
            audience=self.settings.get("AUTH_DEV_AUDIENCE") or "notify",
        )

    def table(self, setting: str) -> TableClient:
        """A client for the app table named by ``setting`` (e.g. DELIVERIES_TABLE)."""
        return TableClient.from_connection_string(self.storage_connection_string, self.setting(setting))

    def queue(self, setting: str, suffix: str = "") -> QueueClient:
        """A client for the app queue named by ``setting`` (plus ``suffix``, e.g. ``-poison``)."""
        return QueueClient.from_connection_string(
            self.storage_connection_string, self.setting(setting) + suffix
        )


def app_settings(overrides: Mapping[str, str], settings_file: Path | None = None) -> dict[str, str]:
    """The settings the host runs with: the settings file, then this environment (non-empty wins), then
    ``overrides`` (the stack's connection strings and ``app_env``), as ``devstack.stack.start_host`` does."""
    values = load_local_settings(settings_file or default_settings_file())
    values.update({name: os.environ[name] for name in values if os.environ.get(name)})
    values.update(overrides)
    return values


def target_for_stack(stack: RunningStack, app_env: Mapping[str, str] | None = None) -> DemoTarget:
    """The target for a stack started in this process (``running_stack(...)``)."""
    assert stack.functions_host is not None, "the stack was started without the functions host"
    return DemoTarget(
        functions_url=stack.functions_host.url,
        storage_connection_string=stack.azurite.connection_string,
        notification_hubs_url=stack.notification_hubs.base_url,
        settings=app_settings({**stack.environment(), **(app_env or {})}),
    )


def dev_stack_is_running() -> bool:
    """True when every ``make dev`` port answers."""
    return all(port_is_open(HOST, port) for port in DEV_STACK_PORTS)


def target_for_dev_stack() -> DemoTarget:
    """The target for a running ``make dev`` (fixed ports, settings from local.settings.json)."""
    storage = azurite.connection_string(HOST, *AZURITE_PORTS)
    return DemoTarget(
        functions_url=f"http://{HOST}:{FUNCTIONS_PORT}",
        storage_connection_string=storage,
        notification_hubs_url=f"http://{HOST}:{NOTIFICATION_HUBS_PORT}",
        settings=app_settings({"AzureWebJobsStorage": storage}),
    )


# ---- a device: in-app connection and push registration --------------------------------------------------


class InAppClient:
    """A device's in-app connection: the official Web PubSub client on a URL from ``/api/negotiate``."""

    def __init__(self, target: DemoTarget, user_id: str) -> None:
        self._target = target
        self._user_id = user_id
        self.envelopes: queue.Queue[dict[str, Any]] = queue.Queue()
        self.ack_answers: queue.Queue[dict[str, Any]] = queue.Queue()  # ackResult messages
        self.inbox_envelopes: queue.Queue[dict[str, Any]] = queue.Queue()  # inbox messages
        self.connection_id: str | None = None
        self._connected = threading.Event()
        # Short timeouts: webpubsubclient 1.1.0 can miss a fast reply and then sits out the whole timeout.
        self._client = WebPubSubClient(
            credential=WebPubSubClientCredential(self._negotiate),
            reconnect_retry_total=0,
            message_retry_total=0,
            ack_timeout=3.0,
            start_timeout=3.0,
        )
        self._client.subscribe(CallbackType.CONNECTED, self._on_connected)
        self._client.subscribe(CallbackType.SERVER_MESSAGE, self._on_message)

    @property
    def user_id(self) -> str:
        """The user this device is signed in as."""
        return self._user_id

    def _negotiate(self) -> str:
        response = requests.post(
            f"{self._target.functions_url}/api/negotiate",
            headers={"Authorization": "Bearer " + self._target.token(self._user_id)},
            timeout=HTTP_TIMEOUT,
        )
        if response.status_code != 200:
            raise StepFailed(f"negotiate answered {response.status_code}: {response.text[:200]}")
        return str(response.json()["url"])

    def _on_connected(self, event: Any) -> None:
        self.connection_id = event.connection_id
        self._connected.set()

    def _on_message(self, event: Any) -> None:
        data = event.data
        if isinstance(data, dict) and data.get("kind") == "notification":
            self.envelopes.put(data)
        elif isinstance(data, dict) and data.get("kind") == "ackResult":
            self.ack_answers.put(data)
        elif isinstance(data, dict) and data.get("kind") == "inbox":
            self.inbox_envelopes.put(data)

    def open(self) -> str:
        """Negotiate and connect; return the connection id."""
        self._client.open()
        # The SDK calls back on its own thread, possibly after open() returned.
        if not self._connected.wait(15) or self.connection_id is None:
            raise StepFailed("the client opened but never saw its connected message")
        return self.connection_id

    def wait_for(self, notification_id: str, timeout: float) -> dict[str, Any]:
        """The envelope of ``notification_id`` once it arrives in-app; StepFailed after ``timeout``."""
        return _next_from(
            self.envelopes,
            lambda envelope: envelope.get("notificationId") == notification_id,
            timeout,
            f"notification {notification_id} did not arrive in-app",
        )

    def wait_for_ack_answer(self, timeout: float = 15) -> dict[str, Any]:
        """The next ``ackResult`` the service sent this connection; StepFailed after ``timeout``."""
        return _next_from(self.ack_answers, lambda _: True, timeout, "no answer to the ack")

    def send_ack_event(self, data: Any, data_type: WebPubSubDataType = WebPubSubDataType.JSON) -> None:
        """Send the ``ack`` user event with any data (tests send malformed ones)."""
        sender: Any = self._client.send_event  # one overload per data type; the data is the caller's choice
        sender("ack", data, data_type, ack=False)

    def wait_for_inbox(self, reason: str, notification_id: str, timeout: float) -> dict[str, Any]:
        """The ``inbox`` envelope of ``reason`` changing ``notification_id``; StepFailed after ``timeout``."""

        def wanted(envelope: dict[str, Any]) -> bool:
            changed = {change.get("notificationId") for change in envelope.get("changes", [])}
            return envelope.get("reason") == reason and notification_id in changed

        what = f"no inbox envelope ({reason} {notification_id})"
        return _next_from(self.inbox_envelopes, wanted, timeout, what)

    def ack(self, notification_id: str) -> None:
        """Send the ``ack`` user event the app expects: ``{"notificationId": ...}`` as JSON."""
        # ack=False: no Web PubSub-level ack; the app's own answer (ackResult) says whether it counted.
        self.send_ack_event({"notificationId": notification_id})

    def close(self) -> None:
        """Close the connection (the SDK's reader thread may linger a few seconds: see join_sdk_threads)."""
        self._client.close()


def _next_from(
    source: queue.Queue[dict[str, Any]], wanted: Callable[[dict[str, Any]], bool], timeout: float, what: str
) -> dict[str, Any]:
    """The next item of ``source`` that is ``wanted`` (others are dropped); StepFailed after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise StepFailed(f"{what} in {timeout:.0f} s")
        try:
            item = source.get(timeout=remaining)
        except queue.Empty:
            continue
        if wanted(item):
            return item


def join_sdk_threads(before: set[threading.Thread], timeout: float = 15.0) -> list[str]:
    """Wait for the Web PubSub client threads started since ``before``; return the names still alive.

    After ``close()`` the websocket-client reader thread of webpubsubclient 1.1.0 often stays in its read
    loop until the server ends the TCP connection (about 10 s); it is a daemon thread, so the demo does not
    wait for it, but tests do.
    """
    deadline = time.monotonic() + timeout
    started = [
        thread
        for thread in set(threading.enumerate()) - before
        if "run_forever" in thread.name or "sequence_id_ack" in thread.name
    ]
    for thread in started:
        thread.join(max(0.0, deadline - time.monotonic()))
    return [thread.name for thread in started if thread.is_alive()]


def register_device(
    target: DemoTarget, user_id: str, installation_id: str, platform: str = "fcmv1"
) -> dict[str, Any]:
    """Register a device (``fcmv1`` or ``apns``) for ``user_id`` through ``PUT /api/devices/{id}``."""
    token = uuid.uuid4().hex
    channel = "demo-fcm-registration-token-" + token if platform == "fcmv1" else token * 2  # APNs: 64 hex
    response = requests.put(
        f"{target.functions_url}/api/devices/{installation_id}",
        headers={"Authorization": "Bearer " + target.token(user_id)},
        json={"platform": platform, "pushChannel": channel},
        timeout=HTTP_TIMEOUT,
    )
    if response.status_code != 200:
        raise StepFailed(f"device registration answered {response.status_code}: {response.text[:200]}")
    body: dict[str, Any] = response.json()
    return body


# ---- the producer and what the stack recorded ------------------------------------------------------------


def enqueue_with_cli(target: DemoTarget, user_id: str, title: str, notification_id: str | None = None) -> str:
    """Enqueue one notification with ``python -m notify send``; return the notificationId it printed."""
    command = [sys.executable, "-m", "notify", "send", "--user", user_id, "--title", title, "--body", title]
    if notification_id is not None:
        command += ["--id", notification_id]
    env = {
        **os.environ,
        "AzureWebJobsStorage": target.storage_connection_string,
        "NOTIFICATIONS_QUEUE": target.setting("NOTIFICATIONS_QUEUE"),
    }
    result = subprocess.run(
        command, capture_output=True, text=True, env=env, cwd=Path(__file__).resolve().parent.parent,
        timeout=60, check=False,
    )
    if result.returncode != 0:
        error = result.stderr.strip()[-300:]
        raise StepFailed(f"python -m notify send failed ({result.returncode}): {error}")
    return result.stdout.strip()


def pushes_of(target: DemoTarget, installation_id: str, notification_id: str) -> list[dict[str, Any]]:
    """Pushes the Notification Hubs sink recorded for the device that carry ``notification_id``."""
    response = requests.get(
        f"{target.notification_hubs_url}/_devstack/pushes",
        params={"installationId": installation_id},
        timeout=HTTP_TIMEOUT,
    )
    response.raise_for_status()
    return [push for push in response.json() if pushed_notification_id(push) == notification_id]


def pushed_notification_id(push: Mapping[str, Any]) -> str | None:
    """The app's notificationId inside a recorded FCM v1 or APNs push payload."""
    payload = push.get("payload") or {}
    message = payload.get("message") if isinstance(payload, dict) else None
    data = message.get("data") if isinstance(message, dict) else payload
    value = data.get("notificationId") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def delivery_row(target: DemoTarget, user_id: str, notification_id: str) -> dict[str, Any] | None:
    """The notification's delivery row (status, per-channel timestamps), or None."""
    with target.table("DELIVERIES_TABLE") as table:
        try:
            return dict(table.get_entity(user_key(user_id), notification_id))
        except ResourceNotFoundError:
            return None


def presence_count(target: DemoTarget, user_id: str) -> int:
    """How many connection rows the app holds for ``user_id`` (in the user's partition of DEVICES_TABLE)."""
    query, parameters = user_connections_query(user_id)
    with target.table("DEVICES_TABLE") as table:
        rows = table.query_entities(query, parameters=parameters)
        try:
            return sum(1 for _ in rows)
        except ResourceNotFoundError:
            return 0


def queue_length(target: DemoTarget, setting: str) -> int:
    """Messages in the queue, visible or not (0 when the queue does not exist yet)."""
    with target.queue(setting) as client:
        try:
            return int(client.get_queue_properties().approximate_message_count or 0)
        except ResourceNotFoundError:
            return 0


def wait_until(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll ``condition`` until it returns something truthy; StepFailed naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise StepFailed(f"{what} (waited {timeout:.0f} s)")
        time.sleep(interval)


# ---- the scenario ---------------------------------------------------------------------------------------


@dataclass
class DemoRun:
    """One run of the scenario: a fresh user with one device, and what the steps learned."""

    target: DemoTarget
    user_id: str = field(default_factory=lambda: "demo-user-" + uuid.uuid4().hex[:12])
    installation_id: str = field(default_factory=lambda: "demo-device-" + uuid.uuid4().hex[:12])
    client: InAppClient | None = None
    notification_ids: dict[str, str] = field(default_factory=dict)

    def connected_client(self) -> InAppClient:
        """The in-app client of the connect step."""
        if self.client is None:
            raise StepFailed("no in-app client: the connect step did not run")
        return self.client

    def close(self) -> None:
        """Close the in-app client if it is still open."""
        if self.client is not None:
            self.client.close()
            self.client = None


def connect_user(run: DemoRun) -> str:
    """A user negotiates and connects the official WebSocket client; presence records the connection."""
    run.client = InAppClient(run.target, run.user_id)
    connection_id = run.client.open()
    wait_until(lambda: presence_count(run.target, run.user_id) > 0, 15, "no presence row")
    return f"user {run.user_id}, connection {connection_id}"


def register_push_device(run: DemoRun) -> str:
    """The user registers a device for push, so a push has somewhere to go."""
    body = register_device(run.target, run.user_id, run.installation_id)
    return f"installation {body['installationId']} ({body['platform']})"


def in_app_delivery(run: DemoRun) -> str:
    """A notification enqueued with the producer CLI arrives in-app over the WebSocket."""
    notification_id = enqueue_with_cli(run.target, run.user_id, "Hello in-app")
    run.notification_ids["in_app"] = notification_id
    envelope = run.connected_client().wait_for(notification_id, 15)
    if envelope.get("title") != "Hello in-app":
        raise StepFailed(f"unexpected envelope {envelope}")
    return f"notificationId {notification_id}"


def ack_prevents_push(run: DemoRun) -> str:
    """The client acks the in-app notification; after the ack deadline passes no push is sent."""
    notification_id = run.notification_ids["in_app"]
    client = run.connected_client()
    client.ack(notification_id)
    answer = client.wait_for_ack_answer()
    if answer.get("ok") is not True or answer.get("notificationId") != notification_id:
        raise StepFailed(f"the ack was answered {answer}")
    row = wait_until(
        lambda: _row_if(run, notification_id, lambda r: bool(r.get("ackedAt") and r.get("realtimeSentAt"))),
        15,
        "the ack (or the in-app send) was not recorded",
    )
    timeout = run.target.ack_timeout_seconds
    # The deadline is enqueued right after the in-app send and stays invisible for the ack timeout, so from
    # realtimeSentAt + timeout on it is in the queue until handled: an empty queue then means it was handled.
    time.sleep(max(0.0, float(row.get("realtimeSentAt", 0)) + timeout - time.time()))
    wait_until(
        lambda: queue_length(run.target, "DEADLINES_QUEUE") == 0,
        timeout + SLACK_SECONDS,
        "the ack deadline was never handled",
        interval=0.25,
    )
    pushes = pushes_of(run.target, run.installation_id, notification_id)
    row = delivery_row(run.target, run.user_id, notification_id) or row
    if pushes or row.get("status") != "acked":
        raise StepFailed(f"{len(pushes)} push(es), status {row.get('status')}; expected none and acked")
    return f"ack answered ok, status acked, 0 pushes after the {timeout:g} s deadline"


def unacked_falls_back_to_push(run: DemoRun) -> str:
    """A notification the client receives but does not ack is pushed once the ack timeout passes."""
    notification_id = enqueue_with_cli(run.target, run.user_id, "Nobody acks this")
    run.notification_ids["unacked"] = notification_id
    run.connected_client().wait_for(notification_id, 15)
    received = time.monotonic()
    timeout = run.target.ack_timeout_seconds
    wait_until(
        lambda: pushes_of(run.target, run.installation_id, notification_id),
        timeout + SLACK_SECONDS,
        "no push arrived after the ack timeout",
        interval=0.2,
    )
    after = time.monotonic() - received
    row = wait_for_status(run, notification_id, "pushed")
    if row.get("status") != "pushed":
        raise StepFailed(f"pushed, but the delivery row says {_summary(row)}")
    return f"received in-app, not acked, pushed {after:.1f} s later (ack timeout {timeout:g} s)"


def wait_for_status(run: DemoRun, notification_id: str, status: str) -> dict[str, Any]:
    """The delivery row once it says ``status`` (or as it is after the slack): the record follows the send,
    so the push sink can hold a push a moment before the row says so."""
    with contextlib.suppress(StepFailed):
        wait_until(
            lambda: _row_if(run, notification_id, lambda row: row.get("status") == status),
            SLACK_SECONDS,
            f"the delivery row never said {status}",
        )
    return delivery_row(run.target, run.user_id, notification_id) or {}


def offline_goes_straight_to_push(run: DemoRun) -> str:
    """After the client disconnects, the next notification is pushed without an in-app attempt."""
    run.close()
    wait_until(lambda: presence_count(run.target, run.user_id) == 0, 15, "presence kept the connection")
    notification_id = enqueue_with_cli(run.target, run.user_id, "You are offline")
    run.notification_ids["offline"] = notification_id
    wait_until(
        lambda: pushes_of(run.target, run.installation_id, notification_id), 15, "no push while offline"
    )
    row = wait_for_status(run, notification_id, "pushed")
    if row.get("realtimeSentAt", 0) or row.get("status") != "pushed":
        raise StepFailed(f"expected a push only; the delivery row says {_summary(row)}")
    return f"status pushed, no in-app send (notificationId {notification_id})"


def duplicate_delivered_once(run: DemoRun) -> str:
    """The same notificationId enqueued twice is delivered (pushed) once."""
    notification_id = "demo-dup-" + uuid.uuid4().hex
    run.notification_ids["duplicate"] = notification_id
    for _ in range(2):
        enqueue_with_cli(run.target, run.user_id, "Only once", notification_id=notification_id)
    wait_until(lambda: pushes_of(run.target, run.installation_id, notification_id), 15, "no push at all")
    wait_until(
        lambda: queue_length(run.target, "NOTIFICATIONS_QUEUE") == 0,
        30,
        "the notifications queue never drained",
        interval=0.2,
    )
    count = len(pushes_of(run.target, run.installation_id, notification_id))
    if count != 1:
        raise StepFailed(f"enqueued twice, pushed {count} times")
    return f"enqueued twice, pushed once (notificationId {notification_id})"


def inbox_in_step(run: DemoRun) -> str:
    """Every notification is in the user's inbox, acked or not; reading one on one device (here the pushed
    one, opened from the lock screen) updates the user's other connection at once and takes the push back
    from the lock screens (a silent retract)."""
    tablet = InAppClient(run.target, run.user_id)
    tablet.open()
    try:
        listed = inbox_call(run, "GET", "/api/inbox")
        ids = {item["notificationId"] for item in listed["items"]}
        expected = {run.notification_ids[k] for k in ("in_app", "unacked", "offline", "duplicate")}
        if ids != expected:
            raise StepFailed(f"the inbox lists {sorted(ids)}; expected {sorted(expected)}")
        unread = listed["counts"]["unread"]
        if unread != len(expected):
            raise StepFailed(f"{unread} unread; acked is not read, so expected {len(expected)}")
        opened = run.notification_ids["offline"]
        inbox_call(run, "POST", f"/api/inbox/items/{opened}/read")
        envelope = tablet.wait_for_inbox("read", opened, 15)
        counts = inbox_call(run, "GET", "/api/inbox/counts")
        if envelope["counts"] != counts or counts["unread"] != unread - 1:
            raise StepFailed(f"the other connection got counts {envelope['counts']}; the API says {counts}")
        wait_until(
            lambda: any(_is_retract(p) for p in pushes_of(run.target, run.installation_id, opened)),
            15,
            "the push of the notification read in the inbox was not retracted",
        )
    finally:
        tablet.close()
    return (f"{len(ids)} listed, {unread} unread; read on one device, the other shows {counts['unread']};"
            " its push retracted")


def _is_retract(push: Mapping[str, Any]) -> bool:
    payload = push.get("payload") or {}
    message = payload.get("message") if isinstance(payload, dict) else None
    data = message.get("data") if isinstance(message, dict) else payload
    return isinstance(data, dict) and data.get("kind") == "retract"


def inbox_call(run: DemoRun, method: str, path: str) -> dict[str, Any]:
    """Call the inbox API as the run's user; StepFailed unless it answers 200."""
    response = requests.request(
        method,
        f"{run.target.functions_url}{path}",
        headers={"Authorization": "Bearer " + run.target.token(run.user_id)},
        timeout=HTTP_TIMEOUT,
    )
    if response.status_code != 200:
        raise StepFailed(f"{method} {path} answered {response.status_code}: {response.text[:200]}")
    body: dict[str, Any] = response.json()
    return body


def _row_if(run: DemoRun, notification_id: str, check: Callable[[dict[str, Any]], bool]) -> Any:
    row = delivery_row(run.target, run.user_id, notification_id)
    return row if row is not None and check(row) else None


def _summary(row: Mapping[str, Any]) -> str:
    keys = ("status", "realtimeSentAt", "pushSentAt", "ackedAt")
    return ", ".join(f"{key}={row.get(key)}" for key in keys)


#: The scenario, in order: (what the step shows, the step).
STEPS: list[tuple[str, Callable[[DemoRun], str]]] = [
    ("user negotiated and connected a WebSocket client", connect_user),
    ("device registered for push", register_push_device),
    ("notification from the producer CLI arrived in-app", in_app_delivery),
    ("client acked: no push", ack_prevents_push),
    ("client did not ack: pushed via Notification Hubs after the ack timeout", unacked_falls_back_to_push),
    ("after disconnect the next notification went straight to push", offline_goes_straight_to_push),
    ("duplicate enqueue delivered once", duplicate_delivered_once),
    ("inbox: everything listed, read on one device updates the other at once and retracts its push",
     inbox_in_step),
]


@dataclass(frozen=True)
class StepResult:
    """What one step did."""

    title: str
    ok: bool
    seconds: float
    detail: str

    def line(self) -> str:
        """``[ok] title (0.4 s) - detail`` or ``[FAIL] ...``."""
        return f"[{'ok' if self.ok else 'FAIL'}] {self.title} ({self.seconds:.1f} s) - {self.detail}"


def run_step(run: DemoRun, title: str, step: Callable[[DemoRun], str]) -> StepResult:
    """Run one step and time it; a failure (or any error) becomes a failed result, not an exception."""
    started = time.monotonic()
    try:
        detail = step(run)
        ok = True
    except Exception as exc:  # noqa: BLE001 - every failure is reported as the step's outcome
        detail = str(exc) if isinstance(exc, StepFailed) else f"{type(exc).__name__}: {exc}"
        ok = False
    return StepResult(title, ok, time.monotonic() - started, detail)


def run_scenario(target: DemoTarget, out: TextIO = sys.stdout) -> list[StepResult]:
    """Run every step against ``target``, printing one line each; stop at the first failure."""
    run = DemoRun(target)
    results: list[StepResult] = []
    try:
        for title, step in STEPS:
            result = run_step(run, title, step)
            results.append(result)
            print(result.line(), file=out, flush=True)
            if not result.ok:
                for skipped, _ in STEPS[len(results):]:
                    print(f"[skip] {skipped}", file=out, flush=True)
                break
    finally:
        run.close()
    return results


@contextlib.contextmanager
def demo_target(mode: str, out: TextIO = sys.stdout) -> Iterator[DemoTarget]:
    """The target for ``mode`` (``auto``, ``running`` or ``start``); a stack it starts is stopped on exit."""
    running = dev_stack_is_running()
    if mode == "running" and not running:
        raise RuntimeError(
            f"make dev is not running (ports {', '.join(map(str, DEV_STACK_PORTS))} must all answer)"
        )
    if mode == "running" or (mode == "auto" and running):
        target = target_for_dev_stack()
        print(f"demo against the running make dev stack ({target.functions_url}, "
              f"ack timeout {target.ack_timeout_seconds:g} s)", file=out, flush=True)
        yield target
        return
    app_env = {"ACK_TIMEOUT_SECONDS": PRIVATE_ACK_TIMEOUT}
    print("starting a private stack on free ports ...", file=out, flush=True)
    with running_stack(ports=StackPorts.free(), persist=False, app_env=app_env) as stack:
        target = target_for_stack(stack, app_env)
        print(f"demo against a private stack ({target.functions_url}, "
              f"ack timeout {target.ack_timeout_seconds:g} s)", file=out, flush=True)
        yield target
    print("private stack stopped", file=out, flush=True)


def main(mode: str = "auto", out: TextIO = sys.stdout) -> int:
    """Run the demo; 0 only if every step held."""
    try:
        with demo_target(mode, out) as target:
            results = run_scenario(target, out)
    except RuntimeError as exc:
        print(f"demo: {exc}", file=sys.stderr, flush=True)
        return 1
    held = sum(result.ok for result in results)
    print(f"demo: {held}/{len(STEPS)} steps held", file=out, flush=True)
    return 0 if held == len(STEPS) else 1
