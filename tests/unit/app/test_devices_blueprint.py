"""The devices blueprint declares the two HTTP routes the clients use and the repair timer."""

from __future__ import annotations

from typing import Any

import azure.functions as func

from notify.blueprints.devices import bp
from notify.devices import REPAIR_SCHEDULE


def _triggers() -> dict[str, Any]:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
    app.register_functions(bp)
    return {function.get_function_name(): function.get_trigger() for function in app.get_functions()}


def test_blueprint_declares_put_and_delete_routes() -> None:
    routes = {
        name: (trigger.route, tuple(str(m) for m in trigger.methods))
        for name, trigger in _triggers().items()
        if hasattr(trigger, "route")
    }
    assert routes["register_device"][0] == "devices/{installationId}"
    assert "PUT" in routes["register_device"][1][0]
    assert routes["unregister_device"][0] == "devices/{installationId}"
    assert "DELETE" in routes["unregister_device"][1][0]


def test_blueprint_declares_the_repair_timer_every_minute() -> None:
    trigger = _triggers()["repair_devices"]
    assert trigger.schedule == REPAIR_SCHEDULE == "0 * * * * *"
    assert not trigger.run_on_startup
