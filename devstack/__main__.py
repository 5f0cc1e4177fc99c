"""``python -m devstack up``: start the whole local stack and keep it running until Ctrl-C.

``python -m devstack demo``: run the end-to-end demo scenario (``devstack.demo``) against a running
``make dev``, or against a private stack it starts and stops itself.

``python -m devstack token --user alice``: print a development token for the local stack (stdout: the token
alone, so ``TOKEN=$(python -m devstack token --user alice)`` works; stderr: how to use it). ``--backend``
instead of ``--user``: a backend token for the management API.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from devstack.azurite import AzuriteNotInstalled
from devstack.functions_host.process import FunctionsHostStartError
from devstack.stack import StackAlreadyRunning, app_exists, start_stack


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the requested command; return the exit code."""
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start Azurite, the emulators and the Functions host")
    up.add_argument("--no-host", action="store_true", help="start only the storage and service emulators")
    up.add_argument("--in-memory", action="store_true", help="keep Azurite's data in memory only")
    up.add_argument("--log-level", default="WARNING")
    up.add_argument(
        "--cors",
        default=None,
        help="comma-separated browser origins the app answers CORS for ('' for none; default: "
        "local.settings.json Host.CORS, else any port of localhost, 127.0.0.1 and [::1])",
    )
    token = commands.add_parser(
        "token", help="print a development token for a user (or a backend) of the local stack"
    )
    who = token.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", help="the user id (the token's sub claim)")
    who.add_argument(
        "--backend",
        nargs="?",
        const="dev-backend",
        metavar="CLIENT_ID",
        help="a backend token for the management API (/api/manage/...) instead; CLIENT_ID defaults to "
        "dev-backend",
    )
    token.add_argument("--minutes", type=int, default=60, help="lifetime (default 60; negative: expired)")
    demo = commands.add_parser("demo", help="run the demo scenario and check every step")
    where = demo.add_mutually_exclusive_group()
    where.add_argument(
        "--start-stack", action="store_true", help="always start a private stack on free ports"
    )
    where.add_argument(
        "--against-running", action="store_true", help="use the running `make dev` stack (fail if absent)"
    )
    demo.add_argument("--log-level", default="ERROR")
    args = parser.parse_args(argv)
    if args.command == "demo":
        return _demo(args)
    if args.command == "token":
        if args.backend is not None:
            return _token(args.backend, args.minutes, backend=True)
        return _token(args.user, args.minutes)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")

    try:
        stack = start_stack(
            with_host=not args.no_host and app_exists(), persist=not args.in_memory, cors=args.cors
        )
    except (StackAlreadyRunning, AzuriteNotInstalled, FunctionsHostStartError) as exc:
        print(f"devstack: {exc}", file=sys.stderr)
        return 1
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        print("devstack ready:", flush=True)
        for line in stack.describe():
            print("  " + line, flush=True)
        if stack.functions_host is not None:
            print("Send a first notification (another terminal):", flush=True)
            print("  .venv/bin/python -m notify send --user alice --title Hello --body 'First notification'",
                  flush=True)
            print("Watch the whole flow, checked step by step:  make demo", flush=True)
            if stack.browser_demo is not None:
                print(f"Try it in a browser:  {stack.browser_demo.url}", flush=True)
            print("A development token for your own client:  .venv/bin/python -m devstack token --user alice",
                  flush=True)
        print("Press Ctrl-C to stop.", flush=True)
        shown = 0
        while not stop.wait(0.5):
            host = stack.functions_host
            if host is not None:
                # Show the host's invocation log (Executing/Executed lines, the app's own logs).
                for line in host.log_lines[shown:]:
                    print(line, flush=True)
                shown = len(host.log_lines)
            if host is not None and host.process.poll() is not None:
                print(f"devstack: the functions host exited ({host.process.returncode})", file=sys.stderr)
                return 1
    finally:
        stack.stop()
        print("devstack stopped.", flush=True)
    return 0


def _token(subject: str, minutes: int, backend: bool = False) -> int:
    """Print a development token for a user (or, ``backend``, a management API caller) of the local stack."""
    from devstack.demo import app_settings
    from devstack.stack import FUNCTIONS_PORT, HOST, default_settings_file
    from shared.auth import make_dev_manage_token, make_dev_token

    settings = app_settings({})
    secret = settings.get("AUTH_DEV_SECRET")
    if not secret:
        print(f"devstack: AUTH_DEV_SECRET is not set in {default_settings_file()}", file=sys.stderr)
        return 1
    if not subject.strip():
        print(f"devstack: --{'backend' if backend else 'user'} must not be empty", file=sys.stderr)
        return 1
    issuer = settings.get("AUTH_DEV_ISSUER") or "notify-dev"
    base = f"http://{HOST}:{FUNCTIONS_PORT}/api"
    if backend:
        audience = settings.get("AUTH_DEV_MANAGE_AUDIENCE") or "notify-manage"
        token = make_dev_manage_token(secret, subject, issuer=issuer, audience=audience, minutes=minutes)
        what = f"a development backend token ({subject!r}, role Notify.Manage)"
        curl = f"curl -H 'Authorization: Bearer {token}' {base}/manage/users/alice/notifications"
    else:
        audience = settings.get("AUTH_DEV_AUDIENCE") or "notify"
        token = make_dev_token(secret, subject, issuer=issuer, audience=audience, minutes=minutes)
        what = f"a development token for user {subject!r}"
        curl = f"curl -X POST -H 'Authorization: Bearer {token}' {base}/negotiate"
    print(token, flush=True)
    print(
        f"# {what}, valid {minutes} minutes (AUTH_DEV_SECRET of {default_settings_file().name}); try it "
        f"against make dev:\n{curl}",
        file=sys.stderr,
        flush=True,
    )
    return 0


def _demo(args: argparse.Namespace) -> int:
    from devstack import demo

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    mode = "start" if args.start_stack else "running" if args.against_running else "auto"
    try:
        return demo.main(mode)
    except AzuriteNotInstalled as exc:
        print(f"devstack: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
