"""The management API's authenticator without a network: dev backend tokens, user tokens, configuration."""

from __future__ import annotations

import pytest

from shared.auth import Backend, ManageAuthenticator, make_dev_manage_token, make_dev_token
from shared.errors import ConfigurationError, ForbiddenError, UnauthorizedError
from shared.settings import AuthSettings, ManageAuthSettings, Settings

SECRET = "dev-secret-that-is-long-enough-for-hs256!"
DEV = ManageAuthSettings(dev_secret=SECRET)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def status_of(auth: ManageAuthenticator, headers: dict[str, str]) -> tuple[int, str]:
    with pytest.raises((UnauthorizedError, ForbiddenError)) as info:
        auth.authenticate(headers)
    return info.value.status, info.value.message


def test_a_dev_backend_token_is_accepted() -> None:
    token = make_dev_manage_token(SECRET, client_id="billing")
    assert ManageAuthenticator(DEV, AuthSettings(dev_secret=SECRET)).authenticate(bearer(token)) == Backend(
        "billing", "dev"
    )


def test_a_users_dev_token_is_refused() -> None:
    auth = ManageAuthenticator(DEV, AuthSettings(dev_secret=SECRET))
    assert status_of(auth, bearer(make_dev_token(SECRET, "alice"))) == (401, "token audience is not accepted")
    # Even minted for the management audience, a token without the role is not a backend's.
    token = make_dev_token(SECRET, "alice", audience="notify-manage")
    assert status_of(auth, bearer(token)) == (403, "the token lacks the Notify.Manage app role")


def test_no_configuration_refuses_everything() -> None:
    token = make_dev_manage_token(SECRET)
    auth = ManageAuthenticator(ManageAuthSettings())
    assert status_of(auth, bearer(token)) == (401, "the management API has no authentication configured")


def test_missing_or_odd_credentials() -> None:
    auth = ManageAuthenticator(DEV)
    assert status_of(auth, {})[1].startswith("missing Authorization header")
    assert status_of(auth, {"Authorization": "Basic abc"}) == (
        401, "Authorization header must use the Bearer scheme"
    )
    assert status_of(auth, bearer("not-a-jwt")) == (401, "token is malformed")
    assert status_of(auth, bearer(make_dev_manage_token(SECRET, minutes=-5))) == (401, "token has expired")


def test_the_dev_audiences_must_differ() -> None:
    with pytest.raises(ConfigurationError, match="AUTH_DEV_MANAGE_AUDIENCE"):
        ManageAuthenticator(
            ManageAuthSettings(dev_secret=SECRET, dev_audience="notify"), AuthSettings(dev_secret=SECRET)
        )


def test_settings_read_the_management_auth() -> None:
    env = {
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
        "WebPubSubConnectionString": "Endpoint=http://127.0.0.1:1;AccessKey=k;Version=1.0;",
        "NOTIFICATION_HUBS_CONNECTION_STRING": "Endpoint=sb://x/;SharedAccessKeyName=n;SharedAccessKey=k",
        "AUTH_OIDC_ISSUER": "https://login.example/tenant/v2.0",
        "AUTH_MANAGE_AUDIENCE": "api://notify-manage",
        "AUTH_MANAGE_ROLE": "Support.Read",
    }
    manage = Settings.from_environ(env).manage_auth
    assert manage.oidc_issuer == "https://login.example/tenant/v2.0"  # defaults to the users' issuer
    assert (manage.oidc_audience, manage.role, manage.dev_audience) == (
        "api://notify-manage", "Support.Read", "notify-manage"
    )
    assert manage.any_configured
