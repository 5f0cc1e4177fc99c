"""Shared Access Signature tokens as Notification Hubs issues and checks them.

Token: ``SharedAccessSignature sr=<enc-uri>&sig=<enc-sig>&se=<unix-seconds>&skn=<rule>`` (any field order).
Signature: base64(HMAC-SHA256(key=UTF-8 bytes of the key string, msg=sr-as-sent + "\\n" + se)).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import urllib.parse
from dataclasses import dataclass

LISTEN = "Listen"
SEND = "Send"
MANAGE = "Manage"

FULL_RULE = "DefaultFullSharedAccessSignature"
LISTEN_RULE = "DefaultListenSharedAccessSignature"

_PREFIX = "SharedAccessSignature "


class SasError(Exception):
    """A token was missing, malformed, forged, expired or does not cover the request (HTTP 401)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass(frozen=True)
class AccessRule:
    """An authorization rule: a key name, its key and the rights it grants."""

    name: str
    key: str
    rights: frozenset[str]


@dataclass(frozen=True)
class SasToken:
    """The fields of a parsed token; ``resource_as_sent`` is still URL-encoded (it is what was signed)."""

    resource_as_sent: str
    signature: str
    expiry: int
    key_name: str

    @property
    def resource(self) -> str:
        """The decoded resource URI the token was issued for."""
        return urllib.parse.unquote(self.resource_as_sent)


def sign(resource_as_sent: str, expiry: int, key: str) -> str:
    """Return the base64 HMAC-SHA256 signature of ``resource + "\\n" + expiry`` under ``key``."""
    message = f"{resource_as_sent}\n{expiry}".encode()
    digest = hmac.new(key.encode("utf-8"), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def generate_sas_token(resource_uri: str, key_name: str, key: str, expiry: int | None = None) -> str:
    """Build a token for ``resource_uri`` the way the Azure SDKs do (lower-cased, URL-encoded uri)."""
    if expiry is None:
        expiry = int(time.time()) + 3600
    encoded = urllib.parse.quote(resource_uri.lower(), safe="")
    signature = urllib.parse.quote(sign(encoded, expiry, key), safe="")
    return f"{_PREFIX}sr={encoded}&sig={signature}&se={expiry}&skn={urllib.parse.quote(key_name, safe='')}"


def parse_sas_token(header: str | None) -> SasToken:
    """Parse an Authorization header value into a :class:`SasToken`; raises :class:`SasError`."""
    if not header:
        raise SasError(
            "MissingToken: The Authorization header was not found. A SharedAccessSignature is required."
        )
    if not header.startswith(_PREFIX):
        raise SasError("MalformedToken: The Authorization header must start with 'SharedAccessSignature '.")
    fields: dict[str, str] = {}
    for part in header[len(_PREFIX) :].strip().split("&"):
        name, sep, value = part.partition("=")
        if not sep:
            raise SasError(f"MalformedToken: The token field '{name}' has no value.")
        fields[name.strip().lower()] = value.strip()
    missing = [name for name in ("sr", "sig", "se", "skn") if not fields.get(name)]
    if missing:
        raise SasError(f"MalformedToken: The token is missing the field(s) {', '.join(missing)}.")
    try:
        expiry = int(fields["se"])
    except ValueError as exc:
        raise SasError(
            "MalformedToken: The token expiry 'se' must be whole seconds since the epoch."
        ) from exc
    return SasToken(
        resource_as_sent=fields["sr"],
        signature=urllib.parse.unquote(fields["sig"]),
        expiry=expiry,
        key_name=urllib.parse.unquote(fields["skn"]),
    )


def _host_and_path(uri: str) -> tuple[str, str]:
    """Split a URI into (host without port, path without trailing '/') in lower case; scheme ignored."""
    if "://" not in uri:
        uri = "x://" + uri
    parsed = urllib.parse.urlsplit(uri)
    host = (parsed.hostname or "").lower()
    path = urllib.parse.unquote(parsed.path).lower().rstrip("/")
    return host, path


def resource_covers(resource: str, request_url: str) -> bool:
    """True when ``resource`` is a prefix of ``request_url``, ignoring scheme, port, query and case.

    The prefix must end on a path-segment boundary, so a token for ``/hub`` does not cover ``/hub2``.
    """
    token_host, token_path = _host_and_path(resource)
    request_host, request_path = _host_and_path(request_url)
    if token_host != request_host:
        return False
    return request_path == token_path or request_path.startswith(token_path + "/")


def authorize(
    header: str | None,
    request_url: str,
    rules: dict[str, AccessRule],
    required_right: str,
    now: float | None = None,
) -> AccessRule:
    """Validate the Authorization header for ``request_url`` and return the rule that signed it.

    Raises :class:`SasError` (401 in the service) for any failure, including a missing right.
    """
    token = parse_sas_token(header)
    rule = rules.get(token.key_name)
    if rule is None:
        raise SasError(
            f"InvalidSignature: The token has an invalid signature. "
            f"No authorization rule named '{token.key_name}' exists."
        )
    expected = sign(token.resource_as_sent, token.expiry, rule.key)
    if not hmac.compare_digest(expected.encode(), token.signature.encode()):
        raise SasError(
            "InvalidSignature: The token has an invalid signature. The signature must be "
            "base64(HMAC-SHA256(key, sr-as-sent + '\\n' + se)) with the key of rule "
            f"'{rule.name}'."
        )
    current = time.time() if now is None else now
    if token.expiry <= current:
        raise SasError(f"ExpiredToken: The token is expired. Expiry time: {token.expiry} (unix seconds).")
    if not resource_covers(token.resource, request_url):
        raise SasError(
            f"InvalidAudience: The token resource '{token.resource}' does not cover the request URL "
            f"'{request_url}' (compared without scheme and port)."
        )
    if required_right not in rule.rights:
        raise SasError(f"{required_right} claim is required for this operation.")
    return rule
