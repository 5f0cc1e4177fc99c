"""shared.http: JSON bodies, error mapping and the handle_errors decorator."""

from __future__ import annotations

import json
import logging

import azure.functions as func
import pytest

from shared.errors import BadRequestError, ConfigurationError, TransientError, UnauthorizedError
from shared.http import error_response, handle_errors, json_response


def body(response: func.HttpResponse) -> object:
    return json.loads(response.get_body())


def test_json_response() -> None:
    response = json_response({"a": [1, "é"]}, status=201, headers={"X-Y": "z"})
    assert response.status_code == 201
    assert response.mimetype == "application/json"
    assert response.headers["X-Y"] == "z"
    assert body(response) == {"a": [1, "é"]}


def test_error_response_carries_code_message_and_field() -> None:
    response = error_response(BadRequestError("userId is required", field="userId"))
    assert response.status_code == 400
    assert body(response) == {
        "error": {"code": "bad_request", "message": "userId is required", "field": "userId"}
    }


def test_unauthorized_has_www_authenticate_and_transient_has_retry_after() -> None:
    unauthorized = error_response(UnauthorizedError("token has expired"))
    assert unauthorized.status_code == 401
    assert unauthorized.headers["WWW-Authenticate"] == "Bearer"
    transient = error_response(TransientError("web pubsub", "busy", 503, retry_after=2.4))
    assert transient.status_code == 503
    assert transient.headers["Retry-After"] == "2"


def test_handle_errors_maps_notify_errors() -> None:
    @handle_errors
    def fn(req: func.HttpRequest) -> func.HttpResponse:
        raise ConfigurationError("AUTH_OIDC_AUDIENCE", "is required")

    response = fn(func.HttpRequest("GET", "http://x/api/f", body=b""))
    assert response.status_code == 500
    assert body(response) == {
        "error": {"code": "configuration_error", "message": "setting AUTH_OIDC_AUDIENCE: is required"}
    }


def test_handle_errors_hides_unexpected_exceptions(caplog: pytest.LogCaptureFixture) -> None:
    @handle_errors
    def fn(req: func.HttpRequest) -> func.HttpResponse:
        raise RuntimeError("secret detail")

    with caplog.at_level(logging.ERROR, logger="shared.http"):
        response = fn(func.HttpRequest("GET", "http://x/api/f", body=b""))
    assert response.status_code == 500
    assert body(response) == {"error": {"code": "internal_error", "message": "internal error"}}
    assert "secret detail" not in response.get_body().decode()
    assert any(r.exc_info for r in caplog.records), "the exception is logged with its traceback"


def test_handle_errors_passes_through_success_and_keeps_the_signature() -> None:
    @handle_errors
    def fn(req: func.HttpRequest) -> func.HttpResponse:
        return json_response({"ok": req.method})

    assert body(fn(func.HttpRequest("POST", "http://x/api/f", body=b""))) == {"ok": "POST"}
    assert fn.__name__ == "fn"
