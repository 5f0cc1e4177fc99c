"""``GET``, ``PUT`` and ``PATCH /api/preferences``: the signed-in user's notification preferences.

``GET`` answers the stored document (every member present: ``channels``, ``types``, ``quietHours``);
``PUT`` replaces it; ``PATCH`` applies a JSON merge patch (RFC 7396: members merge, ``null`` removes one)
and validates the result. Both answer the document as stored. Invalid input is 400 with ``error.field``
naming what is wrong (``quietHours.timeZone``, ``quietHours.windows[1]``, ``types.chat.sound``). The
document format is described in :mod:`notify.preferences`.
"""

from __future__ import annotations

import json
from typing import Any

import azure.functions as func

from notify.blueprints.devices import RequestAuthenticator
from notify.preferences import merge_patch, parse_preferences, preferences_document
from notify.user_state import UserDirectory, get_user_directory
from shared.auth import get_authenticator
from shared.errors import BadRequestError
from shared.http import handle_errors, json_response

bp = func.Blueprint()  # type: ignore[no-untyped-call]  # azure-functions leaves __init__ unannotated

MAX_BODY_BYTES = 16 * 1024
# A user's own data: never cached on the way.
NO_STORE = {"Cache-Control": "no-store"}
_MEDIA_TYPES = {
    "PUT": ("application/json",),
    "PATCH": ("application/merge-patch+json", "application/json"),
}


def _body(req: func.HttpRequest) -> Any:
    allowed = _MEDIA_TYPES[req.method.upper()]
    content_type = (req.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if content_type not in allowed:
        raise BadRequestError(f"Content-Type must be {' or '.join(allowed)}")
    raw = req.get_body()
    if len(raw) > MAX_BODY_BYTES:
        raise BadRequestError(f"the request body is {len(raw)} bytes; the limit is {MAX_BODY_BYTES}")
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise BadRequestError("the request body is not valid JSON") from None


@handle_errors
def preferences_response(
    req: func.HttpRequest, authenticator: RequestAuthenticator, directory: UserDirectory
) -> func.HttpResponse:
    """Handle a preferences request with the given authenticator and directory."""
    user_id = authenticator.authenticate(req.headers).user_id
    method = req.method.upper()
    if method == "GET":
        preferences = directory.preferences(user_id)
    elif method == "PUT":
        preferences = directory.replace_preferences(user_id, parse_preferences(_body(req)))
    elif method == "PATCH":
        patch = _body(req)
        if not isinstance(patch, dict):
            raise BadRequestError("a merge patch must be a JSON object")
        preferences = directory.update_preferences(
            user_id, lambda stored: parse_preferences(merge_patch(stored, patch))
        )
    else:
        raise BadRequestError(f"method {method} is not supported; use GET, PUT or PATCH")
    return json_response(preferences_document(preferences), headers=NO_STORE)


@bp.route(route="preferences", methods=["GET", "PUT", "PATCH"])
@handle_errors
def preferences(req: func.HttpRequest) -> func.HttpResponse:
    """Read or change the caller's notification preferences."""
    return preferences_response(req, get_authenticator(), get_user_directory())
