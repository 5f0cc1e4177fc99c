"""Through the local host, what a backend learns about each path of the demo scenario: the timeline from
the management API (which refuses users' tokens), every transition POSTed to a webhook receiver that
verifies each signature with independent implementations, and the CLI's ``status`` / ``list`` / ``watch``.

Paths: acked; ack timeout → push; offline → push; no devices; expired; failed (a permanent push error);
failed after retries (a push outage: re-scheduled attempts, then the poison queue). Before the scenario a
first notification meets a receiver that fails three times: it still arrives, each event exactly once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from devstack import demo
from devstack.demo import DemoRun, DemoTarget, delivery_row, join_sdk_threads, target_for_stack, wait_until
from devstack.stack import REPO_ROOT, RunningStack, StackPorts, running_stack
from notify.client import NotificationClient
from notify.webhooks import event_id
from shared.auth import make_dev_manage_token, make_dev_token
from tests.e2e.conftest import E2E_APP_ENV
from tests.openapi_spec import errors, schema_validator
from tests.webhook_receiver import WebhookReceiver, running_receiver

pytestmark = pytest.mark.e2e
SECRET = "whsec_" + "QmFja2VuZHMgd2FudCB0byBrbm93IHdoYXQgaGFwcGVuZWQh"  # 32 bytes, public test value


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    with running_receiver(SECRET, fail_next=3) as running:
        yield running


@pytest.fixture(scope="module")
def app_env(receiver: WebhookReceiver) -> dict[str, str]:
    return {
        **E2E_APP_ENV,
        "WEBHOOK_URL": receiver.url,
        "WEBHOOK_SECRET": SECRET,
        "WEBHOOK_BACKOFF_SECONDS": "1",
        # The outage path: no retry inside an invocation; re-scheduled every second, poisoned after 3 s.
        "RETRY_MAX_ATTEMPTS": "1",
        "RETRY_DELAY_SECONDS": "1",
        "RETRY_MAX_DELAY_SECONDS": "1",
        "RETRY_HORIZON_SECONDS": "3",
    }


@pytest.fixture(scope="module")
def stack(app_env: dict[str, str]) -> Iterator[RunningStack]:
    with running_stack(ports=StackPorts.free(), persist=False, app_env=app_env) as running:
        yield running


@pytest.fixture(scope="module")
def target(stack: RunningStack, app_env: dict[str, str]) -> DemoTarget:
    return target_for_stack(stack, app_env)


@pytest.fixture(scope="module", autouse=True)
def no_client_threads_left() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    assert join_sdk_threads(before) == []


class Backend:
    """The management API as a backend calls it (a development backend token)."""

    def __init__(self, target: DemoTarget) -> None:
        self.target = target
        self.token = make_dev_manage_token(target.setting("AUTH_DEV_SECRET"))

    def get(self, path: str, token: str | None = None, **params: str) -> requests.Response:
        headers = {"Authorization": "Bearer " + (token or self.token)} if token != "" else {}
        return requests.get(f"{self.target.functions_url}/api/manage/{path}", headers=headers, params=params,
                            timeout=10)

    def timeline(self, user_id: str, notification_id: str) -> list[dict[str, Any]]:
        response = self.get(f"users/{user_id}/notifications/{notification_id}")
        assert response.status_code == 200, response.text
        assert response.headers["Cache-Control"] == "no-store"
        body: dict[str, Any] = response.json()
        assert errors(body, schema_validator("DeliveryStatus")) == []  # the answer docs/openapi.yaml promises
        return list(body["timeline"])


def enqueue(target: DemoTarget, user_id: str, clock_offset: float = 0.0, **kwargs: Any) -> str:
    queue = QueueClient.from_connection_string(
        target.storage_connection_string, target.setting("NOTIFICATIONS_QUEUE"),
        message_encode_policy=TextBase64EncodePolicy(),
    )
    producer = NotificationClient(queue, clock=lambda: time.time() + clock_offset)
    return producer.send(user_id, "Status", "Where is it?", **kwargs)


def settled(target: DemoTarget, user_id: str, notification_id: str, *statuses: str) -> dict[str, Any]:
    row: dict[str, Any] = wait_until(
        lambda: (r := delivery_row(target, user_id, notification_id)) and r["status"] in statuses and r,
        30, f"{notification_id} never reached {statuses}",
    )
    return row


def names(timeline: list[dict[str, Any]]) -> list[str]:
    return [entry["name"] for entry in timeline]


def test_every_path_reported_by_api_webhooks_and_cli(
    stack: RunningStack, target: DemoTarget, receiver: WebhookReceiver
) -> None:
    backend = Backend(target)
    # A receiver that fails three times still gets the first notification's events, each exactly once.
    warm_up = enqueue(target, "warm-" + uuid.uuid4().hex[:8])
    wait_until(lambda: receiver.failed == 3, 30, "the receiver was never called three times")

    run = DemoRun(target)
    ids: dict[str, tuple[str, str]] = {}
    try:
        steps = (demo.connect_user, demo.register_push_device, demo.in_app_delivery, demo.ack_prevents_push,
                 demo.unacked_falls_back_to_push, demo.offline_goes_straight_to_push)
        for step in steps:
            step(run)
    finally:
        run.close()
    for path, key in (("acked", "in_app"), ("ack timeout", "unacked"), ("offline", "offline")):
        ids[path] = (run.user_id, run.notification_ids[key])
    nobody = "nobody-" + uuid.uuid4().hex[:8]
    ids["no devices"] = (nobody, enqueue(target, nobody))
    ids["expired"] = (run.user_id, enqueue(target, run.user_id, clock_offset=-120, ttl_seconds=60))
    settled(target, *ids["no devices"], "no_devices")
    settled(target, *ids["expired"], "expired")

    nh = stack.notification_hubs
    nh.inject_fault(status=400, count=1, path="/notify/messages")
    ids["failed"] = (run.user_id, enqueue(target, run.user_id, delivery="push"))
    settled(target, *ids["failed"], "failed")
    nh.inject_fault(status=503, count=1000, path="/notify/messages")
    ids["failed after retries"] = (run.user_id, enqueue(target, run.user_id, delivery="push"))
    try:
        settled(target, *ids["failed after retries"], "poisoned")
    finally:
        nh.clear_faults()

    timelines = {path: backend.timeline(*where) for path, where in ids.items()}
    retries = names(timelines["failed after retries"]).count("retry-scheduled")
    assert retries >= 1
    assert {path: names(t) for path, t in timelines.items()} == {
        "acked": ["accepted", "claim", "realtime-sent", "acked"],
        "ack timeout": ["accepted", "claim", "realtime-sent", "claim", "push-sent"],
        "offline": ["accepted", "claim", "push-sent"],
        "no devices": ["accepted", "no-devices"],
        "expired": ["accepted", "expired"],
        "failed": ["accepted", "claim", "failed"],
        "failed after retries": ["accepted", *["claim", "retry-scheduled"] * retries, "claim", "poisoned"],
    }
    reasons = {path: [e["reason"] for e in t] for path, t in timelines.items()}
    assert reasons["acked"][2] == "sent in-app to 1 connection"
    assert reasons["acked"][3].startswith("the client acknowledged the in-app message on connection ")
    assert reasons["ack timeout"][3] == "no ack within the 3 s ack deadline: claim push"
    assert reasons["offline"][1] == "the user is offline: claim push"
    assert reasons["ack timeout"][4].startswith("pushed through Notification Hubs (notification id ")
    no_device = "the user is offline: not pushed: the user has no device registered for push"
    assert reasons["no devices"][1] == no_device
    assert "time to live ran out" in reasons["expired"][1]
    assert "400" in reasons["failed"][2] and timelines["failed"][2]["status"] == "failed"
    last = timelines["failed after retries"][-1]
    assert last["details"]["attempts"] == retries + 1 and last["details"]["poisoned"] is True
    assert last["status"] == "poisoned" and "retry horizon 3 s" in last["reason"]
    assert all(e["at"].endswith("Z") for t in timelines.values() for e in t)

    # The listing by status, for support.
    listing = backend.get(f"users/{run.user_id}/notifications", status="pushed,no_devices")
    assert listing.status_code == 200
    assert errors(listing.json(), schema_validator("DeliveryList")) == []
    assert sorted(i["notificationId"] for i in listing.json()["items"]) == sorted(
        [ids["ack timeout"][1], ids["offline"][1]]
    )
    assert backend.get(f"users/{run.user_id}/notifications", status="lost").status_code == 400

    # Every transition reaches the webhook, signed, in order, once.
    expected = {where[1]: [e["seq"] for e in timelines[path]] for path, where in ids.items()}
    def missing() -> dict[str, Any]:
        # Ordered by data.sequence: the dispatcher runs messages in parallel, so arrival order across two
        # handlings of one notification is likely but not promised (tests/integration/app/
        # test_webhooks_wire.py shows the order within a handling and after retries).
        got = {n: sorted(e["data"]["sequence"] for e in receiver.of(n)) for n in [*expected, warm_up]}
        want = {**expected, warm_up: [0, 1]}
        return {n: (got[n], want[n]) for n in want if got[n] != want[n]}

    try:
        wait_until(lambda: not missing(), 60, "not every transition reached the webhook receiver")
    except demo.StepFailed:
        log = [line for line in stack.functions_host.log_lines if "webhook" in line][-20:]
        pytest.fail(f"webhook events (received, expected) differ: {missing()}; rejected {receiver.rejected}; "
                    f"host log: {log}")
    assert receiver.rejected == []
    received_ids = [e["id"] for e in receiver.events()]
    assert len(received_ids) == len(set(received_ids)), "each event exactly once"
    for path, (user_id, notification_id) in ids.items():
        events = sorted(receiver.of(notification_id), key=lambda e: int(e["data"]["sequence"]))
        assert [e["type"] for e in events] == [f"azure-notify.delivery.{n}" for n in names(timelines[path])]
        assert [e["id"] for e in events] == [event_id(user_id, notification_id, e["seq"])
                                             for e in timelines[path]]
        assert [e["data"]["reason"] for e in events] == [e["reason"] for e in timelines[path]]
    assert [e["data"]["name"] for e in receiver.of(warm_up)] == ["accepted", "no-devices"]

    # The CLI, as an operator would run it.
    env = {**os.environ, "AUTH_DEV_SECRET": target.setting("AUTH_DEV_SECRET"),
           "AzureWebJobsStorage": target.storage_connection_string}
    user_id, notification_id = ids["ack timeout"]

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "notify", *args], cwd=REPO_ROOT, env=env,
                              capture_output=True, text=True, timeout=60, check=False)

    status = cli("status", notification_id, "--user", user_id, "--api-url", target.functions_url)
    assert status.returncode == 0, status.stderr
    headline = f"notification {notification_id} for {user_id}: pushed (delivery auto)"
    assert status.stdout.splitlines()[0] == headline
    assert "no ack within the 3 s ack deadline: claim push" in status.stdout
    missing = cli("status", "no-such-notification", "--user", user_id, "--api-url", target.functions_url)
    assert missing.returncode == 1 and "404" in missing.stderr
    listed = cli("list", "--user", user_id, "--status", "failed", "--api-url", target.functions_url)
    assert listed.returncode == 0 and ids["failed"][1] in listed.stdout
    watched = cli("watch", "--once", "--since", "600")
    assert watched.returncode == 0, watched.stderr
    for _, watched_id in ids.values():
        assert watched_id in watched.stdout
    assert f"{user_id}  {notification_id}  push-sent" in watched.stdout

    # The inbox, as the app calls it: reads, archives and deletes join the timeline with their reason.
    user_token = {"Authorization": "Bearer " + target.token(run.user_id)}

    def inbox(method: str, path: str) -> None:
        url = f"{target.functions_url}/api/inbox/items/{path}"
        answer = requests.request(method, url, headers=user_token, timeout=10)
        assert answer.status_code in (200, 204), answer.text

    inbox("POST", f"{ids['offline'][1]}/read")  # pushed: the read changes the delivery (a retract is due)
    inbox("DELETE", ids["ack timeout"][1])  # pushed: deleted, retracted too
    inbox("POST", f"{ids['acked'][1]}/read")  # acked: the delivery is settled, the inbox keeps the mark
    for path in ("offline", "ack timeout"):
        settled(target, *ids[path], "retracted")
    read = backend.timeline(*ids["offline"])
    assert names(read)[3:] == ["read", "retracted"]
    assert read[3]["reason"] == "the user read it in the inbox (after the push went out); claim retract"
    deleted = backend.timeline(*ids["ack timeout"])
    assert names(deleted)[5:] == ["archived", "retracted"] and deleted[5]["details"] == {"deleted": True}
    assert deleted[5]["reason"].startswith("the user deleted it from the inbox (after the push went out)")
    acked = backend.timeline(*ids["acked"])
    assert names(acked) == ["accepted", "claim", "realtime-sent", "acked", "read"]
    assert acked[4]["reason"] == "the user read it in the inbox (the delivery had ended as acked)"
    assert acked[4]["details"] == {"source": "inbox"} and acked[4]["seq"] == 4
    # The delivery's own entries go to the webhook too (the inbox-only mark of a settled one does not).
    for path in ("offline", "ack timeout"):
        wanted = [e["seq"] for e in backend.timeline(*ids[path])]
        got = ids[path][1]
        wait_until(lambda got=got, wanted=wanted: sorted(e["data"]["sequence"] for e in receiver.of(got))
                   == wanted, 30, f"the inbox's transitions of {path} never reached the webhook receiver")
    assert [e["data"]["name"] for e in receiver.of(ids["acked"][1])] == names(acked)[:4]


def test_the_management_api_refuses_users_and_users_api_refuses_backends(target: DemoTarget) -> None:
    backend = Backend(target)
    path = "users/alice/notifications/n-1"
    user_token = target.token("alice")  # a perfectly valid token of an app user
    for token, status in ((user_token, 401), ("", 401), ("not-a-jwt", 401)):
        response = backend.get(path, token=token)
        assert response.status_code == status, (token[:10], response.text)
        assert response.json()["error"]["code"] == "unauthorized"
    role_less = make_dev_token(target.setting("AUTH_DEV_SECRET"), "alice", audience="notify-manage")
    forbidden = backend.get(path, token=role_less)
    assert forbidden.status_code == 403 and forbidden.json()["error"]["code"] == "forbidden"
    assert backend.get(path).status_code == 404  # the backend's own token: in, and nothing there
    negotiate = requests.post(f"{target.functions_url}/api/negotiate",
                              headers={"Authorization": "Bearer " + backend.token}, timeout=10)
    assert negotiate.status_code == 401  # a backend token is not a user's
    assert backend.get("users/alice/notifications/bad%20id").status_code == 400
