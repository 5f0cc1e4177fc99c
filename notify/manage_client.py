"""A small client of the management API, for the CLI (``python -m notify status`` / ``list``).

Tokens: on the local stack a development backend token signed with ``AUTH_DEV_SECRET``; elsewhere a token
for the management audience from ``azure-identity`` (an application identity: a managed identity, a
service principal; a user's ``az login`` token carries ``scp`` and is refused by design).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote, urlsplit

import requests

TIMEOUT = (2.0, 10.0)  # connect, read: an unreachable API fails in seconds


class ApiUnreachable(Exception):
    """The API could not be reached (connection refused, timeout, DNS); ``url`` is what was tried."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"could not reach {url} ({reason})")
        self.url = url
        self.reason = reason


class ApiError(Exception):
    """The API answered with an error: ``status``, and its ``{"error": {"code", "message"}}``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


def is_loopback(url: str) -> bool:
    """True for a URL on this machine (the local stack)."""
    return urlsplit(url).hostname in ("127.0.0.1", "localhost", "::1")


class ManageApiClient:
    """Reads delivery status from ``<base_url>/api/manage/...`` with a bearer token."""

    def __init__(
        self, base_url: str, token: Callable[[], str], session: requests.Session | None = None
    ) -> None:
        self._base = base_url.rstrip("/")
        self._token = token
        self._session = session or requests.Session()

    def notification(self, user_id: str, notification_id: str) -> dict[str, Any]:
        """Status and timeline of one notification; ApiError (404 when there is none), ApiUnreachable."""
        path = f"/api/manage/users/{quote(user_id, safe='')}/notifications/{quote(notification_id, safe='')}"
        return self._get(path, {})

    def notifications(
        self, user_id: str, statuses: Iterable[str] = (), limit: int = 25, continuation: str | None = None
    ) -> dict[str, Any]:
        """One page of the user's notifications: ``{"items": [...], "continuationToken": ...}``."""
        params: dict[str, str] = {"limit": str(limit)}
        wanted = ",".join(statuses)
        if wanted:
            params["status"] = wanted
        if continuation:
            params["continuationToken"] = continuation
        return self._get(f"/api/manage/users/{quote(user_id, safe='')}/notifications", params)

    def _get(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        url = self._base + path
        try:
            response = self._session.get(
                url, params=params, headers={"Authorization": "Bearer " + self._token()}, timeout=TIMEOUT
            )
        except requests.ConnectionError as exc:
            reason = "connection refused" if "refused" in str(exc).lower() else type(exc).__name__
            raise ApiUnreachable(self._base, reason) from exc
        except requests.Timeout as exc:
            raise ApiUnreachable(self._base, "timed out") from exc
        if response.status_code == 200:
            body: dict[str, Any] = response.json()
            return body
        try:
            error = response.json()["error"]
            code, message = str(error["code"]), str(error["message"])
        except (ValueError, KeyError, TypeError):
            code, message = "http_error", response.text[:200] or response.reason
        raise ApiError(response.status_code, code, message)
