"""A small Azure Notification Hubs data-plane REST client (installations and sends) built on ``requests``.

Connection strings are parsed generically: split on ``;``, then on the first ``=`` (keys are base64 and may
end in ``=``), key names matched exactly and case-insensitively. The hub is ``EntityPath`` if present, else
the ``hub_name`` argument, else :class:`~shared.errors.ConfigurationError`.

Base URL rule: ``Endpoint=sb://host/`` becomes ``https://host/``; an explicit ``http://`` or ``https://``
endpoint is used as given (that is how the local emulator is reached over plain HTTP).

Authentication is a SAS token signed over the namespace root with a one-hour expiry, cached until five
minutes before it expires. Every request sends ``api-version=2020-06`` and ``x-ms-version: 2020-06``.

Errors are translated in one place (:meth:`NotificationHubsClient._raise_for_status`): 429, 408, 5xx,
timeouts, connection errors and 403 *with* ``Retry-After`` become
:class:`~shared.errors.TransientError` and are retried through :func:`shared.retry.call_with_retry`;
any other 4xx is a permanent :class:`~shared.errors.UpstreamError` carrying the service's XML Detail.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import requests

from shared.clients import pooled_session
from shared.errors import BadRequestError, ConfigurationError, TransientError, UpstreamError
from shared.once import process_wide
from shared.retry import RetryPolicy, call_with_retry
from shared.settings import get_settings

logger = logging.getLogger(__name__)

SERVICE = "notification_hubs"
API_VERSION = "2020-06"
MAX_BODY_BYTES = 64 * 1024
TOKEN_LIFETIME_SECONDS = 3600
TOKEN_REFRESH_MARGIN_SECONDS = 300
DEFAULT_TIMEOUT = (5.0, 15.0)  # (connect, read) seconds
_SETTING = "NOTIFICATION_HUBS_CONNECTION_STRING"
_TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class ConnectionInfo:
    """What a connection string says: base URL (ending in ``/``), rule name, key and hub."""

    base_url: str
    key_name: str
    key: str
    hub: str


@dataclass(frozen=True)
class SendResult:
    """The outcome of an accepted send: the HTTP status and the notification id from ``Location``."""

    status: int
    notification_id: str | None


def parse_connection_string(connection_string: str, hub_name: str | None = None) -> ConnectionInfo:
    """Parse an NH connection string; raise ConfigurationError naming what is missing or malformed."""
    fields: dict[str, str] = {}
    for segment in connection_string.split(";"):
        segment = segment.strip()
        if not segment:
            continue
        name, sep, value = segment.partition("=")
        if not sep:
            raise ConfigurationError(_SETTING, "every segment must look like Name=Value")
        fields[name.strip().lower()] = value.strip()
    endpoint = fields.get("endpoint")
    key_name = fields.get("sharedaccesskeyname")
    key = fields.get("sharedaccesskey")
    if not endpoint or not key_name or not key:
        raise ConfigurationError(_SETTING, "needs Endpoint, SharedAccessKeyName and SharedAccessKey")
    hub = fields.get("entitypath") or hub_name
    if not hub:
        raise ConfigurationError(
            "NOTIFICATION_HUB_NAME", "is required when the connection string has no EntityPath"
        )
    return ConnectionInfo(base_url=_base_url(endpoint), key_name=key_name, key=key, hub=hub)


def _base_url(endpoint: str) -> str:
    parsed = urllib.parse.urlsplit(endpoint)
    scheme = parsed.scheme.lower()
    if scheme == "sb":
        scheme = "https"
    if scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigurationError(_SETTING, "Endpoint must be an sb://, https:// or http:// URL")
    path = parsed.path if parsed.path.endswith("/") else parsed.path + "/"
    return f"{scheme}://{parsed.netloc}{path}"


def sas_token(resource_uri: str, key_name: str, key: str, expiry: int) -> str:
    """A ``SharedAccessSignature`` header value for ``resource_uri`` valid until unix time ``expiry``."""
    encoded_uri = urllib.parse.quote(resource_uri.lower(), safe="")
    to_sign = f"{encoded_uri}\n{expiry}".encode()
    digest = hmac.new(key.encode("utf-8"), to_sign, hashlib.sha256).digest()
    signature = urllib.parse.quote(base64.b64encode(digest).decode("ascii"), safe="")
    return (
        f"SharedAccessSignature sr={encoded_uri}&sig={signature}"
        f"&se={expiry}&skn={urllib.parse.quote(key_name, safe='')}"
    )


class _TokenCache:
    """A thread-safe SAS token cache for one namespace root."""

    def __init__(self, info: ConnectionInfo, clock: Callable[[], float]) -> None:
        self._info = info
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expiry = 0

    def get(self) -> str:
        now = self._clock()
        with self._lock:
            if self._token is None or now >= self._expiry - TOKEN_REFRESH_MARGIN_SECONDS:
                self._expiry = int(now) + TOKEN_LIFETIME_SECONDS
                self._token = sas_token(
                    self._info.base_url, self._info.key_name, self._info.key, self._expiry
                )
            return self._token


class NotificationHubsClient:
    """Installations CRUD and template/native sends against one hub."""

    def __init__(
        self,
        connection_string: str,
        hub_name: str | None = None,
        session: requests.Session | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.info = parse_connection_string(connection_string, hub_name)
        self._session = session or pooled_session()
        self._retry = retry or RetryPolicy()
        self._timeout = timeout
        self._tokens = _TokenCache(self.info, clock)
        self._hub_url = f"{self.info.base_url}{urllib.parse.quote(self.info.hub, safe='')}/"

    @property
    def hub(self) -> str:
        """The hub this client talks to."""
        return self.info.hub

    def close(self) -> None:
        """Close the underlying HTTP session."""
        self._session.close()

    def put_installation(self, installation: Mapping[str, Any]) -> None:
        """Create or overwrite an installation; raise UpstreamError/TransientError on failure."""
        installation_id = str(installation["installationId"])
        body = json.dumps(installation, separators=(",", ":")).encode("utf-8")
        self._request(
            "PUT",
            self._installation_url(installation_id),
            "put installation",
            body=body,
            headers={"Content-Type": "application/json"},
        )

    def get_installation(self, installation_id: str) -> dict[str, Any] | None:
        """The installation as JSON, or None when NH does not (yet) know it."""
        response = self._request(
            "GET", self._installation_url(installation_id), "get installation", allow_statuses=(404,)
        )
        if response.status_code == 404:
            return None
        result = response.json()
        if not isinstance(result, dict):
            raise UpstreamError(SERVICE, "installation is not a JSON object", response.status_code)
        return result

    def delete_installation(self, installation_id: str) -> None:
        """Delete an installation; one that is already gone counts as deleted."""
        self._request(
            "DELETE", self._installation_url(installation_id), "delete installation", allow_statuses=(404,)
        )

    def send_template(
        self,
        properties: Mapping[str, str],
        tag_expression: str,
        headers: Mapping[str, str] | None = None,
    ) -> SendResult:
        """Send a template notification (string properties only) to a tag expression.

        ``headers``: ``apns-*`` headers, which NH passes to APNs for the installations on APNs.
        """
        for name, value in properties.items():
            if not isinstance(value, str):
                raise BadRequestError(f"template property {name!r} must be a string", field=name)
        body = json.dumps(dict(properties), separators=(",", ":")).encode("utf-8")
        return self._send(body, "template", tag_expression, dict(headers or {}))

    def send_native(
        self,
        platform_format: str,
        payload: Mapping[str, Any],
        tag_expression: str,
        headers: Mapping[str, str] | None = None,
    ) -> SendResult:
        """Send a native (``apple`` or ``fcmv1``) payload to a tag expression."""
        if platform_format not in ("apple", "fcmv1"):
            raise BadRequestError(f"unsupported native format {platform_format!r}", field="format")
        body = json.dumps(dict(payload), separators=(",", ":")).encode("utf-8")
        return self._send(body, platform_format, tag_expression, dict(headers or {}))

    def _send(self, body: bytes, fmt: str, tag_expression: str, extra: dict[str, str]) -> SendResult:
        headers = {
            "Content-Type": "application/json;charset=utf-8",
            "ServiceBusNotification-Format": fmt,
            "ServiceBusNotification-Tags": tag_expression,
            **extra,
        }
        response = self._request("POST", f"{self._hub_url}messages/", "send", body=body, headers=headers)
        return SendResult(response.status_code, _notification_id(response.headers.get("Location")))

    def _installation_url(self, installation_id: str) -> str:
        return f"{self._hub_url}installations/{urllib.parse.quote(installation_id, safe='')}"

    def _request(
        self,
        method: str,
        url: str,
        what: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        allow_statuses: tuple[int, ...] = (),
    ) -> requests.Response:
        if body is not None and len(body) > MAX_BODY_BYTES:
            raise BadRequestError(
                f"Notification Hubs request body is {len(body)} bytes; the limit is {MAX_BODY_BYTES}"
            )

        def attempt() -> requests.Response:
            all_headers = {
                "Authorization": self._tokens.get(),
                "x-ms-version": API_VERSION,
                **(headers or {}),
            }
            try:
                response = self._session.request(
                    method,
                    url,
                    params={"api-version": API_VERSION},
                    data=body,
                    headers=all_headers,
                    timeout=self._timeout,
                )
            except requests.Timeout as exc:
                raise TransientError(SERVICE, f"{what} timed out") from exc
            except requests.ConnectionError as exc:
                raise TransientError(SERVICE, f"{what} could not connect") from exc
            except requests.RequestException as exc:
                raise UpstreamError(SERVICE, f"{what} failed: {type(exc).__name__}") from exc
            if response.status_code not in allow_statuses:
                self._raise_for_status(response, what)
            return response

        return call_with_retry(attempt, self._retry, f"notification hubs {what}")

    @staticmethod
    def _raise_for_status(response: requests.Response, what: str) -> None:
        """Translate a non-2xx answer into TransientError (retryable) or UpstreamError (permanent)."""
        status = response.status_code
        if 200 <= status < 300:
            return
        detail = _error_detail(response.text)
        retry_after = _retry_after(response.headers.get("Retry-After"))
        message = f"{what} answered {status}: {detail}"
        logger.info(
            "notification hubs %s answered %s (TrackingId %s)",
            what,
            status,
            response.headers.get("TrackingId"),
        )
        if status in _TRANSIENT_STATUSES or status >= 500 or (status == 403 and retry_after is not None):
            raise TransientError(SERVICE, message, status, retry_after)
        raise UpstreamError(SERVICE, message, status)


def _notification_id(location: str | None) -> str | None:
    if not location:
        return None
    path = urllib.parse.urlsplit(location).path.rstrip("/")
    last = path.rsplit("/", 1)[-1]
    return urllib.parse.unquote(last) or None


_DETAIL = re.compile(r"<Detail>(.*?)</Detail>", re.DOTALL)


def _error_detail(text: str) -> str:
    match = _DETAIL.search(text or "")
    detail = match.group(1).strip() if match else (text or "").strip()
    return detail[:500] or "(no detail)"


def _retry_after(value: str | None) -> float | None:
    if value is None or not value.strip():
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


@process_wide
def get_notification_hubs_client() -> NotificationHubsClient:
    """The process-wide client built from the settings."""
    settings = get_settings()
    return NotificationHubsClient(
        settings.notification_hubs_connection_string,
        settings.notification_hub_name,
        retry=RetryPolicy(attempts=settings.retry_max_attempts, budget_seconds=settings.retry_budget_seconds),
    )
