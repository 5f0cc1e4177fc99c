"""Classifying profiled functions, splitting concurrency, and the command line (pure logic)."""

from pathlib import Path

import pytest

from bench.__main__ import parse_options
from bench.own_cpu import REPO_ROOT, category, summarize_profile
from bench.run import queue_limits

HOST_JSON = {"extensions": {"queues": {"batchSize": 16, "newBatchThreshold": 8}}}


def test_category_separates_own_code_sdk_http_and_waits() -> None:
    assert category(str(REPO_ROOT / "notify" / "notifier.py"), "handle") == "own"
    assert category(str(REPO_ROOT / "function_app.py"), "<module>") == "own"
    assert category(str(REPO_ROOT / "devstack" / "stack.py"), "start_stack") == "other"
    assert category("/venv/lib/python3.11/site-packages/azure/core/pipeline/_base.py", "run") == "azure_sdk"
    assert category("/venv/lib/python3.11/site-packages/urllib3/connectionpool.py", "urlopen") == "http_stack"
    assert category("~", "<method 'recv_into' of '_socket.socket' objects>") == "network_wait"
    assert category("~", "<built-in method builtins.len>") == "other"


def test_summarize_profile_adds_self_time_and_counts_requests() -> None:
    own = str(REPO_ROOT / "notify" / "deliveries.py")
    stats: dict[tuple[str, int, str], tuple[int, int, float, float, dict[str, int]]] = {
        (own, 10, "accept"): (2, 2, 0.002, 0.5, {}),
        (own, 20, "get"): (1, 1, 0.001, 0.2, {}),
        ("/usr/lib/python3.11/http/client.py", 1, "getresponse"): (3, 3, 0.004, 0.3, {}),
    }
    summary = summarize_profile(stats)
    assert summary.by_category == pytest.approx({"own": 0.003, "http_stack": 0.004})
    assert summary.own_functions[0] == (str(Path("notify/deliveries.py")) + ":10(accept)", 0.002)
    assert summary.http_requests == 3


def test_queue_limits_follow_host_json_or_split_the_concurrency() -> None:
    assert queue_limits(None, HOST_JSON) == (16, 8)
    assert queue_limits(24, HOST_JSON) == (16, 8)
    assert queue_limits(60, HOST_JSON) == (32, 28)  # batchSize is capped at 32 like the extension's
    with pytest.raises(ValueError, match="at least 2"):
        queue_limits(1, HOST_JSON)


def test_quick_fills_only_what_was_not_given() -> None:
    options, _ = parse_options(["--quick", "--users", "3", "--ack-timeout", "2"])
    assert (options.notifications, options.users, options.ack_timeout) == (200, 3, 2)
    defaults, _ = parse_options([])
    assert (defaults.notifications, defaults.users, defaults.concurrency) == (2000, 100, None)


def test_counts_must_be_positive() -> None:
    with pytest.raises(SystemExit):
        parse_options(["--notifications", "0"])


def test_requests_alone_counts_three_per_path_unless_told() -> None:
    options, args = parse_options(["--requests"])
    assert args.requests and options.count_notifications == 3
    options, _ = parse_options(["--requests", "--count-notifications", "7"])
    assert options.count_notifications == 7
    full, _ = parse_options([])
    assert full.count_notifications == 10
    with pytest.raises(SystemExit):
        parse_options(["--count-notifications", "0"])
