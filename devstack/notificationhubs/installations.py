"""Installations: validation of the JSON the service accepts, and RFC 6902 PATCH as the service applies it."""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime
from typing import Any

from devstack.notificationhubs.tags import TAG_PATTERN, builtin_tag
from devstack.notificationhubs.templates import TemplateError, check_template_body

MAX_TAGS = 60
PLATFORMS = ("apns", "fcmv1", "gcm", "wns", "mpns", "adm", "baidu", "browser", "xiaomi")
JSON_PLATFORMS = ("apns", "fcmv1", "gcm", "adm", "baidu", "xiaomi")
_USER_ID = re.compile(r"^[A-Za-z0-9\-_@#.:=]+$")
_INSTALLATION_ID = re.compile(r"^[^/\\?#\s]{1,256}$")
_FIELDS = (
    "installationId",
    "userId",
    "platform",
    "pushChannel",
    "tags",
    "templates",
    "pushVariables",
    "expirationTime",
)


class InstallationError(ValueError):
    """The installation or the patch is invalid (HTTP 400)."""


def utc_now_iso() -> str:
    """Current UTC time in the ISO form the service returns."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _check_tags(tags: Any, where: str) -> list[str]:
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise InstallationError(f"{where} must be an array of strings.")
    if len(tags) > MAX_TAGS:
        raise InstallationError(f"{where} has {len(tags)} tags; at most {MAX_TAGS} are allowed.")
    for tag in tags:
        if not TAG_PATTERN.match(tag):
            raise InstallationError(
                f"Invalid tag '{tag[:130]}' in {where}: tags are 1-120 characters of letters, digits "
                "and _ @ # . : -"
            )
    return list(dict.fromkeys(tags))


def _check_templates(templates: Any, platform: str) -> dict[str, dict[str, Any]]:
    if not isinstance(templates, dict):
        raise InstallationError("templates must be an object mapping template names to templates.")
    checked: dict[str, dict[str, Any]] = {}
    for name, template in templates.items():
        if not isinstance(template, dict):
            raise InstallationError(f"templates.{name} must be an object with a 'body' string.")
        body = template.get("body")
        if not isinstance(body, str) or not body:
            raise InstallationError(
                f"templates.{name}.body must be a non-empty string (the template JSON as escaped text)."
            )
        try:
            check_template_body(body, json_required=platform in JSON_PLATFORMS)
        except TemplateError as exc:
            raise InstallationError(f"templates.{name}.body: {exc}") from exc
        entry: dict[str, Any] = {"body": body}
        headers = template.get("headers")
        if headers is not None:
            if not isinstance(headers, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
            ):
                raise InstallationError(f"templates.{name}.headers must map header names to strings.")
            entry["headers"] = dict(headers)
        if template.get("expiry") is not None:
            entry["expiry"] = str(template["expiry"])
        if template.get("tags") is not None:
            entry["tags"] = _check_tags(template["tags"], f"templates.{name}.tags")
        checked[name] = entry
    return checked


def validate_installation(body: Any, installation_id: str) -> dict[str, Any]:
    """Return the normalised installation stored for ``body``; raises :class:`InstallationError`."""
    if not isinstance(body, dict):
        raise InstallationError("The installation must be a JSON object.")
    if not _INSTALLATION_ID.match(installation_id):
        raise InstallationError("The installationId in the URL is empty, too long or has invalid characters.")
    body_id = body.get("installationId")
    if not isinstance(body_id, str) or not body_id:
        raise InstallationError("installationId is required.")
    if body_id != installation_id:
        raise InstallationError(
            f"installationId '{body_id}' in the body does not match '{installation_id}' in the URL."
        )
    platform = body.get("platform")
    if not isinstance(platform, str) or not platform:
        raise InstallationError("platform is required.")
    platform = platform.lower()
    if platform not in PLATFORMS:
        raise InstallationError(
            f"Unknown platform '{body['platform']}'; expected one of {', '.join(PLATFORMS)}."
        )
    channel = body.get("pushChannel")
    channel_ok = (isinstance(channel, str) and channel.strip() != "") or (
        platform == "browser" and isinstance(channel, dict) and bool(channel.get("endpoint"))
    )
    if not channel_ok:
        raise InstallationError("pushChannel is required (the APNs device token or FCM registration token).")
    result: dict[str, Any] = {"installationId": body_id, "platform": platform, "pushChannel": channel}
    user_id = body.get("userId", body.get("userID"))
    if user_id is not None:
        if not isinstance(user_id, str) or not _USER_ID.match(user_id):
            raise InstallationError("userId may only contain letters, digits and - _ @ # . : =")
        result["userId"] = user_id
    result["tags"] = _check_tags(body.get("tags") or [], "tags")
    if body.get("templates") is not None:
        result["templates"] = _check_templates(body["templates"], platform)
    variables = body.get("pushVariables")
    if variables is not None:
        if not isinstance(variables, dict) or not all(isinstance(v, str) for v in variables.values()):
            raise InstallationError("pushVariables must map names to strings.")
        result["pushVariables"] = dict(variables)
    if body.get("expirationTime") is not None:
        result["expirationTime"] = str(body["expirationTime"])
    result["pushChannelExpired"] = False
    result["lastUpdate"] = utc_now_iso()
    return result


def effective_tags(installation: dict[str, Any], template_name: str | None = None) -> set[str]:
    """Tags a tag expression is matched against: own tags, template tags and the built-in tags."""
    tags = set(installation.get("tags", []))
    tags.add(builtin_tag("installationid", installation["installationId"]))
    if installation.get("userId"):
        tags.add(builtin_tag("userid", installation["userId"]))
    if template_name is not None:
        tags.update(installation.get("templates", {}).get(template_name, {}).get("tags", []))
    return tags


def _as_tag_list(value: Any) -> list[str]:
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = None
        if isinstance(parsed, list):
            return [str(item) for item in parsed]
        return [tag.strip() for tag in value.split(",") if tag.strip()]
    if isinstance(value, list):
        return [str(item) for item in value]
    raise InstallationError("A tags value must be a tag string or an array of tags.")


def _as_template(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise InstallationError("A template value must be the template object as JSON text.") from exc
    if not isinstance(value, dict):
        raise InstallationError("A template value must be an object with a 'body'.")
    return value


def _patch_one(doc: dict[str, Any], op: str, path: str, value: Any) -> None:
    segments = path.strip("/").split("/")
    head = segments[0].lower()
    rest = segments[1:]
    needs_value = op in ("add", "replace")
    if needs_value and value is None:
        raise InstallationError(f"'{op}' on '{path}' needs a value.")
    if head in ("pushchannel", "userid", "expirationtime") and not rest:
        field = {"pushchannel": "pushChannel", "userid": "userId", "expirationtime": "expirationTime"}[head]
        if op == "remove":
            if field == "pushChannel":
                raise InstallationError("pushChannel cannot be removed.")
            doc.pop(field, None)
        else:
            doc[field] = value
    elif head == "tags":
        tags: list[str] = list(doc.get("tags", []))
        if rest:
            tag = "/".join(rest)
            if op == "remove":
                tags = [t for t in tags if t != tag]
            elif tag not in tags:
                tags.append(tag)
        elif op == "add":
            tags.extend(t for t in _as_tag_list(value) if t not in tags)
        elif op == "replace":
            tags = _as_tag_list(value)
        else:
            tags = []
        doc["tags"] = tags
    elif head == "templates" and rest:
        templates: dict[str, Any] = doc.setdefault("templates", {})
        name = rest[0]
        if len(rest) == 1:
            if op == "remove":
                templates.pop(name, None)
            else:
                templates[name] = _as_template(value)
        else:
            template = templates.get(name)
            if template is None:
                raise InstallationError(f"Template '{name}' does not exist.")
            field = rest[1].lower()
            key = {"body": "body", "headers": "headers", "tags": "tags", "expiry": "expiry"}.get(field)
            if key is None:
                raise InstallationError(f"Unsupported template path '{path}'.")
            if key == "headers" and len(rest) == 3:
                headers = template.setdefault("headers", {})
                if op == "remove":
                    headers.pop(rest[2], None)
                else:
                    headers[rest[2]] = value
            elif op == "remove":
                if key == "body":
                    raise InstallationError("A template body cannot be removed; remove the template instead.")
                template.pop(key, None)
            else:
                template[key] = _as_tag_list(value) if key == "tags" else value
    elif head == "pushvariables" and rest:
        variables = doc.setdefault("pushVariables", {})
        if op == "remove":
            variables.pop(rest[0], None)
        else:
            variables[rest[0]] = value
    else:
        raise InstallationError(f"Unsupported patch path '{path}'.")


def apply_patch(installation: dict[str, Any], operations: Any) -> dict[str, Any]:
    """Apply a JSON Patch array to a copy of ``installation`` and return it re-validated."""
    if not isinstance(operations, list) or not operations:
        raise InstallationError("The patch must be a non-empty JSON array of operations.")
    doc = {key: copy.deepcopy(installation[key]) for key in _FIELDS if key in installation}
    for index, operation in enumerate(operations):
        if not isinstance(operation, dict):
            raise InstallationError(f"Patch operation {index} must be an object.")
        op = str(operation.get("op", "")).lower()
        path = operation.get("path")
        if op not in ("add", "remove", "replace"):
            raise InstallationError(f"Patch operation {index}: op must be add, remove or replace.")
        if not isinstance(path, str) or not path.startswith("/"):
            raise InstallationError(f"Patch operation {index}: path must start with '/'.")
        _patch_one(doc, op, path, operation.get("value"))
    return validate_installation(doc, installation["installationId"])
