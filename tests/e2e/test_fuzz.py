"""Fuzzing through the local host: HTTP endpoints, notifications-queue messages and Web PubSub events.

Properties: no input gets a 5xx; every 4xx carries the JSON error body; every invalid queue message lands in
the poison queue exactly once and at once (no retries), every valid one is delivered exactly once (its
delivery record is final and the push sink holds one push, or none when it should not push); no function
invocation fails on a Web PubSub event and no presence row breaks the user id rule.

Bounded for ``make test``: a fixed number of examples, derandomized (the same examples every run, so a
failure reproduces). ``NOTIFY_FUZZ_RANDOM=1`` draws new examples, ``NOTIFY_FUZZ_SCALE=10`` draws ten times
as many, for a longer hunt by hand.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import time
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import requests
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import BinaryBase64DecodePolicy, BinaryBase64EncodePolicy, QueueClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from devstack.demo import (
    DemoTarget,
    delivery_row,
    enqueue_with_cli,
    pushed_notification_id,
    register_device,
    wait_until,
)
from devstack.stack import HOST, HUB, RunningStack
from notify.message import parse_message
from notify.user_rows import connection_id_of, user_partition
from shared.auth import make_dev_manage_token
from shared.errors import InvalidMessageError
from shared.user_keys import user_id_problem, user_key
from tests.e2e.test_rejections import sign

pytestmark = pytest.mark.e2e

RANDOM = os.environ.get("NOTIFY_FUZZ_RANDOM") == "1"
SCALE = float(os.environ.get("NOTIFY_FUZZ_SCALE", "1"))
SCHEMA = json.loads((Path(__file__).parents[2] / "notify" / "notification.schema.json").read_text())
RUN = uuid.uuid4().hex[:8]
#: Users with one registered device each: valid notifications to them must be pushed exactly once.
DEVICE_USERS = [f"fuzz-{RUN}", f"Zoe\u0308 {RUN}", f"tenant/üser#?{RUN}"]
FINAL = {"pushed", "no_devices", "sent_realtime", "expired"}
TIMEOUT = 30.0


def fuzz(examples: int, shrink: bool = True) -> settings:
    """Hypothesis settings for one fuzz test: ``examples`` (scaled), no database, no per-example deadline.

    ``shrink=False`` where one example is slow (a batch through the queue): a failure is then reported as
    found, not minimised, so that a failing run stays short.
    """
    phases = [Phase.explicit, Phase.reuse, Phase.generate] + ([Phase.shrink] if shrink else [])
    return settings(
        max_examples=max(1, int(examples * SCALE)),
        derandomize=not RANDOM,
        database=None,
        deadline=None,
        phases=phases,
        suppress_health_check=list(HealthCheck),
    )


# ---- strategies ------------------------------------------------------------------------------------------

ANY_TEXT = st.text(st.characters(codec=None, categories=["L", "M", "N", "P", "S", "Z", "C"]), max_size=40)
ODD_IDS = st.sampled_from(
    ["victim ", " victim", "a\nb", "nul\x00", "x" * 256, "x" * 257, "\ud800", "", "Alice", "a/b#c?d\\e"]
)
USER_IDS = st.one_of(st.sampled_from(DEVICE_USERS), ODD_IDS, ANY_TEXT)
JSON_LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), ANY_TEXT
)
JSON_VALUES = st.recursive(
    JSON_LEAVES, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ANY_TEXT, inner, max_size=3),
    max_leaves=12,
)


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"k": value}
    return value


DEEP = st.integers(min_value=25, max_value=60).map(nested)
#: Header values requests will send and aiohttp will parse: no control characters, bytes >= 0x80 allowed.
HEADER_TEXT = st.text(
    st.characters(min_codepoint=0x20, exclude_categories=["Cs"], exclude_characters="\x7f"), max_size=60
).map(str.strip)


def to_bytes(document: Any, ascii_only: bool) -> bytes:
    """JSON text of ``document``; lone surrogates become ``\\udXXX`` escapes or invalid UTF-8 bytes."""
    return json.dumps(document, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


_ids = itertools.count()


@st.composite
def queue_bodies(draw: st.DrawFn) -> bytes:
    """A notifications-queue message body: mostly plausible documents, some mutated, some garbage."""
    kind = draw(st.sampled_from(["valid", "valid", "mutated", "mutated", "garbage", "deep"]))
    if kind == "garbage":
        text = ANY_TEXT.map(lambda t: t.encode("utf-8", "surrogatepass"))
        return draw(st.one_of(st.binary(max_size=80), text))
    if kind == "deep":
        return b"[" * draw(st.integers(min_value=30, max_value=5000))
    document: dict[str, Any] = {
        "notificationId": f"fuzz-{RUN}-{next(_ids)}",
        "userId": draw(st.sampled_from(DEVICE_USERS) | st.text(min_size=1, max_size=30).map(str.strip)),
        "title": draw(st.text(max_size=30)),
        "body": draw(st.text(max_size=60)),
        "delivery": draw(st.sampled_from(["auto", "push", "realtime", "both"])),
    }
    if draw(st.booleans()):
        document["data"] = draw(st.dictionaries(st.text(max_size=5), JSON_VALUES, max_size=3))
    if draw(st.booleans()):
        document["type"] = draw(st.text(min_size=1, max_size=10))
    if draw(st.booleans()):  # either comfortably alive or long expired: no boundary cases here
        document["ttlSeconds"] = 86_400
        document["enqueuedAt"] = draw(st.sampled_from([time.time(), 1.0]))
    if kind == "mutated":
        mutation = draw(st.sampled_from(
            ["drop", "extra", "replace", "user", "deep", "surrogate", "huge", "ttl", "id"]
        ))
        field = draw(st.sampled_from(sorted(document)))
        if mutation == "drop":
            document.pop(field)
        elif mutation == "extra":
            document[draw(st.text(min_size=1, max_size=8))] = draw(JSON_VALUES)
        elif mutation == "replace":
            document[field] = draw(JSON_VALUES)
        elif mutation == "user":
            document["userId"] = draw(USER_IDS)
        elif mutation == "deep":
            document["data"] = draw(DEEP)
        elif mutation == "surrogate":
            document[draw(st.sampled_from(["title", "body", "type"]))] = "x\ud83dy"
        elif mutation == "huge":
            document["body"] = "x" * draw(st.integers(min_value=3000, max_value=20_000))
        elif mutation == "ttl":
            document["ttlSeconds"] = draw(st.one_of(st.integers(), st.floats(), ANY_TEXT))
        else:
            document["notificationId"] = draw(ANY_TEXT)
    return to_bytes(document, draw(st.booleans()))


def expectation(body: bytes, queue_message_id: str) -> dict[str, Any] | None:
    """None when the notifier must refuse ``body``, else the notificationId, status and pushes expected."""
    try:
        notification = parse_message(body, queue_message_id)  # the id is derived from it when absent
    except InvalidMessageError:
        return None
    document = json.loads(body)
    jsonschema.validate(document, SCHEMA)  # the parser never accepts what the schema refuses
    expired = notification.ttl_seconds is not None and notification.enqueued_at == 1.0
    has_device = notification.user_id in DEVICE_USERS
    may_push = notification.delivery.value != "realtime"
    if expired:
        status, pushes = "expired", 0
    elif not may_push:
        status, pushes = "sent_realtime", 0
    else:
        status, pushes = ("pushed", 1) if has_device else ("no_devices", 0)
    return {"id": notification.notification_id, "user": notification.user_id, "status": status,
            "pushes": pushes}


# ---- helpers ---------------------------------------------------------------------------------------------


def failed_invocations(stack: RunningStack, function: str) -> int:
    return sum(f"Executed 'Functions.{function}' (Failed" in line for line in stack.functions_host.log_lines)


def assert_error_body(response: requests.Response) -> None:
    assert response.headers.get("Content-Type", "").startswith("application/json"), response.headers
    error = response.json()["error"]
    assert isinstance(error["code"], str) and error["code"], error
    assert isinstance(error["message"], str) and error["message"], error


@pytest.fixture(scope="module")
def devices_registered(e2e_target: DemoTarget) -> dict[str, str]:
    """One device per DEVICE_USERS user, registered through the API."""
    installations = {}
    for index, user in enumerate(DEVICE_USERS):
        installation_id = f"fuzz-{RUN}-{index}"
        register_device(e2e_target, user, installation_id)
        installations[user] = installation_id
    return installations


@pytest.fixture(scope="module")
def queues(e2e_target: DemoTarget) -> Iterator[tuple[QueueClient, QueueClient]]:
    """The notifications queue (raw bytes in, base64 as the host expects) and its poison queue."""
    name = e2e_target.setting("NOTIFICATIONS_QUEUE")
    conn = e2e_target.storage_connection_string
    inbound = QueueClient.from_connection_string(conn, name, message_encode_policy=BinaryBase64EncodePolicy())
    poison = QueueClient.from_connection_string(
        conn, name + "-poison", message_decode_policy=BinaryBase64DecodePolicy()
    )
    with inbound, poison:
        yield inbound, poison


def drain(queue: QueueClient) -> list[bytes]:
    """Receive and delete every visible message; their bodies."""
    bodies: list[bytes] = []
    try:
        while True:
            batch = list(queue.receive_messages(max_messages=32, visibility_timeout=30))
            if not batch:
                return bodies
            for message in batch:
                content = message.content  # the decode policy leaves an empty message as ""
                bodies.append(content if isinstance(content, bytes) else str(content).encode())
                queue.delete_message(message)
    except ResourceNotFoundError:
        return bodies


# ---- the notifications queue -----------------------------------------------------------------------------


def test_queue_messages_are_delivered_once_or_poisoned_once(
    e2e_stack: RunningStack,
    e2e_target: DemoTarget,
    devices_registered: dict[str, str],
    queues: tuple[QueueClient, QueueClient],
) -> None:
    inbound, poison = queues
    deliveries = e2e_target.table("DELIVERIES_TABLE")
    totals = Counter[str]()

    def record(user: str, notification_id: str) -> dict[str, Any] | None:
        try:
            return dict(deliveries.get_entity(user_key(user), notification_id))
        except ResourceNotFoundError:
            return None

    @fuzz(8, shrink=False)
    @given(st.lists(queue_bodies(), min_size=8, max_size=16))
    def batch(bodies: list[bytes]) -> None:
        expected = [expectation(body, inbound.send_message(body).id) for body in bodies]
        invalid = Counter(body for body, outcome in zip(bodies, expected, strict=True) if outcome is None)
        valid = [outcome for outcome in expected if outcome is not None]
        totals.update(valid=len(valid), invalid=sum(invalid.values()))
        poisoned: Counter[bytes] = Counter()

        def unsettled() -> list[str]:
            poisoned.update(drain(poison))
            waiting = [f"{o['id']}: status {(record(o['user'], o['id']) or {}).get('status')}" for o in valid]
            waiting = [line for line in waiting if line.rsplit(" ", 1)[1] not in FINAL]
            if sum(poisoned.values()) < sum(invalid.values()):
                waiting.append(f"poisoned {sum(poisoned.values())} of {sum(invalid.values())}")
            if queue_busy(inbound):
                waiting.append("messages still queued")
            return waiting

        give_up = time.monotonic() + TIMEOUT
        while (waiting := unsettled()) and time.monotonic() < give_up:
            time.sleep(0.2)
        assert not waiting, waiting
        time.sleep(0.3)  # a late extra copy would show up now
        poisoned.update(drain(poison))
        assert poisoned == invalid  # each invalid message exactly once, and nothing valid
        pushes = e2e_stack.notification_hubs.pushes(HUB)
        pushed = Counter(pushed_notification_id(p) for p in pushes)
        for outcome in valid:
            row = record(outcome["user"], outcome["id"]) or {}
            assert row.get("status") == outcome["status"], (outcome, row.get("status"))
            assert pushed[outcome["id"]] == outcome["pushes"], outcome

    try:
        batch()
    finally:
        deliveries.close()
    print("queue fuzz:", dict(totals))
    assert totals["valid"] and totals["invalid"]


def queue_busy(queue: QueueClient) -> bool:
    """True while the queue holds messages, visible or not (a retry would be pending)."""
    return bool(queue.get_queue_properties().approximate_message_count)


# ---- the HTTP endpoints ----------------------------------------------------------------------------------

SECRET_ENV = "AUTH_DEV_SECRET"


def jws(header: Any, payload: Any) -> str:
    def segment(value: Any) -> str:
        return base64.urlsafe_b64encode(to_bytes(value, True)).rstrip(b"=").decode()

    return f"{segment(header)}.{segment(payload)}.c2ln"


@st.composite
def authorizations(draw: st.DrawFn, target: DemoTarget) -> str | bytes | None:
    """Mostly valid tokens (so that requests reach the devices code), the rest anything a client may send."""
    kind = draw(st.sampled_from(["valid"] * 5 + ["token", "text", "bytes", "jws", "none", "scheme"]))
    if kind == "valid":
        return "Bearer " + target.token(draw(st.sampled_from([*DEVICE_USERS, f"http-{RUN}", "Ünïcode 用户"])))
    if kind == "token":  # signed with the host's dev secret for any user id, or the same unsigned
        user = draw(USER_IDS)
        if draw(st.booleans()):
            return "Bearer " + target.token(user)
        return "Bearer " + jws({"alg": "HS256", "typ": "JWT"}, {"sub": user})
    if kind == "text":
        return "Bearer " + draw(HEADER_TEXT)
    if kind == "bytes":
        raw = draw(st.binary(max_size=40))
        return b"Bearer " + bytes(b for b in raw if b >= 0x20 and b != 0x7F)
    if kind == "jws":
        return "Bearer " + jws(draw(JSON_VALUES | DEEP), draw(JSON_VALUES | DEEP))
    return draw(st.sampled_from(["Basic abc", "bearer", "Bearer", "Token x"]))


VALID_INSTALLATION_IDS = st.from_regex(r"http-[A-Za-z0-9_-]{1,6}", fullmatch=True)
INSTALLATION_IDS = st.one_of(
    VALID_INSTALLATION_IDS,
    VALID_INSTALLATION_IDS,
    # Segments the host routes to the function: no "/" (nor "." / ".."), and no line break, for which the
    # local host's route matching answers its own 404 (text/plain) before any function runs.
    st.text(min_size=1, max_size=140).filter(
        lambda t: not set(t) & {"/", "\n", "\r"} and t not in (".", "..")
    ),
)
REGISTRATIONS = st.sampled_from([
    {"platform": "fcm", "pushChannel": "cZ1:APA91b" + "q" * 40},
    {"platform": "APNS", "pushChannel": "0a" * 32},
]).map(lambda d: json.dumps(d).encode())
BODIES = st.one_of(
    REGISTRATIONS,
    REGISTRATIONS,
    st.fixed_dictionaries(
        {"platform": st.sampled_from(["fcm", "fcmv1", "apns", "wns"]) | JSON_VALUES,
         "pushChannel": st.sampled_from(["0a" * 32, "cZ1:APA91b" + "q" * 40]) | JSON_VALUES},
        optional={"tags": JSON_VALUES, "extra": JSON_VALUES},
    ).map(lambda d: to_bytes(d, False)),
    JSON_VALUES.map(lambda v: to_bytes(v, True)),
    DEEP.map(lambda v: to_bytes(v, True)),
    st.binary(max_size=100),
    st.just(b"[" * 20_000),
    st.just(b"x" * 20_000),
)


def segment(text: str) -> str:
    """``text`` as one URL path segment or query part (its UTF-8 bytes, lone surrogates kept, escaped)."""
    return urllib.parse.quote(text.encode("utf-8", "surrogatepass"), safe="")


def query_string(query: dict[str, str]) -> str:
    return "&".join(f"{segment(name)}={segment(value)}" for name, value in query.items())


def checked_request(
    session: requests.Session,
    statuses: Counter[int],
    method: str,
    url: str,
    auth: str | bytes | None,
    content_type: str | None = None,
    body: bytes | None = None,
) -> requests.Response:
    """Send one fuzzed request; count its status; fail on a 5xx or a 4xx without the JSON error body."""
    headers: dict[str, str | bytes] = {}
    if auth is not None:  # as UTF-8 bytes (lone surrogates make bytes that are not UTF-8)
        headers["Authorization"] = auth.encode("utf-8", "surrogatepass") if isinstance(auth, str) else auth
    if content_type is not None:
        headers["Content-Type"] = content_type
    response = session.request(method, url, headers=headers, data=body, timeout=TIMEOUT)
    statuses[response.status_code] += 1
    assert response.status_code < 500, (method, url, body and body[:200], response.status_code,
                                        response.text[:300])
    if response.status_code >= 400:
        assert_error_body(response)
    return response


def recorded_notification(target: DemoTarget, user: str, notification_id: str) -> str:
    """Enqueue a notification for ``user`` and wait until its delivery row exists."""
    enqueue_with_cli(target, user, "fuzzed", notification_id=notification_id)
    wait_until(lambda: delivery_row(target, user, notification_id), TIMEOUT, "it was never recorded")
    return notification_id


def test_http_endpoints_answer_every_input_without_a_5xx(
    e2e_stack: RunningStack, e2e_target: DemoTarget
) -> None:
    session = requests.Session()
    statuses = Counter[int]()

    @fuzz(300)
    @given(
        st.sampled_from(["negotiate", "register", "unregister"]),
        INSTALLATION_IDS,
        authorizations(e2e_target),
        st.sampled_from(["application/json"] * 3 + ["application/json; charset=utf-8", "text/plain", None]),
        BODIES,
    )
    def call(endpoint: str, installation_id: str, auth: str | bytes | None, content_type: str | None,
             body: bytes) -> None:
        method, path = {"negotiate": ("POST", "negotiate"),
                        "register": ("PUT", f"devices/{segment(installation_id)}"),
                        "unregister": ("DELETE", f"devices/{segment(installation_id)}")}[endpoint]
        checked_request(session, statuses, method, f"{e2e_target.functions_url}/api/{path}", auth,
                        content_type, body)

    try:
        call()
    finally:
        session.close()
    print("http fuzz statuses:", dict(statuses))
    for function in ("negotiate", "register_device", "unregister_device"):
        assert failed_invocations(e2e_stack, function) == 0
    assert set(statuses) >= {200, 204, 400, 401, 403}, statuses  # the inputs reached every layer


INBOX_ROUTES = [
    ("GET", "inbox"), ("GET", "inbox/changes"), ("GET", "inbox/counts"), ("POST", "inbox/read-all"),
    ("POST", "inbox/seen-all"), ("GET", "inbox/items/{id}"), ("DELETE", "inbox/items/{id}"),
    ("POST", "inbox/items/{id}/{action}"),
]
QUERY_NAMES = st.sampled_from(["limit", "before", "after", "type", "status", "resume", "x", "Limit", ""])
QUERY_VALUES = st.one_of(
    st.sampled_from(["1", "0", "100", "101", "-1", "1e3", "unread", "all", "eyJ9"]),
    st.just("eyJrIjoiYyIsImUiOiIiLCJuIjowfQ"),  # a changes cursor
    ANY_TEXT,
)


def test_inbox_endpoints_answer_every_input_without_a_5xx(
    e2e_stack: RunningStack, e2e_target: DemoTarget
) -> None:
    session = requests.Session()
    statuses = Counter[int]()
    user = f"inbox-fuzz-{RUN}"
    producer_id = recorded_notification(e2e_target, user, f"fuzz-inbox-{RUN}")

    @fuzz(120)
    @given(
        st.sampled_from(INBOX_ROUTES),
        st.one_of(st.just(producer_id), INSTALLATION_IDS),
        st.sampled_from(["read", "unread", "seen", "archive", "unarchive", "star", "READ", "%20"]),
        st.dictionaries(QUERY_NAMES, QUERY_VALUES, max_size=3),
        st.one_of(st.just("Bearer " + e2e_target.token(user)), authorizations(e2e_target)),
    )
    def call(route: tuple[str, str], item: str, action: str, query: dict[str, str],
             auth: str | bytes) -> None:
        method, template = route
        path = template.replace("{id}", segment(item)).replace("{action}", action)
        url = f"{e2e_target.functions_url}/api/{path}?{query_string(query)}"
        checked_request(session, statuses, method, url, auth)

    try:
        call()
    finally:
        session.close()
    print("inbox fuzz statuses:", dict(statuses))
    for function in ("inbox_list", "inbox_changes", "inbox_counts", "inbox_read_all", "inbox_seen_all",
                     "inbox_item", "inbox_mark", "inbox_delete"):
        assert failed_invocations(e2e_stack, function) == 0
    assert set(statuses) >= {200, 400, 401, 404}, statuses


CHANNEL_KEYS = st.sampled_from(["*", "push", "realtime", "x"])
TYPE_KEYS = st.sampled_from(["chat", "*", "", "promo"])
PREFERENCE_BODIES = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "channels": st.dictionaries(CHANNEL_KEYS, JSON_VALUES, max_size=2) | JSON_VALUES,
            "types": st.dictionaries(TYPE_KEYS, JSON_VALUES, max_size=2) | JSON_VALUES,
            "quietHours": st.fixed_dictionaries(
                {"timeZone": st.sampled_from(["Europe/Paris", "UTC", "Mars/Base", ""]) | JSON_VALUES},
                optional={"windows": st.lists(st.fixed_dictionaries(
                    {"start": st.sampled_from(["22:00", "07:00:30", "24:00", "7"]) | JSON_VALUES,
                     "end": st.sampled_from(["07:00", "22:00", "x"]) | JSON_VALUES},
                    optional={"days": JSON_VALUES}), max_size=3) | JSON_VALUES},
            )
            | JSON_VALUES,
            "extra": JSON_VALUES,
        },
    ).map(lambda d: to_bytes(d, False)),
    JSON_VALUES.map(lambda v: to_bytes(v, True)),
    DEEP.map(lambda v: to_bytes(v, True)),
    st.binary(max_size=100),
    st.just(b"x" * 20_000),
)


def test_preferences_answer_every_input_without_a_5xx(
    e2e_stack: RunningStack, e2e_target: DemoTarget
) -> None:
    session = requests.Session()
    statuses = Counter[int]()
    user = f"prefs-fuzz-{RUN}"

    @fuzz(100)
    @given(
        st.sampled_from(["GET", "PUT", "PATCH", "PUT", "PATCH"]),
        st.one_of(st.just("Bearer " + e2e_target.token(user)), authorizations(e2e_target)),
        st.sampled_from(["application/json", "application/merge-patch+json", "text/plain", None]),
        PREFERENCE_BODIES,
    )
    def call(method: str, auth: str | bytes | None, content_type: str | None, body: bytes) -> None:
        checked_request(session, statuses, method, f"{e2e_target.functions_url}/api/preferences", auth,
                        content_type, body if method != "GET" else None)

    try:
        call()
    finally:
        session.close()
    print("preferences fuzz statuses:", dict(statuses))
    assert failed_invocations(e2e_stack, "preferences") == 0
    assert set(statuses) >= {200, 400, 401}, statuses


MANAGE_QUERY_NAMES = st.sampled_from(["status", "limit", "cursor", "continuation", "x", ""])
MANAGE_QUERY_VALUES = st.one_of(
    st.sampled_from(["acked", "pushed", "retrying", "1", "0", "1000", "-1", "eyJ9"]), ANY_TEXT
)


def test_management_api_answers_every_input_without_a_5xx(
    e2e_stack: RunningStack, e2e_target: DemoTarget
) -> None:
    """Backend and user tokens, forged ones, odd user ids, ids and queries: never a 5xx, a user never in."""
    session = requests.Session()
    statuses = Counter[int]()
    user = f"manage-fuzz-{RUN}"
    known = recorded_notification(e2e_target, user, f"fuzz-manage-{RUN}")
    backend = "Bearer " + make_dev_manage_token(e2e_target.setting("AUTH_DEV_SECRET"))
    user_token = "Bearer " + e2e_target.token(user)

    @fuzz(120)
    @given(
        st.one_of(st.just(user), INSTALLATION_IDS),
        st.one_of(st.none(), st.just(known), INSTALLATION_IDS),
        st.dictionaries(MANAGE_QUERY_NAMES, MANAGE_QUERY_VALUES, max_size=3),
        st.one_of(st.just(backend), st.just(backend), st.just(user_token), authorizations(e2e_target)),
    )
    def call(
        user_id: str, notification_id: str | None, query: dict[str, str], auth: str | bytes | None
    ) -> None:
        path = f"users/{segment(user_id)}/notifications"
        if notification_id is not None:
            path += "/" + segment(notification_id)
        url = f"{e2e_target.functions_url}/api/manage/{path}?{query_string(query)}"
        response = checked_request(session, statuses, "GET", url, auth)
        if auth == user_token:
            assert response.status_code == 401, (path, response.status_code)  # a user's token never grants it

    try:
        call()
    finally:
        session.close()
    print("management fuzz statuses:", dict(statuses))
    for function in ("manage_notification", "manage_notifications"):
        assert failed_invocations(e2e_stack, function) == 0
    assert set(statuses) >= {200, 401, 404}, statuses


# ---- Web PubSub events -----------------------------------------------------------------------------------

WEBHOOK = "/runtime/webhooks/webpubsub"
EVENT_KINDS = {"connected": "sys", "disconnected": "sys", "ack": "user", "nothing-listens": "user"}


@st.composite
def ack_data(draw: st.DrawFn) -> bytes:
    notification_id = draw(st.one_of(ANY_TEXT, JSON_VALUES, st.just(f"fuzz-{RUN}-0"),
                                     st.sampled_from(["a/b", "x" * 129, "ok-id", "#?"])))
    document = draw(st.one_of(
        st.just({"notificationId": notification_id}),
        JSON_VALUES,
        DEEP,
        st.dictionaries(ANY_TEXT, JSON_VALUES, max_size=3).map(
            lambda d: {**d, "notificationId": notification_id}
        ),
    ))
    return draw(st.one_of(st.just(to_bytes(document, draw(st.booleans()))), st.binary(max_size=60)))


def test_web_pubsub_events_never_fail_a_function(e2e_stack: RunningStack, e2e_target: DemoTarget) -> None:
    session = requests.Session()
    key = e2e_stack.webpubsub.access_key
    statuses = Counter[int]()

    @fuzz(200)
    @given(
        st.sampled_from(sorted(EVENT_KINDS)),
        # What a header can carry (trailing white space is trimmed on the way, as in any HTTP stack).
        st.one_of(st.none(), HEADER_TEXT.map(lambda t: "wps-" + t),
                  ODD_IDS.map(str.lstrip).filter(lambda u: not set(u) & {"\n", "\x00"})),
        HEADER_TEXT.filter(bool),
        st.booleans(),
        ack_data(),
        st.sampled_from(["application/json", "text/plain", "application/octet-stream"]),
        st.one_of(st.none(), ANY_TEXT),
    )
    def post(event: str, user_id: str | None, connection_id: str, genuine: bool, data: bytes,
             content_type: str, reason: Any) -> None:
        kind = EVENT_KINDS[event]
        headers: dict[str, str | bytes] = {
            "ce-specversion": "1.0",
            "ce-type": f"azure.webpubsub.{kind}.{event}",
            "ce-source": f"/hubs/{HUB}/client/{connection_id}".encode(),
            "ce-id": uuid.uuid4().hex,
            "ce-time": "2026-11-24T12:00:00Z",
            "ce-connectionId": connection_id.encode(),
            "ce-hub": HUB,
            "ce-eventName": event,
            "ce-signature": sign(key if genuine else "not-the-key", connection_id),
            "WebHook-Request-Origin": HOST,
        }
        if user_id is not None:
            headers["ce-userId"] = user_id.encode("utf-8", "surrogatepass")
        if event == "disconnected":
            # What the service sends, {"reason": string}: any other body is refused with 500 by the Web PubSub
            # extension itself before a function runs (tests/integration/devstack: malformed bodies).
            body, headers["Content-Type"] = to_bytes({"reason": reason}, True), "application/json"
        else:
            body, headers["Content-Type"] = data, content_type
        response = session.post(e2e_stack.functions_host.url + WEBHOOK, data=body, headers=headers,
                                timeout=TIMEOUT)
        statuses[response.status_code] += 1
        assert response.status_code < 500, (event, response.status_code, response.text[:300])
        if genuine and event == "ack":
            assert response.status_code in (200, 204), (response.status_code, response.text[:300])

    try:
        post()
    finally:
        session.close()
    print("web pubsub fuzz statuses:", dict(statuses))
    for function in ("presence_connected", "presence_disconnected", "notification_ack"):
        assert failed_invocations(e2e_stack, function) == 0, function
    with e2e_target.table("DEVICES_TABLE") as users:  # connection rows live in the users' partitions
        for row in list(users.list_entities()):
            if connection_id_of(str(row["RowKey"])) is None:
                continue
            assert user_id_problem(row["userId"]) is None, row
            assert row["PartitionKey"] == user_partition(row["userId"])
            assert not re.search(r"[/\\#?\x00-\x1f]", row["RowKey"])
    assert 200 in statuses and 401 in statuses, statuses
