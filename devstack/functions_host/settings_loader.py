"""Read ``local.settings.json`` and ``host.json`` the way ``func start`` and the Functions host do."""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

DEFAULT_ROUTE_PREFIX = "api"
_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d+))?$")


class SettingsError(ValueError):
    """local.settings.json or host.json is unreadable or holds an invalid value (the message names it)."""


def _read_local_settings(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        document = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as exc:
        raise SettingsError(f"cannot read {path}: {exc}") from exc
    if not isinstance(document, dict):
        raise SettingsError(f"{path} must hold a JSON object")
    return document


def load_local_host_section(path: Path) -> dict[str, Any]:
    """Return the ``Host`` section of local.settings.json (LocalHttpPort, CORS, CORSCredentials), or {}."""
    section = _read_local_settings(path).get("Host") or {}
    if not isinstance(section, dict):
        raise SettingsError(f"{path}: 'Host' must be an object")
    return section


def load_local_settings(path: Path) -> dict[str, str]:
    """Return the ``Values`` of a local.settings.json file ({} when the file does not exist)."""
    document = _read_local_settings(path)
    if not document:
        return {}
    if document.get("IsEncrypted") is True:
        raise SettingsError(f"{path} is encrypted; run 'func settings decrypt' or write plain values")
    values = document.get("Values") or {}
    if not isinstance(values, dict):
        raise SettingsError(f"{path}: 'Values' must be an object")
    return {str(key): "" if value is None else str(value) for key, value in values.items()}


def apply_local_settings(values: Mapping[str, str], environ: MutableMapping[str, str]) -> list[str]:
    """Copy settings into ``environ`` like Core Tools: a variable that is already set and non-empty wins.

    Returns the names that were skipped because the environment already defined them.
    """
    skipped: list[str] = []
    for name, value in values.items():
        if environ.get(name):
            skipped.append(name)
            logger.info(
                "Skipping '%s' from local settings as it's already defined in current environment variables.",
                name,
            )
        elif value:
            # .NET's SetEnvironmentVariable with an empty value removes the variable; keep that behaviour.
            environ[name] = value
    return skipped


def load_host_json(app_dir: Path) -> dict[str, Any]:
    """Return the parsed host.json of ``app_dir`` ({} when absent)."""
    path = app_dir / "host.json"
    if not path.is_file():
        return {}
    try:
        document = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as exc:
        raise SettingsError(f"cannot read {path}: {exc}") from exc
    if not isinstance(document, dict):
        raise SettingsError(f"{path} must hold a JSON object")
    return document


HOST_JSON_OVERRIDE_PREFIX = "AzureFunctionsJobHost__"


def apply_host_json_overrides(host_json: dict[str, Any], settings: Mapping[str, str]) -> dict[str, Any]:
    """Apply ``AzureFunctionsJobHost__path__to__setting`` app settings to host.json, as the host does.

    Keys match case-insensitively; values stay strings (the host's configuration is string-typed, and the
    readers here accept strings). Returns a new document; ``host_json`` is left unchanged.
    """
    result: dict[str, Any] = json.loads(json.dumps(host_json))
    for name, value in sorted(settings.items()):
        if not name.lower().startswith(HOST_JSON_OVERRIDE_PREFIX.lower()):
            continue
        path = [part for part in name[len(HOST_JSON_OVERRIDE_PREFIX) :].split("__") if part]
        if not path:
            continue
        node = result
        for part in path[:-1]:
            key = next((k for k in node if k.lower() == part.lower()), part)
            child = node.get(key)
            if not isinstance(child, dict):
                child = node[key] = {}
            node = child
        existing = next((k for k in node if k.lower() == path[-1].lower()), path[-1])
        node[existing] = value
    return result


def _extension(host_json: Mapping[str, Any], name: str) -> dict[str, Any]:
    extensions = host_json.get("extensions") or {}
    section = extensions.get(name) or {}
    if not isinstance(section, dict):
        raise SettingsError(f"host.json extensions.{name} must be an object")
    # host.json keys are case-insensitive in the host
    return {str(key).lower(): value for key, value in section.items()}


def route_prefix(host_json: Mapping[str, Any]) -> str:
    """Return ``extensions.http.routePrefix`` (default ``api``), without surrounding slashes."""
    value = _extension(host_json, "http").get("routeprefix", DEFAULT_ROUTE_PREFIX)
    return str(value if value is not None else DEFAULT_ROUTE_PREFIX).strip("/")


def parse_timespan(value: Any, setting: str) -> timedelta:
    """Parse a host.json TimeSpan (``[d.]hh:mm:ss[.fff]``); raise SettingsError naming ``setting``."""
    match = _TIMESPAN.match(str(value).strip())
    if not match:
        raise SettingsError(f"host.json {setting}: {value!r} is not a TimeSpan like '00:00:30'")
    days, hours, minutes, seconds, fraction = match.groups()
    return timedelta(
        days=int(days or 0),
        hours=int(hours),
        minutes=int(minutes),
        seconds=int(seconds),
        microseconds=int(((fraction or "0") + "000000")[:6]),
    )


@dataclass(frozen=True)
class QueueOptions:
    """host.json ``extensions.queues`` with the Storage Queues extension 5.x defaults."""

    batch_size: int = 16
    new_batch_threshold: int = 8 * (os.cpu_count() or 1)
    max_polling_interval: timedelta = timedelta(minutes=1)
    visibility_timeout: timedelta = timedelta(0)
    max_dequeue_count: int = 5
    message_encoding: str = "base64"

    @classmethod
    def from_host_json(cls, host_json: Mapping[str, Any]) -> QueueOptions:
        """Build the options from host.json, applying the extension's defaults and limits."""
        section = _extension(host_json, "queues")
        batch_size = _int(section, "batchsize", 16, 1, 32)
        default_threshold = (batch_size // 2) * (os.cpu_count() or 1)
        polling = (
            parse_timespan(section["maxpollinginterval"], "extensions.queues.maxPollingInterval")
            if "maxpollinginterval" in section
            else timedelta(minutes=1)
        )
        if polling < timedelta(milliseconds=100):
            raise SettingsError("host.json extensions.queues.maxPollingInterval must be at least 00:00:00.1")
        encoding = str(section.get("messageencoding", "base64")).lower()
        if encoding not in ("base64", "none"):
            raise SettingsError(
                f"host.json extensions.queues.messageEncoding must be base64 or none, not {encoding!r}"
            )
        return cls(
            batch_size=batch_size,
            new_batch_threshold=_int(section, "newbatchthreshold", default_threshold, 0, 10_000),
            max_polling_interval=polling,
            visibility_timeout=(
                parse_timespan(section["visibilitytimeout"], "extensions.queues.visibilityTimeout")
                if "visibilitytimeout" in section
                else timedelta(0)
            ),
            max_dequeue_count=_int(section, "maxdequeuecount", 5, 1, 10_000),
            message_encoding=encoding,
        )


def _int(section: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    if key not in section:
        return default
    try:
        value = int(section[key])
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"host.json extensions.queues.{key}: {section[key]!r} is not an integer") from exc
    if not low <= value <= high:
        raise SettingsError(
            f"host.json extensions.queues.{key} must be between {low} and {high}, not {value}"
        )
    return value


class QueueConfigurationError(SettingsError):
    """A queue trigger whose connection setting is missing or unusable locally."""


def connection_string_for(trigger: Mapping[str, Any], settings: Mapping[str, str]) -> str:
    """Resolve the binding's ``connection`` setting (default AzureWebJobsStorage) to a connection string."""
    name = str(trigger.get("connection") or "AzureWebJobsStorage")
    value = settings.get(name) or settings.get(f"ConnectionStrings:{name}")
    if not value:
        if any(key.startswith(f"{name}__") for key in settings):
            raise QueueConfigurationError(
                f"connection '{name}' is identity-based ({name}__...); the local host needs a connection"
                " string"
            )
        raise QueueConfigurationError(f"app setting '{name}' (queue trigger connection) is not set")
    return value
