"""The demo scenario through the local host over real HTTP and WebSocket: step by step, and as a whole."""

from __future__ import annotations

import io
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace

import pytest

from devstack import demo
from devstack.demo import (
    DemoRun,
    DemoTarget,
    delivery_row,
    join_sdk_threads,
    pushed_notification_id,
    wait_until,
)
from devstack.stack import REPO_ROOT, RunningStack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", autouse=True)
def no_client_threads_left() -> Iterator[None]:
    """The Web PubSub clients' threads end after the module (they may linger ~10 s after close())."""
    before = set(threading.enumerate())
    yield
    assert join_sdk_threads(before) == []


def app_pushes(stack: RunningStack, installation_id: str) -> list[str | None]:
    """notificationIds of the pushes the emulator's sink recorded for one device (read in-process)."""
    recorded = stack.notification_hubs.pushes(installation_id=installation_id)
    return [pushed_notification_id(push) for push in recorded]


def test_scenario_step_by_step(e2e_stack: RunningStack, e2e_target: DemoTarget) -> None:
    run = DemoRun(e2e_target)
    try:
        demo.connect_user(run)
        assert run.client is not None and run.client.connection_id
        connections = e2e_stack.webpubsub.connections("notify")
        mine = [c["userId"] for c in connections if c["connectionId"] == run.client.connection_id]
        assert mine == [run.user_id]

        demo.register_push_device(run)
        installation = e2e_stack.notification_hubs.installation("notify", run.installation_id)
        assert installation is not None and installation["platform"] == "fcmv1"

        demo.in_app_delivery(run)
        in_app = run.notification_ids["in_app"]
        # The client may see the message before the notifier has recorded the send.
        row = wait_until(
            lambda: (r := delivery_row(e2e_target, run.user_id, in_app)) and r["realtimeSentAt"] > 0 and r,
            10,
            "the in-app send was never recorded",
        )
        assert row["status"] in ("sent_realtime", "acked")

        demo.ack_prevents_push(run)
        assert in_app not in app_pushes(e2e_stack, run.installation_id)
        assert (delivery_row(e2e_target, run.user_id, in_app) or {})["status"] == "acked"

        demo.unacked_falls_back_to_push(run)
        unacked = run.notification_ids["unacked"]
        assert app_pushes(e2e_stack, run.installation_id).count(unacked) == 1
        row = delivery_row(e2e_target, run.user_id, unacked) or {}
        assert row["status"] == "pushed" and row.get("ackedAt", 0) == 0
        assert row["pushSentAt"] >= row["realtimeSentAt"] > 0

        demo.offline_goes_straight_to_push(run)
        assert run.client is None
        assert all(c["userId"] != run.user_id for c in e2e_stack.webpubsub.connections("notify"))
        offline = run.notification_ids["offline"]
        assert app_pushes(e2e_stack, run.installation_id).count(offline) == 1

        demo.duplicate_delivered_once(run)
        duplicate = run.notification_ids["duplicate"]
        assert app_pushes(e2e_stack, run.installation_id).count(duplicate) == 1
        assert sorted(filter(None, app_pushes(e2e_stack, run.installation_id))) == sorted(
            [unacked, offline, duplicate]
        )

        demo.inbox_in_step(run)
        row = delivery_row(e2e_target, run.user_id, offline) or {}
        assert row["inboxRead"] is True  # the delivery row is the item
        assert row["status"] == "retracted" and row["retractSentAt"] >= row["readAt"] > 0
        unread = {r for r in (in_app, unacked, duplicate)
                  if not (delivery_row(e2e_target, run.user_id, r) or {}).get("inboxRead")}
        assert unread == {in_app, unacked, duplicate}  # acked (in_app) is not read
    finally:
        run.close()


def test_run_scenario_prints_one_ok_line_per_step(e2e_target: DemoTarget) -> None:
    out = io.StringIO()
    results = demo.run_scenario(e2e_target, out)
    lines = out.getvalue().splitlines()
    assert [r.ok for r in results] == [True] * len(demo.STEPS), lines
    assert [line.split(" (")[0] for line in lines] == [f"[ok] {title}" for title, _ in demo.STEPS]


def test_a_failing_step_is_reported_and_the_rest_skipped(e2e_target: DemoTarget) -> None:
    wrong_secret = replace(
        e2e_target, settings={**e2e_target.settings, "AUTH_DEV_SECRET": "not-the-secret-the-host-checks-0000"}
    )
    out = io.StringIO()
    results = demo.run_scenario(wrong_secret, out)
    lines = out.getvalue().splitlines()
    assert len(results) == 1 and not results[0].ok
    assert lines[0].startswith(f"[FAIL] {demo.STEPS[0][0]}") and "401" in lines[0]
    assert lines[1:] == [f"[skip] {title}" for title, _ in demo.STEPS[1:]]


def test_demo_command_against_running_fails_clearly_without_make_dev() -> None:
    if demo.dev_stack_is_running():
        pytest.skip("make dev is running on the fixed ports")
    result = subprocess.run(
        [sys.executable, "-m", "devstack", "demo", "--against-running"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "make dev is not running" in result.stderr
    assert "[ok]" not in result.stdout
