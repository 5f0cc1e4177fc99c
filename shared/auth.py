"""Who is calling: bearer JWTs (OIDC with JWKS, or HS256 dev tokens) and App Service Authentication headers.

Two kinds of callers, authenticated apart: app users (:class:`Authenticator`, the negotiate and device
APIs) and backends (:class:`ManageAuthenticator`, the management API under ``/api/manage/``). A backend
token must be issued for the management audience, carry the management app role in ``roles`` and be an
application token (no ``scp``, ``idtyp`` other than ``user``): a user's token is refused by each of the three.

Nothing configured means every request is refused. Accepted token algorithms are fixed per source
(RS256/ES256 from the OIDC provider's JWKS, HS256 only with the dev secret), so a token cannot pick
its own verification method (``alg: none``, HS256 signed with a public key). Error messages say what
is wrong without ever repeating the token.

Whatever the header holds, the answer is a 401, never a 500: a bearer token must look like a compact JWS
(three base64url segments, at most :data:`MAX_TOKEN_LENGTH` characters, so a byte that is not UTF-8 or
any other stray character is refused before PyJWT sees it), and its header and payload must be JSON
objects nested at most :data:`shared.json_input.MAX_DEPTH` levels. The user id taken from the token (or
from App Service Authentication) must pass :func:`shared.user_keys.user_id_problem`.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt
import requests

from shared.errors import ConfigurationError, ForbiddenError, TransientError, UnauthorizedError, UpstreamError
from shared.json_input import JsonInputError, parse_json
from shared.once import process_wide
from shared.settings import AuthSettings, ManageAuthSettings, get_settings
from shared.user_keys import user_id_problem

logger = logging.getLogger(__name__)

OIDC_ALGORITHMS = ("RS256", "ES256")
DEV_ALGORITHM = "HS256"
LEEWAY_SECONDS = 60
HTTP_TIMEOUT_SECONDS = 10.0
#: Longer than any token an identity provider issues (Entra ID tokens are a few kilobytes).
MAX_TOKEN_LENGTH = 16 * 1024
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")

_JWT_ERRORS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "token has expired"),
    (jwt.ImmatureSignatureError, "token is not valid yet"),
    (jwt.InvalidAudienceError, "token audience is not accepted"),
    (jwt.InvalidIssuerError, "token issuer is not accepted"),
    (jwt.InvalidSignatureError, "token signature is invalid"),
    (jwt.InvalidAlgorithmError, "token algorithm is not accepted"),
    (jwt.DecodeError, "token is malformed"),
)


@dataclass(frozen=True)
class Principal:
    """An authenticated caller; ``source`` is ``oidc``, ``dev`` or ``app_service``."""

    user_id: str
    source: str


def _audience_list(setting: str | None) -> list[str]:
    """The accepted audiences of a comma-separated setting."""
    return [a.strip() for a in (setting or "").split(",") if a.strip()]


def _jwks_cache(
    issuer: str | None,
    jwks_url: str | None,
    session: requests.Session | None,
    ttl_seconds: float,
    min_refetch_seconds: float,
) -> _JwksCache | None:
    """The signing keys of ``issuer`` (None when no OIDC issuer is configured)."""
    if not issuer:
        return None
    return _JwksCache(issuer, jwks_url, session or requests.Session(), ttl_seconds, min_refetch_seconds)


class Authenticator:
    """Validates the credentials of an HTTP request against the configured auth settings."""

    def __init__(
        self,
        settings: AuthSettings,
        session: requests.Session | None = None,
        jwks_ttl_seconds: float = 3600.0,
        jwks_min_refetch_seconds: float = 10.0,
    ) -> None:
        if settings.oidc_issuer and not settings.oidc_audience:
            raise ConfigurationError("AUTH_OIDC_AUDIENCE", "is required when AUTH_OIDC_ISSUER is set")
        self._settings = settings
        self._audiences = _audience_list(settings.oidc_audience)
        self._jwks = _jwks_cache(
            settings.oidc_issuer, settings.oidc_jwks_url, session, jwks_ttl_seconds, jwks_min_refetch_seconds
        )

    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        """Return the caller's Principal; raise UnauthorizedError (or TransientError if the JWKS is down)."""
        settings = self._settings
        if not settings.any_configured:
            raise UnauthorizedError("authentication is not configured on this service")
        lowered = {k.lower(): v for k, v in headers.items()}
        bearer = _bearer_token(lowered.get("authorization"))
        accepts_jwt = bool(self._jwks is not None or settings.dev_secret)
        if bearer is not None and accepts_jwt:
            return self._from_jwt(bearer)
        if settings.app_service_enabled and (
            "x-ms-client-principal-id" in lowered or "x-ms-client-principal" in lowered
        ):
            return self._from_app_service(lowered)
        if bearer is not None:
            raise UnauthorizedError("bearer tokens are not accepted by this service")
        if "authorization" in lowered:
            raise UnauthorizedError("Authorization header must use the Bearer scheme")
        raise UnauthorizedError("missing Authorization header")

    def _from_jwt(self, token: str) -> Principal:
        _check_token_shape(token)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise UnauthorizedError("token is malformed") from None
        alg = header.get("alg")
        if alg == DEV_ALGORITHM and self._settings.dev_secret:
            claims = self._decode(
                token,
                self._settings.dev_secret,
                alg,
                self._settings.dev_issuer,
                [self._settings.dev_audience],
            )
            return Principal(_claim_user(claims, "sub"), "dev")
        if alg in OIDC_ALGORITHMS and self._jwks is not None:
            kid = header.get("kid")
            key = self._jwks.key_for(kid if isinstance(kid, str) else None, alg)
            assert self._settings.oidc_issuer is not None  # _jwks exists only with an issuer
            claims = self._decode(token, key, alg, self._settings.oidc_issuer, self._audiences)
            return Principal(_claim_user(claims, self._settings.user_claim), "oidc")
        raise UnauthorizedError(f"token algorithm {str(alg)[:20]!r} is not accepted")

    @staticmethod
    def _decode(token: str, key: Any, alg: str, issuer: str, audiences: list[str]) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=[alg],
                audience=audiences,
                issuer=issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.MissingRequiredClaimError as exc:
            raise UnauthorizedError(f"token lacks the {exc.claim} claim") from None
        except jwt.PyJWTError as exc:
            for error_type, message in _JWT_ERRORS:
                if isinstance(exc, error_type):
                    raise UnauthorizedError(message) from None
            raise UnauthorizedError("token is invalid") from None
        return claims

    def _from_app_service(self, headers: Mapping[str, str]) -> Principal:
        user_id = headers.get("x-ms-client-principal-id", "")
        if not user_id.strip():
            user_id = _app_service_claim(headers.get("x-ms-client-principal", ""), self._settings.user_claim)
        problem = user_id_problem(user_id)
        if problem is not None:
            raise UnauthorizedError(f"the App Service principal id {problem}; it is not an accepted user id")
        return Principal(user_id, "app_service")


def _check_token_shape(token: str) -> None:
    """Refuse anything but a compact JWS whose header and payload are shallow JSON objects."""
    if len(token) > MAX_TOKEN_LENGTH or not _COMPACT_JWS.fullmatch(token):
        raise UnauthorizedError("token is malformed")
    for segment in token.split(".")[:2]:
        try:
            decoded = parse_json(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
        except (binascii.Error, JsonInputError):
            raise UnauthorizedError("token is malformed") from None
        if not isinstance(decoded, dict):
            raise UnauthorizedError("token is malformed")


def _bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = token.strip()
    if not token:
        raise UnauthorizedError("Authorization header has an empty bearer token")
    return token


def _claim_user(claims: Mapping[str, Any], claim: str) -> str:
    value = claims.get(claim)
    if not isinstance(value, str) or not value.strip():
        raise UnauthorizedError(f"token has no usable {claim} claim")
    problem = user_id_problem(value)
    if problem is not None:
        raise UnauthorizedError(f"the token's {claim} claim {problem}; it is not an accepted user id")
    return value


def _app_service_claim(encoded: str, claim: str) -> str:
    try:
        principal = parse_json(base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=False))
    except (binascii.Error, ValueError):
        raise UnauthorizedError("X-MS-CLIENT-PRINCIPAL header is malformed") from None
    claims = principal.get("claims") if isinstance(principal, dict) else None
    for item in claims if isinstance(claims, list) else []:
        if isinstance(item, dict) and item.get("typ") == claim:
            value = item.get("val")
            if isinstance(value, str) and value.strip():
                return value
    raise UnauthorizedError(f"App Service principal has no {claim} claim")


class _JwksCache:
    """The provider's signing keys by ``kid``, fetched with requests and kept for a TTL."""

    def __init__(
        self,
        issuer: str,
        jwks_url: str | None,
        session: requests.Session,
        ttl_seconds: float,
        min_refetch_seconds: float,
    ) -> None:
        self._issuer = issuer
        self._jwks_url = jwks_url
        self._session = session
        self._ttl = ttl_seconds
        self._min_refetch = min_refetch_seconds
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._lock = threading.Lock()

    def key_for(self, kid: str | None, alg: str) -> Any:
        """The verification key for ``kid``; refetch once when it is unknown or the cache has expired."""
        with self._lock:
            now = time.monotonic()
            if self._fetched_at is None or now - self._fetched_at > self._ttl:
                self._refresh(now)
            elif self._find(kid) is None and now - self._fetched_at >= self._min_refetch:
                logger.info("unknown signing key id, refetching JWKS")
                self._refresh(now)
            jwk = self._find(kid)
        if jwk is None:
            raise UnauthorizedError("token is signed with an unknown key")
        if jwk.algorithm_name != alg or (jwk.key_type, alg) not in (("RSA", "RS256"), ("EC", "ES256")):
            raise UnauthorizedError("token algorithm does not match its signing key")
        return jwk.key

    def _find(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None:
            # Providers with a single key may omit kid; only then is the choice unambiguous.
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)

    def _refresh(self, now: float) -> None:
        url = self._jwks_url or self._discover()
        document = self._get_json(url, "JWKS")
        keys: dict[str, jwt.PyJWK] = {}
        raw_keys = document.get("keys")
        for raw in raw_keys if isinstance(raw_keys, list) else []:
            if not isinstance(raw, dict) or raw.get("use", "sig") != "sig":
                continue
            try:
                jwk = jwt.PyJWK(raw)
            except jwt.PyJWTError:
                continue  # a key type we cannot use (e.g. an encryption key); skip it
            keys[str(raw.get("kid", ""))] = jwk
        self._keys = keys
        self._fetched_at = now
        logger.info("loaded %s signing keys from the JWKS", len(keys))

    def _discover(self) -> str:
        url = self._issuer.rstrip("/") + "/.well-known/openid-configuration"
        jwks_uri = self._get_json(url, "OpenID discovery").get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri:
            raise TransientError("oidc", "OpenID discovery document has no jwks_uri")
        self._jwks_url = jwks_uri
        return jwks_uri

    def _get_json(self, url: str, what: str) -> dict[str, Any]:
        try:
            response = self._session.get(url, timeout=HTTP_TIMEOUT_SECONDS)
        except requests.RequestException as exc:
            raise TransientError("oidc", f"{what} request failed: {type(exc).__name__}") from exc
        status = response.status_code
        if status == 429 or status >= 500:
            raise TransientError("oidc", f"{what} answered {status}", status)
        if status != 200:
            raise UpstreamError("oidc", f"{what} answered {status}", status)
        try:
            document = response.json()
        except ValueError:
            raise TransientError("oidc", f"{what} response is not JSON") from None
        if not isinstance(document, dict):
            raise TransientError("oidc", f"{what} response is not a JSON object")
        return document


@dataclass(frozen=True)
class Backend:
    """An authenticated backend (management API caller); ``client_id`` is its app/client id."""

    client_id: str
    source: str


class ManageAuthenticator:
    """Validates backend tokens for the management API (see the module docstring)."""

    def __init__(
        self,
        settings: ManageAuthSettings,
        user_settings: AuthSettings | None = None,
        session: requests.Session | None = None,
        jwks_ttl_seconds: float = 3600.0,
        jwks_min_refetch_seconds: float = 10.0,
    ) -> None:
        self._settings = settings
        self._audiences = _audience_list(settings.oidc_audience)
        if user_settings is not None:
            _check_apart(settings, self._audiences, user_settings)
        self._jwks = _jwks_cache(
            settings.oidc_issuer if self._audiences else None,
            settings.oidc_jwks_url,
            session,
            jwks_ttl_seconds,
            jwks_min_refetch_seconds,
        )

    def authenticate(self, headers: Mapping[str, str]) -> Backend:
        """The calling backend; UnauthorizedError (401) or ForbiddenError (403, e.g. a user's token)."""
        if not self._settings.any_configured:
            raise UnauthorizedError("the management API has no authentication configured")
        lowered = {k.lower(): v for k, v in headers.items()}
        bearer = _bearer_token(lowered.get("authorization"))
        if bearer is None:
            if "authorization" in lowered:
                raise UnauthorizedError("Authorization header must use the Bearer scheme")
            raise UnauthorizedError("missing Authorization header (a backend token for the management API)")
        _check_token_shape(bearer)
        try:
            header = jwt.get_unverified_header(bearer)
        except jwt.PyJWTError:
            raise UnauthorizedError("token is malformed") from None
        alg = header.get("alg")
        if alg == DEV_ALGORITHM and self._settings.dev_secret:
            settings = self._settings
            claims = Authenticator._decode(
                bearer, settings.dev_secret, alg, settings.dev_issuer, [settings.dev_audience]
            )
            return self._backend(claims, "dev")
        if alg in OIDC_ALGORITHMS and self._jwks is not None:
            kid = header.get("kid")
            key = self._jwks.key_for(kid if isinstance(kid, str) else None, alg)
            assert self._settings.oidc_issuer is not None
            claims = Authenticator._decode(bearer, key, alg, self._settings.oidc_issuer, self._audiences)
            return self._backend(claims, "oidc")
        raise UnauthorizedError(f"token algorithm {str(alg)[:20]!r} is not accepted")

    def _backend(self, claims: Mapping[str, Any], source: str) -> Backend:
        if "scp" in claims or str(claims.get("idtyp", "app")).lower() == "user":
            raise ForbiddenError("a user's token cannot call the management API; use an application token")
        roles = claims.get("roles")
        if not isinstance(roles, list) or self._settings.role not in roles:
            raise ForbiddenError(f"the token lacks the {self._settings.role} app role")
        for claim in ("azp", "appid", "sub"):
            value = claims.get(claim)
            if isinstance(value, str) and value.strip():
                return Backend(value, source)
        raise UnauthorizedError("token names no client (azp, appid or sub)")


def _check_apart(settings: ManageAuthSettings, audiences: list[str], users: AuthSettings) -> None:
    """Refuse a configuration in which a token for app users would pass the management audience check."""
    user_audiences = {a.strip() for a in (users.oidc_audience or "").split(",") if a.strip()}
    if settings.oidc_issuer and settings.oidc_issuer == users.oidc_issuer and user_audiences & set(audiences):
        raise ConfigurationError(
            "AUTH_MANAGE_AUDIENCE", "must differ from AUTH_OIDC_AUDIENCE (a user's token would carry it)"
        )
    if settings.dev_secret and settings.dev_audience == users.dev_audience:
        raise ConfigurationError("AUTH_DEV_MANAGE_AUDIENCE", "must differ from AUTH_DEV_AUDIENCE")


@process_wide
def get_authenticator() -> Authenticator:
    """The process-wide authenticator built from the settings."""
    return Authenticator(get_settings().auth)


@process_wide
def get_manage_authenticator() -> ManageAuthenticator:
    """The process-wide management API authenticator built from the settings."""
    settings = get_settings()
    return ManageAuthenticator(settings.manage_auth, settings.auth)


def make_dev_token(
    secret: str,
    user_id: str,
    issuer: str = "notify-dev",
    audience: str = "notify",
    minutes: int = 60,
    roles: list[str] | None = None,
) -> str:
    """An HS256 dev token (user id in ``sub``); accepted only where AUTH_DEV_SECRET is set."""
    now = int(time.time())
    exp = now + minutes * 60  # negative minutes give an already expired token (for tests)
    claims: dict[str, Any] = {
        "sub": user_id, "iss": issuer, "aud": audience, "iat": now, "nbf": min(now, exp), "exp": exp
    }
    if roles is not None:
        claims["roles"] = roles
    return jwt.encode(claims, secret, algorithm=DEV_ALGORITHM)


def make_dev_manage_token(
    secret: str,
    client_id: str = "dev-backend",
    issuer: str = "notify-dev",
    audience: str = "notify-manage",
    role: str = "Notify.Manage",
    minutes: int = 60,
) -> str:
    """An HS256 backend token for the management API of the local stack (an app token with the role)."""
    return make_dev_token(secret, client_id, issuer, audience, minutes, roles=[role])
