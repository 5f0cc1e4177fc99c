"""Stopping a queue listener while a receive is under way loses no message (Azurite).

A batch is invisible for the receive visibility (10 minutes) from the moment it is received. If the stop
cancelled the poller between the receive and the start of the invocations, those messages would be neither
run nor released: invisible, for ten minutes, with nothing in any log.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from datetime import timedelta
from typing import Any

import pytest
from azure.storage.queue import QueueClient

from devstack.azurite import RunningAzurite
from devstack.functions_host.indexing import IndexedFunction
from devstack.functions_host.queue_listener import QueueListener
from devstack.functions_host.settings_loader import QueueOptions

pytestmark = pytest.mark.integration


class Invocations:
    """Records the invocations; each takes ``seconds``."""

    def __init__(self, seconds: float) -> None:
        self.bodies: list[bytes] = []
        self.seconds = seconds

    async def invoke(
        self, function: IndexedFunction, trigger_value: Any, reason: str, trigger_metadata: Any = None
    ) -> None:
        # The host hands the runtime the body as string TypedData.
        self.bodies.append(trigger_value.string.encode("utf-8"))
        await asyncio.sleep(self.seconds)


class SlowReceive(QueueListener):
    """A receive that takes a moment (a slow storage answer), during which the stop comes."""

    async def _poll_once(self) -> bool:
        self.paused.set()
        await asyncio.sleep(0.3)
        return await super()._poll_once()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.paused = asyncio.Event()


def test_a_stop_during_a_receive_lets_the_batch_run_or_be_released(azurite: RunningAzurite) -> None:
    name = "shutdown" + uuid.uuid4().hex[:12]
    queue = QueueClient.from_connection_string(azurite.connection_string, name)
    queue.create_queue()
    try:
        for index in range(3):
            queue.send_message(base64.b64encode(f"m{index}".encode()).decode())
        trigger = {"type": "queueTrigger", "name": "msg", "queueName": name}
        function = IndexedFunction("f", "id-f", trigger, [trigger])
        invocations = Invocations(seconds=5.0)  # longer than the drain: the batch must be released

        async def scenario() -> None:
            listener = SlowReceive(
                function, azurite.connection_string, QueueOptions(), invocations,  # type: ignore[arg-type]
                receive_visibility=timedelta(minutes=10),
            )
            await listener.start()
            await asyncio.wait_for(listener.paused.wait(), timeout=10)
            await listener.stop(drain_timeout=0.5)

        asyncio.run(scenario())
        visible = list(queue.peek_messages(max_messages=32))
        # Every message was received by the stopped listener, started, and made visible again at once.
        assert sorted(invocations.bodies) == [b"m0", b"m1", b"m2"]
        assert sorted(base64.b64decode(m.content) for m in visible) == [b"m0", b"m1", b"m2"]
    finally:
        queue.delete_queue()
