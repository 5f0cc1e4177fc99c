"""Backend tokens for the management API over the wire: the same fake identity provider issues user and
application tokens; only an application token for the management audience with the role gets in."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from shared.auth import Authenticator, Backend, ManageAuthenticator
from shared.errors import ConfigurationError, ForbiddenError, UnauthorizedError
from shared.settings import AuthSettings, ManageAuthSettings
from tests.integration.app.test_auth_oidc import AUDIENCE, Provider, bearer, provider, session

pytestmark = pytest.mark.integration
MANAGE = "api://notify-manage"
__all__ = ["provider", "session"]  # fixtures used below


def manage(provider: Provider, session: requests.Session, **settings: Any) -> ManageAuthenticator:
    users = AuthSettings(oidc_issuer=provider.issuer, oidc_audience=AUDIENCE)
    backend = ManageAuthSettings(oidc_issuer=provider.issuer, oidc_audience=MANAGE, **settings)
    return ManageAuthenticator(backend, users, session=session, jwks_min_refetch_seconds=0)


def refusal(auth: ManageAuthenticator, token: str) -> tuple[int, str]:
    with pytest.raises((UnauthorizedError, ForbiddenError)) as info:
        auth.authenticate(bearer(token))
    return info.value.status, info.value.message


def test_an_app_token_with_the_role_is_accepted(provider: Provider, session: requests.Session) -> None:
    key = provider.keys[0]
    token = provider.token(key, user="sp-object-id", aud=MANAGE, roles=["Notify.Manage"], azp="backend-app")
    assert manage(provider, session).authenticate(bearer(token)) == Backend("backend-app", "oidc")


@pytest.mark.parametrize(
    ("claims", "status", "message"),
    [
        ({}, 401, "token audience is not accepted"),  # an app user's token
        ({"roles": ["Notify.Manage"], "scp": "user_impersonation"}, 401, "token audience is not accepted"),
        ({"aud": MANAGE, "scp": "user_impersonation", "roles": ["Notify.Manage"]}, 403,
         "a user's token cannot call the management API; use an application token"),
        ({"aud": MANAGE, "idtyp": "user", "roles": ["Notify.Manage"]}, 403,
         "a user's token cannot call the management API; use an application token"),
        ({"aud": MANAGE}, 403, "the token lacks the Notify.Manage app role"),
        ({"aud": MANAGE, "roles": ["Notify.Read"]}, 403, "the token lacks the Notify.Manage app role"),
    ],
)
def test_user_tokens_and_tokens_without_the_role_are_refused(
    provider: Provider, session: requests.Session, claims: dict[str, Any], status: int, message: str
) -> None:
    token = provider.token(provider.keys[0], **claims)
    assert refusal(manage(provider, session), token) == (status, message)


def test_a_backend_token_does_not_work_as_a_user_token(provider: Provider, session: requests.Session) -> None:
    token = provider.token(provider.keys[0], aud=MANAGE, roles=["Notify.Manage"])
    users = Authenticator(AuthSettings(oidc_issuer=provider.issuer, oidc_audience=AUDIENCE), session=session)
    with pytest.raises(UnauthorizedError, match="audience"):
        users.authenticate(bearer(token))


def test_the_management_audience_must_differ_from_the_users(provider: Provider) -> None:
    users = AuthSettings(oidc_issuer=provider.issuer, oidc_audience=f"{AUDIENCE},other")
    backend = ManageAuthSettings(oidc_issuer=provider.issuer, oidc_audience=AUDIENCE)
    with pytest.raises(ConfigurationError, match="AUTH_MANAGE_AUDIENCE"):
        ManageAuthenticator(backend, users)


def test_a_separate_issuer_for_backends(provider: Provider, session: requests.Session) -> None:
    # Users from one provider, backends from another (here: the same server under another issuer name
    # is enough to show that the backend issuer is the one checked).
    token = provider.token(provider.keys[0], aud=MANAGE, roles=["Notify.Manage"])
    elsewhere = ManageAuthenticator(
        ManageAuthSettings(oidc_issuer=provider.issuer, oidc_audience=MANAGE),
        AuthSettings(oidc_issuer="https://users.example/", oidc_audience=MANAGE),
        session=session,
    )
    assert elsewhere.authenticate(bearer(token)).source == "oidc"
