"""The command-line tools behind ``python -m notify`` (``--help`` on each command).

* ``send``: enqueue one notification (a connection string locally; ``--account-url`` with your Entra ID
  sign-in or managed identity in Azure);
* ``status`` / ``list``: a notification's status and timeline, a user's notifications by status, from the
  management API (a development backend token on the local stack);
* ``watch``: follow delivery outcomes as they happen, from the deliveries table;
* ``inbox``: a user's inbox (``--counts``, ``--recount [--repair]``), a development aid;
* ``poison list|replay [--since WHEN] [--id ID]``: the poison queue (:mod:`notify.poison_cli`);
* ``user-hash``: the ``userHash`` that log lines show for a user id;
* ``webhook-secret``: a new ``WEBHOOK_SECRET``.

Defaults come from the same settings the app reads: the environment, else ``local.settings.json`` in the
current folder (as ``func start`` does). Exit codes: see :data:`EXIT_CODES`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from notify.client import NotificationClient
from notify.inbox import MAX_LIMIT
from notify.inbox_model import Counts, StatusFilter
from notify.manage_client import ApiError, ApiUnreachable, ManageApiClient, is_loopback
from notify.model import Delivery
from shared.errors import NotifyError, TransientError, UpstreamError
from shared.settings import DEFAULTS

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3
EXIT_CODES = """exit codes:
  0  done (sent; found)
  1  refused: an invalid notification, a credential or role that is not enough, nothing found
  2  usage: a missing or malformed option
  3  unreachable: the storage account or the API could not be reached (network, timeout, 5xx)"""
DEFAULT_API_URL = "http://127.0.0.1:7071"
LOCAL_HINT = "is the local stack running? Start it with `make dev` (another terminal)"


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
    """Run the CLI; return the process exit code (:data:`EXIT_CODES`)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    command: Callable[[argparse.Namespace, argparse.ArgumentParser], int] = args.run
    try:
        return command(args, parser)
    except KeyboardInterrupt:
        return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="python -m notify", description="Notification service tools", epilog=EXIT_CODES,
        formatter_class=formatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)

    send = commands.add_parser(
        "send", help="enqueue one notification", epilog=EXIT_CODES, formatter_class=formatter,
        description="Enqueue one notification; prints its notificationId.",
    )
    send.add_argument("--user", required=True, help="recipient user id")
    send.add_argument("--title", required=True)
    send.add_argument("--body", required=True)
    send.add_argument("--type", default="default")
    send.add_argument("--data", default="{}", help="JSON object of extra data, or @file.json (@- for stdin)")
    send.add_argument("--delivery", default="auto", choices=[d.value for d in Delivery])
    send.add_argument("--id", dest="notification_id", help="notificationId (default: a new uuid)")
    send.add_argument("--ttl", type=int, dest="ttl_seconds", help="time to live in seconds")
    send.add_argument(
        "--critical", action="store_true", help="bypass the user's mutes and quiet hours (high priority)"
    )
    send.add_argument("--no-inbox", dest="inbox", action="store_false",
                      help="deliver, but do not list it in the user's inbox")
    send.add_argument(
        "--connection-string",
        help="storage connection string (default: $AzureWebJobsStorage, else local.settings.json)",
    )
    send.add_argument(
        "--account-url",
        help="queue service URL, e.g. https://<account>.queue.core.windows.net, used with your Entra ID "
        "sign-in or managed identity (DefaultAzureCredential; role Storage Queue Data Message Sender)",
    )
    send.add_argument(
        "--queue",
        default=local_setting("NOTIFICATIONS_QUEUE") or DEFAULTS["NOTIFICATIONS_QUEUE"],
        help="queue name (default: NOTIFICATIONS_QUEUE as above, or 'notifications')",
    )
    send.set_defaults(run=run_send)

    for name, helptext in (
        ("status", "a notification's status and delivery timeline"),
        ("list", "a user's notifications, optionally of some statuses"),
    ):
        sub = commands.add_parser(name, help=helptext, epilog=EXIT_CODES, formatter_class=formatter,
                                  description=helptext[0].upper() + helptext[1:] + " (management API).")
        if name == "status":
            sub.add_argument("notification_id", metavar="notificationId")
        sub.add_argument("--user", required=True, help="the recipient's user id")
        sub.add_argument(
            "--api-url", default=DEFAULT_API_URL, help=f"the function app (default {DEFAULT_API_URL})"
        )
        sub.add_argument(
            "--scope",
            help="token scope for a remote API, e.g. api://notify-manage/.default (default: "
            "AUTH_MANAGE_AUDIENCE + /.default); the token comes from DefaultAzureCredential and must be an "
            "application token with the management role",
        )
        sub.add_argument("--json", action="store_true", help="print the API's JSON answer")
        if name == "list":
            sub.add_argument("--status", default="", help="comma-separated statuses, e.g. pushed,no_devices")
            sub.add_argument("--limit", type=int, default=25, help="notifications per page (1-100)")
            sub.add_argument("--continuation", help="continuationToken of the previous page")
        sub.set_defaults(run=run_status if name == "status" else run_list)

    watch = commands.add_parser(
        "watch", help="follow delivery outcomes as they happen", epilog=EXIT_CODES, formatter_class=formatter,
        description="Print every delivery transition as it is recorded (Ctrl-C to stop).",
    )
    watch.add_argument("--user", help="only this user's notifications")
    watch.add_argument("--since", type=float, default=0.0, help="also show the last SECONDS (default 0)")
    watch.add_argument("--interval", type=float, default=1.0, help="seconds between looks (default 1)")
    watch.add_argument("--once", action="store_true", help="print what there is and stop")
    watch.add_argument(
        "--connection-string",
        help="storage connection string (default: $AzureWebJobsStorage, else local.settings.json)",
    )
    watch.add_argument(
        "--account-url",
        help="table service URL, e.g. https://<account>.table.core.windows.net, used with your Entra ID "
        "sign-in (role Storage Table Data Reader)",
    )
    watch.add_argument(
        "--table",
        default=local_setting("DELIVERIES_TABLE") or DEFAULTS["DELIVERIES_TABLE"],
        help="deliveries table (default: DELIVERIES_TABLE as above, or 'deliveries')",
    )
    watch.set_defaults(run=run_watch)

    inbox = commands.add_parser(
        "inbox", help="list a user's inbox (development aid)", epilog=EXIT_CODES, formatter_class=formatter,
    )
    inbox.add_argument("--user", required=True, help="the user id")
    inbox.add_argument("--limit", type=int, default=20, help=f"items to show, 1-{MAX_LIMIT} (default 20)")
    inbox.add_argument("--status", choices=[s.value for s in StatusFilter], help="only these items")
    inbox.add_argument("--type", help="only items of this type")
    inbox.add_argument("--counts", action="store_true", help="print the counts only")
    inbox.add_argument("--recount", action="store_true", help="check the counts against the items")
    inbox.add_argument("--repair", action="store_true", help="with --recount: correct a counter that drifted")
    inbox.add_argument("--json", action="store_true", help="print the API's JSON answer")
    inbox.add_argument(
        "--connection-string",
        help="storage connection string (default: $AzureWebJobsStorage, else local.settings.json)",
    )
    inbox.add_argument(
        "--table",
        default=local_setting("DELIVERIES_TABLE") or DEFAULTS["DELIVERIES_TABLE"],
        help="deliveries table (default: DELIVERIES_TABLE as above, or 'deliveries')",
    )
    inbox.set_defaults(run=run_inbox)

    from notify import poison_cli

    poison = commands.add_parser("poison", help="show or replay the poison queue")
    poison_cli.add_arguments(
        poison,
        local_setting("AzureWebJobsStorage"),
        local_setting("NOTIFICATIONS_QUEUE") or DEFAULTS["NOTIFICATIONS_QUEUE"],
        local_setting("DELIVERIES_TABLE") or DEFAULTS["DELIVERIES_TABLE"],
    )
    poison.set_defaults(run=run_poison)

    hash_command = commands.add_parser("user-hash", help="the userHash log lines show for a user id")
    hash_command.add_argument("user_id", metavar="userId")
    hash_command.set_defaults(run=run_user_hash)

    secret = commands.add_parser("webhook-secret", help="print a new WEBHOOK_SECRET (whsec_...)")
    secret.set_defaults(run=run_webhook_secret)
    return parser


# ---- send -------------------------------------------------------------------------------------------------


def run_send(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``send``: enqueue and print the notificationId."""
    data = _data(args.data, parser)
    client = _producer(args, parser)
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
    except TransientError as exc:
        return _unreachable(client.queue_url, _network_reason(exc))
    except UpstreamError as exc:
        print(f"error: {client.queue_url} refused the message: {exc.message}", file=sys.stderr)
        return EXIT_REFUSED
    except NotifyError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return EXIT_REFUSED
    print(notification_id)
    return EXIT_OK


def _data(raw: str, parser: argparse.ArgumentParser) -> dict[str, Any]:
    text = raw
    if raw.startswith("@"):
        name = raw[1:]
        try:
            text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            parser.error(f"--data {raw}: cannot read the file: {exc}")
    try:
        data = json.loads(text)
    except ValueError as exc:
        parser.error(f"--data is not JSON: {exc}")
    if not isinstance(data, dict):
        parser.error("--data must be a JSON object")
    return data


def _producer(args: argparse.Namespace, parser: argparse.ArgumentParser) -> NotificationClient:
    if args.account_url:
        if args.connection_string:
            parser.error("give --connection-string or --account-url, not both")
        if urlsplit(args.account_url).scheme not in ("https", "http"):
            parser.error("--account-url must be a URL such as https://<account>.queue.core.windows.net")
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential()
        return NotificationClient.from_account_url(args.account_url, args.queue, credential, fail_fast=True)
    connection_string = args.connection_string or local_setting("AzureWebJobsStorage")
    if not connection_string:
        parser.error(
            "no storage account: pass --connection-string or --account-url, set AzureWebJobsStorage,"
            " or run it where local.settings.json is"
        )
    try:
        return NotificationClient.from_connection_string(connection_string, args.queue, fail_fast=True)
    except ValueError as exc:
        parser.error(f"--connection-string is not a storage connection string: {exc}")


def _network_reason(exc: TransientError) -> str:
    cause = str(exc.__cause__ or "").lower()
    if "refused" in cause:
        return "connection refused"
    if "timed out" in cause or "timeout" in cause:
        return "timed out"
    if "name or service not known" in cause or "nodename" in cause or "getaddrinfo" in cause:
        return "host name not found"
    if exc.upstream_status:
        return f"it answered {exc.upstream_status}"
    return exc.message


def _unreachable(url: str, reason: str) -> int:
    hint = LOCAL_HINT if is_loopback(url) else "check the URL and your network"
    print(f"error: could not reach {url} ({reason}); {hint}", file=sys.stderr)
    return EXIT_UNREACHABLE


# ---- status / list ---------------------------------------------------------------------------------------


def run_status(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``status``: print a notification's status and timeline."""
    client = ManageApiClient(args.api_url, _manage_token(args, parser))
    body = _call(lambda: client.notification(args.user, args.notification_id))
    if isinstance(body, int):
        return body
    if args.json:
        print(json.dumps(body, indent=2, ensure_ascii=False))
        return EXIT_OK
    print(f"notification {body['notificationId']} for {body['userId']}: {body['status']} "
          f"(delivery {body['delivery']})")
    times = [f"{label} {body[key]}" for label, key in (("enqueued", "enqueuedAt"), ("accepted", "acceptedAt"),
                                                        ("expires", "expiresAt")) if body.get(key)]
    if times:
        print("  " + ", ".join(times))
    for entry in body.get("timeline", []):
        print(f"  {entry['at']}  {entry['name']:<15} {entry['status']:<13} {entry['reason']}")
    return EXIT_OK


def run_list(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``list``: print one page of a user's notifications."""
    client = ManageApiClient(args.api_url, _manage_token(args, parser))
    statuses = [s.strip() for s in args.status.split(",") if s.strip()]
    body = _call(lambda: client.notifications(args.user, statuses, args.limit, args.continuation))
    if isinstance(body, int):
        return body
    if args.json:
        print(json.dumps(body, indent=2, ensure_ascii=False))
        return EXIT_OK
    for item in body.get("items", []):
        last = item.get("lastChange") or {}
        print(f"{item['notificationId']}  {item['status']:<13} {item.get('acceptedAt') or '-'}  "
              f"{last.get('reason', '')}")
    if body.get("continuationToken"):
        print(f"(more: --continuation {body['continuationToken']})")
    return EXIT_OK


def _call(request: Callable[[], dict[str, Any]]) -> dict[str, Any] | int:
    from azure.core.exceptions import ClientAuthenticationError

    try:
        return request()
    except ApiUnreachable as exc:
        return _unreachable(exc.url, exc.reason)
    except ApiError as exc:
        print(f"error: the API answered {exc.status} ({exc.code}): {exc.message}", file=sys.stderr)
        return EXIT_UNREACHABLE if exc.status >= 500 else EXIT_REFUSED
    except ClientAuthenticationError as exc:
        print(f"error: could not get a token for the management API: {str(exc).splitlines()[0][:300]}",
              file=sys.stderr)
        return EXIT_REFUSED


def _manage_token(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Callable[[], str]:
    from shared.auth import make_dev_manage_token

    if args.scope or not is_loopback(args.api_url):
        audience = local_setting("AUTH_MANAGE_AUDIENCE")
        scope = args.scope or (f"{audience.rstrip('/')}/.default" if audience else None)
        if not scope:
            parser.error("a remote API needs --scope (e.g. api://notify-manage/.default)")
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential()
        return lambda: str(credential.get_token(scope).token)
    secret = local_setting("AUTH_DEV_SECRET")
    if not secret:
        parser.error("no AUTH_DEV_SECRET for a local backend token: run it where local.settings.json is")
    issuer = local_setting("AUTH_DEV_ISSUER") or DEFAULTS["AUTH_DEV_ISSUER"]
    audience = local_setting("AUTH_DEV_MANAGE_AUDIENCE") or DEFAULTS["AUTH_DEV_MANAGE_AUDIENCE"]
    role = local_setting("AUTH_MANAGE_ROLE") or DEFAULTS["AUTH_MANAGE_ROLE"]
    return lambda: make_dev_manage_token(secret, issuer=issuer, audience=audience, role=role, minutes=10)


# ---- inbox ----------------------------------------------------------------------------------------------


def _counts(counts: Counts) -> str:
    return f"{counts.unread} unread, {counts.unseen} unseen, {counts.total} total"


def run_inbox(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``inbox``: the user's items newest first, like the app's own list."""
    from azure.data.tables import TableClient

    from notify.inbox import Inbox
    from notify.inbox_store import InboxStore

    if not 1 <= args.limit <= MAX_LIMIT:
        parser.error(f"--limit must be from 1 to {MAX_LIMIT}")
    if args.repair and not args.recount:
        parser.error("--repair needs --recount")
    connection_string = args.connection_string or local_setting("AzureWebJobsStorage")
    if not connection_string:
        parser.error(
            "no storage account: pass --connection-string, set AzureWebJobsStorage,"
            " or run it where local.settings.json is"
        )
    table = TableClient.from_connection_string(connection_string, args.table)
    inbox = Inbox(InboxStore(table))
    try:
        if args.recount:
            result = inbox.recount(args.user, repair=args.repair)
            state = "consistent" if result.consistent else ("repaired" if result.repaired else "DRIFTED")
            print(f"counter {_counts(result.stored)}; the items add up to {_counts(result.computed)}"
                  f" (+{result.pending} pending): {state}")
            return EXIT_OK if result.consistent or result.repaired else EXIT_REFUSED
        if args.counts:
            print(_counts(inbox.counts(args.user)))
            return EXIT_OK
        status = StatusFilter(args.status) if args.status else None
        page = inbox.page(args.user, limit=args.limit, type=args.type, status=status)
    except TransientError as exc:
        return _unreachable(table.url, _network_reason(exc))
    except NotifyError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return EXIT_REFUSED
    if args.json:
        print(json.dumps(page, indent=2, ensure_ascii=False))
        return EXIT_OK
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
    return EXIT_OK


# ---- poison -----------------------------------------------------------------------------------------------


def run_poison(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``poison list|replay``: :func:`notify.poison_cli.run`."""
    from notify import poison_cli

    if not args.connection_string:
        parser.error(
            "no storage account: pass --connection-string, set AzureWebJobsStorage,"
            " or run it where local.settings.json is"
        )
    return poison_cli.run(args)


# ---- watch, user-hash, webhook-secret ---------------------------------------------------------------------


def run_watch(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``watch``: print delivery transitions as they are recorded."""
    from azure.core.exceptions import AzureError, ClientAuthenticationError, HttpResponseError
    from azure.data.tables import TableClient

    from notify.watch import DeliveryWatcher, follow

    if args.account_url:
        from azure.identity import DefaultAzureCredential

        table = TableClient(args.account_url, args.table, credential=DefaultAzureCredential(),
                            retry_total=1, connection_timeout=2)
        where = f"{args.account_url.rstrip('/')}/{args.table}"
    else:
        connection_string = args.connection_string or local_setting("AzureWebJobsStorage")
        if not connection_string:
            parser.error("no storage account: pass --connection-string or --account-url, or run it where "
                         "local.settings.json is")
        table = TableClient.from_connection_string(connection_string, args.table, retry_total=1,
                                                   connection_timeout=2)
        where = f"{table.url}"
    watcher = DeliveryWatcher(table, args.user, args.since)
    try:
        follow(watcher, sys.stdout, args.interval, keep_going=lambda: not args.once)
    except ClientAuthenticationError as exc:
        print(f"error: could not get a token for {where}: {str(exc).splitlines()[0][:300]}", file=sys.stderr)
        return EXIT_REFUSED
    except HttpResponseError as exc:
        if exc.status_code == 404:
            if args.once:
                return EXIT_OK  # no table yet: nothing was ever delivered
            print(f"error: table {args.table} does not exist at {where}", file=sys.stderr)
            return EXIT_REFUSED
        if exc.status_code is not None and exc.status_code < 500:
            print(f"error: {where} refused the query ({exc.status_code})", file=sys.stderr)
            return EXIT_REFUSED
        return _unreachable(where, f"it answered {exc.status_code}")
    except AzureError as exc:
        reason = "connection refused" if "refused" in str(exc).lower() else type(exc).__name__
        return _unreachable(where, reason)
    return EXIT_OK


def run_user_hash(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``user-hash``: print the 12 hex digits log lines show for the user id."""
    from shared.user_keys import user_hash

    print(user_hash(args.user_id))
    return EXIT_OK


def run_webhook_secret(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``webhook-secret``: print a new random webhook signing secret."""
    from notify.webhooks import new_secret

    print(new_secret())
    return EXIT_OK
