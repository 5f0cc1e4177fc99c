"""``python -m notify``: exit codes, ``--data @file``, the oversize warning, and an unreachable stack that
fails fast naming what it tried (against Azurite, and against a port nobody listens on)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from azure.storage.queue import QueueClient

from devstack.azurite import RunningAzurite, connection_string
from devstack.net import free_port
from notify.cli import main
from notify.client import NotificationClient, client_options

pytestmark = pytest.mark.integration
REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def queue(azurite: RunningAzurite, unique_name: Callable[[str], str]) -> Iterator[QueueClient]:
    client = QueueClient.from_connection_string(azurite.connection_string, unique_name("cli"))
    client.create_queue()
    try:
        yield client
    finally:
        client.delete_queue()


def send_args(azurite: RunningAzurite, queue: QueueClient, *extra: str) -> list[str]:
    return ["send", "--user", "alice", "--title", "T", "--body", "B", "--connection-string",
            azurite.connection_string, "--queue", queue.queue_name, *extra]


def the_message(queue: QueueClient) -> dict[str, object]:
    [message] = queue.receive_messages(max_messages=2)
    document: dict[str, object] = json.loads(base64.b64decode(message.content))
    return document


def test_data_from_a_file(azurite: RunningAzurite, queue: QueueClient, tmp_path: Path,
                          capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "order.json"
    data.write_text(json.dumps({"order": 42, "items": ["a", "b"]}), encoding="utf-8")
    assert main(send_args(azurite, queue, "--data", f"@{data}", "--id", "from-file")) == 0
    assert capsys.readouterr().out.strip() == "from-file"
    assert the_message(queue)["data"] == {"order": 42, "items": ["a", "b"]}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--data", "@/nonexistent/order.json"], "cannot read the file"),
        (["--data", "{not json"], "--data is not JSON"),
        (["--data", "[1]"], "--data must be a JSON object"),
        (["--delivery", "fax"], "invalid choice"),
    ],
)
def test_usage_errors_exit_2(azurite: RunningAzurite, queue: QueueClient, capsys: pytest.CaptureFixture[str],
                             extra: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(send_args(azurite, queue, *extra))
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_a_push_that_would_not_fit_is_refused_and_realtime_goes(
    azurite: RunningAzurite, queue: QueueClient, capsys: pytest.CaptureFixture[str]
) -> None:
    args = send_args(azurite, queue)
    args[args.index("--body") + 1] = "x" * 5000
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "4096" in err and "realtime" in err
    realtime = send_args(azurite, queue, "--delivery", "realtime", "--id", "big-realtime")
    realtime[realtime.index("--body") + 1] = "x" * 5000
    assert main(realtime) == 0
    assert len(str(the_message(queue)["body"])) == 5000


def test_unreachable_storage_fails_fast_with_what_it_tried(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()  # nobody listens there: the local stack is down
    dead = connection_string("127.0.0.1", port, port, port)
    code = main(["send", "--user", "a", "--title", "t", "--body", "b", "--connection-string", dead,
                 "--queue", "notifications"])
    err = capsys.readouterr().err
    assert code == 3
    assert f"could not reach http://127.0.0.1:{port}/devstoreaccount1/notifications" in err
    assert "connection refused" in err and "make dev" in err


def test_the_clis_worst_case_for_an_unreachable_queue_is_under_five_seconds() -> None:
    # The bound as configured, not as timed (no timed assertions): every attempt may take the whole connect
    # timeout (an address that drops packets; a refused connection returns at once), plus the backoff.
    options = client_options(fail_fast=True)
    retry = options["retry_policy"]
    attempts = retry.total_retries + 1
    worst = attempts * options["connection_timeout"] + retry.total_retries * retry.backoff
    assert worst < 5, f"{attempts} attempts of {options['connection_timeout']} s: {worst} s"
    # and the producer really uses them: the client the CLI builds carries that policy.
    client = NotificationClient.from_connection_string(
        connection_string("127.0.0.1", 9, 9, 9), "notifications", fail_fast=True)
    policy = client._queue._config.retry_policy  # what the SDK will retry with
    assert (policy.total_retries, policy.backoff) == (retry.total_retries, retry.backoff)


def test_unreachable_api_and_table_exit_3(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    port = free_port()
    monkeypatch.setenv("AUTH_DEV_SECRET", "a-dev-secret-long-enough-for-hs256-00000")
    assert main(["status", "n-1", "--user", "alice", "--api-url", f"http://127.0.0.1:{port}"]) == 3
    err = capsys.readouterr().err
    assert f"could not reach http://127.0.0.1:{port}" in err and "make dev" in err
    dead = connection_string("127.0.0.1", port, port, port)
    assert main(["watch", "--once", "--connection-string", dead]) == 3
    assert "make dev" in capsys.readouterr().err


def test_help_documents_the_exit_codes_and_the_tools_run_as_a_module() -> None:
    done = subprocess.run([sys.executable, "-m", "notify", "send", "--help"], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0
    for line in ("0  done", "1  refused", "2  usage", "3  unreachable"):
        assert line in done.stdout
    hashed = subprocess.run([sys.executable, "-m", "notify", "user-hash", "alice"], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=60, check=False)
    assert hashed.stdout.strip() == "2bd806c97f0e"  # sha256("alice")[:12], as the README computes it
    secret = subprocess.run([sys.executable, "-m", "notify", "webhook-secret"], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=60, check=False)
    assert secret.stdout.startswith("whsec_")
