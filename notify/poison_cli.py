"""``python -m notify poison list|replay [--since WHEN] [--id ID]``: the poison queue for operators.

``list`` shows each poison message with its reason (from the envelope, or worked out from the message) and
the delivery record's status; it leaves the queue as it was. ``replay`` moves messages back to the
notifications queue (see :mod:`notify.poison` for why that never doubles a delivery).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from azure.core.exceptions import AzureError
from azure.data.tables import TableClient
from azure.storage.queue import (
    BinaryBase64DecodePolicy,
    BinaryBase64EncodePolicy,
    QueueClient,
    TextBase64EncodePolicy,
)

from notify.deliveries import DeliveryStore
from notify.poison import PoisonEntry, PoisonQueue
from shared.errors import NotifyError

_DURATION = re.compile(r"^(\d+)\s*([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``30m``, ``2h``, ``7d``, ``90s`` (ago) or an ISO 8601 time (UTC unless it says otherwise)."""
    now = now or datetime.now(UTC)
    match = _DURATION.match(text.strip().lower())
    if match:
        return now - timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--since {text!r}: give a duration such as 30m, 2h, 7d or an ISO 8601 time"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def add_arguments(parser: argparse.ArgumentParser, connection_string: str | None, queue: str,
                  deliveries_table: str) -> None:
    """The ``poison`` sub-commands and their options."""
    commands = parser.add_subparsers(dest="poison_command", required=True)
    for name, help_text in (("list", "show the poison messages and why they are there"),
                            ("replay", "move poison messages back to the notifications queue")):
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("--since", type=parse_since, metavar="WHEN",
                         help="only messages poisoned since WHEN (30m, 2h, 7d or an ISO 8601 time)")
        sub.add_argument("--id", dest="ids", action="append", metavar="ID",
                         help="only this notificationId or poison message id (repeatable)")
        sub.add_argument("--connection-string", default=connection_string,
                         help="storage connection string (default: $AzureWebJobsStorage, "
                         "else local.settings.json)")
        sub.add_argument("--queue", default=queue, help=f"notifications queue (default: {queue}); "
                         "its poison queue is <queue>-poison")
        sub.add_argument("--deliveries-table", default=deliveries_table,
                         help=f"deliveries table, for the record's status (default: {deliveries_table})")
        if name == "list":
            sub.add_argument("--json", action="store_true", help="one JSON object per line")
        else:
            sub.add_argument("--dry-run", action="store_true",
                             help="say what would be replayed, change nothing")
            sub.add_argument("--force", action="store_true",
                             help="also replay messages without a notificationId (they could arrive twice)")


def selector(since: datetime | None, ids: list[str] | None) -> Callable[[PoisonEntry], bool]:
    """The filter ``--since`` and ``--id`` ask for."""
    wanted = set(ids or [])

    def matches(entry: PoisonEntry) -> bool:
        if since is not None and (entry.inserted_on is None or entry.inserted_on < since):
            return False
        return not wanted or entry.message_id in wanted or entry.notification_id in wanted

    return matches


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run ``poison list`` or ``poison replay``; return the exit code."""
    out = out or sys.stdout
    poison_client = QueueClient.from_connection_string(
        args.connection_string, args.queue + "-poison",
        message_encode_policy=BinaryBase64EncodePolicy(), message_decode_policy=BinaryBase64DecodePolicy(),
    )
    poison = PoisonQueue(poison_client)
    matches = selector(args.since, args.ids)
    try:
        if args.poison_command == "list":
            return _list(args, poison, matches, out)
        notifications = QueueClient.from_connection_string(
            args.connection_string, args.queue, message_encode_policy=TextBase64EncodePolicy()
        )
        with notifications:
            results = poison.replay(notifications, matches, force=args.force, dry_run=args.dry_run)
    except NotifyError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    finally:
        poison_client.close()
    for result in results:
        print(f"{result.note}: {_describe(result.entry)}", file=out)
    replayed = sum(r.replayed for r in results)
    print(f"{replayed} replayed, {len(results) - replayed} not replayed", file=out)
    return 0


def _list(
    args: argparse.Namespace, poison: PoisonQueue, matches: Callable[[PoisonEntry], bool], out: TextIO
) -> int:
    entries = poison.entries(matches)
    records = _record_lookup(args)
    for entry in entries:
        record = records(entry)
        if args.json:
            print(json.dumps({**entry.to_dict(), "record": record}, ensure_ascii=False), file=out)
        else:
            status = f" [record: {record['status']}]" if record else ""
            print(f"{_describe(entry)}{status}\n    {entry.reason}", file=out)
    if not args.json:
        print(f"{len(entries)} poison message(s) in {args.queue}-poison", file=out)
    return 0


def _describe(entry: PoisonEntry) -> str:
    when = entry.inserted_on.isoformat(timespec="seconds") if entry.inserted_on else "?"
    return f"{when} {entry.notification_id or '(no notificationId)'} user {entry.user_id or '?'} " \
           f"(message {entry.message_id})"


def _record_lookup(args: argparse.Namespace) -> Callable[[PoisonEntry], dict[str, Any] | None]:
    """The delivery record's status and last error for an entry, when the table can be read."""
    try:
        table = TableClient.from_connection_string(args.connection_string, args.deliveries_table)
        store = DeliveryStore(table)
    except (AzureError, ValueError):
        return lambda _: None

    def lookup(entry: PoisonEntry) -> dict[str, Any] | None:
        if not (entry.notification_id and entry.user_id):
            return None
        with contextlib.suppress(NotifyError, AzureError, ValueError, KeyError):
            record = store.get(entry.user_id, entry.notification_id)
            if record is not None:
                state = record.state
                return {"status": state.status.value, "attempts": state.attempts,
                        "lastError": state.last_error, "reason": state.reason}
        return None

    return lookup
