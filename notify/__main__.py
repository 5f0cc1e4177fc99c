"""Developer CLI: ``python -m notify send --user alice --title T --body B`` prints the notificationId."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from notify.client import NotificationClient
from notify.model import Delivery
from shared.errors import NotifyError
from shared.settings import DEFAULTS


def local_setting(name: str, settings_file: Path = Path("local.settings.json")) -> str | None:
    """``name`` from the environment, else from local.settings.json ``Values`` (as ``func start`` does)."""
    value = os.environ.get(name)
    if value:
        return value
    try:
        values = json.loads(settings_file.read_text(encoding="utf-8-sig")).get("Values") or {}
    except (OSError, ValueError, AttributeError):
        return None
    found = values.get(name) if isinstance(values, dict) else None
    return str(found) if found else None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m notify", description="Notification service tools")
    commands = parser.add_subparsers(dest="command", required=True)
    send = commands.add_parser("send", help="enqueue one notification")
    send.add_argument("--user", required=True, help="recipient user id")
    send.add_argument("--title", required=True)
    send.add_argument("--body", required=True)
    send.add_argument("--type", default="default")
    send.add_argument("--data", default="{}", help="JSON object of extra data")
    send.add_argument("--delivery", default="auto", choices=[d.value for d in Delivery])
    send.add_argument("--id", dest="notification_id", help="notificationId (default: a new uuid)")
    send.add_argument("--ttl", type=int, dest="ttl_seconds", help="time to live in seconds")
    send.add_argument(
        "--critical", action="store_true", help="bypass the user's mutes and quiet hours (high priority)"
    )
    # A developer tool, not the app: its defaults come from the same settings the app reads.
    send.add_argument(
        "--connection-string",
        default=local_setting("AzureWebJobsStorage"),
        help="storage connection string (default: $AzureWebJobsStorage, else local.settings.json)",
    )
    send.add_argument(
        "--queue",
        default=local_setting("NOTIFICATIONS_QUEUE") or DEFAULTS["NOTIFICATIONS_QUEUE"],
        help="queue name (default: NOTIFICATIONS_QUEUE as above, or 'notifications')",
    )
    args = parser.parse_args(argv)
    if not args.connection_string:
        parser.error(
            "no storage account: pass --connection-string, set AzureWebJobsStorage,"
            " or run it where local.settings.json is"
        )
    try:
        data = json.loads(args.data)
    except ValueError as exc:
        parser.error(f"--data is not JSON: {exc}")
    if not isinstance(data, dict):
        parser.error("--data must be a JSON object")
    client = NotificationClient.from_connection_string(args.connection_string, args.queue)
    try:
        notification_id = client.send(
            args.user,
            args.title,
            args.body,
            type=args.type,
            data=data,
            delivery=args.delivery,
            notification_id=args.notification_id,
            ttl_seconds=args.ttl_seconds,
            critical=args.critical,
        )
    except NotifyError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    print(notification_id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
