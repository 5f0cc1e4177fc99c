"""The hosted guarantee floor (bench/hosted_floor/) runs under the notifier's host settings and wires only the
floor's three entry points."""

import json

from bench.floor_process import HOSTED_FLOOR_APP, HOSTED_FLOOR_SETTINGS
from bench.hosted_floor.function_app import app
from devstack.functions_host.settings_loader import load_host_json, load_local_settings
from devstack.stack import REPO_ROOT


def test_queue_and_logging_sections_equal_the_notifiers_host_json() -> None:
    # The bench overrides batchSize / newBatchThreshold for both hosts alike (AzureFunctionsJobHost__...);
    # everything else must be the notifier's, or the floor would read its queues differently.
    floor, notifier = load_host_json(HOSTED_FLOOR_APP), load_host_json(REPO_ROOT)
    assert floor["extensions"]["queues"] == notifier["extensions"]["queues"]
    assert floor["logging"] == notifier["logging"]  # the per-invocation log lines are part of the host's work


def test_worker_threads_equal_the_notifiers_local_settings() -> None:
    floor = load_local_settings(HOSTED_FLOOR_SETTINGS)
    notifier = load_local_settings(REPO_ROOT / "local.settings.json.example")
    assert floor["PYTHON_THREADPOOL_THREAD_COUNT"] == notifier["PYTHON_THREADPOOL_THREAD_COUNT"] == "32"
    assert floor["FUNCTIONS_WORKER_RUNTIME"] == "python"


def test_the_app_has_the_floors_two_queue_triggers_and_the_ack_event() -> None:
    functions = app.get_functions()
    bindings = {f.get_function_name(): [json.loads(b) for b in f.get_raw_bindings()] for f in functions}
    assert bindings == {
        "notification": [{"direction": "IN", "type": "queueTrigger", "name": "msg",
                          "queueName": "%BENCH_QUEUE%", "connection": "AzureWebJobsStorage"}],
        "deadline": [{"direction": "IN", "type": "queueTrigger", "name": "msg",
                      "queueName": "%BENCH_DEADLINES%", "connection": "AzureWebJobsStorage"}],
        "ack": [{"direction": "IN", "type": "webPubSubTrigger", "name": "request", "hub": "%WebPubSubHub%",
                 "eventType": "user", "eventName": "ack"}],
    }
