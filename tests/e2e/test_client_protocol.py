"""The client protocol over the wire, on one private stack: ack answers with the official Python client,
real HTTP responses against docs/openapi.yaml, CORS for a localhost origin, and then the TypeScript SDK's
integration tests (Node) and the browser demo in headless Chromium against the same stack.

The SDK must be built first (``make client-js``; ``make test`` does it), and the browser test needs Debian's
``chromium`` (``make chromium`` installs it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.messaging.webpubsubclient.models import WebPubSubDataType

from devstack.demo import DemoTarget, InAppClient, delivery_row, enqueue_with_cli, wait_until
from devstack.stack import HUB, REPO_ROOT, WEBPUBSUB_DEV_KEY, RunningStack
from tests.openapi_spec import response_problems

pytestmark = pytest.mark.e2e

CLIENT_JS = REPO_ROOT / "clients" / "js"
BUILT = CLIENT_JS / "dist" / "test"
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
NODE_TIMEOUT = 300


@pytest.fixture
def acking_client(e2e_target: DemoTarget) -> Iterator[InAppClient]:
    """The official Python Web PubSub client on a URL from /api/negotiate (devstack.demo's device)."""
    client = InAppClient(e2e_target, "acker-" + uuid.uuid4().hex[:10])
    client.open()
    yield client
    client.close()


@pytest.mark.parametrize(
    ("data", "data_type", "code"),
    [
        ({"id": "x"}, WebPubSubDataType.JSON, "malformed"),
        ({}, WebPubSubDataType.JSON, "malformed"),
        ("plain text", WebPubSubDataType.TEXT, "malformed"),
        ({"notificationId": "no-such-notification"}, WebPubSubDataType.JSON, "unknown_notification"),
    ],
)
def test_a_bad_ack_gets_an_error_answer_and_keeps_the_connection(
    acking_client: InAppClient, e2e_target: DemoTarget, data: Any, data_type: WebPubSubDataType, code: str
) -> None:
    acking_client.send_ack_event(data, data_type)
    answer = acking_client.wait_for_ack_answer()
    assert answer["ok"] is False
    assert answer["protocolVersion"] == 1
    assert answer["error"]["code"] == code
    assert answer["error"]["retryable"] is False
    # The connection is still there: a notification arrives on it and its ack is answered ok.
    notification_id = enqueue_with_cli(e2e_target, acking_client.user_id, "After a bad ack")
    acking_client.wait_for(notification_id, 15)
    acking_client.ack(notification_id)
    assert acking_client.wait_for_ack_answer() == {
        "kind": "ackResult",
        "protocolVersion": 1,
        "notificationId": notification_id,
        "ok": True,
    }


def test_acking_another_users_notification_answers_unknown_notification(
    e2e_target: DemoTarget, acking_client: InAppClient
) -> None:
    victim = InAppClient(e2e_target, "victim-" + uuid.uuid4().hex[:10])
    victim.open()
    try:
        notification_id = enqueue_with_cli(e2e_target, victim.user_id, "Not yours")
        victim.wait_for(notification_id, 15)
        acking_client.ack(notification_id)
        answer = acking_client.wait_for_ack_answer()
        assert answer["notificationId"] == notification_id
        assert answer["error"]["code"] == "unknown_notification"
    finally:
        victim.close()


def _check(method: str, url: str, response: requests.Response) -> None:
    path = "/" + url.split("/", 3)[3].split("?")[0]
    problems = response_problems(method, path, response.status_code, dict(response.headers), response.content)
    assert problems == [], (method, path, response.status_code, response.text[:300])


def test_real_http_responses_conform_to_the_openapi_file(e2e_target: DemoTarget) -> None:
    api = e2e_target.functions_url
    user, other = "openapi-" + uuid.uuid4().hex[:8], "openapi-other-" + uuid.uuid4().hex[:8]
    auth = {"Authorization": "Bearer " + e2e_target.token(user)}
    device = f"{api}/api/devices/openapi-{uuid.uuid4().hex[:8]}"
    body = {"platform": "fcmv1", "pushChannel": "openapi-fcm-token-" + uuid.uuid4().hex}
    preferences = f"{api}/api/preferences"
    quiet = {"timeZone": "Europe/Berlin", "windows": [{"start": "22:00", "end": "07:00"}]}
    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", f"{api}/api/negotiate", {"headers": auth}),
        ("POST", f"{api}/api/negotiate", {}),
        ("POST", f"{api}/api/negotiate", {"headers": {"Authorization": "Bearer not-a-jwt"}}),
        ("PUT", device, {"headers": auth, "json": body}),
        ("PUT", device, {"headers": {"Authorization": "Bearer " + e2e_target.token(other)}, "json": body}),
        ("PUT", device, {"headers": auth, "json": {"platform": "wns", "pushChannel": "x"}}),
        ("PUT", device, {"headers": {**auth, "Content-Type": "text/plain"}, "data": "{}"}),
        ("PUT", device, {"headers": auth, "json": {**body, "tags": ["user:someone-else"]}}),
        ("PUT", f"{api}/api/devices/bad%20id", {"headers": auth, "json": body}),
        ("DELETE", device, {"headers": auth}),
        ("DELETE", device, {"headers": auth}),
        ("GET", preferences, {"headers": auth}),
        ("PUT", preferences, {"headers": auth, "json": {"types": {"promo": {"push": False}},
                                                        "quietHours": quiet}}),
        ("PATCH", preferences, {"headers": {**auth, "Content-Type": "application/merge-patch+json"},
                                "data": json.dumps({"quietHours": None})}),
        ("PUT", preferences, {"headers": auth, "json": {"quietHours": {**quiet, "timeZone": "Mars"}}}),
        ("GET", preferences, {}),
    ]
    statuses = []
    for method, url, kwargs in calls:
        response = requests.request(method, url, timeout=10, **kwargs)
        statuses.append(response.status_code)
        _check(method, url, response)
    assert statuses == [200, 401, 401, 200, 403, 400, 400, 400, 400, 204, 204, 200, 200, 200, 400, 401]


def test_real_inbox_responses_conform_to_the_openapi_file(e2e_target: DemoTarget) -> None:
    api = e2e_target.functions_url
    user = "openapi-inbox-" + uuid.uuid4().hex[:8]
    auth = {"Authorization": "Bearer " + e2e_target.token(user)}
    listed = enqueue_with_cli(e2e_target, user, "For the inbox")
    wait_until(lambda: delivery_row(e2e_target, user, listed), 15, "the notification was never recorded")
    item = f"{api}/api/inbox/items/{listed}"
    calls: list[tuple[str, str, dict[str, Any], int]] = [
        ("GET", f"{api}/api/inbox", {"headers": auth}, 200),
        ("GET", f"{api}/api/inbox?limit=1&status=unread&type=default", {"headers": auth}, 200),
        ("GET", f"{api}/api/inbox?limit=0", {"headers": auth}, 400),
        ("GET", f"{api}/api/inbox?status=starred", {"headers": auth}, 400),
        ("GET", f"{api}/api/inbox?before=not-a-cursor!", {"headers": auth}, 400),
        ("GET", f"{api}/api/inbox", {}, 401),
        ("GET", f"{api}/api/inbox/changes", {"headers": auth}, 200),
        ("GET", f"{api}/api/inbox/changes?after=eyJ9", {"headers": auth}, 400),
        ("GET", f"{api}/api/inbox/counts", {"headers": auth}, 200),
        ("GET", item, {"headers": auth}, 200),
        ("GET", f"{api}/api/inbox/items/never-sent", {"headers": auth}, 404),
        ("POST", f"{item}/read", {"headers": auth}, 200),
        ("POST", f"{item}/read", {"headers": auth}, 200),
        ("POST", f"{item}/star", {"headers": auth}, 400),
        ("POST", f"{api}/api/inbox/read-all", {"headers": auth}, 200),
        ("POST", f"{api}/api/inbox/seen-all?type=default", {"headers": auth}, 200),
        ("DELETE", item, {"headers": auth}, 204),
        ("DELETE", item, {"headers": auth}, 204),
        ("GET", item, {"headers": auth}, 404),
        ("POST", f"{item}/unread", {"headers": auth}, 404),
    ]
    for method, url, kwargs, status in calls:
        response = requests.request(method, url, timeout=10, **kwargs)
        assert response.status_code == status, (method, url, response.text[:300])
        _check(method, url, response)


def test_make_dev_answers_cors_for_localhost_origins_only(e2e_target: DemoTarget) -> None:
    url = f"{e2e_target.functions_url}/api/negotiate"
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
    allowed = requests.options(url, headers={"Origin": "http://localhost:5173", **preflight}, timeout=10)
    assert allowed.status_code == 204
    assert allowed.headers["Access-Control-Allow-Origin"] == "http://localhost:5173"
    assert allowed.headers["Access-Control-Allow-Methods"] == "POST"
    assert allowed.headers["Access-Control-Allow-Headers"] == "authorization"
    refused = requests.options(url, headers={"Origin": "https://evil.example", **preflight}, timeout=10)
    assert "Access-Control-Allow-Origin" not in refused.headers


def _node_env(stack: RunningStack, target: DemoTarget) -> dict[str, str]:
    assert stack.browser_demo is not None
    description = {
        "apiBaseUrl": target.functions_url,
        "webPubSubUrl": stack.webpubsub.endpoint,
        "webPubSubKey": WEBPUBSUB_DEV_KEY,
        "hub": HUB,
        "browserDemoUrl": stack.browser_demo.url,
        "ackTimeoutSeconds": target.ack_timeout_seconds,
        "devSecret": target.setting("AUTH_DEV_SECRET"),
        "devIssuer": target.settings.get("AUTH_DEV_ISSUER") or "notify-dev",
        "devAudience": target.settings.get("AUTH_DEV_AUDIENCE") or "notify",
        "python": sys.executable,
        "repoRoot": str(REPO_ROOT),
        "storageConnectionString": target.storage_connection_string,
        "notificationsQueue": target.setting("NOTIFICATIONS_QUEUE"),
    }
    return {**os.environ, "NOTIFY_TEST_STACK": json.dumps(description), "CHROMIUM": CHROMIUM}


def _run_node(tests: list[Path], env: dict[str, str]) -> None:
    missing = [str(t) for t in tests if not t.exists()]
    assert not missing, f"the SDK is not built ({', '.join(missing)}): run `make client-js`"
    # --test-force-exit: @azure/web-pubsub-client 1.1.0 leaves keep-alive timers (up to 40 s) after stop().
    command = ["node", "--test", "--test-force-exit", "--test-concurrency=1", *map(str, tests)]
    result = subprocess.run(
        command, cwd=CLIENT_JS, env=env, capture_output=True, text=True, timeout=NODE_TIMEOUT, check=False
    )
    summary = [line for line in result.stdout.splitlines() if line.startswith(("# pass", "# fail"))]
    output = f"{result.stdout[-6000:]}\n{result.stderr[-3000:]}"
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{output}"
    assert summary and summary[-1] == "# fail 0", summary
    print("\n".join(summary))


def test_the_sdk_against_the_stack(e2e_stack: RunningStack, e2e_target: DemoTarget) -> None:
    """acked → no push; stops acking → push shown once; both channels → one call; token expiry; socket cut."""
    _run_node([BUILT / "test" / "integration" / "sdk.test.js"], _node_env(e2e_stack, e2e_target))


def test_the_browser_demo_in_headless_chromium(e2e_stack: RunningStack, e2e_target: DemoTarget) -> None:
    assert Path(CHROMIUM).exists(), (
        f"Chromium is not installed at {CHROMIUM}: run `make chromium` "
        "(it runs `apt-get install -y chromium`), or set CHROMIUM to a Chromium executable"
    )
    _run_node([BUILT / "test" / "browser" / "demo.test.js"], _node_env(e2e_stack, e2e_target))


def test_the_demo_server_refuses_bad_input(e2e_stack: RunningStack) -> None:
    assert e2e_stack.browser_demo is not None
    base = e2e_stack.browser_demo.url
    assert requests.post(f"{base}/token", data="not json", timeout=10).status_code == 400
    assert requests.post(f"{base}/token", json={"userId": ""}, timeout=10).status_code == 400
    refused = requests.post(f"{base}/send", json={"userId": "u", "delivery": "sometimes"}, timeout=10)
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_message"
    assert requests.get(f"{base}/delivery?userId=u&notificationId=none", timeout=10).status_code == 404
    wait_until(lambda: requests.get(base, timeout=10).ok, 10, "the page is served")
