"""``python -m bench``: count requests per notification, then measure throughput, CPU and latency.

``python -m bench --requests`` prints only the request table (about 40 s): the figure to quote for a
change that touches delivery. A full run prints the same table first, then the timed figures, and writes
JSON under bench/results/ and the summary into docs/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse
import faulthandler
import logging
import shlex
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from bench.report import RESULTS_DIR, render_table, write_json
from bench.request_table import render_text as render_requests_text
from bench.run import BenchOptions, run_benchmark
from bench.summary import PERFORMANCE_DOC, update_performance_doc

QUICK = {"notifications": 200, "users": 10, "latency_notifications": 60, "profile_samples": 30,
         "count_notifications": 3}
REQUESTS_ONLY_COUNT = 3


def parse_options(argv: Sequence[str]) -> tuple[BenchOptions, argparse.Namespace]:
    """Parse the command line into BenchOptions (``--quick`` fills what was not given)."""
    defaults = BenchOptions()
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--notifications", "-n", type=int,
                        help=f"N per path (default {defaults.notifications})")
    parser.add_argument("--users", "-k", type=int, help=f"K users per path (default {defaults.users})")
    parser.add_argument("--concurrency", "-c", type=int,
                        help="messages in flight in the host and the floor "
                             "(default: host.json batchSize + newBatchThreshold; "
                             "the runtime runs PYTHON_THREADPOOL_THREAD_COUNT of them at once, "
                             "default min(32, cores + 4))")
    parser.add_argument("--ack-timeout", type=int, default=defaults.ack_timeout,
                        help=f"ACK_TIMEOUT_SECONDS of the notifier (default {defaults.ack_timeout})")
    parser.add_argument("--producers", type=int, default=defaults.producers,
                        help=f"enqueueing threads (default {defaults.producers})")
    parser.add_argument("--latency-notifications", type=int,
                        help=f"M per paced latency run (default {defaults.latency_notifications})")
    parser.add_argument("--latency-load", type=float, default=defaults.latency_load,
                        help="paced rate as a fraction of the notifier's throughput (default "
                             f"{defaults.latency_load})")
    parser.add_argument("--profile-samples", type=int, help=f"default {defaults.profile_samples}")
    parser.add_argument("--count-notifications", type=int,
                        help="notifications per path and system in the request count (default "
                             f"{defaults.count_notifications}; {REQUESTS_ONLY_COUNT} with --quick or "
                             "--requests)")
    parser.add_argument("--requests", action="store_true",
                        help="only count requests per notification at the wire and print the table "
                             "(writes nothing)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: N=200, K=10, M=60")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--doc", type=Path, default=PERFORMANCE_DOC, help="the Markdown summary to update")
    parser.add_argument("--no-doc", action="store_true", help="do not touch the Markdown summary")
    args = parser.parse_args(argv)
    base = QUICK if args.quick else {"count_notifications": REQUESTS_ONLY_COUNT} if args.requests else {}

    def pick(name: str) -> int:
        given = getattr(args, name)
        return int(given if given is not None else base.get(name, getattr(defaults, name)))

    options = BenchOptions(
        notifications=pick("notifications"),
        users=pick("users"),
        concurrency=args.concurrency,
        ack_timeout=args.ack_timeout,
        producers=args.producers,
        latency_notifications=pick("latency_notifications"),
        latency_load=args.latency_load,
        profile_samples=pick("profile_samples"),
        count_notifications=pick("count_notifications"),
    )
    if min(options.notifications, options.users, options.latency_notifications,
           options.profile_samples, options.producers, options.count_notifications) < 1:
        parser.error("counts must be positive")
    return options, args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and report."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    options, args = parse_options(arguments)
    faulthandler.register(signal.SIGUSR1)  # `kill -USR1 <pid>` prints every thread's stack (a stuck phase)
    # SIGTERM unwinds like Ctrl-C, so the private stack (Azurite, host, floors) is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # The emulators warn about every event they cannot deliver while the benchmark restarts the host.
    logging.getLogger("devstack").setLevel(logging.ERROR)
    command = shlex.join(["python", "-m", "bench", *arguments])
    result = run_benchmark(options, command, progress=lambda text: print(f"bench: {text}", flush=True),
                           on_requests=lambda count: print(render_requests_text(count), flush=True),
                           requests_only=args.requests)
    if args.requests:
        return 0
    print(render_table(result, with_requests=False))
    path = write_json(result, args.results_dir)
    print(f"bench: wrote {path}")
    if not args.no_doc:
        update_performance_doc(result, args.doc, args.results_dir)
        print(f"bench: updated {args.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
