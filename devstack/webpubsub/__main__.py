"""Command line: ``python -m devstack.webpubsub --help``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import secrets
import signal
import sys

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from devstack.tls import https_server
from devstack.webpubsub.app import create_app
from devstack.webpubsub.running import connection_string, public_host_for
from devstack.webpubsub.settings import (
    DEFAULT_ACK_DELAY_SECONDS,
    DEFAULT_RECOVERY_WINDOW_SECONDS,
    EmulatorConfig,
    HubSettings,
    SettingsError,
    parse_event_handler_spec,
)

DEFAULT_PORT = 8080
logger = logging.getLogger("devstack.webpubsub")


class PathOnlyAccessLogger(AbstractAccessLogger):
    """Access log without query strings: client URLs carry access tokens there."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        """Log method, path, status and duration."""
        self.logger.info("%s %s -> %s (%.1f ms)", request.method, request.path, response.status, time * 1000)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also documents the flags)."""
    parser = argparse.ArgumentParser(
        prog="python -m devstack.webpubsub",
        description="Azure Web PubSub emulator for local development: REST API, client WebSockets, events.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 = free port)"
    )
    parser.add_argument(
        "--access-key", help="primary access key (default: random, shown in the connection string)"
    )
    parser.add_argument("--secondary-key", help="secondary access key (adds a second ce-signature value)")
    parser.add_argument(
        "--hub", action="append", default=[], metavar="NAME", help="declare a hub (repeatable)"
    )
    parser.add_argument(
        "--event-handler",
        action="append",
        default=[],
        metavar="HUB=URL[;user=PATTERN][;system=EVENTS]",
        help="add an event handler to HUB, in order; PATTERN is *, a comma list or empty; EVENTS is a "
        "comma list of connect,connected,disconnected. URL may use {hub} and {event}. Example: "
        "'notify=http://127.0.0.1:7071/runtime/webhooks/webpubsub;user=*;system=connect,connected,disconnected'",
    )
    parser.add_argument(
        "--allow-anonymous",
        action="append",
        default=[],
        metavar="HUB",
        help="set anonymousConnectPolicy=allow",
    )
    parser.add_argument(
        "--recovery-window",
        type=float,
        default=DEFAULT_RECOVERY_WINDOW_SECONDS,
        metavar="SECONDS",
        help=f"recovery window of dropped reliable clients (default {DEFAULT_RECOVERY_WINDOW_SECONDS:.0f})",
    )
    parser.add_argument(
        "--ack-delay",
        type=float,
        default=DEFAULT_ACK_DELAY_SECONDS,
        metavar="SECONDS",
        help=f"latency added to ack frames (default {DEFAULT_ACK_DELAY_SECONDS}; see README)",
    )
    parser.add_argument(
        "--https",
        action="store_true",
        help="serve TLS (https:// REST, wss:// clients) with a fresh self-signed certificate; its path is "
        "printed as WEBPUBSUB_CERT=<path> before the ready line",
    )
    parser.add_argument("--cert-dir", help="folder for cert.pem/key.pem with --https (default: temp folder)")
    parser.add_argument("--log-level", default="INFO", help="log level for stderr (default INFO)")
    return parser


def build_config(args: argparse.Namespace) -> EmulatorConfig:
    """Turn parsed arguments into an EmulatorConfig; raises SettingsError for bad handler specs."""
    hubs: dict[str, HubSettings] = {name: HubSettings() for name in args.hub}
    for spec in args.event_handler:
        hub, handler = parse_event_handler_spec(spec)
        hubs.setdefault(hub, HubSettings()).event_handlers.append(handler)
    for hub in args.allow_anonymous:
        hubs.setdefault(hub, HubSettings()).anonymous_connect_policy = "allow"
    return EmulatorConfig(
        access_key=args.access_key or secrets.token_urlsafe(32),
        secondary_key=args.secondary_key,
        hubs=hubs,
        recovery_window_seconds=args.recovery_window,
        ack_delay_seconds=args.ack_delay,
        public_host=public_host_for(args.host),
    )


async def serve(
    config: EmulatorConfig, host: str, port: int, https: bool = False, cert_dir: str | None = None
) -> None:
    """Serve until SIGINT/SIGTERM."""
    cert_path, ssl_context = https_server(https, cert_dir, "devstack web pubsub emulator")
    runner = web.AppRunner(create_app(config), handle_signals=False, access_log_class=PathOnlyAccessLogger)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
    await site.start()
    sockets = getattr(site._server, "sockets", None)  # aiohttp exposes the bound sockets only here
    bound = int(sockets[0].getsockname()[1]) if sockets else port
    endpoint = f"{'https' if https else 'http'}://{config.public_host}:{bound}"
    if https:
        print(f"WEBPUBSUB_CERT={cert_path}", flush=True)
    print(f"webpubsub ready: {connection_string(endpoint, config.access_key)}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        logger.info("stopping")
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = build_config(args)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    asyncio.run(serve(config, args.host, args.port, args.https, args.cert_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
