"""GET/PUT/PATCH /api/preferences through the function, against Azurite: validation that names the field,
merge patches, users kept apart, and the row living in the user's partition beside the device index."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import azure.functions as func
import pytest
from azure.data.tables import TableClient

from devstack.azurite import RunningAzurite
from notify.blueprints.preferences import preferences_response
from notify.preferences import parse_preferences
from notify.user_state import PREFERENCES_ROW, UserDirectory, user_partition
from shared.auth import Authenticator, make_dev_token
from shared.settings import AuthSettings

pytestmark = pytest.mark.integration

SECRET = "preferences-test-secret-long-enough-for-hs256"
AUTH = Authenticator(AuthSettings(dev_secret=SECRET))
QUIET = {"timeZone": "Europe/Berlin", "windows": [{"days": ["mon", "tue"], "start": "22:00", "end": "07:00"}]}


@pytest.fixture(scope="module")
def table(azurite: RunningAzurite) -> Iterator[TableClient]:
    # One table for the module (each test uses users of its own), which saves a create/delete per test.
    client = TableClient.from_connection_string(azurite.connection_string, "prefs" + uuid.uuid4().hex[:12])
    client.create_table()
    yield client
    client.delete_table()
    client.close()


@pytest.fixture
def call(table: TableClient) -> Callable[..., func.HttpResponse]:
    directory = UserDirectory(table)

    def send(method: str, user: str | None, body: Any = None, content_type: str = "application/json",
             token: str | None = None) -> func.HttpResponse:
        headers = {"Content-Type": content_type}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        elif user is not None:
            headers["Authorization"] = f"Bearer {make_dev_token(SECRET, user)}"
        raw = body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None else b"")
        request = func.HttpRequest(method, "http://localhost/api/preferences", headers=headers, body=raw)
        return preferences_response(request, AUTH, directory)

    return send


def body(response: func.HttpResponse) -> Any:
    return json.loads(response.get_body())


def test_get_put_patch_round_trip(call: Callable[..., func.HttpResponse], table: TableClient) -> None:
    empty = call("GET", "alice")
    assert empty.status_code == 200 and body(empty) == {"channels": {}, "types": {}, "quietHours": None}
    assert empty.headers["Cache-Control"] == "no-store"

    put = call("PUT", "alice", {"types": {"marketing": {"push": False}}, "quietHours": QUIET})
    assert put.status_code == 200
    assert body(put) == {"channels": {}, "types": {"marketing": {"push": False}}, "quietHours": QUIET}

    patched = call("PATCH", "alice", {"types": {"chat": {"quietHours": "drop"}}, "quietHours": None},
                   content_type="application/merge-patch+json")
    assert patched.status_code == 200
    expected = {"channels": {}, "types": {"chat": {"quietHours": "drop"}, "marketing": {"push": False}},
                "quietHours": None}
    assert body(patched) == expected
    assert body(call("GET", "alice")) == expected
    # Stored in the user's partition of the devices table, beside (and after) the device-index rows.
    row = table.get_entity(user_partition("alice"), PREFERENCES_ROW)
    assert parse_preferences(json.loads(row["document"])) == parse_preferences(expected)


def test_users_are_kept_apart(call: Callable[..., func.HttpResponse]) -> None:
    call("PUT", "erin", {"channels": {"push": False}})
    assert body(call("GET", "frank")) == {"channels": {}, "types": {}, "quietHours": None}
    call("PATCH", "frank", {"channels": {"inApp": False}})
    assert body(call("GET", "erin"))["channels"] == {"push": False}


@pytest.mark.parametrize(
    ("method", "document", "field"),
    [
        ("PUT", {"quietHours": {**QUIET, "timeZone": "Europe/Atlantis"}}, "quietHours.timeZone"),
        ("PUT", {"quietHours": {"timeZone": "UTC", "windows": [{"start": "22:00", "end": "07:00"},
                                                                {"start": "06:00", "end": "08:00"}]}},
         "quietHours.windows[1]"),
        ("PUT", {"types": {"chat": {"push": True, "vibrate": True}}}, "types.chat.vibrate"),
        ("PUT", {"email": {}}, "email"),
        ("PATCH", {"quietHours": {"timeZone": "UTC", "windows": [{"start": "9am", "end": "10:00"}]}},
         "quietHours.windows[0].start"),
    ],
)
def test_invalid_documents_are_400_naming_the_field_and_change_nothing(
    call: Callable[..., func.HttpResponse], method: str, document: Any, field: str
) -> None:
    call("PUT", "carol", {"channels": {"push": False}})
    response = call(method, "carol", document)
    assert response.status_code == 400
    error = body(response)["error"]
    assert (error["code"], error["field"]) == ("bad_request", field), error["message"]
    assert body(call("GET", "carol"))["channels"] == {"push": False}


@pytest.mark.parametrize(
    ("method", "raw", "content_type"),
    [
        ("PUT", b"{not json", "application/json"),
        ("PUT", b"\xff\xfe", "application/json"),
        ("PUT", b'{"channels": {}}', "text/plain"),
        ("PATCH", b"[1, 2]", "application/merge-patch+json"),
        ("PUT", b'{"types": {' + b'"t": {},' * 3000 + b'"u": {}}}', "application/json"),
    ],
)
def test_unusable_bodies_are_400(
    call: Callable[..., func.HttpResponse], method: str, raw: bytes, content_type: str
) -> None:
    response = call(method, "dave", raw, content_type=content_type)
    assert response.status_code == 400
    assert body(response)["error"]["code"] == "bad_request"


def test_no_or_bad_credentials_are_refused(call: Callable[..., func.HttpResponse]) -> None:
    for response in (call("GET", None), call("PUT", None, {}), call("GET", None, token="not-a-jwt"),
                     call("GET", None, token=make_dev_token("another-secret-of-enough-length!", "alice"))):
        assert response.status_code == 401
        assert body(response)["error"]["code"] == "unauthorized"
