"""``python -m devstack.webpubsub``: ready line, flags, clean stop on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import websocket
from azure.messaging.webpubsubservice import WebPubSubServiceClient

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
KEY = "cli-test-access-key-0123456789abcdef"


def run_cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "devstack.webpubsub", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def cli() -> Iterator[tuple[subprocess.Popen[str], str]]:
    proc = run_cli(
        "--port",
        "0",
        "--access-key",
        KEY,
        "--event-handler",
        "notify=http://127.0.0.1:9/api/{event};user=*;system=connected,disconnected",
        "--allow-anonymous",
        "open",
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    try:
        yield proc, line
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


def test_cli_prints_one_ready_line_and_serves_the_sdk(cli: tuple[subprocess.Popen[str], str]) -> None:
    proc, line = cli
    assert line.startswith("webpubsub ready: Endpoint=http://127.0.0.1:")
    conn = line.split("webpubsub ready: ", 1)[1].strip()
    assert conn.endswith(f";AccessKey={KEY};Version=1.0;")
    endpoint = conn.split(";", 1)[0].removeprefix("Endpoint=")

    settings = requests.get(f"{endpoint}/_devstack/hubs/notify", timeout=10).json()
    assert settings["eventHandlers"] == [
        {
            "urlTemplate": "http://127.0.0.1:9/api/{event}",
            "userEventPattern": "*",
            "systemEvents": ["connected", "disconnected"],
        }
    ]
    assert (
        requests.get(f"{endpoint}/_devstack/hubs/open", timeout=10).json()["anonymousConnectPolicy"]
        == "allow"
    )

    service = WebPubSubServiceClient.from_connection_string(conn, hub="open", retry_total=0)
    ws = websocket.create_connection(
        service.get_client_access_token()["url"], subprotocols=["json.webpubsub.azure.v1"], timeout=10
    )
    try:
        ws.recv()
        service.send_to_all("via cli", content_type="text/plain")
        assert '"data":"via cli"' in ws.recv()
    finally:
        ws.close()

    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert "access_token" not in stderr  # the access log leaves query strings (tokens) out
    assert "/client/hubs/open" in stderr


def test_cli_help_and_bad_handler_spec() -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "devstack.webpubsub", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert shown.returncode == 0
    for flag in ("--host", "--port", "--access-key", "--hub", "--event-handler", "--recovery-window"):
        assert flag in shown.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "devstack.webpubsub", "--event-handler", "notify=http://x;system=bogus"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad.returncode == 2
    assert "bogus" in bad.stderr
