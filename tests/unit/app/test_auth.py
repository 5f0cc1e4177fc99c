"""Authenticator logic without a network: dev tokens, App Service headers, refusals and their messages."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest

from shared.auth import Authenticator, Principal, make_dev_token
from shared.errors import ConfigurationError, UnauthorizedError
from shared.settings import AuthSettings, Settings

SECRET = "dev-secret-that-is-long-enough-for-hs256!"
DEV = AuthSettings(dev_secret=SECRET)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def refused(auth: Authenticator, headers: dict[str, str]) -> str:
    with pytest.raises(UnauthorizedError) as info:
        auth.authenticate(headers)
    return info.value.message


def test_dev_token_gives_its_subject() -> None:
    principal = Authenticator(DEV).authenticate(bearer(make_dev_token(SECRET, "alice")))
    assert principal == Principal("alice", "dev")


def test_headers_are_matched_case_insensitively() -> None:
    token = make_dev_token(SECRET, "bob")
    assert Authenticator(DEV).authenticate({"authorization": f"bearer {token}"}).user_id == "bob"


def test_dev_token_with_custom_issuer_and_audience_from_settings() -> None:
    settings = AuthSettings(dev_secret=SECRET, dev_issuer="me", dev_audience="them")
    token = make_dev_token(SECRET, "carol", issuer="me", audience="them")
    assert Authenticator(settings).authenticate(bearer(token)).user_id == "carol"
    default = make_dev_token(SECRET, "carol")
    assert "issuer" in refused(Authenticator(settings), bearer(default))


def test_settings_from_environ_enable_dev_tokens() -> None:
    env = {
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
        "WebPubSubConnectionString": "Endpoint=http://127.0.0.1:1;AccessKey=k;Version=1.0;",
        "NOTIFICATION_HUBS_CONNECTION_STRING": "Endpoint=sb://x/;SharedAccessKeyName=n;SharedAccessKey=k",
        "AUTH_DEV_SECRET": SECRET,
    }
    auth = Authenticator(Settings.from_environ(env).auth)
    assert auth.authenticate(bearer(make_dev_token(SECRET, "dana"))).user_id == "dana"


@pytest.mark.parametrize(
    ("token_kwargs", "message"),
    [
        ({"minutes": -10}, "token has expired"),
        ({"audience": "someone-else"}, "token audience is not accepted"),
        ({"issuer": "someone-else"}, "token issuer is not accepted"),
        ({"secret": "another-secret-that-is-long-enough-too!!"}, "token signature is invalid"),
    ],
)
def test_bad_dev_tokens_are_refused_clearly(token_kwargs: dict[str, object], message: str) -> None:
    kwargs: dict[str, object] = {"secret": SECRET, "user_id": "eve"} | token_kwargs
    token = make_dev_token(**kwargs)  # type: ignore[arg-type]
    text = refused(Authenticator(DEV), bearer(token))
    assert text == message
    assert token not in text


def test_expiry_has_a_small_leeway() -> None:
    now = int(time.time())
    token = jwt.encode(
        {"sub": "late", "iss": "notify-dev", "aud": "notify", "exp": now - 20}, SECRET, algorithm="HS256"
    )
    assert Authenticator(DEV).authenticate(bearer(token)).user_id == "late"


def test_token_without_exp_is_refused() -> None:
    token = jwt.encode({"sub": "x", "iss": "notify-dev", "aud": "notify"}, SECRET, algorithm="HS256")
    assert refused(Authenticator(DEV), bearer(token)) == "token lacks the exp claim"


def test_token_without_subject_is_refused() -> None:
    now = int(time.time())
    claims = {"iss": "notify-dev", "aud": "notify", "exp": now + 60}
    token = jwt.encode(claims, SECRET, algorithm="HS256")
    assert refused(Authenticator(DEV), bearer(token)) == "token has no usable sub claim"


def test_alg_none_is_refused() -> None:
    now = int(time.time())
    claims = {"sub": "mallory", "iss": "notify-dev", "aud": "notify", "exp": now + 60}
    token = jwt.encode(claims, "", algorithm="none")
    assert "not accepted" in refused(Authenticator(DEV), bearer(token))


def test_hs256_is_refused_without_a_dev_secret() -> None:
    settings = AuthSettings(oidc_issuer="https://issuer.invalid", oidc_audience="api")
    token = make_dev_token(SECRET, "mallory", issuer="https://issuer.invalid", audience="api")
    assert refused(Authenticator(settings), bearer(token)) == "token algorithm 'HS256' is not accepted"


def test_malformed_token_is_refused_without_echoing_it() -> None:
    text = refused(Authenticator(DEV), bearer("not.a-jwt-at-all"))
    assert text == "token is malformed"


def test_missing_header_and_other_schemes() -> None:
    auth = Authenticator(DEV)
    assert refused(auth, {}) == "missing Authorization header"
    assert refused(auth, {"Authorization": "Basic dXNlcjpwYXNz"}) == (
        "Authorization header must use the Bearer scheme"
    )
    assert refused(auth, {"Authorization": "Bearer   "}) == "Authorization header has an empty bearer token"


def test_nothing_configured_refuses_everything() -> None:
    auth = Authenticator(AuthSettings())
    message = "authentication is not configured on this service"
    assert refused(auth, bearer(make_dev_token(SECRET, "alice"))) == message
    assert refused(auth, {"X-MS-CLIENT-PRINCIPAL-ID": "alice"}) == message


def test_oidc_issuer_without_audience_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError) as info:
        Authenticator(AuthSettings(oidc_issuer="https://issuer.invalid"))
    assert info.value.setting == "AUTH_OIDC_AUDIENCE"


def _principal_header(claims: list[dict[str, str]]) -> str:
    body = {"auth_typ": "aad", "claims": claims, "name_typ": "name", "role_typ": "roles"}
    return base64.b64encode(json.dumps(body).encode()).decode()


def test_app_service_headers_only_when_enabled() -> None:
    headers = {"X-MS-CLIENT-PRINCIPAL-ID": "oid-123", "X-MS-CLIENT-PRINCIPAL-NAME": "a@b.c"}
    enabled = Authenticator(AuthSettings(app_service_enabled=True))
    assert enabled.authenticate(headers) == Principal("oid-123", "app_service")
    dev_only = Authenticator(DEV)
    assert refused(dev_only, headers) == "missing Authorization header"


def test_app_service_principal_claims_are_used_without_the_id_header() -> None:
    auth = Authenticator(AuthSettings(app_service_enabled=True, user_claim="oid"))
    header = _principal_header([{"typ": "name", "val": "A"}, {"typ": "oid", "val": "oid-9"}])
    assert auth.authenticate({"x-ms-client-principal": header}).user_id == "oid-9"
    missing = _principal_header([{"typ": "name", "val": "A"}])
    assert refused(auth, {"x-ms-client-principal": missing}) == "App Service principal has no oid claim"
    assert refused(auth, {"x-ms-client-principal": "%%%"}) == "X-MS-CLIENT-PRINCIPAL header is malformed"


def test_bearer_wins_over_app_service_headers_when_jwts_are_accepted() -> None:
    auth = Authenticator(AuthSettings(app_service_enabled=True, dev_secret=SECRET))
    headers = bearer(make_dev_token(SECRET, "from-token")) | {"X-MS-CLIENT-PRINCIPAL-ID": "from-header"}
    assert auth.authenticate(headers).user_id == "from-token"


def test_bearer_refused_when_only_app_service_is_enabled() -> None:
    auth = Authenticator(AuthSettings(app_service_enabled=True))
    text = refused(auth, bearer(make_dev_token(SECRET, "x")))
    assert text == "bearer tokens are not accepted by this service"


# --- strange tokens and user ids: always a 401 with a message, never a crash ------------------------------


def _segment(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "token",
    [
        "abc.d\udcffef.ghi",  # a byte that is not UTF-8, as aiohttp hands it over (surrogateescape)
        "abc.d\u00ffef.ghi",  # the same byte read as Latin-1
        "abc.def.ghi\u0000",
        "a b.c.d",
        "only.two",
        "a.b.c.d",
        "x" * 20_000 + ".e30.sig",
        _segment({"alg": "HS256"}) + ".!!!.sig",
        _segment([1, 2]) + "." + _segment({}) + ".sig",
        _segment({"alg": "HS256", "x": json.loads("[" * 40 + "]" * 40)}) + "." + _segment({}) + ".sig",
        "e30." + base64.urlsafe_b64encode(b"[" * 5000).decode().rstrip("=") + ".sig",
        "e30." + base64.urlsafe_b64encode(b"\xff\xfe").decode().rstrip("=") + ".sig",
        "e30.e.sig",  # a segment length no base64 can have
    ],
)
def test_tokens_that_are_not_a_compact_jws_are_401(token: str) -> None:
    assert refused(Authenticator(DEV), bearer(token)) == "token is malformed"


@pytest.mark.parametrize(
    ("user_id", "problem"),
    [
        ("victim ", "white space"),
        (" victim", "white space"),
        ("new\nline", "control character"),
        ("nul\u0000", "control character"),
        ("x" * 257, "longer than 256"),
    ],
)
def test_a_subject_outside_the_user_id_rule_is_401(user_id: str, problem: str) -> None:
    message = refused(Authenticator(DEV), bearer(make_dev_token(SECRET, user_id)))
    assert problem in message and "sub" in message and user_id.strip() not in message


@pytest.mark.parametrize("user_id", ["x" * 256, "Zoë", "Zoe\u0308", "tenant/user#1?", "a b"])
def test_subjects_inside_the_rule_are_accepted_exactly(user_id: str) -> None:
    assert Authenticator(DEV).authenticate(bearer(make_dev_token(SECRET, user_id))).user_id == user_id


def test_app_service_ids_follow_the_same_rule() -> None:
    auth = Authenticator(AuthSettings(app_service_enabled=True))
    assert "white space" in refused(auth, {"X-MS-CLIENT-PRINCIPAL-ID": "victim\u00a0"})
    assert auth.authenticate({"X-MS-CLIENT-PRINCIPAL-ID": "Victim"}).user_id == "Victim"
    deep = base64.b64encode(b'{"claims":' + b"[" * 3000 + b"]" * 3000 + b"}").decode()
    assert "malformed" in refused(auth, {"X-MS-CLIENT-PRINCIPAL": deep})
