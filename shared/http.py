"""JSON responses for the HTTP functions and the decorator that maps errors onto them."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from typing import Any

import azure.functions as func

from shared.errors import NotifyError

logger = logging.getLogger(__name__)


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> func.HttpResponse:
    """An HttpResponse with ``body`` serialised as JSON."""
    return func.HttpResponse(
        json.dumps(body, separators=(",", ":")),
        status_code=status,
        mimetype="application/json",
        charset="utf-8",
        headers=headers,
    )


def error_response(err: NotifyError) -> func.HttpResponse:
    """The ``{"error": {"code", "message", "field"?}}`` response for an app error, with its status."""
    headers: dict[str, str] = {}
    if err.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    retry_after = getattr(err, "retry_after", None)
    if isinstance(retry_after, int | float) and retry_after > 0:
        headers["Retry-After"] = str(max(1, round(retry_after)))
    return json_response(err.to_dict(), status=err.status, headers=headers or None)


def handle_errors[**P](fn: Callable[P, func.HttpResponse]) -> Callable[P, func.HttpResponse]:
    """Map NotifyError to its JSON error response and any other exception to a logged, detail-free 500."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> func.HttpResponse:
        try:
            return fn(*args, **kwargs)
        except NotifyError as err:
            if err.status >= 500:
                logger.error("request failed: %s (%s)", err.code, err.message)
            else:
                logger.info("request refused: %s", err.code)
            return error_response(err)
        except Exception:
            logger.exception("unhandled error in %s", getattr(fn, "__name__", "function"))
            return error_response(NotifyError("internal error"))

    return wrapper
