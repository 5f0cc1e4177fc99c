"""The Web PubSub emulator's HTTPS mode: https:// REST and wss:// clients with the printed self-signed
certificate, through the official Python SDKs (which need the certificate trusted, nothing else)."""

from __future__ import annotations

import queue
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from azure.core.exceptions import ServiceRequestError
from azure.messaging.webpubsubclient import WebPubSubClient, WebPubSubClientCredential
from azure.messaging.webpubsubclient.models import CallbackType
from azure.messaging.webpubsubservice import WebPubSubServiceClient

from devstack.webpubsub import RunningWebPubSub, start_webpubsub_emulator

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def tls_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningWebPubSub]:
    emulator = start_webpubsub_emulator(https=True, cert_dir=tmp_path_factory.mktemp("wps-tls"))
    try:
        yield emulator
    finally:
        emulator.stop()


def test_https_mode_serves_rest_and_wss_to_the_official_sdks(
    tls_emulator: RunningWebPubSub, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert tls_emulator.cert_path is not None and tls_emulator.cert_path.is_file()
    assert tls_emulator.connection_string.startswith(f"Endpoint=https://127.0.0.1:{tls_emulator.port};")
    hub = "h" + uuid.uuid4().hex[:12]
    service = WebPubSubServiceClient.from_connection_string(
        tls_emulator.connection_string, hub=hub, retry_total=0, connection_verify=str(tls_emulator.cert_path)
    )
    url = service.get_client_access_token(user_id="secure")["url"]
    assert url.startswith(f"wss://127.0.0.1:{tls_emulator.port}/client/hubs/{hub}?access_token=")

    # websocket-client (under azure-messaging-webpubsubclient) trusts WEBSOCKET_CLIENT_CA_BUNDLE.
    monkeypatch.setenv("WEBSOCKET_CLIENT_CA_BUNDLE", str(tls_emulator.cert_path))
    received: queue.Queue[object] = queue.Queue()
    client = WebPubSubClient(
        credential=WebPubSubClientCredential(lambda: url), reconnect_retry_total=0, start_timeout=5.0
    )
    client.subscribe(CallbackType.SERVER_MESSAGE, lambda e: received.put(e.data))
    client.open()
    try:
        service.send_to_user("secure", "over tls", content_type="text/plain")
        assert received.get(timeout=10) == "over tls"
        assert service.user_exists("secure")
    finally:
        client.close()
    # Instead of connection_verify: REQUESTS_CA_BUNDLE (azure-core's requests transport honours it).
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls_emulator.cert_path))
    by_env = WebPubSubServiceClient.from_connection_string(tls_emulator.connection_string, hub=hub)
    assert by_env.user_exists("nobody") is False


def test_https_mode_is_refused_by_clients_that_do_not_trust_the_certificate(
    tls_emulator: RunningWebPubSub,
) -> None:
    service = WebPubSubServiceClient.from_connection_string(
        tls_emulator.connection_string, hub="notify", retry_total=0
    )
    with pytest.raises(ServiceRequestError, match="CERTIFICATE_VERIFY_FAILED"):
        service.user_exists("anyone")
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{tls_emulator.endpoint}/_devstack/connections", timeout=10)
    trusted = requests.get(
        f"{tls_emulator.endpoint}/_devstack/connections", verify=str(tls_emulator.cert_path), timeout=10
    )
    assert trusted.status_code == 200


def test_cli_https_prints_the_certificate_then_the_ready_line(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "devstack.webpubsub", "--port", "0", "--https", "--cert-dir", str(tmp_path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        cert_line = proc.stdout.readline().strip()
        ready = proc.stdout.readline().strip()
        assert cert_line == f"WEBPUBSUB_CERT={tmp_path / 'cert.pem'}"
        assert ready.startswith("webpubsub ready: Endpoint=https://127.0.0.1:")
        endpoint = ready.split("Endpoint=", 1)[1].split(";", 1)[0]
        cert = str(tmp_path / "cert.pem")
        resp = requests.get(f"{endpoint}/_devstack/connections", verify=cert, timeout=10)
        assert resp.status_code == 200
    finally:
        proc.terminate()
        proc.communicate(timeout=15)
    assert proc.returncode == 0


def test_emulators_reuse_a_valid_certificate_in_the_cert_dir(tmp_path: Path) -> None:
    # Trust once: both emulators (and restarts) serve the same certificate from one --cert-dir.
    from devstack.notificationhubs import start_notification_hubs_emulator

    command = [sys.executable, "-m", "devstack.tls", str(tmp_path)]
    made = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True)
    cert = tmp_path / "cert.pem"
    assert made.stdout.strip() == str(cert)
    before = cert.read_bytes()
    wps = start_webpubsub_emulator(https=True, cert_dir=tmp_path)
    nh = start_notification_hubs_emulator(https=True, cert_dir=tmp_path)
    try:
        assert wps.cert_path == nh.cert_path == cert
        assert cert.read_bytes() == before
        for url in (f"{wps.endpoint}/_devstack/connections", f"{nh.base_url}/_devstack/health"):
            assert requests.get(url, verify=str(cert), timeout=10).status_code == 200
    finally:
        wps.stop()
        nh.stop()
    cert.write_text("not a certificate")
    replaced = start_webpubsub_emulator(https=True, cert_dir=tmp_path)
    try:
        assert cert.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
        assert requests.get(f"{replaced.endpoint}/_devstack/connections", verify=str(cert), timeout=10).ok
    finally:
        replaced.stop()
