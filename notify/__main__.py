"""Developer and operator CLI: ``python -m notify send …`` enqueues a notification, ``python -m notify inbox
--user alice`` lists a user's inbox (``--counts``, ``--recount [--repair]``), ``python -m notify poison
list|replay [--since WHEN] [--id ID]`` shows and replays the poison queue."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from notify.client import NotificationClient
from notify.inbox import MAX_LIMIT, Inbox
from notify.inbox_model import Counts, StatusFilter
from notify.inbox_store import InboxStore
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
    send.add_argument("--no-inbox", dest="inbox", action="store_false",
                      help="deliver, but do not list it in the user's inbox")
    inbox = commands.add_parser("inbox", help="list a user's inbox (development aid)")
    inbox.add_argument("--user", required=True, help="the user id")
    inbox.add_argument("--limit", type=int, default=20, help=f"items to show, 1-{MAX_LIMIT} (default 20)")
    inbox.add_argument("--status", choices=[s.value for s in StatusFilter], help="only these items")
    inbox.add_argument("--type", help="only items of this type")
    inbox.add_argument("--counts", action="store_true", help="print the counts only")
    inbox.add_argument("--recount", action="store_true", help="check the counts against the items")
    inbox.add_argument("--repair", action="store_true", help="with --recount: correct a counter that drifted")
    inbox.add_argument("--json", action="store_true", help="print the API's JSON answer")
    _storage_arguments(inbox)
    _storage_arguments(send, queue=True)
    poison = commands.add_parser("poison", help="show or replay the poison queue")
    from notify import poison_cli

    poison_cli.add_arguments(
        poison,
        local_setting("AzureWebJobsStorage"),
        local_setting("NOTIFICATIONS_QUEUE") or DEFAULTS["NOTIFICATIONS_QUEUE"],
        local_setting("DELIVERIES_TABLE") or DEFAULTS["DELIVERIES_TABLE"],
    )
    args = parser.parse_args(argv)
    if not args.connection_string:
        parser.error(
            "no storage account: pass --connection-string, set AzureWebJobsStorage,"
            " or run it where local.settings.json is"
        )
    if args.command == "inbox":
        return _inbox(args, parser)
    if args.command == "poison":
        return poison_cli.run(args)
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
            inbox=args.inbox,
        )
    except NotifyError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    print(notification_id)
    return 0


def _storage_arguments(command: argparse.ArgumentParser, queue: bool = False) -> None:
    # A developer tool, not the app: its defaults come from the same settings the app reads.
    command.add_argument(
        "--connection-string",
        default=local_setting("AzureWebJobsStorage"),
        help="storage connection string (default: $AzureWebJobsStorage, else local.settings.json)",
    )
    if queue:
        command.add_argument(
            "--queue",
            default=local_setting("NOTIFICATIONS_QUEUE") or DEFAULTS["NOTIFICATIONS_QUEUE"],
            help="queue name (default: NOTIFICATIONS_QUEUE as above, or 'notifications')",
        )
    else:
        command.add_argument(
            "--table",
            default=local_setting("DELIVERIES_TABLE") or DEFAULTS["DELIVERIES_TABLE"],
            help="deliveries table (default: DELIVERIES_TABLE as above, or 'deliveries')",
        )


def _counts(counts: Counts) -> str:
    return f"{counts.unread} unread, {counts.unseen} unseen, {counts.total} total"


def _inbox(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``python -m notify inbox``: the user's items newest first, like the app's own list."""
    from azure.data.tables import TableClient

    if not 1 <= args.limit <= MAX_LIMIT:
        parser.error(f"--limit must be from 1 to {MAX_LIMIT}")
    if args.repair and not args.recount:
        parser.error("--repair needs --recount")
    table = TableClient.from_connection_string(args.connection_string, args.table)
    inbox = Inbox(InboxStore(table))
    try:
        if args.recount:
            result = inbox.recount(args.user, repair=args.repair)
            state = "consistent" if result.consistent else ("repaired" if result.repaired else "DRIFTED")
            print(f"counter {_counts(result.stored)}; the items add up to {_counts(result.computed)}"
                  f" (+{result.pending} pending): {state}")
            return 0 if result.consistent or result.repaired else 1
        if args.counts:
            print(_counts(inbox.counts(args.user)))
            return 0
        status = StatusFilter(args.status) if args.status else None
        page = inbox.page(args.user, limit=args.limit, type=args.type, status=status)
    except NotifyError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(page, indent=2, ensure_ascii=False))
        return 0
    counts = page["counts"]
    print(f"inbox of {args.user}: {_counts(Counts(**counts))}")
    for item in page["items"]:
        state = "new"
        for flag in ("seen", "read", "archived"):
            state = flag if item[flag] else state
        print(f"  {item['createdAt']}  {state:<8}  {item['type'][:12]:<12}  {item['title'][:40]:<40}"
              f"  {item['notificationId']}")
    if page["next"]:
        print(f"  … more: --limit {min(MAX_LIMIT, args.limit * 2)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
