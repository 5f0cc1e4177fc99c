"""The guarantee floor as a Functions app: :class:`bench.guarantee_floor.GuaranteeFloor` behind triggers.

The benchmark runs it in the local Functions host, as it runs the notifier, so that both pay the host's
per-invocation work (queue listeners, the runtime's invocation messages, the Web PubSub webhook, log
lines). Settings: ``BENCH_QUEUE``, ``BENCH_DEADLINES``, ``BENCH_ACK_TIMEOUT``, the floor's ``BENCH_*``
(:func:`bench.floor_base.floor_environment`), ``AzureWebJobsStorage``, ``WebPubSubHub``.
"""

import json
import os

import azure.functions as func

from bench.floor_base import Services
from bench.guarantee_floor import GuaranteeFloor
from shared.once import process_wide

app = func.FunctionApp()


@process_wide  # as the app's notifier: the first batch's invocations start together and build one
def floor() -> GuaranteeFloor:
    """The process's floor, its clients built on first use."""
    services = Services(os.environ)
    return GuaranteeFloor(services, services.queue(os.environ["BENCH_DEADLINES"]),
                          int(os.environ["BENCH_ACK_TIMEOUT"]))


@app.queue_trigger(arg_name="msg", queue_name="%BENCH_QUEUE%", connection="AzureWebJobsStorage")
def notification(msg: func.QueueMessage) -> None:
    """A message of the notifications queue."""
    floor().notification(json.loads(msg.get_body()))


@app.queue_trigger(arg_name="msg", queue_name="%BENCH_DEADLINES%", connection="AzureWebJobsStorage")
def deadline(msg: func.QueueMessage) -> None:
    """A message of the deadlines queue."""
    floor().deadline(json.loads(msg.get_body()))


@app.generic_trigger(
    arg_name="request", type="webPubSubTrigger", hub="%WebPubSubHub%", eventType="user", eventName="ack"
)
def ack(request: str) -> None:
    """The client's ``ack`` user event."""
    event = json.loads(request)
    floor().ack(event["connectionContext"]["userId"], json.loads(event["data"])["notificationId"])
