"""The local Functions host: load the app into the Python runtime, serve HTTP and Web PubSub webhooks, run
queue and timer listeners.

At start the host asks ``azure-functions-runtime`` (:class:`PythonWorker`) to index the app, takes the
function metadata it returns, loads each function and from then on sends it every invocation.
``start_functions_host`` runs it in-process on a background thread (tests); ``python -m
devstack.functions_host`` runs it as a separate process (``make dev``, end-to-end tests).
"""

from __future__ import annotations

import asyncio
import logging
import os
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from devstack.functions_host.cors import CorsSettings, cors_middleware
from devstack.functions_host.http_trigger import HttpTriggerDispatcher, build_routes
from devstack.functions_host.indexing import IndexedFunction, IndexingError, index_functions
from devstack.functions_host.invoker import Invoker
from devstack.functions_host.ncrontab import ScheduleError, parse_schedule
from devstack.functions_host.output_bindings import check_bindings
from devstack.functions_host.python_worker import PythonWorker, WorkerError, script_file_name
from devstack.functions_host.queue_listener import QueueListener
from devstack.functions_host.settings_loader import (
    QueueOptions,
    apply_host_json_overrides,
    apply_local_settings,
    connection_string_for,
    load_host_json,
    load_local_host_section,
    load_local_settings,
    route_prefix,
)
from devstack.functions_host.timer import TimerListener
from devstack.functions_host.webpubsub_trigger import WEBHOOK_PATH, WebPubSubDispatcher, build_listeners
from devstack.server_thread import ServerThread

logger = logging.getLogger(__name__)

DEFAULT_DRAIN_TIMEOUT = 5.0
SUPPORTED_TRIGGERS = {"httptrigger", "queuetrigger", "timertrigger", "webpubsubtrigger"}


class FunctionsHost:
    """One indexed app and everything that triggers its functions."""

    def __init__(
        self,
        app_dir: Path,
        settings: Mapping[str, str],
        drain_timeout: float = DEFAULT_DRAIN_TIMEOUT,
        cors: CorsSettings | None = None,
    ) -> None:
        self.app_dir = app_dir.resolve()
        self.cors = cors or CorsSettings()
        self.settings = dict(settings)
        self.drain_timeout = drain_timeout
        self.host_json = apply_host_json_overrides(load_host_json(self.app_dir), self.settings)
        self._queue_listeners: list[QueueListener] = []
        self._timers: list[TimerListener] = []
        self.worker = PythonWorker(self.app_dir, script_file_name(self.settings))
        try:
            self.functions: list[IndexedFunction] = asyncio.run(self._load_app())
            self._check_triggers()
            check_bindings(self.functions)
            self.queue_options = QueueOptions.from_host_json(self.host_json)
            self.invoker = Invoker(
                self.worker,
                self.settings,
                self.queue_options.message_encoding,
                on_queue_written=self._notify_queue_listeners,
            )
            self.prefix = route_prefix(self.host_json)
            self.http = HttpTriggerDispatcher(build_routes(self.functions), self.prefix, self.invoker)
            listeners, global_options = build_listeners(self.functions, self.settings)
            self.webpubsub = WebPubSubDispatcher(listeners, global_options, self.invoker)
            self._queue_connections = {
                f.name: connection_string_for(f.trigger, self.settings)
                for f in self.functions
                if f.trigger_type == "queueTrigger"
            }
        except BaseException:
            self.worker.stop()
            raise

    async def _load_app(self) -> list[IndexedFunction]:
        """Init the runtime on the app (it indexes it), index its metadata, load every function."""
        script = script_file_name(self.settings)
        if not (self.app_dir / script).is_file():
            raise IndexingError(f"no {script} in {self.app_dir}")
        where = f"azure-functions-runtime {self.worker.runtime_version}"
        try:
            await self.worker.init()
            metadata = await self.worker.functions_metadata()
        except WorkerError as exc:
            raise IndexingError(f"{where} could not index {script}: {exc.message}", exc.stack_trace) from exc
        functions = index_functions(metadata, self.settings)
        for function in functions:
            try:
                await self.worker.load(function.metadata)
            except WorkerError as exc:
                raise IndexingError(f"{where}: {exc}", exc.stack_trace) from exc
        logger.info(
            "Python runtime: %s on Python %s, %d functions indexed, sync functions on %d threads",
            where,
            platform.python_version(),
            len(functions),
            self.worker.thread_count,
        )
        return functions

    def _notify_queue_listeners(self, queue_name: str) -> None:
        for listener in self._queue_listeners:
            if listener.queue_name == queue_name:
                listener.notify()

    def _check_triggers(self) -> None:
        for function in self.functions:
            if function.trigger_type == "timerTrigger":
                try:
                    parse_schedule(str(function.trigger.get("schedule", "")))
                except ScheduleError as exc:
                    raise IndexingError(f"function '{function.name}': {exc}") from exc
            if function.trigger_type.lower() not in SUPPORTED_TRIGGERS:
                logger.warning(
                    "Function '%s' uses trigger '%s', which this local host does not run",
                    function.name,
                    function.trigger_type,
                )

    @property
    def function_names(self) -> list[str]:
        """Names of the indexed functions."""
        return [f.name for f in self.functions]

    def build_web_app(self) -> web.Application:
        """Return the aiohttp application serving the host."""
        app = web.Application(client_max_size=100 * 1024 * 1024, middlewares=[cors_middleware(self.cors)])
        app.router.add_route("*", WEBHOOK_PATH, self.webpubsub.handle)
        app.router.add_get("/admin/host/status", self._status)
        app.router.add_route("*", "/{tail:.*}", self.http.handle)
        # The listeners start once the site is bound (start_listeners): an invocation's consequences can
        # come straight back over HTTP (a client acks an in-app message: Web PubSub posts the ack event to
        # this host), and must not find the port closed. on_startup would run them before the bind.
        app.on_cleanup.append(self._stop_listeners)
        return app

    async def _status(self, request: web.Request) -> web.Response:
        return web.json_response({"state": "Running", "functions": self.function_names})

    async def start_listeners(self) -> None:
        """Start the queue and timer listeners; call it once the HTTP site listens."""
        for function in self.functions:
            if function.trigger_type == "queueTrigger":
                listener = QueueListener(
                    function, self._queue_connections[function.name], self.queue_options, self.invoker
                )
                await listener.start()
                self._queue_listeners.append(listener)
            elif function.trigger_type == "timerTrigger":
                timer = TimerListener(function, self.invoker)
                await timer.start()
                self._timers.append(timer)
        self._log_functions()

    def _log_functions(self) -> None:
        for function in self.functions:
            trigger = function.trigger_type
            if trigger == "httpTrigger":
                route = function.trigger.get("route") or function.name
                methods = ",".join(function.trigger.get("methods") or ["*"])
                logger.info(
                    "Functions: %s: [%s] /%s",
                    function.name,
                    methods,
                    "/".join(p for p in (self.prefix, route) if p),
                )
            else:
                logger.info("Functions: %s: %s", function.name, trigger)

    async def _stop_listeners(self, app: web.Application) -> None:
        for timer in self._timers:
            await timer.stop()
        await asyncio.gather(*(listener.stop(self.drain_timeout) for listener in self._queue_listeners))
        self._timers.clear()
        self._queue_listeners.clear()
        self.worker.stop()


@dataclass
class RunningFunctionsHost:
    """A host serving on a background thread; :meth:`stop` shuts it down and restores the environment."""

    url: str
    port: int
    host: FunctionsHost
    _server: ServerThread = field(repr=False)
    _restore_environ: dict[str, str | None] = field(repr=False, default_factory=dict)

    def stop(self) -> None:
        """Stop serving: let in-flight work finish (up to the drain timeout), release the rest."""
        self._server.stop(timeout=self.host.drain_timeout + 15)
        _restore(self._restore_environ)
        self._restore_environ.clear()


def prepare_settings(
    app_dir: Path, environ: Mapping[str, str] | None, settings_file: Path | None = None
) -> dict[str, str | None]:
    """Put ``environ`` and local.settings.json into os.environ (environment wins); return old values."""
    previous: dict[str, str | None] = {}

    def remember(name: str) -> None:
        if name not in previous:
            previous[name] = os.environ.get(name)

    for name, value in (environ or {}).items():
        remember(name)
        os.environ[name] = value
    local_values = load_local_settings(settings_file or app_dir / "local.settings.json")
    for name in local_values:
        remember(name)
    apply_local_settings(local_values, os.environ)
    return {name: value for name, value in previous.items() if os.environ.get(name) != value}


def cors_from_local_settings(path: Path, override: str | None) -> CorsSettings:
    """CORS from ``--cors``/``cors=`` if given, else ``Host.CORS``/``Host.CORSCredentials``."""
    section = load_local_host_section(path)
    origins = override if override is not None else section.get("CORS")
    return CorsSettings.parse(origins, bool(section.get("CORSCredentials", False)))


def start_functions_host(
    app_dir: str | Path,
    host: str = "127.0.0.1",
    port: int = 0,
    environ: dict[str, str] | None = None,
    drain_timeout: float = DEFAULT_DRAIN_TIMEOUT,
    cors: str | None = None,
) -> RunningFunctionsHost:
    """Load ``app_dir`` into the runtime and serve it on a background thread (IndexingError/SettingsError).

    ``environ`` is set in os.environ for the host's lifetime (the app reads its settings from there), then
    local.settings.json fills the names that are still unset, as ``func start`` does. ``cors`` is a
    comma-separated origin list (default: local.settings.json ``Host.CORS``). One in-process host at a time.
    """
    directory = Path(app_dir).resolve()
    restore = prepare_settings(directory, environ)
    try:
        cors_settings = cors_from_local_settings(directory / "local.settings.json", cors)
        functions_host = FunctionsHost(
            directory, dict(os.environ), drain_timeout=drain_timeout, cors=cors_settings
        )
    except BaseException:
        _restore(restore)
        raise
    server = ServerThread(functions_host.build_web_app(), host=host, port=port, name="functions-host")
    try:
        bound = server.start()
    except BaseException:
        functions_host.worker.stop()
        _restore(restore)
        raise
    try:
        server.call(functions_host.start_listeners)
    except BaseException:
        server.stop()
        _restore(restore)
        raise
    return RunningFunctionsHost(f"http://{host}:{bound}", bound, functions_host, server, restore)


def _restore(previous: Mapping[str, Any]) -> None:
    for name, value in previous.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
