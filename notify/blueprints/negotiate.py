"""``POST /api/negotiate``: give the authenticated caller a Web PubSub client access URL."""

from __future__ import annotations

import azure.functions as func
from azure.messaging.webpubsubservice import WebPubSubServiceClient

from notify.negotiate import negotiate as negotiate_access
from notify.realtime import build_webpubsub_client
from shared.auth import Authenticator, get_authenticator
from shared.http import handle_errors, json_response
from shared.once import process_wide
from shared.settings import get_settings

bp = func.Blueprint()  # type: ignore[no-untyped-call]  # azure-functions leaves __init__ unannotated

# The answer carries an access token: no caching anywhere on the way.
NO_STORE = {"Cache-Control": "no-store"}


@process_wide
def get_negotiate_service() -> WebPubSubServiceClient:
    """The process-wide Web PubSub service client used to sign client access tokens."""
    return build_webpubsub_client(get_settings().webpubsub)


@handle_errors
def negotiate_response(
    req: func.HttpRequest,
    authenticator: Authenticator,
    service: WebPubSubServiceClient,
    token_minutes: int,
) -> func.HttpResponse:
    """Authenticate the request and answer with the caller's client access details (or a JSON error)."""
    principal = authenticator.authenticate(req.headers)
    body = negotiate_access(service, principal.user_id, token_minutes)
    return json_response(body, headers=NO_STORE)


@bp.route(route="negotiate", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@handle_errors
def negotiate(req: func.HttpRequest) -> func.HttpResponse:
    """The HTTP trigger: negotiate with the process-wide authenticator, client and settings."""
    return negotiate_response(
        req, get_authenticator(), get_negotiate_service(), get_settings().client_token_minutes
    )
