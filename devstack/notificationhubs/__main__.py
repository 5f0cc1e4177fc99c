"""``python -m devstack.notificationhubs``: run the Notification Hubs emulator until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from types import FrameType

from devstack.notificationhubs.emulator import start_notification_hubs_emulator
from devstack.notificationhubs.scheduled import TIERS


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(
        prog="python -m devstack.notificationhubs",
        description="Local Azure Notification Hubs emulator (data-plane REST, push sink /_devstack/pushes). "
        "Prints one line 'NOTIFICATION_HUBS_CONNECTION_STRING=<connection string>' when ready.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="TCP port (default: a free port)")
    parser.add_argument(
        "--hub",
        action="append",
        dest="hubs",
        metavar="NAME",
        help="create this hub (repeatable; default: notify)",
    )
    parser.add_argument("--full-key", help="key of DefaultFullSharedAccessSignature (default: random)")
    parser.add_argument("--listen-key", help="key of DefaultListenSharedAccessSignature (default: random)")
    parser.add_argument(
        "--tier",
        choices=TIERS,
        default="standard",
        help="namespace pricing tier (default standard); free and basic refuse scheduled sends with 403",
    )
    parser.add_argument("--https", action="store_true", help="serve TLS with a fresh self-signed certificate")
    parser.add_argument(
        "--cert-dir", help="folder for cert.pem/key.pem with --https (default: a temp folder)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the emulator; return the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    emulator = start_notification_hubs_emulator(
        host=args.host,
        port=args.port,
        hubs=tuple(args.hubs or ("notify",)),
        full_key=args.full_key,
        listen_key=args.listen_key,
        https=args.https,
        cert_dir=args.cert_dir,
        tier=args.tier,
    )
    try:
        hubs = ",".join(emulator.state.hub_names())
        if emulator.cert_path is not None:
            print(f"NOTIFICATION_HUBS_CERT={emulator.cert_path}", flush=True)
        print(f"NOTIFICATION_HUBS_HUBS={hubs}", flush=True)
        print(f"NOTIFICATION_HUBS_TIER={emulator.state.tier}", flush=True)
        print(f"NOTIFICATION_HUBS_CONNECTION_STRING={emulator.connection_string}", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
