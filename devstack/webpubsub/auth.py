"""Access-key JWTs as the service checks them (REST bearer tokens, client access tokens) and issues them."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any
from urllib.parse import unquote

import jwt


class TokenError(Exception):
    """A token that is missing, malformed, badly signed, expired or for another audience."""


def _decode(token: str, keys: list[str]) -> dict[str, Any]:
    last_error: Exception | None = None
    for key in keys:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.encode("utf-8"),
                algorithms=["HS256"],
                options={"verify_aud": False, "require": ["exp"]},
                leeway=5,
            )
            return claims
        except jwt.ExpiredSignatureError as exc:
            raise TokenError("the token is expired (exp is in the past)") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise TokenError("the token has no 'exp' claim") from exc
        except jwt.InvalidSignatureError as exc:
            last_error = exc
        except jwt.InvalidTokenError as exc:
            raise TokenError(f"the token is not a valid HS256 JWT: {exc}") from exc
    raise TokenError("the token signature does not match the access key") from last_error


def _normalise_url(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep:
        return unquote(url)
    host, slash, path = rest.partition("/")
    return f"{scheme.lower()}://{host.lower()}{slash}{unquote(path)}"


def verify_server_token(authorization: str | None, request_url: str, keys: list[str]) -> dict[str, Any]:
    """Check a REST bearer JWT whose ``aud`` must be the full request URL; return its claims."""
    if not authorization:
        raise TokenError("missing Authorization header (expected 'Bearer <JWT signed with the access key>')")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise TokenError("the Authorization header must be 'Bearer <token>'")
    claims = _decode(token.strip(), keys)
    aud = claims.get("aud")
    if not isinstance(aud, str):
        raise TokenError("the token has no string 'aud' claim")
    if _normalise_url(aud) != _normalise_url(request_url):
        raise TokenError(f"the token audience {aud!r} is not the request URL {request_url!r}")
    return claims


def verify_client_token(token: str, audiences: list[str], keys: list[str]) -> dict[str, Any]:
    """Check a client access token (``aud`` = the hub's client URL, any case); return its claims."""
    claims = _decode(token, keys)
    aud = claims.get("aud")
    accepted = {a.lower().rstrip("/") for a in audiences}
    aud_values = aud if isinstance(aud, list) else [aud]
    if not any(isinstance(a, str) and a.lower().rstrip("/") in accepted for a in aud_values):
        raise TokenError(f"the token audience {aud!r} is not this hub's client URL")
    return claims


def issue_client_token(
    audience: str,
    user_id: str | None,
    roles: list[str],
    groups: list[str],
    minutes_to_expire: int,
    key: str,
) -> str:
    """Issue a client access token the same shape the SDK signs locally."""
    now = int(time.time())
    payload: dict[str, Any] = {"aud": audience, "iat": now, "exp": now + 60 * minutes_to_expire}
    if user_id:
        payload["sub"] = user_id
    if roles:
        payload["role"] = roles
    if groups:
        payload["webpubsub.group"] = groups
    return jwt.encode(payload, key.encode("utf-8"), algorithm="HS256")


def claim_list(claims: dict[str, Any], name: str) -> list[str]:
    """A claim that may be a single string or a list, as a list of strings."""
    value = claims.get(name)
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    return [str(value)]


def event_signature(connection_id: str, keys: list[str]) -> str:
    """The ``ce-signature`` value: ``sha256=<hex HMAC of the connection id>`` per access key, comma-joined."""
    return ",".join(
        "sha256=" + hmac.new(k.encode("utf-8"), connection_id.encode("utf-8"), hashlib.sha256).hexdigest()
        for k in keys
    )
