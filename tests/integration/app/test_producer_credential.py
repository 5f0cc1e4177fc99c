"""The producer with an Entra ID token credential instead of a key: Azurite over HTTPS with OAuth on
(``--oauth basic``), a self-signed certificate the client trusts, and a token credential of the test's.

Azurite's basic OAuth checks what Azure Storage checks short of the signature: a JWT with ``iat``/``nbf``/
``exp`` in range, an Entra issuer (``https://sts.windows.net/...``) and a storage audience
(``https://storage.azure.com``). So the credential code path (bearer token over HTTPS, the token scope the
SDK asks for) is shown for real; the signature check and the role (Storage Queue Data Message Sender) are
Azure's and cannot be shown here.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from azure.core.credentials import AccessToken
from azure.storage.queue import QueueClient

from devstack.azurite import RunningAzurite, start_azurite
from devstack.tls import create_self_signed_certificate
from notify.client import NotificationClient
from shared.errors import UpstreamError

pytestmark = pytest.mark.integration
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"


class EntraLikeCredential:
    """A TokenCredential whose tokens look like Entra ID's (what ``DefaultAzureCredential`` returns)."""

    def __init__(self, audience: str = "https://storage.azure.com") -> None:
        self.audience = audience
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        now = int(time.time())
        claims = {"aud": self.audience, "iss": f"https://sts.windows.net/{TENANT}/", "iat": now, "nbf": now,
                  "exp": now + 3600, "oid": str(uuid.uuid4()), "appid": "backend"}
        return AccessToken(jwt.encode(claims, uuid.uuid4().hex * 2, algorithm="HS256"), now + 3600)


@pytest.fixture(scope="module")
def secure_azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningAzurite, Path]]:
    cert, key = create_self_signed_certificate(tmp_path_factory.mktemp("azurite-tls"))
    running = start_azurite(certificate=(cert, key), oauth=True)
    try:
        yield running, cert
    finally:
        running.stop()


def key_client(azurite: RunningAzurite, cert: Path, name: str) -> QueueClient:
    return QueueClient.from_connection_string(azurite.connection_string, name, connection_verify=str(cert))


def test_send_with_a_token_credential_from_a_queue_url(secure_azurite: tuple[RunningAzurite, Path]) -> None:
    azurite, cert = secure_azurite
    name = "q" + uuid.uuid4().hex[:12]
    credential = EntraLikeCredential()
    client = NotificationClient.from_queue_url(
        f"{azurite.queue_endpoint}/{name}", credential, connection_verify=str(cert)
    )
    notification_id = client.send("alice", "Hello", "From a backend with an identity")
    assert credential.scopes and all(s == ("https://storage.azure.com/.default",) for s in credential.scopes)
    [message] = key_client(azurite, cert, name).receive_messages(max_messages=1)
    document = json.loads(base64.b64decode(message.content))
    assert (document["notificationId"], document["userId"]) == (notification_id, "alice")


def test_from_account_url_and_a_refused_token(secure_azurite: tuple[RunningAzurite, Path]) -> None:
    azurite, cert = secure_azurite
    name = "q" + uuid.uuid4().hex[:12]
    key_client(azurite, cert, name).create_queue()
    good = NotificationClient.from_account_url(
        azurite.queue_endpoint, name, EntraLikeCredential(), connection_verify=str(cert)
    )
    assert good.send("bob", "T", "B", notification_id="via-account-url") == "via-account-url"
    wrong = NotificationClient.from_account_url(
        azurite.queue_endpoint, name, EntraLikeCredential(audience="https://vault.azure.net"),
        connection_verify=str(cert),
    )
    with pytest.raises(UpstreamError) as refused:
        wrong.send("bob", "T", "B")
    assert refused.value.upstream_status in (401, 403)
    [message] = key_client(azurite, cert, name).receive_messages(max_messages=5)
    assert json.loads(base64.b64decode(message.content))["notificationId"] == "via-account-url"
