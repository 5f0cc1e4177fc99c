"""The function index (what the Functions host sees) declares exactly the app's triggers and bindings."""

from __future__ import annotations

import functools
import json

from tests.function_index import indexed_functions

EXPECTED = {
    "negotiate": {"type": "httpTrigger", "route": "negotiate", "methods": ["POST"]},
    "register_device": {"type": "httpTrigger", "route": "devices/{installationId}", "methods": ["PUT"]},
    "unregister_device": {"type": "httpTrigger", "route": "devices/{installationId}", "methods": ["DELETE"]},
    "preferences": {"type": "httpTrigger", "route": "preferences", "methods": ["GET", "PUT", "PATCH"]},
    "presence_connected": {"type": "webPubSubTrigger", "eventType": "system", "eventName": "connected"},
    "presence_disconnected": {"type": "webPubSubTrigger", "eventType": "system", "eventName": "disconnected"},
    "notification_ack": {"type": "webPubSubTrigger", "eventType": "user", "eventName": "ack"},
    "presence_sweep": {"type": "timerTrigger", "schedule": "%PRESENCE_SWEEP_SCHEDULE%"},
    "repair_devices": {"type": "timerTrigger", "schedule": "0 * * * * *"},
    "deliver_notification": {"type": "queueTrigger", "queueName": "%NOTIFICATIONS_QUEUE%"},
    "push_after_deadline": {"type": "queueTrigger", "queueName": "%DEADLINES_QUEUE%"},
    "inbox_list": {"type": "httpTrigger", "route": "inbox", "methods": ["GET"]},
    "inbox_changes": {"type": "httpTrigger", "route": "inbox/changes", "methods": ["GET"]},
    "inbox_counts": {"type": "httpTrigger", "route": "inbox/counts", "methods": ["GET"]},
    "inbox_read_all": {"type": "httpTrigger", "route": "inbox/read-all", "methods": ["POST"]},
    "inbox_seen_all": {"type": "httpTrigger", "route": "inbox/seen-all", "methods": ["POST"]},
    "inbox_item": {"type": "httpTrigger", "route": "inbox/items/{notificationId}", "methods": ["GET"]},
    "inbox_mark": {
        "type": "httpTrigger", "route": "inbox/items/{notificationId}/{action}", "methods": ["POST"]
    },
    "inbox_delete": {"type": "httpTrigger", "route": "inbox/items/{notificationId}", "methods": ["DELETE"]},
    "inbox_sweep": {"type": "timerTrigger", "schedule": "%INBOX_SWEEP_SCHEDULE%"},
    "recover_deliveries": {"type": "timerTrigger", "schedule": "%RECOVERY_SCHEDULE%"},
    "deliver_webhook_events": {"type": "queueTrigger", "queueName": "%WEBHOOK_QUEUE%"},
    "manage_notification": {
        "type": "httpTrigger",
        "route": "manage/users/{userId}/notifications/{notificationId}",
        "methods": ["GET"],
    },
    "manage_notifications": {
        "type": "httpTrigger", "route": "manage/users/{userId}/notifications", "methods": ["GET"]
    },
}


@functools.cache
def _index() -> dict[str, list[dict[str, object]]]:
    functions = indexed_functions()
    return {
        f.get_function_name(): json.loads(f.get_function_json())["bindings"] for f in functions
    }


def test_the_index_has_exactly_the_expected_functions() -> None:
    assert set(_index()) == set(EXPECTED)


def test_each_trigger_is_declared_as_the_host_expects() -> None:
    for name, bindings in _index().items():
        triggers = [b for b in bindings if str(b["type"]).endswith("Trigger")]
        assert len(triggers) == 1, name
        trigger = triggers[0]
        for key, value in EXPECTED[name].items():
            actual = trigger[key]
            if key == "methods":
                actual = [m.upper() for m in actual]  # type: ignore[attr-defined]
            assert actual == value, (name, key, actual)
        if trigger["type"] == "webPubSubTrigger":
            # The extension binds by parameter name: only "request" gets the whole event.
            assert trigger["name"] == "request", name
            assert trigger["hub"] == "%WebPubSubHub%", name
        if trigger["type"] == "queueTrigger":
            assert trigger["connection"] == "AzureWebJobsStorage", name


def test_the_hosts_route_rules_accept_every_http_function_of_the_app() -> None:
    """The Functions host refuses routes starting with ``admin``/``runtime`` (a plain prefix, before ``api/``
    is applied; a function without a route is routed by its name) and two functions on one route and method.
    The management API lives under ``manage/`` for that reason; the local host applies the same rule."""
    from devstack.functions_host.indexing import IndexedFunction, check_http_routes, http_route

    functions = []
    for name, bindings in _index().items():
        trigger = next(b for b in bindings if str(b["type"]).endswith("Trigger"))
        functions.append(IndexedFunction(name, name, dict(trigger), list(bindings)))
    check_http_routes(functions)  # raises IndexingError naming the function at fault
    routes = {http_route(f) for f in functions if f.trigger_type == "httpTrigger"}
    manage = {"manage/users/{userId}/notifications/{notificationId}", "manage/users/{userId}/notifications"}
    assert manage <= routes
    assert not [r for r in routes if r.lower().startswith(("admin", "runtime"))]
