"""OIDC bearer tokens over the wire: a real discovery + JWKS server on a free port, keys made in the test."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import jwt
import pytest
import requests
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from devstack.server_thread import ServerThread
from shared.auth import Authenticator, Principal, make_dev_token
from shared.errors import TransientError, UnauthorizedError
from shared.settings import AuthSettings

pytestmark = pytest.mark.integration

AUDIENCE = "api://notify-test"


@dataclass
class SigningKey:
    kid: str
    alg: str
    private: Any

    def jwk(self) -> dict[str, Any]:
        algorithm = RSAAlgorithm if self.alg == "RS256" else ECAlgorithm
        data: dict[str, Any] = json.loads(algorithm.to_jwk(self.private.public_key()))
        return data | {"kid": self.kid, "alg": self.alg, "use": "sig"}


def rsa_key() -> SigningKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return SigningKey("rsa-" + uuid.uuid4().hex[:8], "RS256", private)


def ec_key() -> SigningKey:
    return SigningKey("ec-" + uuid.uuid4().hex[:8], "ES256", ec.generate_private_key(ec.SECP256R1()))


@dataclass
class Provider:
    """What the fake identity provider serves, and what it was asked for."""

    keys: list[SigningKey] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    issuer: str = ""

    def token(self, key: SigningKey, user: str = "alice", **overrides: Any) -> str:
        now = int(time.time())
        claims = {"sub": user, "iss": self.issuer, "aud": AUDIENCE, "iat": now, "exp": now + 300}
        claims.update(overrides)
        return jwt.encode(claims, key.private, algorithm=key.alg, headers={"kid": key.kid})


@pytest.fixture
def provider() -> Iterator[Provider]:
    state = Provider(keys=[rsa_key()])

    async def discovery(request: web.Request) -> web.Response:
        state.requests.append(request.path)
        return web.json_response({"issuer": state.issuer, "jwks_uri": state.issuer + "/discovery/keys"})

    async def keys(request: web.Request) -> web.Response:
        state.requests.append(request.path)
        return web.json_response({"keys": [k.jwk() for k in state.keys]})

    app = web.Application()
    app.router.add_get("/tenant/.well-known/openid-configuration", discovery)
    app.router.add_get("/tenant/discovery/keys", keys)
    server = ServerThread(app, name="oidc-test")
    port = server.start()
    state.issuer = f"http://127.0.0.1:{port}/tenant"
    try:
        yield state
    finally:
        server.stop()


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


def authenticator(provider: Provider, session: requests.Session, **settings: Any) -> Authenticator:
    auth = AuthSettings(oidc_issuer=provider.issuer, oidc_audience=AUDIENCE, **settings)
    return Authenticator(auth, session=session, jwks_min_refetch_seconds=0)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + token}


def refused(auth: Authenticator, token: str) -> str:
    with pytest.raises(UnauthorizedError) as info:
        auth.authenticate(bearer(token))
    assert token not in info.value.message
    return info.value.message


def test_valid_token_via_discovery_and_keys_are_cached(provider: Provider, session: requests.Session) -> None:
    auth = authenticator(provider, session)
    key = provider.keys[0]
    assert auth.authenticate(bearer(provider.token(key))) == Principal("alice", "oidc")
    assert auth.authenticate(bearer(provider.token(key, user="bob"))).user_id == "bob"
    assert provider.requests == ["/tenant/.well-known/openid-configuration", "/tenant/discovery/keys"]


def test_explicit_jwks_url_skips_discovery(provider: Provider, session: requests.Session) -> None:
    auth = authenticator(provider, session, oidc_jwks_url=provider.issuer + "/discovery/keys")
    assert auth.authenticate(bearer(provider.token(provider.keys[0]))).user_id == "alice"
    assert provider.requests == ["/tenant/discovery/keys"]


def test_es256_and_a_configured_user_claim(provider: Provider, session: requests.Session) -> None:
    key = ec_key()
    provider.keys.append(key)
    auth = authenticator(provider, session, user_claim="oid")
    assert auth.authenticate(bearer(provider.token(key, oid="object-1"))).user_id == "object-1"
    assert refused(auth, provider.token(key)) == "token has no usable oid claim"


def test_expired_wrong_audience_and_wrong_issuer(provider: Provider, session: requests.Session) -> None:
    auth = authenticator(provider, session)
    key = provider.keys[0]
    now = int(time.time())
    assert refused(auth, provider.token(key, exp=now - 600, iat=now - 900)) == "token has expired"
    assert refused(auth, provider.token(key, aud="api://other")) == "token audience is not accepted"
    assert refused(auth, provider.token(key, iss="http://evil.invalid")) == "token issuer is not accepted"
    assert refused(auth, provider.token(key, nbf=now + 600)) == "token is not valid yet"


def test_unknown_kid_triggers_one_refetch(provider: Provider, session: requests.Session) -> None:
    auth = authenticator(provider, session)
    old = provider.keys[0]
    assert auth.authenticate(bearer(provider.token(old))).user_id == "alice"
    rotated = rsa_key()
    provider.keys = [rotated]
    provider.requests.clear()
    principal = auth.authenticate(bearer(provider.token(rotated, user="after-rotation")))
    assert principal.user_id == "after-rotation"
    assert provider.requests == ["/tenant/discovery/keys"]
    stranger = rsa_key()
    provider.requests.clear()
    assert refused(auth, provider.token(stranger)) == "token is signed with an unknown key"
    assert provider.requests == ["/tenant/discovery/keys"]


def test_refetch_is_rate_limited(provider: Provider, session: requests.Session) -> None:
    auth = Authenticator(
        AuthSettings(oidc_issuer=provider.issuer, oidc_audience=AUDIENCE),
        session=session,
        jwks_min_refetch_seconds=3600,
    )
    assert auth.authenticate(bearer(provider.token(provider.keys[0]))).user_id == "alice"
    provider.requests.clear()
    for _ in range(3):
        assert refused(auth, provider.token(rsa_key())) == "token is signed with an unknown key"
    assert provider.requests == []


def test_tampered_signature_and_payload(provider: Provider, session: requests.Session) -> None:
    auth = authenticator(provider, session)
    token = provider.token(provider.keys[0])
    header, payload, signature = token.split(".")
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    assert refused(auth, f"{header}.{payload}.{flipped}") == "token signature is invalid"
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "admin"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert refused(auth, f"{header}.{forged}.{signature}") == "token signature is invalid"


def test_alg_none_is_refused(provider: Provider, session: requests.Session) -> None:
    auth = authenticator(provider, session)
    now = int(time.time())
    claims = {"sub": "mallory", "iss": provider.issuer, "aud": AUDIENCE, "exp": now + 300}
    token = jwt.encode(claims, "", algorithm="none", headers={"kid": provider.keys[0].kid})
    assert refused(auth, token) == "token algorithm 'none' is not accepted"


def test_hs256_signed_with_the_public_key_is_refused(provider: Provider, session: requests.Session) -> None:
    auth = authenticator(provider, session)
    key = provider.keys[0]
    public_pem = key.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    now = int(time.time())
    claims = {"sub": "mallory", "iss": provider.issuer, "aud": AUDIENCE, "exp": now + 300}
    # PyJWT refuses to HMAC with a PEM key, so sign by hand as an attacker would.
    header = {"alg": "HS256", "typ": "JWT", "kid": key.kid}
    signing_input = b".".join(
        base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=") for part in (header, claims)
    )
    mac = hmac.new(public_pem, signing_input, hashlib.sha256).digest()
    token = (signing_input + b"." + base64.urlsafe_b64encode(mac).rstrip(b"=")).decode()
    assert refused(auth, token) == "token algorithm 'HS256' is not accepted"


def test_token_alg_must_match_the_key(provider: Provider, session: requests.Session) -> None:
    auth = authenticator(provider, session)
    ec = ec_key()
    provider.keys.append(ec)
    # An ES256 token whose kid points at the RSA key.
    now = int(time.time())
    claims = {"sub": "x", "iss": provider.issuer, "aud": AUDIENCE, "exp": now + 300}
    token = jwt.encode(claims, ec.private, algorithm="ES256", headers={"kid": provider.keys[0].kid})
    assert refused(auth, token) == "token algorithm does not match its signing key"


def test_unreachable_provider_is_a_transient_error(session: requests.Session) -> None:
    server = ServerThread(web.Application(), name="oidc-down")
    port = server.start()
    server.stop()
    auth = Authenticator(
        AuthSettings(oidc_issuer=f"http://127.0.0.1:{port}/gone", oidc_audience=AUDIENCE), session=session
    )
    with pytest.raises(TransientError):
        auth.authenticate(bearer("eyJhbGciOiJSUzI1NiIsImtpZCI6ImsifQ.e30.c2ln"))


def test_dev_tokens_work_alongside_oidc(provider: Provider, session: requests.Session) -> None:
    secret = "dev-secret-that-is-long-enough-for-hs256!"
    auth = authenticator(provider, session, dev_secret=secret)
    assert auth.authenticate(bearer(make_dev_token(secret, "dev-user"))) == Principal("dev-user", "dev")
    assert auth.authenticate(bearer(provider.token(provider.keys[0]))).source == "oidc"
