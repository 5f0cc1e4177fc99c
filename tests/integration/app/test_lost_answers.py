"""Delivery writes whose answer is lost on the way back: the SDK repeats them and the store stays right.

A proxy in front of Azurite forwards a write, lets Azurite apply it, then drops the connection instead of
answering, as a load balancer or a reset keep-alive connection may. azure-core repeats only idempotent
methods by itself; the store asks it to repeat its conditional inserts and merges too.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Iterator

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from devstack.azurite import ACCOUNT_KEY, ACCOUNT_NAME, RunningAzurite
from devstack.server_thread import ServerThread
from notify.deliveries import DeliveryStore
from notify.delivery_machine import (
    Arrived,
    PushOutcome,
    PushSent,
    RealtimeSent,
    RecordOutcome,
    Rules,
    ScheduleDeadline,
    SendPush,
    SendRealtime,
    Status,
    UserView,
    decide,
    new_state,
)
from notify.model import Delivery, Notification
from notify.notifier import advance
from shared.clients import make_table_client
from shared.settings import StorageSettings

pytestmark = pytest.mark.integration


class AnswerLosingProxy:
    """Forwards to Azurite's table service; the next write after :meth:`lose_next_write` gets no answer."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.armed = False
        self.writes: list[str] = []
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self.server = ServerThread(app)
        self.port = self.server.start()

    def lose_next_write(self) -> None:
        self.armed = True

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        url = URL(self.target + request.raw_path, encoded=True)  # as signed: no re-quoting
        async with aiohttp.ClientSession() as session, session.request(
            request.method, url, headers=headers, data=body or None  # no Content-Type added to a GET
        ) as upstream:
            payload = await upstream.read()
            status, upstream_headers = upstream.status, upstream.headers.copy()
        if request.method != "GET":
            self.writes.append(f"{request.method} {status}")
            if self.armed:
                self.armed = False
                assert request.transport is not None
                request.transport.close()  # applied by Azurite, but the client never hears of it
                return web.Response(status=500)
        answer = web.Response(status=status, body=payload)
        for name in ("Content-Type", "ETag", "Location", "Preference-Applied", "x-ms-request-id"):
            if name in upstream_headers:
                answer.headers[name] = upstream_headers[name]
        return answer


@pytest.fixture
def proxy(azurite: RunningAzurite) -> Iterator[AnswerLosingProxy]:
    running = AnswerLosingProxy(f"http://{azurite.host}:{azurite.table_port}")
    yield running
    running.server.stop()


@pytest.fixture
def store(proxy: AnswerLosingProxy) -> DeliveryStore:
    endpoint = f"http://127.0.0.1:{proxy.port}/{ACCOUNT_NAME}"
    storage = StorageSettings(
        connection_string=(
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
            f"TableEndpoint={endpoint};"
        )
    )
    return DeliveryStore(make_table_client(storage, "lost" + uuid.uuid4().hex[:12]))


def notification() -> Notification:
    return Notification("n-" + uuid.uuid4().hex, "alice", "Hi", "there", delivery=Delivery.PUSH)


RULES = Rules(ack_timeout_seconds=10)


def test_an_insert_whose_answer_was_lost_is_recognised_as_our_own(
    store: DeliveryStore, proxy: AnswerLosingProxy
) -> None:
    message = notification()
    first = decide(new_state(message.delivery, None), Arrived("ours"), time.time(), RULES)
    proxy.lose_next_write()
    record, created = store.insert(message, first.state, time.time())
    assert proxy.writes[-2:] == ["POST 204", "POST 409"]  # applied (204: no echo), then the repeat met it
    assert not created
    # The row carries our claim, so deciding our event on it sends instead of waiting for "another handler".
    _, decision = advance(store, record, Arrived("ours"), RULES, time.time)
    assert decision.actions == (SendPush("ours"),), "the notifier took its own insert for another handler's"
    sent, _ = advance(store, record, PushSent("ours", PushOutcome.PUSHED), RULES, time.time)
    assert sent.state.push.sent and sent.status == Status.PUSHED


def test_an_auto_in_app_insert_whose_answer_was_lost_still_sends(
    store: DeliveryStore, proxy: AnswerLosingProxy
) -> None:
    """The in-app send is recorded with its claim (sent_ahead): read back, it is still ours to make."""
    message = dataclasses.replace(notification(), delivery=Delivery.AUTO)
    online = Arrived("ours", UserView(online=True))
    first = decide(new_state(message.delivery, None), online, time.time(), RULES)
    proxy.lose_next_write()
    record, created = store.insert(message, first.state, time.time())
    assert proxy.writes[-2:] == ["POST 204", "POST 409"] and not created
    assert record.status == Status.SENT_REALTIME
    _, decision = advance(store, record, online, RULES, time.time)
    assert decision.actions == (SendRealtime("ours"),), "the recorded send was taken for one already made"
    _, sent = advance(store, record, RealtimeSent("ours"), RULES, time.time)
    assert [type(a) for a in sent.actions] == [RecordOutcome, ScheduleDeadline]  # and nothing written
    assert proxy.writes[-2:] == ["POST 204", "POST 409"]


def test_a_merge_whose_answer_was_lost_keeps_the_claim(
    store: DeliveryStore, proxy: AnswerLosingProxy
) -> None:
    message = dataclasses.replace(notification(), delivery=Delivery.REALTIME)
    record, _ = store.insert(message, new_state(message.delivery, None), time.time())
    proxy.lose_next_write()
    claimed, decision = advance(store, record, Arrived("ours"), RULES, time.time)
    # Applied, then the repeat's ETag no longer matched: read again, decided again, still ours.
    assert [w.split()[1] for w in proxy.writes[-2:]] == ["204", "412"]
    assert decision.actions == (SendRealtime("ours"),)
    assert claimed.state.realtime.claim_id == "ours"
    proxy.lose_next_write()
    sent, decision = advance(store, claimed, RealtimeSent("ours"), RULES, time.time)
    assert [w.split()[1] for w in proxy.writes[-2:]] == ["204", "412"]
    assert sent.state.realtime.sent and sent.status == Status.SENT_REALTIME
    assert [type(a) for a in decision.actions] == [RecordOutcome]  # the outcome is still recorded once
