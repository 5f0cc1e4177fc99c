"""The app's error tree. Every error carries a stable ``code`` and the HTTP ``status`` it maps to.

    NotifyError
    ├── BadRequestError          400  the caller sent something unusable (``field`` names it)
    │   └── InvalidMessageError  400  a queue message that can never succeed (goes to poison at once)
    ├── UnauthorizedError        401  no or invalid credentials
    ├── ForbiddenError           403  authenticated, but not allowed (e.g. another user's device)
    ├── NotFoundError            404
    ├── ConfigurationError       500  a setting is missing or malformed (``setting`` names it)
    └── UpstreamError            502  an Azure service failed (``service``, ``upstream_status``)
        └── TransientError       503  worth retrying (429, 5xx, timeouts); ``retry_after`` seconds if known
            └── BusyError        503  another change of the same resource is in progress; retry shortly
"""

from __future__ import annotations


class NotifyError(Exception):
    """Base of every error the app raises on purpose."""

    code = "internal_error"
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, object]:
        """The JSON error body: ``{"error": {"code", "message", ...}}``."""
        return {"error": {"code": self.code, "message": self.message}}


class BadRequestError(NotifyError):
    """The caller sent something unusable; ``field`` names the offending field when there is one."""

    code = "bad_request"
    status = 400

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field

    def to_dict(self) -> dict[str, object]:
        body = super().to_dict()
        if self.field is not None:
            error = body["error"]
            assert isinstance(error, dict)
            error["field"] = self.field
        return body


class InvalidMessageError(BadRequestError):
    """A queue message that can never be delivered (not JSON, schema violation, oversize)."""

    code = "invalid_message"


class UnauthorizedError(NotifyError):
    """No credentials, or credentials that do not validate."""

    code = "unauthorized"
    status = 401


class ForbiddenError(NotifyError):
    """The caller is authenticated but may not act on this resource."""

    code = "forbidden"
    status = 403


class NotFoundError(NotifyError):
    """The resource does not exist (or is not the caller's to see)."""

    code = "not_found"
    status = 404


class ConfigurationError(NotifyError):
    """A setting is missing or malformed; ``setting`` names it."""

    code = "configuration_error"
    status = 500

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"setting {setting}: {problem}")
        self.setting = setting


class UpstreamError(NotifyError):
    """An Azure service answered with an error that retrying will not fix."""

    code = "upstream_error"
    status = 502

    def __init__(self, service: str, message: str, upstream_status: int | None = None) -> None:
        super().__init__(f"{service}: {message}")
        self.service = service
        self.upstream_status = upstream_status


class TransientError(UpstreamError):
    """An Azure service failed in a way that may succeed on retry (429, 5xx, timeout)."""

    code = "upstream_unavailable"
    status = 503

    def __init__(
        self,
        service: str,
        message: str,
        upstream_status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(service, message, upstream_status)
        self.retry_after = retry_after


class BusyError(TransientError):
    """Another change of the same resource (e.g. a device) is still in progress; retry after a moment."""

    code = "busy"
