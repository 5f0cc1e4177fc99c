"""Run an aiohttp application on its own event loop in a background thread.

Tests and the ``devstack up`` command use this to host several emulators in one process.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from collections.abc import Callable, Coroutine
from typing import Any

from aiohttp import web


class ServerThread:
    """An aiohttp ``web.Application`` served from a daemon thread until :meth:`stop`."""

    def __init__(
        self,
        app: web.Application,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        name: str = "devstack-server",
        access_log: bool = False,
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self._name = name
        # aiohttp's access log writes full URLs, and client URLs carry access tokens: off by default.
        self._access_log = access_log
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the application runs on (valid after :meth:`start`)."""
        if self._loop is None:
            raise RuntimeError("server not started")
        return self._loop

    def start(self, timeout: float = 15.0) -> int:
        """Start serving; return the bound port. Raises the server's startup error, if any."""
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"{self._name} did not start within {timeout:.0f} s")
        if self._error is not None:
            raise RuntimeError(f"{self._name} failed to start: {self._error}") from self._error
        return self.port

    def call(self, func: Callable[..., Coroutine[Any, Any, Any]], *args: Any, timeout: float = 30.0) -> Any:
        """Run a coroutine function on the server's loop from another thread and return its result."""
        future: Any = asyncio.run_coroutine_threadsafe(func(*args), self.loop)
        return future.result(timeout)

    def stop(self, timeout: float = 15.0) -> None:
        """Shut the application down (running its cleanup hooks) and join the thread."""
        if self._loop is None or self._thread is None:
            return
        if self._runner is not None:
            future = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop)
            with contextlib.suppress(Exception):  # best effort during shutdown
                future.result(timeout)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
        self._thread = None

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # noqa: BLE001 - reported to start()
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _serve(self) -> None:
        if self._access_log:
            self._runner = web.AppRunner(self.app, handle_signals=False)
        else:
            self._runner = web.AppRunner(self.app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self.ssl_context)
        await site.start()
        server: Any = site._server  # aiohttp exposes the bound sockets only here
        sockets = getattr(server, "sockets", None)
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
