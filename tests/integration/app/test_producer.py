"""The producer client and CLI against Azurite: base64 bodies the queue trigger can read, validated first."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from azure.storage.queue import QueueClient

from devstack.azurite import RunningAzurite
from notify.__main__ import main
from notify.client import NotificationClient
from notify.message import parse_message
from shared.errors import InvalidMessageError

REPO_ROOT = Path(__file__).resolve().parents[3]

pytestmark = pytest.mark.integration


@pytest.fixture
def queue(azurite: RunningAzurite, unique_name: Callable[[str], str]) -> Iterator[QueueClient]:
    # No decode policy: the test sees the bytes on the wire, as the Functions host does.
    client = QueueClient.from_connection_string(azurite.connection_string, unique_name("notifications"))
    client.create_queue()
    try:
        yield client
    finally:
        client.delete_queue()


def received_documents(queue: QueueClient) -> list[dict[str, object]]:
    messages = list(queue.receive_messages(max_messages=32))
    return [json.loads(base64.b64decode(m.content, validate=True)) for m in messages]


def test_send_enqueues_base64_json_that_the_parser_accepts(
    azurite: RunningAzurite, queue: QueueClient
) -> None:
    client = NotificationClient.from_connection_string(azurite.connection_string, queue.queue_name)
    notification_id = client.send(
        "Alice", "Title ✓", "Body", type="chat", data={"room": 7}, delivery="both", ttl_seconds=30
    )
    [document] = received_documents(queue)
    assert document["notificationId"] == notification_id
    parsed = parse_message(json.dumps(document).encode())
    assert (parsed.user_id, parsed.title, parsed.type, parsed.data) == (
        "Alice",
        "Title ✓",
        "chat",
        {"room": 7},
    )
    assert parsed.delivery == "both" and parsed.ttl_seconds == 30
    assert parsed.enqueued_at is not None and parsed.enqueued_at > 0


def test_each_send_gets_its_own_id_unless_given(azurite: RunningAzurite, queue: QueueClient) -> None:
    client = NotificationClient.from_connection_string(azurite.connection_string, queue.queue_name)
    first = client.send("a", "t", "b")
    second = client.send("a", "t", "b")
    given = client.send("a", "t", "b", notification_id="order-1")
    assert len({first, second, given}) == 3 and given == "order-1"
    assert sorted(str(d["notificationId"]) for d in received_documents(queue)) == sorted(
        [first, second, given]
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"user_id": ""},
        {"delivery": "fax"},
        {"notification_id": "bad id"},
        {"ttl_seconds": 0},
        {"body": "x" * 60000},
    ],
)
def test_invalid_notifications_are_refused_before_enqueueing(
    azurite: RunningAzurite, queue: QueueClient, kwargs: dict[str, object]
) -> None:
    client = NotificationClient.from_connection_string(azurite.connection_string, queue.queue_name)
    arguments: dict[str, object] = {"user_id": "alice", "title": "t", "body": "b", **kwargs}
    with pytest.raises(InvalidMessageError):
        client.send(**arguments)  # type: ignore[arg-type]
    assert received_documents(queue) == []


def test_cli_send_prints_the_id(
    azurite: RunningAzurite, queue: QueueClient, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "send",
            "--user",
            "alice",
            "--title",
            "T",
            "--body",
            "B",
            "--data",
            '{"k": "v"}',
            "--delivery",
            "push",
            "--id",
            "cli-1",
            "--connection-string",
            azurite.connection_string,
            "--queue",
            queue.queue_name,
        ]
    )
    assert code == 0
    assert capsys.readouterr().out.strip() == "cli-1"
    [document] = received_documents(queue)
    assert document["data"] == {"k": "v"} and document["delivery"] == "push" and document["userId"] == "alice"


def test_cli_refuses_an_invalid_notification(
    azurite: RunningAzurite, queue: QueueClient, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "send",
            "--user",
            "alice",
            "--title",
            "T",
            "--body",
            "B",
            "--id",
            "bad id",
            "--connection-string",
            azurite.connection_string,
            "--queue",
            queue.queue_name,
        ]
    )
    assert code == 1
    assert "notificationId" in capsys.readouterr().err
    assert received_documents(queue) == []


def test_send_creates_a_missing_queue(azurite: RunningAzurite, unique_name: Callable[[str], str]) -> None:
    name = unique_name("fresh")
    client = NotificationClient.from_connection_string(azurite.connection_string, name)
    notification_id = client.send("bob", "T", "B")
    queue = QueueClient.from_connection_string(azurite.connection_string, name)
    try:
        [document] = received_documents(queue)
        assert document["notificationId"] == notification_id
    finally:
        queue.delete_queue()


def run_cli_in(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("AzureWebJobsStorage", "NOTIFICATIONS_QUEUE")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    return subprocess.run(
        [sys.executable, "-m", "notify", "send", *args],
        cwd=folder, env=env, capture_output=True, text=True, timeout=60, check=False,
    )


def test_cli_reads_local_settings_json_like_func_start(
    azurite: RunningAzurite, queue: QueueClient, tmp_path: Path
) -> None:
    values = {"AzureWebJobsStorage": azurite.connection_string, "NOTIFICATIONS_QUEUE": queue.queue_name}
    (tmp_path / "local.settings.json").write_text(json.dumps({"IsEncrypted": False, "Values": values}))
    done = run_cli_in(tmp_path, "--user", "bob", "--title", "T", "--body", "B", "--id", "from-settings")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "from-settings"
    [document] = received_documents(queue)
    assert document["userId"] == "bob"


def test_cli_without_any_storage_setting_says_what_to_do(tmp_path: Path) -> None:
    done = run_cli_in(tmp_path, "--user", "bob", "--title", "T", "--body", "B")
    assert done.returncode == 2
    assert "local.settings.json" in done.stderr and "--connection-string" in done.stderr


def test_cli_no_inbox_enqueues_inbox_false(azurite: RunningAzurite, queue: QueueClient) -> None:
    args = ["send", "--user", "alice", "--title", "typing", "--body", "…", "--no-inbox",
            "--connection-string", azurite.connection_string, "--queue", queue.queue_name]
    assert main(args) == 0
    [document] = received_documents(queue)
    assert document["inbox"] is False
    assert parse_message(json.dumps(document).encode()).inbox is False
