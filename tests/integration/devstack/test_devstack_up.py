"""`python -m devstack up` starts the stack on the documented ports and refuses to start twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
import requests
from azure.messaging.webpubsubservice import WebPubSubServiceClient

from devstack import stack
from devstack.net import port_is_open

pytestmark = pytest.mark.integration

STACK_PORTS = [*stack.AZURITE_PORTS, stack.WEBPUBSUB_PORT, stack.NOTIFICATION_HUBS_PORT]


def _start() -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "devstack", "up", "--no-host", "--in-memory"],
        cwd=stack.REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "DEVSTACK_NO_HOST": "1"},
    )


def test_up_prints_connection_strings_works_and_refuses_a_second_instance() -> None:
    if any(port_is_open(stack.HOST, port) for port in STACK_PORTS):
        pytest.skip("a local stack (make dev) is already running on the fixed ports")
    process = _start()
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if line.startswith("Press Ctrl-C"):
                break
        output = "".join(lines)
        assert "WebPubSubConnectionString=Endpoint=http://127.0.0.1:8080;" in output
        assert "NOTIFICATION_HUBS_CONNECTION_STRING=Endpoint=http://127.0.0.1:8081/;" in output

        service = WebPubSubServiceClient.from_connection_string(
            f"Endpoint=http://127.0.0.1:{stack.WEBPUBSUB_PORT};AccessKey={stack.WEBPUBSUB_DEV_KEY};Version=1.0;",
            hub=stack.HUB,
        )
        assert service.user_exists("nobody") is False
        assert requests.get(f"http://127.0.0.1:{stack.NOTIFICATION_HUBS_PORT}/_devstack/pushes", timeout=5).ok

        second = _start()
        _, errors = second.communicate(timeout=60)
        assert second.returncode == 1
        assert "already in use" in errors
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=60)
    assert process.returncode == 0
    assert not any(port_is_open(stack.HOST, port) for port in STACK_PORTS)
