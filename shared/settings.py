"""The app's one settings object. Every setting is read here and nowhere else.

Built lazily by :func:`get_settings` (cached) so importing ``function_app`` never fails on
configuration; a missing or malformed setting raises :class:`ConfigurationError` naming it.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from shared.errors import ConfigurationError
from shared.once import process_wide

#: Settings that binding expressions (``%NAME%``) in function_app.py refer to.
BINDING_SETTINGS = (
    "NOTIFICATIONS_QUEUE",
    "DEADLINES_QUEUE",
    "WEBHOOK_QUEUE",
    "PRESENCE_SWEEP_SCHEDULE",
    "INBOX_SWEEP_SCHEDULE",
    "RECOVERY_SCHEDULE",
    "WebPubSubHub",
)

DEFAULTS: dict[str, str] = {
    "WebPubSubHub": "notify",
    "NOTIFICATIONS_QUEUE": "notifications",
    "DEADLINES_QUEUE": "notification-deadlines",
    "DELIVERIES_TABLE": "deliveries",
    "DEVICES_TABLE": "devices",
    "ACK_TIMEOUT_SECONDS": "10",
    "CLIENT_TOKEN_MINUTES": "60",
    "PRESENCE_SWEEP_SCHEDULE": "0 */5 * * * *",
    "PRESENCE_STALE_SECONDS": "300",
    "INBOX_RETENTION_DAYS": "90",
    "INBOX_SWEEP_SCHEDULE": "0 30 3 * * *",
    "INBOX_PUSH_BADGE": "false",
    "AUTH_USER_CLAIM": "sub",
    "AUTH_APP_SERVICE_ENABLED": "false",
    "AUTH_DEV_ISSUER": "notify-dev",
    "AUTH_DEV_AUDIENCE": "notify",
    "RETRY_MAX_ATTEMPTS": "4",
    "RETRY_BUDGET_SECONDS": "20",
    "NOTIFICATION_TYPES": "{}",
    "RETRY_DELAY_SECONDS": "10",
    "RETRY_MAX_DELAY_SECONDS": "300",
    "RETRY_HORIZON_SECONDS": "3600",
    "CLAIM_LEASE_SECONDS": "60",
    "RECOVERY_SCHEDULE": "*/30 * * * * *",
    "WEBHOOK_QUEUE": "notification-webhooks",
    "WEBHOOK_RETRY_SECONDS": "86400",
    "WEBHOOK_BACKOFF_SECONDS": "10",
    "AUTH_MANAGE_ROLE": "Notify.Manage",
    "AUTH_DEV_MANAGE_AUDIENCE": "notify-manage",
    "TELEMETRY_EXPORTER": "auto",
}

#: Webhook secrets are Standard Webhooks secrets: ``whsec_`` + base64 of 24 to 64 random bytes.
WEBHOOK_SECRET_PREFIX = "whsec_"
TELEMETRY_EXPORTERS = ("auto", "azure_monitor", "otlp", "console", "none")

#: The type entry that applies to every type without an entry of its own.
ANY_TYPE = "*"
_TYPE_NAME = re.compile(r"[^\x00-\x1f]{1,64}")


@dataclass(frozen=True)
class NotificationTypeSettings:
    """Defaults for one notification type (``NOTIFICATION_TYPES``); a user's preferences override them."""

    in_app: bool = True
    push: bool = True
    quiet_hours: Literal["defer", "drop"] = "defer"  # what quiet hours do to a push of this type
    priority: Literal["high", "normal"] = "high"  # APNs 10 / 5, FCM HIGH / NORMAL
    critical: bool = False  # bypasses mutes and quiet hours, always high priority



@dataclass(frozen=True)
class StorageSettings:
    """Where queues and tables live: a connection string locally, or identity-based in Azure."""

    connection_string: str | None = None
    queue_service_uri: str | None = None
    table_service_uri: str | None = None
    client_id: str | None = None


@dataclass(frozen=True)
class WebPubSubSettings:
    """The Web PubSub service: a key-based connection string, or an endpoint used with an identity."""

    hub: str
    connection_string: str | None = None
    endpoint: str | None = None
    client_id: str | None = None


@dataclass(frozen=True)
class AuthSettings:
    """How callers of the HTTP functions are authenticated. Nothing configured: everything is refused."""

    oidc_issuer: str | None = None
    oidc_audience: str | None = None
    oidc_jwks_url: str | None = None
    user_claim: str = "sub"
    app_service_enabled: bool = False
    dev_secret: str | None = None
    dev_issuer: str = "notify-dev"
    dev_audience: str = "notify"

    @property
    def any_configured(self) -> bool:
        """True when at least one way of authenticating is configured."""
        return bool(self.oidc_issuer or self.app_service_enabled or self.dev_secret)


@dataclass(frozen=True)
class ManageAuthSettings:
    """How backends calling the management API (``/api/manage/...``) are authenticated.

    Separate from the app users' :class:`AuthSettings`: another audience, and an app role that only
    application (not user) tokens carry. Nothing configured: every request is refused.
    """

    oidc_issuer: str | None = None
    oidc_audience: str | None = None
    oidc_jwks_url: str | None = None
    role: str = "Notify.Manage"
    dev_secret: str | None = None
    dev_issuer: str = "notify-dev"
    dev_audience: str = "notify-manage"

    @property
    def any_configured(self) -> bool:
        """True when backend tokens can be validated at all."""
        return bool((self.oidc_issuer and self.oidc_audience) or self.dev_secret)


@dataclass(frozen=True)
class WebhookSettings:
    """Delivery webhooks: where to POST the events, how to sign them, how long to retry."""

    url: str | None = None
    secrets: tuple[bytes, ...] = ()  # signing keys (decoded); the first signs, all are sent (rotation)
    queue: str = "notification-webhooks"
    retry_seconds: int = 86400
    backoff_seconds: int = 10

    @property
    def enabled(self) -> bool:
        """True when WEBHOOK_URL is set."""
        return bool(self.url)


@dataclass(frozen=True)
class TelemetrySettings:
    """Where OpenTelemetry traces and metrics go (``shared.observability``)."""

    exporter: str = "auto"
    applicationinsights_connection_string: str | None = None
    applicationinsights_client_id: str | None = None  # from APPLICATIONINSIGHTS_AUTHENTICATION_STRING
    applicationinsights_entra: bool = False  # Authorization=AAD: ingest with a managed identity
    otlp_endpoint: str | None = None

    @property
    def effective_exporter(self) -> str:
        """``auto`` resolved: Application Insights when configured, else OTLP when configured, else none."""
        if self.exporter != "auto":
            return self.exporter
        if self.applicationinsights_connection_string:
            return "azure_monitor"
        return "otlp" if self.otlp_endpoint else "none"


@dataclass(frozen=True)
class Settings:
    """Every setting the app reads (see the README's configuration table)."""

    storage: StorageSettings
    webpubsub: WebPubSubSettings
    notification_hubs_connection_string: str
    notification_hub_name: str | None
    notifications_queue: str
    deadlines_queue: str
    deliveries_table: str
    devices_table: str
    ack_timeout_seconds: int
    client_token_minutes: int
    presence_stale_seconds: int
    auth: AuthSettings = field(default_factory=AuthSettings)
    retry_max_attempts: int = 4
    retry_budget_seconds: float = 20.0
    inbox_retention_days: int = 90
    inbox_push_badge: bool = False
    notification_types: Mapping[str, NotificationTypeSettings] = field(default_factory=dict)
    retry_delay_seconds: int = 10
    retry_max_delay_seconds: int = 300
    retry_horizon_seconds: int = 3600
    claim_lease_seconds: int = 60

    def type_settings(self, notification_type: str) -> NotificationTypeSettings:
        """The defaults for ``notification_type``: its own entry, else ``"*"``, else the built-in ones."""
        types = self.notification_types
        return types.get(notification_type) or types.get(ANY_TYPE) or NotificationTypeSettings()
    manage_auth: ManageAuthSettings = field(default_factory=ManageAuthSettings)
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    telemetry: TelemetrySettings = field(default_factory=TelemetrySettings)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Settings:
        """Build settings from an environment mapping; raise ConfigurationError naming a bad setting."""
        reader = _Reader(environ)
        return cls(
            storage=_storage(reader),
            webpubsub=_webpubsub(reader),
            notification_hubs_connection_string=reader.required("NOTIFICATION_HUBS_CONNECTION_STRING"),
            notification_hub_name=reader.optional("NOTIFICATION_HUB_NAME"),
            notifications_queue=reader.queue_name("NOTIFICATIONS_QUEUE"),
            deadlines_queue=reader.queue_name("DEADLINES_QUEUE"),
            deliveries_table=reader.table_name("DELIVERIES_TABLE"),
            devices_table=reader.table_name("DEVICES_TABLE"),
            ack_timeout_seconds=reader.integer("ACK_TIMEOUT_SECONDS", minimum=0, maximum=600),
            client_token_minutes=reader.integer("CLIENT_TOKEN_MINUTES", minimum=1, maximum=24 * 60),
            presence_stale_seconds=reader.integer("PRESENCE_STALE_SECONDS", minimum=30, maximum=86400),
            auth=_auth(reader),
            retry_max_attempts=reader.integer("RETRY_MAX_ATTEMPTS", minimum=1, maximum=10),
            retry_budget_seconds=float(reader.integer("RETRY_BUDGET_SECONDS", minimum=1, maximum=600)),
            notification_types=_notification_types(reader),
            inbox_retention_days=reader.integer("INBOX_RETENTION_DAYS", minimum=7, maximum=3650),
            inbox_push_badge=reader.boolean("INBOX_PUSH_BADGE"),
            **_rescheduling(reader),
            manage_auth=_manage_auth(reader),
            webhooks=_webhooks(reader),
            telemetry=_telemetry(reader),
        )


@process_wide
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings.from_environ(os.environ)


class _Reader:
    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def optional(self, name: str) -> str | None:
        value = self._environ.get(name, "").strip()
        if value:
            return value
        return DEFAULTS.get(name)

    def required(self, name: str) -> str:
        value = self.optional(name)
        if value is None:
            raise ConfigurationError(name, "is required but not set")
        return value

    def integer(self, name: str, minimum: int, maximum: int) -> int:
        raw = self.required(name)
        try:
            value = int(raw)
        except ValueError:
            raise ConfigurationError(name, f"must be a whole number, got {raw!r}") from None
        if not minimum <= value <= maximum:
            raise ConfigurationError(name, f"must be between {minimum} and {maximum}, got {value}")
        return value

    def boolean(self, name: str) -> bool:
        raw = self.required(name).lower()
        if raw in ("1", "true", "yes", "on"):
            return True
        if raw in ("0", "false", "no", "off"):
            return False
        raise ConfigurationError(name, f"must be true or false, got {raw!r}")

    def queue_name(self, name: str) -> str:
        value = self.required(name)
        # Storage queue names: 3-63 chars, lowercase letters, digits and single hyphens.
        ok = 3 <= len(value) <= 63 and value[0].isalnum() and value[-1].isalnum() and "--" not in value
        if not ok or not all(c.islower() or c.isdigit() or c == "-" for c in value):
            raise ConfigurationError(name, f"{value!r} is not a valid storage queue name")
        return value

    def table_name(self, name: str) -> str:
        value = self.required(name)
        if not (3 <= len(value) <= 63 and value[0].isalpha() and value.isalnum() and value.isascii()):
            raise ConfigurationError(name, f"{value!r} is not a valid table name (3-63 letters and digits)")
        return value


def _storage(reader: _Reader) -> StorageSettings:
    connection_string = reader.optional("AzureWebJobsStorage")
    if connection_string:
        return StorageSettings(connection_string=connection_string)
    account = reader.optional("AzureWebJobsStorage__accountName")
    queue_uri = reader.optional("AzureWebJobsStorage__queueServiceUri")
    table_uri = reader.optional("AzureWebJobsStorage__tableServiceUri")
    if account:
        queue_uri = queue_uri or f"https://{account}.queue.core.windows.net"
        table_uri = table_uri or f"https://{account}.table.core.windows.net"
    if not (queue_uri and table_uri):
        raise ConfigurationError(
            "AzureWebJobsStorage",
            "set a connection string, or AzureWebJobsStorage__accountName (or both "
            "AzureWebJobsStorage__queueServiceUri and __tableServiceUri) for managed identity",
        )
    return StorageSettings(
        queue_service_uri=queue_uri,
        table_service_uri=table_uri,
        client_id=reader.optional("AzureWebJobsStorage__clientId"),
    )


def _webpubsub(reader: _Reader) -> WebPubSubSettings:
    hub = reader.required("WebPubSubHub")
    if not (hub[0].isalpha() and all(c.isalnum() or c == "_" for c in hub) and len(hub) <= 127):
        raise ConfigurationError("WebPubSubHub", f"{hub!r} is not a valid hub name (letters, digits, _)")
    connection_string = reader.optional("WebPubSubConnectionString")
    if connection_string:
        return WebPubSubSettings(hub=hub, connection_string=connection_string)
    endpoint = reader.optional("WebPubSubConnectionString__serviceUri")
    if not endpoint:
        raise ConfigurationError(
            "WebPubSubConnectionString",
            "set a connection string, or WebPubSubConnectionString__serviceUri for managed identity",
        )
    return WebPubSubSettings(
        hub=hub, endpoint=endpoint, client_id=reader.optional("WebPubSubConnectionString__clientId")
    )


#: Longest a queue message can stay invisible (Storage: 7 days), so the longest a retry can be put off.
MAX_QUEUE_DELAY_SECONDS = 7 * 24 * 3600


def _rescheduling(reader: _Reader) -> dict[str, int]:
    """Re-scheduled retries and the claim lease, checked against each other."""
    delay = reader.integer("RETRY_DELAY_SECONDS", minimum=1, maximum=3600)
    max_delay = reader.integer("RETRY_MAX_DELAY_SECONDS", minimum=1, maximum=MAX_QUEUE_DELAY_SECONDS)
    horizon = reader.integer("RETRY_HORIZON_SECONDS", minimum=1, maximum=MAX_QUEUE_DELAY_SECONDS)
    lease = reader.integer("CLAIM_LEASE_SECONDS", minimum=2, maximum=3600)
    if max_delay < delay:
        raise ConfigurationError(
            "RETRY_MAX_DELAY_SECONDS", f"must be at least RETRY_DELAY_SECONDS ({delay}), got {max_delay}"
        )
    budget = int(reader.integer("RETRY_BUDGET_SECONDS", minimum=1, maximum=600))
    if lease <= budget:
        # A live handler keeps its claim for a send's whole retry budget; a shorter lease would let the
        # recovery pass take the channel over while it still sends, and send twice.
        raise ConfigurationError(
            "CLAIM_LEASE_SECONDS", f"must be longer than RETRY_BUDGET_SECONDS ({budget}), got {lease}"
        )
    return {
        "retry_delay_seconds": delay,
        "retry_max_delay_seconds": max_delay,
        "retry_horizon_seconds": horizon,
        "claim_lease_seconds": lease,
    }


def _auth(reader: _Reader) -> AuthSettings:
    return AuthSettings(
        oidc_issuer=reader.optional("AUTH_OIDC_ISSUER"),
        oidc_audience=reader.optional("AUTH_OIDC_AUDIENCE"),
        oidc_jwks_url=reader.optional("AUTH_OIDC_JWKS_URL"),
        user_claim=reader.required("AUTH_USER_CLAIM"),
        app_service_enabled=reader.boolean("AUTH_APP_SERVICE_ENABLED"),
        dev_secret=reader.optional("AUTH_DEV_SECRET"),
        dev_issuer=reader.required("AUTH_DEV_ISSUER"),
        dev_audience=reader.required("AUTH_DEV_AUDIENCE"),
    )


_TYPE_FIELDS = {"inApp": "in_app", "push": "push", "quietHours": "quiet_hours", "priority": "priority",
                "critical": "critical"}
_TYPE_CHOICES: dict[str, tuple[str, ...]] = {"quietHours": ("defer", "drop"), "priority": ("high", "normal")}


def _notification_types(reader: _Reader) -> dict[str, NotificationTypeSettings]:
    raw = reader.required("NOTIFICATION_TYPES")
    name = "NOTIFICATION_TYPES"
    try:
        document = json.loads(raw)
    except ValueError:
        raise ConfigurationError(name, "must be a JSON object of type name -> defaults") from None
    if not isinstance(document, dict):
        raise ConfigurationError(name, "must be a JSON object of type name -> defaults")
    result: dict[str, NotificationTypeSettings] = {}
    for type_name, entry in document.items():
        if not _TYPE_NAME.fullmatch(type_name):
            raise ConfigurationError(name, f"type name {type_name!r} must be 1-64 printable characters")
        if not isinstance(entry, dict):
            raise ConfigurationError(name, f"the entry of {type_name!r} must be a JSON object")
        values: dict[str, Any] = {}
        for key, value in entry.items():
            if key not in _TYPE_FIELDS:
                allowed = ", ".join(_TYPE_FIELDS)
                raise ConfigurationError(name, f"{type_name}.{key} is not a setting; expected {allowed}")
            choices = _TYPE_CHOICES.get(key)
            ok = value in choices if choices else isinstance(value, bool)
            if not ok:
                expected = " or ".join(choices) if choices else "true or false"
                raise ConfigurationError(name, f"{type_name}.{key} must be {expected}, got {value!r}")
            values[_TYPE_FIELDS[key]] = value
        result[type_name] = NotificationTypeSettings(**values)
    return result
def _manage_auth(reader: _Reader) -> ManageAuthSettings:
    return ManageAuthSettings(
        oidc_issuer=reader.optional("AUTH_MANAGE_ISSUER") or reader.optional("AUTH_OIDC_ISSUER"),
        oidc_audience=reader.optional("AUTH_MANAGE_AUDIENCE"),
        oidc_jwks_url=reader.optional("AUTH_MANAGE_JWKS_URL"),
        role=reader.required("AUTH_MANAGE_ROLE"),
        dev_secret=reader.optional("AUTH_DEV_SECRET"),
        dev_issuer=reader.required("AUTH_DEV_ISSUER"),
        dev_audience=reader.required("AUTH_DEV_MANAGE_AUDIENCE"),
    )


def _webhooks(reader: _Reader) -> WebhookSettings:
    url = reader.optional("WEBHOOK_URL")
    raw_secrets = (reader.optional("WEBHOOK_SECRET") or "").split()
    if url:
        parts = urlsplit(url)
        loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ConfigurationError("WEBHOOK_URL", f"must be an https:// URL, got {url[:80]!r}")
        if parts.scheme == "http" and not loopback:
            raise ConfigurationError("WEBHOOK_URL", "must use https (plain http only for a loopback address)")
        if not raw_secrets:
            raise ConfigurationError("WEBHOOK_SECRET", "is required when WEBHOOK_URL is set")
    return WebhookSettings(
        url=url,
        secrets=tuple(webhook_secret_key(secret) for secret in raw_secrets),
        queue=reader.queue_name("WEBHOOK_QUEUE"),
        retry_seconds=reader.integer("WEBHOOK_RETRY_SECONDS", minimum=60, maximum=7 * 86400),
        backoff_seconds=reader.integer("WEBHOOK_BACKOFF_SECONDS", minimum=1, maximum=3600),
    )


def webhook_secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret; raise ConfigurationError (naming WEBHOOK_SECRET)."""
    if not secret.startswith(WEBHOOK_SECRET_PREFIX):
        raise ConfigurationError("WEBHOOK_SECRET", "must start with whsec_ (python -m notify webhook-secret)")
    encoded = secret[len(WEBHOOK_SECRET_PREFIX):]
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigurationError("WEBHOOK_SECRET", "is not whsec_ followed by base64") from None
    if not 24 <= len(key) <= 64:
        raise ConfigurationError("WEBHOOK_SECRET", f"must hold 24 to 64 random bytes, not {len(key)}")
    return key


def _telemetry(reader: _Reader) -> TelemetrySettings:
    exporter = reader.required("TELEMETRY_EXPORTER").lower()
    if exporter not in TELEMETRY_EXPORTERS:
        raise ConfigurationError(
            "TELEMETRY_EXPORTER", f"must be one of {', '.join(TELEMETRY_EXPORTERS)}, got {exporter!r}"
        )
    connection_string = reader.optional("APPLICATIONINSIGHTS_CONNECTION_STRING")
    authentication = reader.optional("APPLICATIONINSIGHTS_AUTHENTICATION_STRING") or ""
    fields = dict(
        part.split("=", 1) for part in authentication.split(";") if "=" in part
    )
    endpoint = reader.optional("OTEL_EXPORTER_OTLP_ENDPOINT")
    if exporter == "azure_monitor" and not connection_string:
        raise ConfigurationError(
            "APPLICATIONINSIGHTS_CONNECTION_STRING", "is required with TELEMETRY_EXPORTER=azure_monitor"
        )
    if exporter == "otlp" and not endpoint:
        raise ConfigurationError("OTEL_EXPORTER_OTLP_ENDPOINT", "is required with TELEMETRY_EXPORTER=otlp")
    return TelemetrySettings(
        exporter=exporter,
        applicationinsights_connection_string=connection_string,
        applicationinsights_client_id=fields.get("ClientId") or None,
        applicationinsights_entra=fields.get("Authorization", "").upper() == "AAD",
        otlp_endpoint=endpoint.rstrip("/") if endpoint else None,
    )
