"""``python -m devstack token --user alice``: a development token the app accepts, and how to use it."""

from __future__ import annotations

import pytest

from devstack.__main__ import main
from devstack.demo import app_settings
from shared.auth import Authenticator, ManageAuthenticator
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


def test_a_backend_token_opens_the_management_api_and_not_the_user_api(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["token", "--backend"]) == 0
    out, err = capsys.readouterr()
    headers = {"Authorization": f"Bearer {out.strip()}"}
    settings = Settings.from_environ(app_settings({}))
    backend = ManageAuthenticator(settings.manage_auth, settings.auth).authenticate(headers)
    assert backend.client_id == "dev-backend"
    with pytest.raises(UnauthorizedError):
        authenticator().authenticate(headers)
    assert "/api/manage/users/alice/notifications" in err


def test_user_or_backend_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["token"])
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit):
        main(["token", "--user", "alice", "--backend"])
