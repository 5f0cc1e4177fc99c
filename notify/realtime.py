"""In-app delivery through Azure Web PubSub (``send_to_user``), with SDK errors translated."""

from __future__ import annotations

from typing import Any, NoReturn

from azure.core.exceptions import AzureError
from azure.messaging.webpubsubservice import WebPubSubServiceClient

from notify.deliveries import translate_azure_error
from notify.model import Notification
from shared.clients import sdk_transport
from shared.once import process_wide
from shared.settings import Settings, WebPubSubSettings, get_settings

SERVICE = "web pubsub"


class RealtimeSender:
    """Sends notification envelopes to every connection of a user."""

    def __init__(self, client: WebPubSubServiceClient) -> None:
        self._client = client

    def send(self, notification: Notification) -> None:
        """Send the envelope to the user's connections. Raises TransientError / UpstreamError."""
        self.send_envelope(notification.user_id, notification.envelope())

    def send_envelope(self, user_id: str, envelope: dict[str, Any]) -> None:
        """Send a JSON envelope to every connection of the user. Raises TransientError / UpstreamError."""
        try:
            self._client.send_to_user(user_id, envelope, content_type="application/json")
        except AzureError as exc:
            _raise_translated(exc, "send to user")

    def connection_exists(self, connection_id: str) -> bool:
        """True when the service still knows the connection. Raises TransientError / UpstreamError."""
        try:
            return bool(self._client.connection_exists(connection_id))
        except AzureError as exc:
            _raise_translated(exc, "connection exists")


def build_webpubsub_client(settings: WebPubSubSettings) -> WebPubSubServiceClient:
    """A service client from settings, without SDK retries (``shared.retry`` retries)."""
    if settings.connection_string:
        return WebPubSubServiceClient.from_connection_string(
            settings.connection_string, hub=settings.hub, retry_total=0, transport=sdk_transport()
        )
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

    assert settings.endpoint is not None  # guaranteed by Settings
    credential = (
        ManagedIdentityCredential(client_id=settings.client_id)
        if settings.client_id
        else DefaultAzureCredential()
    )
    return WebPubSubServiceClient(
        settings.endpoint, settings.hub, credential, retry_total=0, transport=sdk_transport()
    )


@process_wide
def get_realtime_sender() -> RealtimeSender:
    """The process-wide RealtimeSender built from :func:`get_settings`."""
    settings: Settings = get_settings()
    return RealtimeSender(build_webpubsub_client(settings.webpubsub))


def _raise_translated(exc: AzureError, what: str) -> NoReturn:
    raise translate_azure_error(exc, SERVICE, what) from exc
