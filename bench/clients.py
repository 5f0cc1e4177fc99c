"""K real Web PubSub clients (``json.webpubsub.azure.v1``) on one asyncio loop in a background thread.

Each client negotiates through the app's ``POST /api/negotiate`` with a dev token, connects, records the
receive time of every notification envelope and, while acking is on, answers with the app's ``ack`` user
event ``{"notificationId": ...}``, as the app's clients do. Users in ``silent`` never ack (an app that
received a message but did not show it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Coroutine, Sequence
from typing import Any

import aiohttp

from shared.auth import make_dev_token

logger = logging.getLogger(__name__)

SUBPROTOCOL = "json.webpubsub.azure.v1"


class AckingClients:
    """Connected clients of ``user_ids``; :attr:`received` maps notificationId to receive time (unix s)."""

    def __init__(self, functions_url: str, dev_secret: str, user_ids: Sequence[str],
                 silent: Sequence[str] = ()) -> None:
        self._functions_url = functions_url.rstrip("/")
        self._dev_secret = dev_secret
        self.user_ids = list(user_ids)
        self.silent = frozenset(silent)
        self.ack = True
        self.received: dict[str, float] = {}
        self.acks_sent = 0
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="bench-clients", daemon=True)
        self._session: aiohttp.ClientSession | None = None
        self._sockets: list[aiohttp.ClientWebSocketResponse] = []
        self._readers: list[asyncio.Task[None]] = []

    def _run(self, coroutine: Coroutine[Any, Any, Any], timeout: float) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def connect(self, timeout: float | None = None) -> None:
        """Negotiate and connect every user (a few at a time); raise on the first failure.

        ``timeout`` defaults to 60 s plus half a second per user.
        """
        self._thread.start()
        self._run(self._connect_all(), timeout or 60.0 + 0.5 * len(self.user_ids))

    def close(self) -> None:
        """Close every socket and stop the loop thread."""
        if not self._thread.is_alive():
            return
        with contextlib.suppress(Exception):
            self._run(self._close_all(), 30.0)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def received_ids(self, ids: Sequence[str]) -> dict[str, float]:
        """Receive times of those of ``ids`` that arrived."""
        with self._lock:
            return {key: self.received[key] for key in ids if key in self.received}

    def wait_for(self, ids: Sequence[str], timeout: float) -> dict[str, float]:
        """Wait until every id arrived, or none did for ``timeout`` seconds; return the receive times."""
        deadline = time.monotonic() + timeout
        count = 0
        while True:
            got = self.received_ids(ids)
            if len(got) > count:  # progress: a loaded machine drains slowly, not never
                count, deadline = len(got), time.monotonic() + timeout
            if len(got) == len(ids) or time.monotonic() > deadline:
                return got
            time.sleep(0.05)

    async def _connect_all(self) -> None:
        # Every WebSocket holds a pooled connection: no pool limit (aiohttp's default 100 would stall the
        # 101st negotiate).
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        limit = asyncio.Semaphore(10)

        async def one(user_id: str) -> None:
            async with limit:
                await self._connect_one(user_id)

        await asyncio.gather(*(one(user) for user in self.user_ids))

    async def _connect_one(self, user_id: str) -> None:
        assert self._session is not None
        token = make_dev_token(self._dev_secret, user_id)
        async with self._session.post(
            f"{self._functions_url}/api/negotiate", headers={"Authorization": f"Bearer {token}"}
        ) as response:
            if response.status != 200:
                raise RuntimeError(f"negotiate answered {response.status}: {await response.text()}")
            url = (await response.json())["url"]
        ws = await self._session.ws_connect(url, protocols=(SUBPROTOCOL,), heartbeat=None)
        self._sockets.append(ws)
        self._readers.append(asyncio.create_task(self._read(ws, user_id in self.silent)))

    async def _read(self, ws: aiohttp.ClientWebSocketResponse, silent: bool) -> None:
        async for message in ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            now = time.time()
            frame = json.loads(message.data)
            data = frame.get("data") if frame.get("type") == "message" else None
            if not isinstance(data, dict) or data.get("kind") != "notification":
                continue
            notification_id = str(data.get("notificationId"))
            with self._lock:
                self.received.setdefault(notification_id, now)
            if self.ack and not silent:
                with self._lock:
                    self.acks_sent += 1
                await ws.send_str(json.dumps({
                    "type": "event", "event": "ack", "dataType": "json",
                    "data": {"notificationId": notification_id},
                }))

    async def _close_all(self) -> None:
        for ws in self._sockets:
            with contextlib.suppress(Exception):
                await ws.close()
        for task in self._readers:
            task.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
