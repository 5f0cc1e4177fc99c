"""A small Notification Hubs REST client written independently of the emulator (its own SAS code).

The tests talk to the emulator only through this, over real HTTP, the way the app's client does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import urllib.parse
from typing import Any

import requests

API_VERSION = "2020-06"


def parse_connection_string(connection_string: str) -> dict[str, str]:
    """Split ``k=v;k=v`` on ';' then on the first '=' (keys are base64 and may end with '=')."""
    fields: dict[str, str] = {}
    for part in connection_string.split(";"):
        if part:
            name, _, value = part.partition("=")
            fields[name.strip().lower()] = value.strip()
    return fields


def base_url(connection_string: str) -> str:
    """``sb://`` becomes ``https://``; an explicit http(s) endpoint is used as given. Trailing '/' kept."""
    endpoint = parse_connection_string(connection_string)["endpoint"]
    if endpoint.startswith("sb://"):
        endpoint = "https://" + endpoint[len("sb://") :]
    return endpoint if endpoint.endswith("/") else endpoint + "/"


def sas_token(
    resource_uri: str, key_name: str, key: str, expiry: int | None = None, lower: bool = True
) -> str:
    """SharedAccessSignature over quote(lower(uri)) + '\\n' + se with the key's UTF-8 bytes."""
    se = int(time.time()) + 600 if expiry is None else expiry
    sr = urllib.parse.quote(resource_uri.lower() if lower else resource_uri, safe="")
    digest = hmac.new(key.encode("utf-8"), f"{sr}\n{se}".encode(), hashlib.sha256).digest()
    sig = urllib.parse.quote(base64.b64encode(digest).decode(), safe="")
    return f"SharedAccessSignature sr={sr}&sig={sig}&se={se}&skn={key_name}"


class NhClient:
    """Requests-based client for one hub, authenticated with the connection string's rule."""

    def __init__(
        self, connection_string: str, hub: str, verify: Any = True, token_uri: str | None = None
    ) -> None:
        fields = parse_connection_string(connection_string)
        self.base = base_url(connection_string)
        self.hub = fields.get("entitypath", hub)
        self.key_name = fields["sharedaccesskeyname"]
        self.key = fields["sharedaccesskey"]
        self.token_uri = token_uri or self.base  # the JS SDK signs the namespace root
        self.session = requests.Session()
        # Passed per request: REQUESTS_CA_BUNDLE would override Session.verify.
        self.options: dict[str, Any] = {"verify": verify, "timeout": 10}

    def url(self, path: str, query: str = f"api-version={API_VERSION}") -> str:
        return f"{self.base}{self.hub}/{path}" + (f"?{query}" if query else "")

    def auth(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Authorization": sas_token(self.token_uri, self.key_name, self.key)}
        headers.update(extra or {})
        return headers

    def put_installation(self, installation: dict[str, Any]) -> requests.Response:
        return self.session.put(
            self.url(f"installations/{installation['installationId']}"),
            data=json.dumps(installation),
            headers=self.auth({"Content-Type": "application/json"}),
            **self.options,
        )

    def get_installation(self, installation_id: str) -> requests.Response:
        return self.session.get(
            self.url(f"installations/{installation_id}"), headers=self.auth(), **self.options
        )

    def patch_installation(
        self,
        installation_id: str,
        operations: list[dict[str, Any]],
        content_type: str = "application/json-patch+json",
    ) -> requests.Response:
        return self.session.patch(
            self.url(f"installations/{installation_id}"),
            data=json.dumps(operations),
            headers=self.auth({"Content-Type": content_type}),
            **self.options,
        )

    def delete_installation(self, installation_id: str) -> requests.Response:
        return self.session.delete(
            self.url(f"installations/{installation_id}"), headers=self.auth(), **self.options
        )

    def send(
        self,
        body: Any,
        fmt: str,
        tags: str | None = None,
        query: str = f"api-version={API_VERSION}",
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        extra = {"Content-Type": "application/json;charset=utf-8", "ServiceBusNotification-Format": fmt}
        if tags is not None:
            extra["ServiceBusNotification-Tags"] = tags
        extra.update(headers or {})
        data = body if isinstance(body, str | bytes) else json.dumps(body)
        return self.session.post(
            self.url("messages/", query), data=data, headers=self.auth(extra), **self.options
        )

    def schedule(
        self, body: Any, fmt: str, schedule_time: str | None, tags: str | None = None
    ) -> requests.Response:
        extra = {"Content-Type": "application/json;charset=utf-8", "ServiceBusNotification-Format": fmt}
        if schedule_time is not None:
            extra["ServiceBusNotification-ScheduleTime"] = schedule_time
        if tags is not None:
            extra["ServiceBusNotification-Tags"] = tags
        data = body if isinstance(body, str | bytes) else json.dumps(body)
        return self.session.post(
            self.url("schedulednotifications/"), data=data, headers=self.auth(extra), **self.options
        )

    def cancel_scheduled(self, notification_id: str) -> requests.Response:
        return self.session.delete(
            self.url(f"schedulednotifications/{notification_id}"), headers=self.auth(), **self.options
        )


def error_detail(response: requests.Response) -> str:
    """The Detail text of the service's XML error body."""
    text = response.text
    assert text.startswith("<Error><Code>"), text
    assert f"<Code>{response.status_code}</Code>" in text, text
    return text.split("<Detail>", 1)[1].split("</Detail>", 1)[0]
