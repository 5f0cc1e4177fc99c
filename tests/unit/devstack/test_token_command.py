"""``python -m devstack token --user alice``: a development token the app accepts, and how to use it."""

from __future__ import annotations

import pytest

from devstack.__main__ import main
from devstack.demo import app_settings
from shared.auth import Authenticator
from shared.errors import UnauthorizedError
from shared.settings import Settings


def authenticator() -> Authenticator:
    """The app's authenticator with the settings make dev runs with (no Azure service is called)."""
    return Authenticator(Settings.from_environ(app_settings({})).auth)


def test_prints_a_token_the_app_accepts_for_that_user(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["token", "--user", "alice"]) == 0
    out, err = capsys.readouterr()
    token = out.strip()
    assert "\n" not in token, "stdout holds the token alone"
    principal = authenticator().authenticate({"Authorization": f"Bearer {token}"})
    assert (principal.user_id, principal.source) == ("alice", "dev")
    assert f"curl -X POST -H 'Authorization: Bearer {token}' http://127.0.0.1:7071/api/negotiate" in err


def test_an_expired_token_can_be_made_for_tests(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["token", "--user", "bob", "--minutes", "-5"]) == 0
    token = capsys.readouterr().out.strip()
    with pytest.raises(UnauthorizedError, match="expired"):
        authenticator().authenticate({"Authorization": f"Bearer {token}"})


def test_an_empty_user_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["token", "--user", " "]) == 1
    assert "--user" in capsys.readouterr().err
