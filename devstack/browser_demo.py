"""The live browser demo that ``make dev`` serves (http://127.0.0.1:8082 by default).

The page (``clients/js/demo/``) is a web app built on the TypeScript SDK (``clients/js``, bundled for the
browser into ``clients/js/dist/browser/notify-client.js``): it signs in as any user with a development token,
receives that user's notifications in real time, shows which channel delivered each one and its ack, sends
one to the user, and lists what the user's devices received in the Notification Hubs emulator's push sink,
feeding each push to the SDK's ``handlePush`` as a device's push handler would.

The page talks to the app's HTTP API directly (another origin: the local host answers CORS for loopback
origins). This server adds only what a real backend or device would do for it, development only, bound to
127.0.0.1, without authentication:

* ``POST /token`` ``{"userId"}``: a development token (HS256 with ``AUTH_DEV_SECRET``, as
  ``python -m devstack token`` prints);
* ``POST /send`` ``{"userId", "title", "body", "delivery"?, "type"?, "notificationId"?}``: enqueue with the
  producer (``notify.client.NotificationClient``), as a backend does;
* ``GET /pushes?userId=``: the pushes the emulator delivered to that user's devices (tag ``user:<key>``),
  each with the app's ``notificationId`` read from its payload;
* ``GET /delivery?userId=&notificationId=``: the notification's delivery record (status, per-channel times)
  and how many ack deadlines are queued, for the page and for tests that wait for a state;
* ``GET /config.json``: where the API is.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from aiohttp import web

from devstack.demo import DemoTarget, delivery_row, pushed_notification_id, queue_length
from devstack.server_thread import ServerThread
from notify.client import NotificationClient
from shared.errors import NotifyError
from shared.user_keys import user_tag

logger = logging.getLogger(__name__)

CLIENT_DIR = Path(__file__).resolve().parent.parent / "clients" / "js"
PAGE_DIR = CLIENT_DIR / "demo"
BUNDLE = CLIENT_DIR / "dist" / "browser" / "notify-client.js"
STATIC = {"/": "index.html", "/demo.js": "demo.js", "/demo.css": "demo.css"}
TOKEN_MINUTES = 60
HTTP_TIMEOUT = 10.0
_DELIVERY_FIELDS = ("status", "delivery", "realtimeSentAt", "pushSentAt", "ackedAt", "acceptedAt")


@dataclass
class RunningBrowserDemo:
    """The demo server on a background thread."""

    url: str
    _server: ServerThread

    def stop(self) -> None:
        """Stop serving."""
        self._server.stop()


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.read() or b"{}")
    except ValueError:
        raise web.HTTPBadRequest(text="the body is not JSON") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="the body must be a JSON object")
    return body


def _user(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 256:
        raise web.HTTPBadRequest(text="userId must be a non-empty string of at most 256 characters")
    return value


class BrowserDemo:
    """The demo's aiohttp application for one stack (``target``)."""

    def __init__(self, target: DemoTarget) -> None:
        self.target = target
        self._producer = NotificationClient.from_connection_string(
            target.storage_connection_string, target.setting("NOTIFICATIONS_QUEUE")
        )

    def app(self) -> web.Application:
        """The routes."""
        app = web.Application(client_max_size=64 * 1024)
        for path in STATIC:
            app.router.add_get(path, self.static)
        app.router.add_get("/notify-client.js", self.bundle)
        app.router.add_get("/config.json", self.config)
        app.router.add_post("/token", self.token)
        app.router.add_post("/send", self.send)
        app.router.add_get("/pushes", self.pushes)
        app.router.add_get("/delivery", self.delivery)
        return app

    async def static(self, request: web.Request) -> web.StreamResponse:
        """The page's own files."""
        path = PAGE_DIR / STATIC[request.path]
        if not path.exists():
            return web.Response(status=404, text=f"{path} is missing")
        return web.FileResponse(path, headers={"Cache-Control": "no-store"})

    async def bundle(self, request: web.Request) -> web.StreamResponse:
        """The SDK built for the browser."""
        if not BUNDLE.exists():
            return web.Response(
                status=404,
                text="console.error('the SDK is not built: run make client-js');",
                content_type="text/javascript",
            )
        return web.FileResponse(BUNDLE, headers={"Cache-Control": "no-store"})

    async def config(self, request: web.Request) -> web.Response:
        """Where the page finds the API, and the ack timeout it runs with."""
        return web.json_response(
            {"apiBaseUrl": self.target.functions_url, "ackTimeoutSeconds": self.target.ack_timeout_seconds}
        )

    async def token(self, request: web.Request) -> web.Response:
        """A development token for any user."""
        user_id = _user((await _json_body(request)).get("userId"))
        return web.json_response(
            {"token": self.target.token(user_id), "expiresInSeconds": TOKEN_MINUTES * 60},
            headers={"Cache-Control": "no-store"},
        )

    async def send(self, request: web.Request) -> web.Response:
        """Enqueue a notification with the producer."""
        body = await _json_body(request)
        user_id = _user(body.get("userId"))
        try:
            notification_id = await asyncio.to_thread(
                self._producer.send,
                user_id,
                str(body.get("title") or "Hello"),
                str(body.get("body") or ""),
                type=str(body.get("type") or "demo"),
                delivery=str(body.get("delivery") or "auto"),
                notification_id=body.get("notificationId") or None,
                data=body.get("data") if isinstance(body.get("data"), dict) else {"from": "browser demo"},
            )
        except NotifyError as exc:
            return _error(exc.status, exc.code, exc.message)
        return web.json_response({"notificationId": notification_id})

    async def pushes(self, request: web.Request) -> web.Response:
        """What the user's devices received through the Notification Hubs emulator, oldest first."""
        user_id = _user(request.query.get("userId"))

        def fetch() -> list[dict[str, Any]]:
            response = requests.get(
                f"{self.target.notification_hubs_url}/_devstack/pushes",
                params={"tag": user_tag(user_id)},
                timeout=HTTP_TIMEOUT,
            )
            response.raise_for_status()
            found: list[dict[str, Any]] = response.json()
            return found

        keep = ("id", "installationId", "platform", "template", "time", "outcome", "reason", "payload")
        pushes = await asyncio.to_thread(fetch)
        return web.json_response(
            [
                # The sink's own notificationId is Notification Hubs'; the app's is inside the payload.
                {**{key: push.get(key) for key in keep}, "notificationId": pushed_notification_id(push)}
                for push in pushes
            ]
        )

    async def delivery(self, request: web.Request) -> web.Response:
        """The delivery record of one notification (404 until the notifier accepted it)."""
        user_id = _user(request.query.get("userId"))
        notification_id = request.query.get("notificationId") or ""
        row = await asyncio.to_thread(delivery_row, self.target, user_id, notification_id)
        if row is None:
            return _error(404, "not_found", "no delivery record (yet)")
        queued = await asyncio.to_thread(queue_length, self.target, "DEADLINES_QUEUE")
        summary = {key: row.get(key) for key in _DELIVERY_FIELDS}
        return web.json_response({**summary, "deadlinesQueued": queued})


def start_browser_demo(target: DemoTarget, host: str = "127.0.0.1", port: int = 0) -> RunningBrowserDemo:
    """Serve the demo for ``target`` on a background thread; port 0 picks a free one."""
    server = ServerThread(BrowserDemo(target).app(), host=host, port=port, name="browser-demo")
    bound = server.start()
    return RunningBrowserDemo(f"http://{host}:{bound}", server)
