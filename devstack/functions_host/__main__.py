"""Run the local Functions host as a process: ``python -m devstack.functions_host --app-dir . --port 7071``.

Prints ``functions host ready: http://HOST:PORT`` on stdout once serving; SIGTERM/SIGINT stop it cleanly
(in-flight queue messages finish or are released).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from aiohttp import web

from devstack.functions_host.host import (
    DEFAULT_DRAIN_TIMEOUT,
    FunctionsHost,
    cors_from_local_settings,
    prepare_settings,
)
from devstack.functions_host.indexing import IndexingError
from devstack.functions_host.settings_loader import SettingsError, load_local_host_section

READY_LINE = "functions host ready: {url}"
DEFAULT_PORT = 7071


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devstack.functions_host", description=__doc__)
    parser.add_argument("--app-dir", default=".", help="folder holding function_app.py and host.json")
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help="port (default: local.settings.json Host.LocalHttpPort, else 7071; 0 picks a free one)",
    )
    parser.add_argument("--cors", default=None, help="comma-separated allowed origins (default: Host.CORS)")
    parser.add_argument(
        "--settings", type=Path, default=None, help="local.settings.json (default: in --app-dir)"
    )
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=DEFAULT_DRAIN_TIMEOUT,
        help="seconds to let in-flight invocations finish on shutdown",
    )
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


async def _serve(functions_host: FunctionsHost, host: str, port: int) -> None:
    runner = web.AppRunner(functions_host.build_web_app(), handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server: Any = site._server  # aiohttp exposes the bound sockets only here
    bound = port
    if server is not None and getattr(server, "sockets", None):
        bound = int(server.sockets[0].getsockname()[1])
    await functions_host.start_listeners()  # after the bind (FunctionsHost.build_web_app says why)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(READY_LINE.format(url=f"http://{host}:{bound}"), flush=True)
    try:
        await stop.wait()
    finally:
        logging.getLogger(__name__).info("Stopping the functions host")
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = _parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="[%(asctime)s] %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S",
        stream=sys.stderr,
    )
    logging.getLogger("azure").setLevel(logging.WARNING)  # also the runtime's own logger, "azure.functions"
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # the Functions host logs no access lines
    app_dir = Path(args.app_dir).resolve()
    settings_file = args.settings or app_dir / "local.settings.json"
    try:
        prepare_settings(app_dir, None, settings_file)
        port = args.port
        if port is None:
            port = int(load_local_host_section(settings_file).get("LocalHttpPort") or DEFAULT_PORT)
        cors = cors_from_local_settings(settings_file, args.cors)
        functions_host = FunctionsHost(app_dir, dict(os.environ), drain_timeout=args.drain_timeout, cors=cors)
    except (IndexingError, SettingsError, ValueError) as exc:
        stack = getattr(exc, "stack_trace", "")
        if stack:
            print(stack.rstrip(), file=sys.stderr, flush=True)
        print(f"functions host failed to start: {exc}", file=sys.stderr, flush=True)
        return 1
    asyncio.run(_serve(functions_host, args.host, port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
