"""Client access for in-app delivery: a Web PubSub URL bound to the authenticated user.

The token carries the user id only, no roles and no groups, so a client can receive what the
service sends to its user but cannot join or send to groups.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core.exceptions import AzureError
from azure.messaging.webpubsubservice import WebPubSubServiceClient

from notify.deliveries import translate_azure_error
from shared.user_keys import user_hash, user_id_problem

SERVICE = "web pubsub"
logger = logging.getLogger(__name__)


def negotiate(service: WebPubSubServiceClient, user_id: str, minutes: int) -> dict[str, Any]:
    """Client access details for ``user_id``; raise TransientError / UpstreamError if the service fails.

    ``user_id`` must pass :func:`shared.user_keys.user_id_problem` (the authenticator makes sure of it);
    ValueError otherwise.
    """
    problem = user_id_problem(user_id)
    if problem is not None:
        raise ValueError(f"user id {problem}")
    # Taken before the token is made, so the reported expiry is never later than the token's own.
    expires_at = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=minutes)
    try:
        access = service.get_client_access_token(user_id=user_id, minutes_to_expire=minutes)
    except AzureError as exc:
        raise translate_azure_error(exc, SERVICE, "generate client token") from exc
    logger.info("client access issued for userHash=%s, %s minutes", user_hash(user_id), minutes)
    body: dict[str, Any] = {
        "url": access["url"],
        "baseUrl": access["baseUrl"],
        "expiresAt": expires_at.isoformat().replace("+00:00", "Z"),
        # Relative as well, so a client whose clock is off still renews in time.
        "expiresInSeconds": minutes * 60,
        "userId": user_id,
    }
    if access.get("token"):
        body["token"] = access["token"]
    return body
